"""The root file system: Debian's packages (mmdebstrap, cached as a tarball), then Roost installed into it.

The base tarball depends only on the recipe's package lists, so it is made once and kept in the cache folder
(``~/.cache/roost-image``); the wheels of Roost's dependencies are built once per constraints.txt in a build
chroot of the same Debian (so C extensions such as spidev match the image's Python and architecture). Each
build then unpacks the tarball into a fresh folder and installs Roost there with ``chroot`` (no mounts: the
tarball already holds /dev's nodes, and nothing in the steps needs /proc).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from roost.image import bootfiles
from roost.image.recipe import Recipe
from roost.image.tools import BuildError, require, run

SLOT = "a"
ROOST_ROOT = "/opt/roost"
STATE_DIR = "/var/lib/roost"
CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
UNIT_SUFFIXES = (".service", ".socket", ".timer", ".path", ".target")


@dataclass(frozen=True, slots=True)
class Inputs:
    """What the Roost layer is made of (all from the checkout and the command line)."""

    roost_wheel: Path
    version: str
    constraints: Path
    boot_check: Path  # gateway/dm/ota/slots.py
    units_dir: Path  # the repository's systemd/ folder (may be missing or empty)
    overlay_dir: Path  # image/overlay: files copied over the root as they are
    ssh_key: Path | None
    update_pub: Path | None
    epoch: int
    git_commit: str


def _mmdebstrap_common(recipe: Recipe) -> list[str]:
    args = [
        "mmdebstrap",
        "--mode=root",
        f"--variant={recipe.variant}",
        f"--architectures={recipe.arch}",
        f"--components={','.join(recipe.components)}",
        '--aptopt=Acquire::Retries "3"',
    ]
    args += [f"--dpkgopt=path-exclude={p}" for p in recipe.path_exclude]
    args += [f"--dpkgopt=path-include={p}" for p in recipe.path_include]
    return args


def _check_foreign(recipe: Recipe) -> None:
    """A foreign architecture needs qemu-user-static registered with binfmt_misc."""
    host = run(["dpkg", "--print-architecture"], step="reading the build machine's architecture", capture=True)
    if host.strip() == recipe.arch:
        return
    if not Path(f"/proc/sys/fs/binfmt_misc/qemu-{_qemu_name(recipe.arch)}").exists():
        raise BuildError(
            f"building an {recipe.arch} image on {host.strip()} needs qemu-user-static and binfmt-support "
            "(apt-get install qemu-user-static binfmt-support, or make deps as root)"
        )


def _qemu_name(arch: str) -> str:
    return {"arm64": "aarch64", "amd64": "x86_64"}.get(arch, arch)


def base_tarball(recipe: Recipe, cache: Path, epoch: int, log: Path) -> Path:
    """The Debian base root file system as a tarball, made with mmdebstrap unless the cache holds it."""
    key = hashlib.sha256((recipe.base_key() + "\n".join(_one_initramfs())).encode()).hexdigest()[:16]
    out = cache / f"base-{recipe.suite}-{recipe.arch}-{key}.tar"  # the recipe's packages and the hooks
    if out.exists():
        return out
    require("mmdebstrap")
    _check_foreign(recipe)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    tmp.unlink(missing_ok=True)
    args = _mmdebstrap_common(recipe)
    args += [f"--include={','.join(recipe.packages)}", *_one_initramfs()]
    args += ["--format=tar", recipe.suite, str(tmp), *recipe.sources()]
    run(args, step="making the Debian base system (mmdebstrap)", env={"SOURCE_DATE_EPOCH": str(epoch)}, log=log)
    tmp.replace(out)
    prune(cache, f"base-{recipe.suite}-{recipe.arch}-", keep=out)
    return out


def prune(cache: Path, prefix: str, keep: Path) -> None:
    """Remove the cache's older entries of one kind (made from other recipes or pins), keeping ``keep``."""
    for old in cache.glob(prefix + "*"):
        if old == keep:
            continue
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


