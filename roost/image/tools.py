"""Running the build's external tools with errors that say what failed and how to fix it."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

# Which Debian package brings each tool the build uses (named in the error when one is missing).
PACKAGE_OF = {
    "mmdebstrap": "mmdebstrap",
    "sfdisk": "fdisk",
    "mkfs.vfat": "dosfstools",
    "mcopy": "mtools",
    "mmd": "mtools",
    "mdir": "mtools",
    "mkfs.ext4": "e2fsprogs",
    "debugfs": "e2fsprogs",
    "xz": "xz-utils",
    "tar": "tar",
    "chroot": "coreutils",
    "qemu-system-x86_64": "qemu-system-x86",
}


class BuildError(Exception):
    """A build step failed; the message names the step and what to do."""


def require(*tools: str) -> None:
    """Fail with the packages to install when a tool is missing."""
    missing = [t for t in tools if shutil.which(t) is None and not Path("/usr/sbin", t).exists()]
    if missing:
        pkgs = sorted({PACKAGE_OF.get(t, t) for t in missing})
        raise BuildError(
            f"missing tools: {', '.join(missing)}; install them with: apt-get install {' '.join(pkgs)}"
            " (or run `make deps` as root)"
        )


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    step: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    capture: bool = False,
    log: Path | None = None,
) -> str:
    """Run a tool; its output goes to ``log`` (or is captured); a failure raises BuildError naming ``step``."""
    args = [os.fspath(a) for a in argv]
    full_env = dict(os.environ, **(env or {}))
    full_env.setdefault("LC_ALL", "C.UTF-8")
    if log is not None and not capture:
        with log.open("ab") as fh:
            fh.write(("$ " + " ".join(args) + "\n").encode())
            fh.flush()
            proc = subprocess.run(args, stdout=fh, stderr=subprocess.STDOUT, env=full_env, cwd=cwd, check=False)
        if proc.returncode != 0:
            raise BuildError(f"{step} failed (exit {proc.returncode}): {' '.join(args[:3])} ...; see {log}")
        return ""
    proc = subprocess.run(args, capture_output=True, env=full_env, cwd=cwd, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()[-5:]
        raise BuildError(f"{step} failed (exit {proc.returncode}): " + " | ".join(detail))
    return proc.stdout.decode(errors="replace")
