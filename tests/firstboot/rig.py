"""A roost.toml that checks out, and a directory tree standing in for a Pi's SD card (boot partition + root)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.firstboot.apply import Environment
from gateway.firstboot.paths import SystemRoot
from gateway.firstboot.resize import Command, Plan, RootPartition, plan

GATEWAY_ID = "rpi-10000000c0ffee42"
LOCAL_NAME = "roost-ee42.local"
SERVICE_UID, SERVICE_GID = 4242, 4343
PSK = "correct horse battery"
CLAIM = "clm_s3cr3t-Token.value"
PIN = "0123456"
BIND_KEY = "00112233445566778899aabbccddeeff"
SSH_KEY = (
    ed25519.Ed25519PrivateKey.generate()
    .public_key()
    .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    .decode()
    + " tech@laptop"
)

GOOD = f"""# The installer's file.
hostname = "barn-gw"
timezone = "Europe/Berlin"

[wifi]
country = "de"
ssid = "Farm Net"
psk = "{PSK}"   # the barn's Wi-Fi

[cloud]
url = "https://cloud.example.net"
tenant = "acme"

[enrollment]
claim_token = "{CLAIM}"

[ssh]
authorized_key = "{SSH_KEY}"

[local]
pin = "{PIN}"

[[sensors]]
kind = "i2c"
chip = "bme280"
emulated = true
id = "barn-climate"
interval_s = 5

[[sensors]]
kind = "coap"
id = "greenhouse-1"

[[sensors]]
kind = "ble"
address = "a4:c1:38:0a:1b:2c"
id = "fridge"
bind_key = "{BIND_KEY}"
"""
SECRETS = (PSK, CLAIM, PIN, BIND_KEY)


@dataclass(frozen=True, slots=True)
class Tree:
    """A boot partition folder and a root folder."""

    boot: Path
    root: Path

    def __call__(self, system_path: str) -> Path:
        """A system path inside the root folder."""
        return self.root / system_path.lstrip("/")


def make_tree(base: Path, text: str | None = GOOD) -> Tree:
    """A fresh tree: passwd with the roost user, an ACT LED, the Pi's cmdline.txt, and ``text`` as roost.toml."""
    tree = Tree(base / "boot", base / "root")
    tree.boot.mkdir(parents=True)
    (tree.root / "etc").mkdir(parents=True)
    (tree.root / "etc/passwd").write_text(
        f"root:x:0:0:root:/root:/bin/bash\nroost:x:{SERVICE_UID}:{SERVICE_GID}::/var/lib/roost:/usr/sbin/nologin\n"
    )
    led = tree.root / "sys/class/leds/ACT"
    led.mkdir(parents=True)
    (led / "trigger").write_text("none\n")
    (tree.boot / "cmdline.txt").write_text("console=serial0,115200 console=tty1 root=PARTUUID=4a3e915f-02 rootwait\n")
    if text is not None:
        (tree.boot / "roost.toml").write_text(text)
    return tree


@dataclass(slots=True)
class RecordingResizer:
    """Stands in for the disk: records the commands a device's root partition would get."""

    part: RootPartition = field(default_factory=lambda: RootPartition("/dev/mmcblk0p2", "/dev/mmcblk0", 2, "ext4"))
    ran: list[Command] | None = None

    def expand(self) -> str:
        """Record the plan."""
        commands: Plan = plan(self.part)
        self.ran = [*(self.ran or []), *commands]
        return f"root file system {self.part.device} grown (recorded)"


def environment(tree: Tree, **kwargs: object) -> Environment:
    """The run's environment over ``tree``, with a fixed gateway id and a recording resizer."""
    env = Environment(
        root=SystemRoot(tree.root),
        boot_dir=tree.boot,
        resizer=RecordingResizer(),
        gateway_id=lambda _state: GATEWAY_ID,
    )
    for key, value in kwargs.items():
        setattr(env, key, value)
    return env


def mode(path: Path) -> int:
    """Permission bits of ``path`` (not following a link)."""
    return os.lstat(path).st_mode & 0o7777
