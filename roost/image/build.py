"""The whole build, step by step: wheel, base system, Roost layer, boot files, file systems, image, manifest."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.parser import Parser
from pathlib import Path

from roost.image import assemble, bootfiles, layout, manifest, rootfs, treehash
from roost.image.layout import MIB
from roost.image.recipe import Recipe, load
from roost.image.tools import BuildError, require, run

DEFAULT_CACHE = Path.home() / ".cache" / "roost-image"
EXAMPLE_CANDIDATES = (
    "gateway/firstboot/roost.example.toml",
    "gateway/firstboot/roost.toml.example",
    "image/roost.toml.example",
)


@dataclass(frozen=True, slots=True)
class Options:
    """``roost image build``'s options."""

    arch: str = "amd64"
    suite: str = "bookworm"
    out: Path = Path("dist/image")
    cache: Path = DEFAULT_CACHE
    source: Path = Path(__file__).resolve().parents[2]
    ssh_key: Path | None = None
    update_pub: Path | None = None
    keep_raw: bool = False
    xz_level: int = 6
    compress: bool = True
    """False: no .img.xz (the reproducibility test compares the raw images; keep_raw is implied)."""
    wheel: Path | None = None
    """Roost's wheel, made already; None: built from the checkout (pip wheel --no-deps)."""


@dataclass(slots=True)
class Result:
    """What a build made and how long each step took (seconds)."""

    image_xz: Path | None
    image_raw: Path | None
    sha256_file: Path | None
    manifest_json: Path
    manifest_txt: Path
    tree_listing: Path
    rootfs_sha256: str
    image_sha256: str
    raw_size: int
    xz_size: int
    layout: layout.Layout
    timings: dict[str, float] = field(default_factory=dict)
    ctime_skipped: list[str] = field(default_factory=list)


def source_date_epoch(source: Path) -> int:
    """SOURCE_DATE_EPOCH from the environment, else the last commit's time."""
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env:
        try:
            return int(env)
        except ValueError:
            raise BuildError(f"SOURCE_DATE_EPOCH={env!r} is not a whole number of seconds") from None
    try:
        return int(
            run(["git", "-C", source, "log", "-1", "--format=%ct"], step="reading the commit time", capture=True)
        )
    except (BuildError, ValueError):
        raise BuildError(f"{source} is not a git checkout with commits: set SOURCE_DATE_EPOCH") from None


def git_commit(source: Path) -> str:
    """The checked-out commit, with ``-dirty`` when tracked files were changed."""
    try:
        head = run(["git", "-C", source, "rev-parse", "HEAD"], step="reading the commit", capture=True).strip()
        dirty = run(["git", "-C", source, "status", "--porcelain", "--untracked-files=no"], step="git", capture=True)
    except BuildError:
        return "unknown"
    return head + ("-dirty" if dirty.strip() else "")


def build_wheel(source: Path, dest: Path, epoch: int, log: Path) -> Path:
    """Roost's wheel from the checkout (``pip wheel --no-deps .``)."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
         "-q", "-w", dest, source], step="building Roost's wheel (pip wheel)", env={"SOURCE_DATE_EPOCH": str(epoch)},
        log=log)  # fmt: skip
    wheels = sorted(dest.glob("roost-*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"pip wheel made {len(wheels)} roost wheels in {dest}, expected one")
    return wheels[0]


def wheel_requirements(wheel: Path) -> list[str]:
    """The Requires-Dist lines of a wheel's metadata."""
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(zf.read(name).decode())
    return sorted(meta.get_all("Requires-Dist") or [])


def roost_example(source: Path) -> str:
    """The commented roost.toml example the first-boot code ships, or a pointer to the docs."""
    for rel in EXAMPLE_CANDIDATES:
        path = source / rel
        if path.is_file():
            return path.read_text()
    return "# Put the gateway's settings in roost.toml on this partition; see docs/install.md.\n"


