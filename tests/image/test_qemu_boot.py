"""The amd64 image, built for real and booted in qemu: first boot, enrollment with a claim token, a reading.

The test builds the image (``roost image build --arch amd64``; the Debian base tarball and the dependency
wheels are cached in ``~/.cache/roost-image`` between runs, ROOST_IMAGE_CACHE overrides), starts a cloud on
the host's loopback with https (a test CA), writes roost.toml (the cloud at https://10.0.2.2:PORT, which
qemu's user-mode network maps to the host's 127.0.0.1, a claim token, an emulated BME280) and the CA beside
it onto the image's boot partition with mtools,
and boots it: the kernel, initrd and cmdline.txt come from the boot partition (qemu -kernel/-initrd: the
amd64 image has no boot loader of its own), the root is found by PARTUUID as on a Pi, the console is the
first serial port, written to a file. It then waits, bounded, for the gateway under systemd to enroll and
for the emulated sensor's readings to reach the cloud's API.

Needs root (the build unpacks files owned by other users), mmdebstrap, mtools, dosfstools, fdisk and qemu
(make deps as root). Uses qemu's software emulation (TCG) unless ROOST_IMAGE_ACCEL=kvm.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cloud.identity import admin
from roost.image import assemble
from roost.image.build import DEFAULT_CACHE, Options, Result, build
from tests.e2e.harness import Site
from tests.pki import make_ca

TOOLS = ("mmdebstrap", "mcopy", "mtype", "mkfs.vfat", "sfdisk", "mkfs.ext4", "debugfs", "xz", "qemu-system-x86_64")
MISSING = [t for t in TOOLS if shutil.which(t) is None]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.image,
    pytest.mark.timeout(3600),
    pytest.mark.skipif(os.geteuid() != 0, reason="building the image needs root (it unpacks files of other users)"),
    pytest.mark.skipif(bool(MISSING), reason=f"missing {', '.join(MISSING)} (make deps as root installs them)"),
]

BOOT_TIMEOUT_S = float(os.environ.get("ROOST_IMAGE_BOOT_TIMEOUT", "600"))
SENSOR = "qemu-climate"
TENANT = "default"


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Result]:
    """The amd64 image, built once for the module (raw image kept for the boot; the big files removed after)."""
    out = tmp_path_factory.mktemp("image")
    cache = Path(os.environ.get("ROOST_IMAGE_CACHE", DEFAULT_CACHE))
    result = build(Options(arch="amd64", out=out, cache=cache, keep_raw=True, xz_level=1), say=lambda _t: None)
    print(f"\nimage build: {json.dumps(result.timings)}")
    yield result
    for big in (result.image_raw, result.image_xz):
        if big is not None:
            big.unlink(missing_ok=True)


def accel() -> list[str]:
    """qemu's accelerator: software emulation unless ROOST_IMAGE_ACCEL=kvm (nested KVM in CI machines often
    fails to start a guest, or starts one that never prints a line, so it is opt-in)."""
    if os.environ.get("ROOST_IMAGE_ACCEL") == "kvm" and os.access("/dev/kvm", os.R_OK | os.W_OK):
        return ["-accel", "kvm", "-cpu", "host"]
    return ["-accel", "tcg", "-cpu", "max"]


HOST_FROM_GUEST = "10.0.2.2"  # qemu's user-mode network: the host's 127.0.0.1 as the guest sees it


def make_server_cert(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 (the test's requests) and 10.0.2.2 (the guest's)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = make_ca(folder / "ca.pem", "Roost image test CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    names = [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", HOST_FROM_GUEST)]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, HOST_FROM_GUEST)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "server.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (folder / "server.key").chmod(0o600)
    return folder / "ca.pem", folder / "server.pem", folder / "server.key"


def roost_toml(cloud_url: str, claim_token: str) -> str:
    return f"""# Written by tests/image/test_qemu_boot.py
timezone = "Etc/UTC"

[cloud]
url = "{cloud_url}"
tenant = "{TENANT}"
ca_file = "cloud-ca.pem"

[enrollment]
method = "claim-token"
claim_token = "{claim_token}"

[local]
pin = "246810"

[[sensors]]
kind = "i2c"
chip = "bme280"
id = "{SENSOR}"
interval_s = 5
emulated = true
"""


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """A cloud on the host's loopback with https (OAuth 2 refuses plain http to any host but localhost)."""
    ca, cert, key = make_server_cert(tmp_path / "pki")
    s = Site(
        tmp_path,
        gateway_password=False,
        certfile=cert,
        keyfile=key,
        ca_file=ca,
        cloud_extra="[identity]\naccess_token_ttl_s = 3600\n",
    )
    try:
        yield s
    finally:
        s.stop_all()