def _one_initramfs() -> list[str]:
    """Hooks that make the initramfs once, at the end, instead of at every package that triggers it.

    Under qemu-user (an arm64 image built on amd64) each mkinitramfs run takes many minutes, and the kernel,
    initramfs-tools, the firmware packages and their triggers would each start one. update-initramfs is
    diverted to a no-op while packages are installed; the customize hook puts it back and runs it once
    (which also runs raspi-firmware's hook: the Pi's /boot/firmware is filled then).
    """
    stub = "/usr/sbin/update-initramfs"
    return [
        f'--essential-hook=chroot "$1" dpkg-divert --quiet --local --rename --add {stub}',
        f'--essential-hook=printf \'#!/bin/sh\\nexit 0\\n\' > "$1{stub}" && chmod 755 "$1{stub}"',
        f'--customize-hook=rm -f "$1{stub}" && chroot "$1" dpkg-divert --quiet --local --rename --remove {stub}',
        '--customize-hook=chroot "$1" update-initramfs -c -k all',
    ]


def wheelhouse_key(recipe: Recipe, constraints: Path, requirements: list[str]) -> str:
    """The cache key of the dependency wheels: the build chroot, the pins and Roost's own requirements."""
    h = hashlib.sha256()
    h.update(recipe.builder_key().encode())
    h.update(constraints.read_bytes())
    h.update("\n".join(sorted(requirements)).encode())
    h.update(",".join(recipe.extras).encode())
    return h.hexdigest()[:16]