def boot_files(tree: Path, recipe: Recipe, staging: Path, source: Path) -> None:
    """The boot partition's files in ``staging``: the firmware and kernel, cmdline.txt (and config.txt on a Pi)."""
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    firmware = tree / bootfiles.BOOT_MOUNT.lstrip("/")
    kver = rootfs.kernel_version(tree)
    if recipe.arch == "arm64":
        for item in sorted(firmware.iterdir()):
            # raspi-firmware put the GPU firmware, kernel, initrd and the Pis' device trees there; in the image
            # /boot/firmware is a mount point, so its files belong on the FAT
            shutil.move(item, staging / item.name)
        (staging / "config.txt").write_text(bootfiles.config_txt(kver))
    else:
        shutil.copy2(tree / "boot" / f"vmlinuz-{kver}", staging / "vmlinuz")
        shutil.copy2(tree / "boot" / f"initrd.img-{kver}", staging / "initrd.img")
    (staging / "cmdline.txt").write_text(bootfiles.cmdline(recipe))
    (staging / "roost.toml.example").write_text(roost_example(source))


def tree_size(tree: Path) -> tuple[int, int]:
    """(bytes the tree takes in 4 KiB blocks, number of inodes)."""
    total = 0
    inodes = 0
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in [*dirnames, *filenames]:
            st = os.lstat(os.path.join(dirpath, name))
            inodes += 1
            total += layout.align_up(max(st.st_size, 1), 4096)
    return total, inodes


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def debian_packages(tree: Path) -> list[manifest.DebianPackage]:
    """The packages installed in the tree (dpkg-query on its database when the build machine has dpkg)."""
    if shutil.which("dpkg-query"):
        text = run(["dpkg-query", f"--admindir={tree / 'var/lib/dpkg'}", "-W", "-f", manifest.DPKG_FORMAT],
                   step="listing the image's packages (dpkg-query)", capture=True)  # fmt: skip
        return manifest.parse_dpkg_query(text)
    return manifest.parse_dpkg_status((tree / "var/lib/dpkg/status").read_text())


@contextmanager
def _timed(timings: dict[str, float], name: str, say: Callable[[str], None]) -> Iterator[None]:
    say(f"{name} ...")
    start = time.monotonic()
    yield
    timings[name] = round(time.monotonic() - start, 1)
    say(f"{name}: {timings[name]} s")


