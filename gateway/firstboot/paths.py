"""Where first boot writes (the installed layout) and how: atomically, under a root prefix."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

BOOT_FILE = "roost.toml"
APPLIED_FILE = "roost.toml.applied"
GATEWAY_TOML = "/etc/roost/gateway.toml"
CLOUD_CA = "/etc/roost/cloud-ca.pem"
UPDATE_PUBKEY = "/etc/roost/update.pub"
UPDATE_ROOT = "/opt/roost"
STATE_DIR = "/var/lib/roost"
CLAIM_TOKEN = "/var/lib/roost/identity/claim-token"
LOCAL_DIR = "/var/lib/roost/local"
PIN_FILE = "/var/lib/roost/local/pin.json"
CERT_FILE = "/var/lib/roost/local/cert.pem"
CERT_KEY_FILE = "/var/lib/roost/local/key.pem"
REPORT_FILE = "/var/lib/roost/firstboot-report.json"
DONE_FILE = "/var/lib/roost/firstboot.done"
HOSTNAME = "/etc/hostname"
HOSTS = "/etc/hosts"
TIMEZONE = "/etc/timezone"
LOCALTIME = "/etc/localtime"
ZONEINFO = "/usr/share/zoneinfo"
NM_CONNECTIONS = "/etc/NetworkManager/system-connections"
WIFI_CONNECTION = "/etc/NetworkManager/system-connections/roost-wifi.nmconnection"
ETHERNET_CONNECTION = "/etc/NetworkManager/system-connections/roost-ethernet.nmconnection"
REGDOM_MODPROBE = "/etc/modprobe.d/roost-wifi-country.conf"
RFKILL_STATE_DIR = "/var/lib/systemd/rfkill"
RFKILL_WLAN = ("platform-3f300000.mmcnr:wlan", "platform-fe300000.mmcnr:wlan", "platform-1001100000.mmc:wlan")
"""systemd-rfkill's saved state of the Wi-Fi of a Pi 3/Zero 2 W, a Pi 4 and a Pi 5: 0 = not blocked."""
ROOT_SSH_DIR = "/root/.ssh"
ROOT_AUTHORIZED_KEYS = "/root/.ssh/authorized_keys"
SSH_UNIT = "/lib/systemd/system/ssh.service"
SSH_WANTS = "/etc/systemd/system/multi-user.target.wants/ssh.service"
SSH_ALIAS = "/etc/systemd/system/sshd.service"
BUS_GROUPS_DROPIN = "/etc/systemd/system/roost-gateway.service.d/10-buses.conf"
PASSWD = "/etc/passwd"
LEDS = "/sys/class/leds"
SERVICE_USER = "roost"


@dataclass(frozen=True, slots=True)
class SystemRoot:
    """A root prefix for every system path: ``/`` on a device, a folder when tests run against a tree."""

    root: Path

    def __call__(self, system_path: str) -> Path:
        """``/etc/hostname`` under this root."""
        return self.root / system_path.lstrip("/")

    @property
    def live(self) -> bool:
        """Whether this is the running system's own root (commands and devices may be touched)."""
        return self.root.resolve() == Path("/")


def write_atomic(path: Path, data: bytes | str, mode: int | None = 0o644) -> bool:
    """Write ``path`` whole or not at all (temp file, fsync, rename, fsync of the folder); False if unchanged.

    ``mode`` None: leave permissions to the file system (the boot partition is FAT, which has none).
    """
    raw = data.encode() if isinstance(data, str) else data
    with contextlib.suppress(OSError):
        same_mode = mode is None or (path.stat().st_mode & 0o7777) == mode
        if not path.is_symlink() and path.read_bytes() == raw and same_mode:
            return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644 if mode is None else mode)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        view = memoryview(raw)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return True


def symlink_atomic(path: Path, target: str) -> bool:
    """Make ``path`` a symlink to ``target`` (replacing whatever is there in one rename); False if unchanged."""
    with contextlib.suppress(OSError):
        if path.is_symlink() and os.readlink(path) == target:
            return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return True


def remove(path: Path) -> bool:
    """Delete ``path`` (a file or a link) if it is there; whether it was."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    fsync_dir(path.parent)
    return True


def fsync_dir(folder: Path) -> None:
    """Make a rename or unlink in ``folder`` durable (FAT and some file systems refuse: then nothing to do)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def make_dir(path: Path, mode: int) -> None:
    """Create ``path`` (and its parents) and give it ``mode``."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