def wheelhouse(recipe: Recipe, cache: Path, inputs: Inputs, requirements: list[str], log: Path) -> Path:
    """The wheels of Roost's dependencies for the image (built in a Debian chroot of the image's suite and arch)."""
    key = wheelhouse_key(recipe, inputs.constraints, requirements)
    out = cache / f"wheels-{recipe.suite}-{recipe.arch}-{key}"
    if (out / ".complete").exists():
        return out
    require("mmdebstrap")
    _check_foreign(recipe)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    pip_cache = cache / "pip"
    pip_cache.mkdir(parents=True, exist_ok=True)
    stage = cache / f"stage-{key}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    shutil.copy2(inputs.roost_wheel, stage / inputs.roost_wheel.name)
    shutil.copy2(inputs.constraints, stage / "constraints.txt")
    spec = _requirement(inputs.roost_wheel.name, recipe.extras, path=f"/tmp/roost-build/{inputs.roost_wheel.name}")
    # A clean environment (the build machine's pip settings point at its own files), plus its proxy settings
    # and its CA bundle: a build machine behind a TLS-inspecting proxy trusts that proxy's CA, so must pip here.
    env = {"PATH": CHROOT_PATH, "HOME": "/root", "LC_ALL": "C.UTF-8", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env |= {k: v for k, v in os.environ.items() if k.lower() in ("http_proxy", "https_proxy", "no_proxy")}
    host_ca = host_ca_bundle()
    if host_ca is not None:
        shutil.copyfile(host_ca, stage / "host-ca.pem")
        env["PIP_CERT"] = "/tmp/roost-build/host-ca.pem"
    script = (
        "set -e; python3 -m venv /tmp/roost-build/venv; "
        "/tmp/roost-build/venv/bin/pip wheel --cache-dir /tmp/pip-cache "
        f"--wheel-dir /tmp/roost-build/wheels -c /tmp/roost-build/constraints.txt {shlex.quote(spec)}"
    )
    env_args = " ".join(shlex.quote(f"{k}={v}") for k, v in sorted(env.items()))
    args = _mmdebstrap_common(recipe)
    args += [
        f"--include={','.join(recipe.builder_packages)}",
        '--customize-hook=mkdir -p "$1"/tmp/roost-build "$1"/tmp/pip-cache',
        f"--customize-hook=sync-in {stage} /tmp/roost-build",
        f"--customize-hook=sync-in {pip_cache} /tmp/pip-cache",
        f'--customize-hook=chroot "$1" env -i {env_args} sh -c {shlex.quote(script)}',
        f"--customize-hook=sync-out /tmp/pip-cache {pip_cache}",
        f"--customize-hook=sync-out /tmp/roost-build/wheels {out}",
        "--format=null",
        recipe.suite,
        "/dev/null",
        *recipe.sources(),
    ]
    try:
        run(args, step="building the dependencies' wheels for the image (mmdebstrap + pip wheel)", log=log)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    for whl in out.glob("roost-*.whl"):
        whl.unlink()  # Roost's own wheel comes from the checkout at every build
    (out / ".complete").write_text("")
    prune(cache, f"wheels-{recipe.suite}-{recipe.arch}-", keep=out)
    return out


def host_ca_bundle() -> Path | None:
    """The CA bundle the build machine's own pip trusts (PIP_CERT, SSL_CERT_FILE or Debian's bundle), if any."""
    for var in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        value = os.environ.get(var)
        if value and Path(value).is_file():
            return Path(value)
    debian = Path("/etc/ssl/certs/ca-certificates.crt")
    return debian if debian.is_file() else None


def _requirement(wheel_name: str, extras: tuple[str, ...], *, path: str | None = None) -> str:
    """``roost[ble,zigbee] @ file:///...`` or ``roost[ble,zigbee]==1.2.3``."""
    version = wheel_name.split("-")[1]
    name = "roost" + (f"[{','.join(extras)}]" if extras else "")
    return f"{name} @ file://{path}" if path else f"{name}=={version}"


def extract(tarball: Path, tree: Path, log: Path) -> None:
    """Unpack the base tarball into a fresh ``tree`` with owners, modes, device nodes and extended attributes."""
    if tree.exists():
        shutil.rmtree(tree)
    tree.mkdir(parents=True)
    run(
        ["tar", "--extract", "--file", tarball, "--directory", tree, "--numeric-owner", "--same-owner",
         "--preserve-permissions", "--xattrs", "--xattrs-include=*"],
        step="unpacking the base system (tar)",
        log=log,
    )  # fmt: skip


def chroot(tree: Path, script: str, *, epoch: int, step: str, log: Path) -> None:
    """Run a shell script as root inside ``tree`` with a clean environment (no mounts: see the module doc)."""
    env = {
        "PATH": CHROOT_PATH,
        "HOME": "/root",
        "LC_ALL": "C.UTF-8",
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "SOURCE_DATE_EPOCH": str(epoch),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "DEBIAN_FRONTEND": "noninteractive",
    }
    run(["env", "-i", *(f"{k}={v}" for k, v in env.items()), "chroot", tree, "/bin/sh", "-euc", script],
        step=step, log=log)  # fmt: skip


def _write(tree: Path, rel: str, text: str, mode: int = 0o644) -> None:
    path = tree / rel.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _ids(tree: Path, user: str) -> tuple[int, int]:
    for line in (tree / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3])
    raise BuildError(f"the user {user!r} was not created in the image")


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid, follow_symlinks=False)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [*dirnames, *filenames]:
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)


def install_units(tree: Path, units_dir: Path) -> list[str]:
    """Copy the repository's systemd/ folder into the image: units, sysusers and tmpfiles files, polkit rules.

    ``NAME.sysusers.conf`` goes to /usr/lib/sysusers.d/NAME.conf, ``NAME.tmpfiles.conf`` to /usr/lib/tmpfiles.d,
    ``*.rules`` (also under polkit/) to /usr/share/polkit-1/rules.d. Returns the unit names.
    """
    names: list[str] = []
    if not units_dir.is_dir():
        return names
    for src in sorted(p for p in units_dir.rglob("*") if p.is_file()):
        name = src.name
        if name.endswith(UNIT_SUFFIXES):
            dest = tree / "usr/lib/systemd/system" / name
            names.append(name)
        elif name.endswith(".rules"):
            dest = tree / "usr/share/polkit-1/rules.d" / name
        elif name.endswith(".sysusers.conf"):
            dest = tree / "usr/lib/sysusers.d" / name.replace(".sysusers.conf", ".conf")
        elif name.endswith(".tmpfiles.conf"):
            dest = tree / "usr/lib/tmpfiles.d" / name.replace(".tmpfiles.conf", ".conf")
        else:
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        dest.chmod(0o644)
    return names