def build(opts: Options, say: Callable[[str], None] = print) -> Result:
    """Build the image; BuildError says which step failed and why."""
    if os.geteuid() != 0:
        raise BuildError("building the image needs root (it unpacks files owned by other users): run it with sudo")
    recipe = load(opts.source / "image" / "recipe.toml", opts.arch, opts.suite)
    os.umask(0o022)  # the modes of what the build makes must not depend on the caller's umask
    require("mmdebstrap", "tar", "chroot", "sfdisk", "mkfs.vfat", "mcopy", "mlabel", "mkfs.ext4", "debugfs", "xz")
    epoch = source_date_epoch(opts.source)
    commit = git_commit(opts.source)
    out = opts.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    cache = opts.cache.resolve()
    cache.mkdir(parents=True, exist_ok=True)
    work = out / f"work-{recipe.arch}"
    work.mkdir(exist_ok=True)
    log = out / f"build-{recipe.arch}.log"
    log.write_text("")
    timings: dict[str, float] = {}
    started = time.monotonic()

    with _timed(timings, "wheel", say):
        wheel = build_wheel(opts.source, work / "dist", epoch, log) if opts.wheel is None else opts.wheel
    version = wheel.name.split("-")[1]
    inputs = rootfs.Inputs(
        roost_wheel=wheel,
        version=version,
        constraints=opts.source / "constraints.txt",
        boot_check=opts.source / "gateway/dm/ota/slots.py",
        units_dir=opts.source / "systemd",
        overlay_dir=opts.source / "image/overlay",
        ssh_key=opts.ssh_key,
        update_pub=opts.update_pub,
        epoch=epoch,
        git_commit=commit,
    )
    with _timed(timings, "base system (mmdebstrap, cached)", say):
        base = rootfs.base_tarball(recipe, cache, epoch, log)
    with _timed(timings, "dependency wheels (cached)", say):
        wheels = rootfs.wheelhouse(recipe, cache, inputs, wheel_requirements(wheel), log)
    tree = work / "rootfs"
    with _timed(timings, "root file system", say):
        rootfs.extract(base, tree, log)
        units = rootfs.install_roost(tree, recipe, wheels, inputs, log)
        staging = work / "boot"
        boot_files(tree, recipe, staging, opts.source)
        packages = debian_packages(tree)
        site = sorted((tree / "opt/roost/slots/a/lib").glob("python3*/site-packages"))
        dists = manifest.python_distributions(site[0]) if site else []
        assemble.clamp_times(tree, epoch)
        assemble.clamp_times(staging, epoch)
    say(f"units from systemd/: {', '.join(units) or 'none (the systemd/ folder is empty)'}")
    base_name = f"roost-{version}-{recipe.arch}"
    listing = out / f"{base_name}.tree.txt"
    with _timed(timings, "root file system hash", say):
        rootfs_hash = treehash.tree_hash(tree, listing)
    content, inodes = tree_size(tree)
    root_size = layout.root_fs_size(content, inodes, recipe.root_free_mib * MIB, recipe.alignment_mib * MIB)
    disk = layout.compute(recipe.ids.disk_id, recipe.boot_size_mib * MIB, root_size, recipe.alignment_mib * MIB)
    with _timed(timings, "file systems (mkfs.vfat + mcopy, mkfs.ext4 -d)", say):
        fat = work / "boot.vfat"
        assemble.make_fat(
            fat,
            assemble.FatSpec(disk.boot.size, recipe.ids.boot_label, recipe.ids.boot_volume_id),
            sorted(staging.iterdir()),
            epoch,
            log,
        )
        ext4 = work / "root.ext4"
        skipped = assemble.make_ext4(
            ext4,
            assemble.Ext4Spec(
                disk.root.size, recipe.ids.root_label, recipe.ids.root_uuid, recipe.ids.root_hash_seed, inodes * 2
            ),
            tree,
            epoch,
            log,
        )
    raw = out / f"{base_name}.img"
    with _timed(timings, "image (sfdisk, dd)", say):
        assemble.write_image(raw, disk, fat, ext4)
        fat.unlink()
        ext4.unlink()
        image_sha = _sha256(raw)
    files = {raw.name: {"sha256": image_sha, "size": raw.stat().st_size}}
    xz = sha_file = None
    if opts.compress:
        with _timed(timings, f"xz -{opts.xz_level}", say):
            xz = assemble.compress(raw, opts.xz_level)
        xz_sha = _sha256(xz)
        sha_file = out / f"{xz.name}.sha256"
        sha_file.write_text(f"{xz_sha}  {xz.name}\n")
        files[xz.name] = {"sha256": xz_sha, "size": xz.stat().st_size}
    layout_info = {
        "disk_id": f"0x{disk.disk_id:08x}",
        "size": disk.size,
        "partitions": [
            {"number": p.number, "start": p.start, "size": p.size, "type": p.type, "partuuid": p.partuuid}
            for p in (disk.boot, disk.root)
        ],
        "kernel": rootfs.kernel_version(tree),
    }
    doc = manifest.Manifest("roost", version, recipe.arch, recipe.suite, epoch, commit, rootfs_hash, packages, dists,
                            files, layout_info)  # fmt: skip
    mjson, mtxt = out / f"{base_name}.manifest.json", out / f"{base_name}.manifest.txt"
    doc.write(mjson, mtxt)
    raw_size = raw.stat().st_size
    keep_raw = opts.keep_raw or not opts.compress
    if not keep_raw:
        raw.unlink()
    shutil.rmtree(tree)
    shutil.rmtree(staging)
    timings["total"] = round(time.monotonic() - started, 1)
    (out / f"{base_name}.timings.json").write_text(json.dumps(timings, indent=1) + "\n")
    return Result(
        image_xz=xz,
        image_raw=raw if keep_raw else None,
        sha256_file=sha_file,
        manifest_json=mjson,
        manifest_txt=mtxt,
        tree_listing=listing,
        rootfs_sha256=rootfs_hash,
        image_sha256=image_sha,
        raw_size=raw_size,
        xz_size=xz.stat().st_size if xz is not None else 0,
        layout=disk,
        timings=timings,
        ctime_skipped=skipped,
    )