class Guest:
    """One qemu process booting the image; the serial console goes to ``console``."""

    def __init__(self, disk: Path, boot_dir: Path, console: Path, cmdline: str) -> None:
        chosen = accel()
        self.accel = chosen[1]
        self.console = console
        self.argv = [
            "qemu-system-x86_64", *chosen, "-machine", "q35", "-m", "1024", "-smp", "2",
            "-nodefaults", "-display", "none", "-no-reboot",
            "-kernel", str(boot_dir / "vmlinuz"), "-initrd", str(boot_dir / "initrd.img"), "-append", cmdline,
            "-drive", f"file={disk},format=raw,if=virtio,cache=unsafe",
            "-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0",
            "-device", "virtio-rng-pci",
            "-serial", f"file:{console}",
        ]  # fmt: skip
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.console.with_name("qemu.log").open("wb") as err:
            self.popen = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=err)

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)

    def log(self, lines: int = 80) -> str:
        try:
            text = self.console.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def guest_journal(disk: Path, root_offset: int, dest: Path) -> str:
    """The guest's journal for Roost's units, read from its disk after it stopped (for a failure's message)."""
    if shutil.which("journalctl") is None:
        return "(journalctl is not installed here: no guest journal)"
    dest.mkdir(exist_ok=True)
    subprocess.run(["debugfs", "-R", f"rdump /var/log/journal {dest}", f"{disk}?offset={root_offset}"],
                   capture_output=True, check=False)  # fmt: skip
    proc = subprocess.run(
        ["journalctl", f"--directory={dest / 'journal'}", "--no-pager", "-o", "short-monotonic",
         "-u", "roost-firstboot", "-u", "roost-gateway"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return "\n".join((proc.stdout + proc.stderr).splitlines()[-60:])


def find_number(data: Any, key: str) -> float | None:
    """The first number under ``key`` anywhere in a JSON document."""
    if isinstance(data, dict):
        for k, v in data.items():
            if k == key and isinstance(v, int | float):
                return float(v)
            found = find_number(v, key)
            if found is not None:
                return found
    elif isinstance(data, list):
        for v in data:
            found = find_number(v, key)
            if found is not None:
                return found
    return None


def test_image_boots_enrolls_and_delivers_a_reading(image: Result, site: Site, tmp_path: Path) -> None:
    assert image.image_raw is not None and image.image_xz is not None and image.sha256_file is not None
    # The build's outputs first: the compressed image, its checksum, the manifest.
    assert image.sha256_file.read_text().split()[1] == image.image_xz.name
    doc = json.loads(image.manifest_json.read_text())
    assert doc["rootfs_sha256"] == image.rootfs_sha256
    assert any(p["name"] == "linux-image-amd64" for p in doc["debian_packages"])
    assert any(p["name"] == "roost" for p in doc["python_distributions"])

    site.start_cloud()
    admin.ensure_tenant(site.identity_db, TENANT)
    _rec, claim = admin.create_claim_token(site.identity_db, TENANT, max_uses=1, ttl_s=3600)

    disk = tmp_path / "disk.img"
    subprocess.run(["cp", "--sparse=always", str(image.image_raw), str(disk)], check=True)
    with disk.open("r+b") as fh:
        fh.truncate(image.layout.size + 512 * 1024 * 1024)  # a bigger "card": first boot grows the root into it
    boot = image.layout.boot.start
    settings = tmp_path / "roost.toml"
    assert site.ca_file is not None
    settings.write_text(roost_toml(f"https://{HOST_FROM_GUEST}:{site.http_port}", claim))
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    for src, name in ((settings, "roost.toml"), (site.ca_file, "cloud-ca.pem")):
        subprocess.run(["mcopy", "-o", "-i", f"{disk}@@{boot}", str(src), f"::/{name}"], check=True, env=env)
    kernel = tmp_path / "kernel"
    kernel.mkdir()
    for name in ("vmlinuz", "initrd.img"):
        (kernel / name).write_bytes(assemble.read_fat_file(disk, name, boot))
    cmdline = assemble.read_fat_file(disk, "cmdline.txt", boot).decode().strip()
    assert "root=PARTUUID=" in cmdline

    guest = Guest(disk, kernel, tmp_path / "console.log", cmdline)
    started = time.monotonic()
    guest.start()
    ok = False
    try:
        online_at = reading_at = None
        gateway: dict[str, Any] = {}
        items: list[dict[str, Any]] = []
        deadline = started + BOOT_TIMEOUT_S
        while time.monotonic() < deadline and reading_at is None:
            assert guest.alive(), f"qemu stopped: {guest.console.with_name('qemu.log').read_text()}\n{guest.log()}"
            gateways = site.api("/api/v1/gateways")["items"]
            if gateways and online_at is None and gateways[0].get("online"):
                online_at = time.monotonic() - started
            if gateways:
                gateway = gateways[0]
            items = site.readings(sensor=SENSOR)
            if items:
                reading_at = time.monotonic() - started
                break
            time.sleep(2)
        assert gateway, f"no gateway enrolled within {BOOT_TIMEOUT_S:.0f} s; console:\n{guest.log()}"
        assert items, f"no reading from {SENSOR} within {BOOT_TIMEOUT_S:.0f} s; console:\n{guest.log()}"
        assert {i["metric"] for i in items} & {"temperature", "humidity", "pressure"}, items[:3]
        assert all(i["gateway"] == gateway["id"] for i in items)

        # Idle memory: the gateway's own health report carries its resident set size.
        rss = None
        rss_deadline = time.monotonic() + 90
        while rss is None and time.monotonic() < rss_deadline:
            rss = find_number(site.api("/api/v1/gateways")["items"], "process_rss_mb")
            if rss is None:
                time.sleep(3)
        console = guest.log(10_000)
        assert "Roost first boot: done" in console, console[-3000:]
        figures = {
            "accel": guest.accel,
            "gateway_online_s": round(online_at or 0, 1),
            "first_reading_s": round(reading_at or 0, 1),
            "gateway_rss_mb": rss,
            "build": image.timings,
            "image_raw_bytes": image.raw_size,
            "image_xz_bytes_level1": image.xz_size,
        }
        print(f"\nqemu boot figures: {json.dumps(figures)}")
        (tmp_path / "figures.json").write_text(json.dumps(figures, indent=1))
        ok = True
    finally:
        guest.stop()
        if not ok:
            print("guest journal (roost units):\n" + guest_journal(disk, image.layout.root.start, tmp_path / "journal"))
        disk.unlink()  # 2 GiB (sparse); the console log stays