def _overlay(tree: Path, overlay: Path) -> None:
    if not overlay.is_dir():
        return
    for dirpath, _dirnames, filenames in os.walk(overlay):
        rel = Path(dirpath).relative_to(overlay)
        (tree / rel).mkdir(parents=True, exist_ok=True)
        for name in sorted(filenames):
            src = Path(dirpath) / name
            dest = tree / rel / name
            shutil.copyfile(src, dest)
            dest.chmod(0o755 if os.access(src, os.X_OK) else 0o644)


def install_roost(tree: Path, recipe: Recipe, wheels: Path, inputs: Inputs, log: Path) -> list[str]:
    """Everything on top of Debian: the user, the A/B layout with slot a, units, network, ssh, config files.

    Returns the unit files installed from the repository.
    """
    build = tree / "tmp/roost-build"
    shutil.rmtree(build, ignore_errors=True)
    (build / "wheels").mkdir(parents=True)
    for whl in sorted(wheels.glob("*.whl")):
        shutil.copyfile(whl, build / "wheels" / whl.name)
    shutil.copyfile(inputs.roost_wheel, build / "wheels" / inputs.roost_wheel.name)
    shutil.copyfile(inputs.constraints, build / "constraints.txt")
    slot = f"{ROOST_ROOT}/slots/{SLOT}"
    requirement = _requirement(inputs.roost_wheel.name, recipe.extras)
    units = install_units(tree, inputs.units_dir)
    chroot(
        tree,
        # the user (and the bus groups) from systemd/roost.sysusers.conf when the repository has it
        "if [ -e /usr/lib/sysusers.d/roost.conf ]; then systemd-sysusers roost.conf; fi\n"
        "id roost >/dev/null 2>&1 || useradd --system --user-group --home-dir /var/lib/roost --no-create-home "
        "--shell /usr/sbin/nologin --comment 'Roost gateway' roost\n"
        f"python3 -m venv {slot}\n"
        f"{slot}/bin/python -m pip install --no-index --find-links /tmp/roost-build/wheels "
        "-c /tmp/roost-build/constraints.txt --disable-pip-version-check --no-cache-dir -q "
        f"{shlex.quote(requirement)}\n",
        epoch=inputs.epoch,
        step="installing Roost into /opt/roost/slots/a (python3 -m venv, pip install)",
        log=log,
    )
    shutil.rmtree(build)
    uid, gid = _ids(tree, "roost")
    root = tree / ROOST_ROOT.lstrip("/")
    # The marker the boot check and the updater read (gateway/dm/ota/slots.py), written last.
    marker = {"version": inputs.version, "installed": float(inputs.epoch), "image": True}
    (root / "slots" / SLOT / ".roost-slot.json").write_text(json.dumps(marker, indent=1, sort_keys=True) + "\n")
    os.symlink(os.path.join("slots", SLOT), root / "current")
    shutil.copyfile(inputs.boot_check, root / "boot-check.py")
    (root / "boot-check.py").chmod(0o644)
    _chown_tree(root, uid, gid)  # the update root belongs to the gateway's user (docs/ota.md)
    os.chown(root / "boot-check.py", 0, 0)  # run by the service manager before every start: root's
    state = tree / STATE_DIR.lstrip("/")
    state.mkdir(mode=0o700, exist_ok=True)
    state.chmod(0o700)
    os.chown(state, uid, gid)
    etc = tree / "etc/roost"
    etc.mkdir(exist_ok=True)
    etc.chmod(0o750)  # written by first boot (root), read by the gateway (group roost)
    os.chown(etc, 0, gid)
    if inputs.update_pub is not None:
        shutil.copyfile(inputs.update_pub, tree / "etc/roost/update.pub")
        (tree / "etc/roost/update.pub").chmod(0o644)
    release = {
        "product": "roost",
        "version": inputs.version,
        "arch": recipe.arch,
        "suite": recipe.suite,
        "git_commit": inputs.git_commit,
        "source_date_epoch": inputs.epoch,
    }
    _write(tree, "etc/roost/image-release.json", json.dumps(release, indent=1, sort_keys=True) + "\n")
    _system_files(tree, recipe, inputs)
    _overlay(tree, inputs.overlay_dir)
    _enable(tree, recipe, units, inputs, log)
    _cleanup(tree)
    return units


