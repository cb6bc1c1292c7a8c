"""roost-gateway.service's seccomp filters, reproduced for processes the tests start (this machine has no systemd).

- ``MemoryDenyWriteExecute=yes``: systemd 252 fails with EPERM an ``mmap`` asking for memory both writable
  and executable and an ``mprotect``/``pkey_mprotect`` adding execute permission (and ``shmat`` with
  SHM_EXEC, which nothing here uses).
- ``SystemCallFilter=@system-service`` then ``~@privileged @resources`` with ``SystemCallErrorNumber=EPERM``
  and ``SystemCallArchitectures=native``: an allow-list, every other system call fails with EPERM. The
  groups come from ``systemd-analyze syscall-filter`` (the same tables systemd uses), the numbers from the
  kernel headers (``asm/unistd_64.h``).

``python seccomp_unit.py [--system-call-filter] COMMAND ARGS...`` installs them (with NoNewPrivileges)
and executes the command; filters survive exec. x86-64 only.
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
AUDIT_ARCH_X86_64 = 0xC000003E
NR_MMAP, NR_MPROTECT, NR_PKEY_MPROTECT = 9, 10, 329
PROT_WRITE, PROT_EXEC = 2, 4
RET_ALLOW = 0x7FFF0000
RET_EPERM = 0x00050000 | 1
LD_ABS, JEQ, AND, RET = 0x20, 0x15, 0x54, 0x06
ARCH_OFF, NR_OFF, ARG2_OFF = 4, 0, 16 + 8 * 2
UNISTD = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
ALLOW = "@system-service"
DENY = ("@privileged", "@resources")

Program = list[tuple[int, int, int, int]]


def supported() -> bool:
    """The filters' system call numbers are x86-64's."""
    return sys.platform == "linux" and platform.machine() == "x86_64"


def syscall_filter_available() -> bool:
    """systemd-analyze (for the groups) and the kernel headers (for the numbers) are here."""
    return supported() and shutil.which("systemd-analyze") is not None and UNISTD.is_file()


def wx_program() -> Program:
    """MemoryDenyWriteExecute as a BPF program of (code, jt, jf, k)."""
    return [
        (LD_ABS, 0, 0, ARCH_OFF),  # 0
        (JEQ, 0, 11, AUDIT_ARCH_X86_64),  # 1: another ABI -> allow (13)
        (LD_ABS, 0, 0, NR_OFF),  # 2
        (JEQ, 3, 0, NR_MMAP),  # 3 -> 7
        (JEQ, 5, 0, NR_MPROTECT),  # 4 -> 10
        (JEQ, 4, 0, NR_PKEY_MPROTECT),  # 5 -> 10
        (RET, 0, 0, RET_ALLOW),  # 6
        (LD_ABS, 0, 0, ARG2_OFF),  # 7: mmap's prot
        (AND, 0, 0, PROT_WRITE | PROT_EXEC),  # 8
        (JEQ, 4, 3, PROT_WRITE | PROT_EXEC),  # 9: W and X -> deny (14), else allow (13)
        (LD_ABS, 0, 0, ARG2_OFF),  # 10: mprotect's prot
        (AND, 0, 0, PROT_EXEC),  # 11
        (JEQ, 1, 0, PROT_EXEC),  # 12: X -> deny (14), else allow (13)
        (RET, 0, 0, RET_ALLOW),  # 13
        (RET, 0, 0, RET_EPERM),  # 14
    ]


def syscall_groups() -> dict[str, list[str]]:
    """systemd's system call groups (``@name`` -> members, which may be groups)."""
    out = subprocess.run(
        ["systemd-analyze", "syscall-filter", "--no-pager"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    groups: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in out.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif current is not None and line.strip() and not line.strip().startswith("#"):
            current.append(line.strip())
    return groups


def expand(name: str, groups: dict[str, list[str]]) -> set[str]:
    """The system call names in group (or call) ``name``."""
    if not name.startswith("@"):
        return {name}
    return set().union(*(expand(m, groups) for m in groups[name]))


def numbers() -> dict[str, int]:
    """x86-64 system call numbers by name, from the kernel headers."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"#define __NR_(\w+)\s+(\d+)", UNISTD.read_text())}


def allowed_numbers() -> list[int]:
    """The unit's allow-list: @system-service minus @privileged and @resources, as x86-64 numbers."""
    groups = syscall_groups()
    names = expand(ALLOW, groups) - set().union(*(expand(g, groups) for g in DENY))
    table = numbers()
    return sorted({table[n] for n in names if n in table})


def syscall_program(allowed: list[int]) -> Program:
    """The allow-list as a BPF program: each allowed number returns ALLOW, the rest EPERM."""
    prog: Program = [(LD_ABS, 0, 0, ARCH_OFF), (JEQ, 1, 0, AUDIT_ARCH_X86_64), (RET, 0, 0, RET_EPERM)]
    prog.append((LD_ABS, 0, 0, NR_OFF))
    for nr in allowed:
        prog += [(JEQ, 0, 1, nr), (RET, 0, 0, RET_ALLOW)]
    prog.append((RET, 0, 0, RET_EPERM))
    return prog


def install(program: Program) -> None:
    """Install ``program`` in this process (and whatever it executes), with NoNewPrivileges."""
    libc = ctypes.CDLL(None, use_errno=True)
    code = b"".join(struct.pack("=HBBI", *ins) for ins in program)
    buf = ctypes.create_string_buffer(code, len(code))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = SockFprog(len(program), ctypes.addressof(buf))
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")


if __name__ == "__main__":
    argv = sys.argv[1:]
    programs = [wx_program()]
    if argv and argv[0] == "--system-call-filter":
        argv = argv[1:]
        programs.append(syscall_program(allowed_numbers()))
    for p in programs:
        install(p)
    os.execvp(argv[0], argv)
