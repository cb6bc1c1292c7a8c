"""The small text files that tie the image together: cmdline.txt, config.txt, fstab, hostname, network.

Pure functions of the recipe (and the kernel version), so the unit tests read exactly what goes on the card.
"""

from __future__ import annotations

from roost.image.recipe import Recipe

BOOT_MOUNT = "/boot/firmware"


def cmdline(recipe: Recipe) -> str:
    """The kernel command line: the root by PARTUUID (fixed by the recipe), the serial console last.

    The last ``console=`` is the one systemd writes to, so the boot log goes to the serial port (a Pi's UART,
    or the VM's ttyS0 the qemu test reads).
    """
    root = recipe.ids.partuuid(2)
    # The order and words of raspi-firmware's kernel hook (so a kernel update changes nothing), without
    # its cma=64M, which a Pi 4 does not boot with.
    parts = [
        "console=tty0",
        f"console={recipe.console}",
        f"root=PARTUUID={root}",
        "rw",
        "fsck.repair=yes",
        "net.ifnames=0",
        "rootwait",
    ]
    return " ".join(parts) + "\n"


def config_txt(kernel_version: str) -> str:
    """The Raspberry Pi firmware's config.txt (arm64): 64-bit Debian kernel and initrd, UART, I2C and SPI on."""
    return "\n".join(
        [
            "# Written by roost image build. Debian's raspi-firmware writes this file again when the kernel is",
            "# updated, from /etc/default/raspi-firmware and /etc/default/raspi-firmware-custom (the lines below",
            "# the [all] section come from there).",
            "[all]",
            "arm_64bit=1",
            "enable_uart=1",
            "upstream_kernel=1",
            f"kernel=vmlinuz-{kernel_version}",
            f"initramfs initrd.img-{kernel_version}",
            "disable_overscan=1",
            *raspi_custom_lines(),
            "",
        ]
    )


def raspi_custom_lines() -> list[str]:
    """What /etc/default/raspi-firmware-custom adds to config.txt: the buses a gateway's sensors use."""
    return ["dtparam=i2c_arm=on", "dtparam=spi=on"]


def raspi_firmware_defaults(recipe: Recipe) -> str:
    """/etc/default/raspi-firmware: so a kernel update writes the same root and console to cmdline.txt."""
    console = recipe.console
    return (
        "# Written by roost image build: raspi-firmware's kernel hook reads it when it writes cmdline.txt.\n"
        f'ROOTPART="PARTUUID={recipe.ids.partuuid(2)}"\n'
        f'CONSOLES="tty0 {console}"\n'
        "CMA=0\n"  # no cma= on the command line: a Pi 4 does not boot with the hook's default 64M
        "KERNEL_ARCH=arm64\n"
    )


def fstab(recipe: Recipe) -> str:
    """Root and boot partitions by PARTUUID; the boot partition (roost.toml holds secrets) readable by root only."""
    return (
        "# <file system>  <mount point>  <type>  <options>  <dump>  <pass>\n"
        f"PARTUUID={recipe.ids.partuuid(2)}  /  ext4  defaults,noatime,commit=30  0  1\n"
        f"PARTUUID={recipe.ids.partuuid(1)}  {BOOT_MOUNT}  vfat  defaults,umask=0077,flush  0  2\n"
    )


def hosts(recipe: Recipe) -> str:
    """/etc/hosts for the image's hostname."""
    return f"127.0.0.1\tlocalhost\n127.0.1.1\t{recipe.hostname}\n::1\t\tlocalhost ip6-localhost ip6-loopback\n"


def networkd_wired() -> str:
    """systemd-networkd: DHCP (v4 and v6) on any wired interface (the amd64 image; NetworkManager on the Pi)."""
    return "[Match]\nName=eth* en*\n\n[Network]\nDHCP=yes\n\n[DHCPv4]\nUseDomains=yes\n"