def _system_files(tree: Path, recipe: Recipe, inputs: Inputs) -> None:
    _write(tree, "etc/hostname", recipe.hostname + "\n")
    _write(tree, "etc/hosts", bootfiles.hosts(recipe))
    _write(tree, "etc/fstab", bootfiles.fstab(recipe))
    (tree / bootfiles.BOOT_MOUNT.lstrip("/")).mkdir(parents=True, exist_ok=True)
    if recipe.network == "networkd":
        _write(tree, "etc/systemd/network/20-wired.network", bootfiles.networkd_wired())
    if recipe.arch == "arm64":
        _write(tree, "etc/default/raspi-firmware", bootfiles.raspi_firmware_defaults(recipe))
        _write(tree, "etc/default/raspi-firmware-custom", "\n".join(bootfiles.raspi_custom_lines()) + "\n")
    _write(tree, "etc/apt/sources.list", "\n".join(recipe.sources()) + "\n")
    for key in (tree / "etc/ssh").glob("ssh_host_*"):
        key.unlink()  # every card makes its own host keys at first boot (roost-ssh-keygen.service)
    if inputs.ssh_key is not None:
        ssh = tree / "root/.ssh"
        ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
        (ssh / "authorized_keys").write_text(inputs.ssh_key.read_text().strip() + "\n")
        (ssh / "authorized_keys").chmod(0o600)
    machine_id = tree / "etc/machine-id"
    machine_id.write_text("")  # empty: systemd makes one at first boot (and runs ConditionFirstBoot units)


def _enable(tree: Path, recipe: Recipe, units: list[str], inputs: Inputs, log: Path) -> None:
    enable = [u for u in recipe.enable_units if u in units]
    enable.append("roost-ssh-keygen.service")
    if recipe.network == "networkd":
        enable += ["systemd-networkd.service", "systemd-resolved.service"]
    commands = [f"systemctl enable {shlex.quote(u)}" for u in enable]
    # The SSH server stays off unless a key was given; the technician's ssh-on action starts it.
    commands.append("systemctl enable ssh.service" if inputs.ssh_key else "systemctl disable ssh.service")
    if recipe.network == "networkd":
        commands.append("ln -sf ../run/systemd/resolve/stub-resolv.conf /etc/resolv.conf")
    chroot(tree, "\n".join(commands) + "\n", epoch=inputs.epoch, step="enabling the services (systemctl)", log=log)


def _cleanup(tree: Path) -> None:
    for pattern in ("var/cache/apt/*.bin", "var/lib/apt/lists/*", "var/log/*.log", "var/cache/debconf/*-old",
                    "var/lib/dpkg/*-old", "root/.cache",
                    "etc/.resolv.conf.*.bak"):  # fmt: skip
        for path in tree.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def _natural(text: str) -> list[tuple[int, str]]:
    """A sort key that orders the numbers in a version by value (6.1.0-10 after 6.1.0-9)."""
    return [(int(part), "") if part.isdigit() else (-1, part) for part in re.split(r"(\d+)", text) if part]


def kernel_version(tree: Path) -> str:
    """The version of the (newest) kernel installed in the tree."""
    versions = sorted((p.name.removeprefix("vmlinuz-") for p in (tree / "boot").glob("vmlinuz-*")), key=_natural)
    if not versions:
        raise BuildError("no kernel in the root file system's /boot (is linux-image-* in the recipe?)")
    return versions[-1]
