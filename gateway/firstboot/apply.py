"""Applying roost.toml: every step idempotent and atomic, the done marker written last.

Full run (roost.toml has no problem): state folder, key pair, local page certificate, PIN, hostname,
time zone, network, SSH, enrollment (claim token, CA), gateway.toml, root file system, ownership,
report, secrets off the boot partition, ``firstboot.done``.

With problems, only what makes the gateway reachable runs, each part only when its own table checked
out: the key pair, the certificate, the PIN, hostname, time zone, Wi-Fi/network, SSH, and a gateway.toml
that runs just the local page (no enrollment, no sensors). Nothing is enrolled, no sensor is read, the
disk is not grown, roost.toml stays as it is for the installer to fix, the report lists every problem,
the console shows them, the ACT LED beats like a heart, and ``firstboot.done`` is NOT written: the next
boot runs first boot again. Such a run only ever adds: what a table left out (Wi-Fi, SSH, the hostname) and
a gateway.toml that works, from an earlier run, are kept.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway import identity
from gateway.firstboot import bootfile, console, paths, render
from gateway.firstboot.paths import SystemRoot, write_atomic
from gateway.firstboot.problems import Problem
from gateway.firstboot.resize import Resizer, SkipResizer, SystemResizer
from gateway.firstboot.settings import Settings
from gateway.firstboot.validate import Checked, check_file, known_zone

FULL = "(full)"
"""A step that runs only when roost.toml has no problem at all."""
CommandRunner = Callable[[Sequence[str]], str | None]
"""Runs a command on the live system; None when it worked, else why not (first boot carries on)."""


def run_live(argv: Sequence[str]) -> str | None:
    """Run ``argv`` on this system, best effort (the files written are what counts; this applies them now)."""
    if shutil.which(argv[0]) is None:
        return f"{argv[0]} is not installed"
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return lines[-1] if lines else f"exit status {done.returncode}"
    return None


@dataclass(slots=True, kw_only=True)
class Environment:
    """Where first boot reads and writes, and the parts the tests replace."""

    root: SystemRoot
    boot_dir: Path
    resizer: Resizer
    commands: CommandRunner | None = None
    """Commands on the running system (hostname, nmcli, iw, systemctl); None in a directory-tree run."""
    gateway_id: Callable[[Path], str] = identity.gateway_id
    zones: Callable[[str], bool] = known_zone
    on_step: Callable[[str], None] | None = None
    """Called before each step with its name (a test stops a run there, as a power cut would)."""
    clock: Callable[[], float] = time.time


def environment(root: Path, boot_dir: Path) -> Environment:
    """The environment of a run: real commands and disk growing only when ``root`` is the running system."""
    system = SystemRoot(root)
    if system.live:
        return Environment(root=system, boot_dir=boot_dir, resizer=SystemResizer(), commands=run_live)
    return Environment(
        root=system, boot_dir=boot_dir, resizer=SkipResizer("a directory-tree run (--root is not /): no disk to grow")
    )


@dataclass(slots=True)
class Outcome:
    """What a run did: ok, every problem, a line per step, and how to reach the local page."""

    ok: bool = False
    finished: bool = False
    """firstboot.done was written."""
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    gateway_id: str | None = None
    local_url: str | None = None
    fingerprint: str | None = None
    failed_steps: int = 0
    """Steps that failed on their own (a full card, a file that cannot be written), not for roost.toml."""
    pin_set: bool = False
    """A setup PIN is stored (now or by an earlier run): the local page can be signed in to."""
    settings: Settings = field(default_factory=Settings)

    def console_lines(self) -> list[str]:
        """What the console shows at the end of the run."""
        if self.finished and self.ok:
            out = ["Roost first boot: done. This gateway is set up."]
        elif self.finished:
            out = ["Roost first boot: done."]
        else:
            count = len(self.problems)
            what = "roost.toml has" if self.failed_steps == 0 else "first boot met"
            out = [
                f"Roost first boot: {what} {count} problem{'s' if count != 1 else ''}; "
                "the gateway is NOT set up (nothing risky was applied):"
            ]
            out += [f"  {p}" for p in self.problems]
            out.append("Fix roost.toml on the boot partition (any computer can edit it) and power on again.")
        s = self.settings
        if self.gateway_id:
            out.append(f"  gateway id    {self.gateway_id}")
        if self.local_url:
            pin = "the setup PIN from roost.toml" if self.pin_set else "no setup PIN yet: fix local.pin"
            out.append(f"  local page    {self.local_url}  ({pin})")
        if self.fingerprint:
            out.append(f"  certificate   SHA-256 {self.fingerprint}")
        if self.ok and s.wifi is not None:
            out.append(
                f'  Wi-Fi         "{s.wifi.ssid}" ({s.wifi.country}), {"fixed address" if s.network else "DHCP"}'
            )
        if self.ok and s.cloud is not None and s.enrollment is not None:
            how = (
                "claim token"
                if s.enrollment.method == "claim-token"
                else "device flow: approve the code shown on the local page"
            )
            out.append(f"  cloud         {s.cloud.url} (tenant {s.cloud.tenant}; {how})")
        if self.ok and s.sensors:
            out.append(f"  sensors       {', '.join(x.label for x in s.sensors)}")
        return out

    def report(self, at: float) -> dict[str, Any]:
        """firstboot-report.json (layout.md): no secret is in it."""
        return {
            "ok": self.ok,
            "errors": [p.as_json() for p in self.problems],
            "at": datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds"),
            "gateway_id": self.gateway_id,
            "local_page": {"url": self.local_url, "fingerprint": self.fingerprint},
            "applied": self.notes,
            "skipped": self.skipped,
            "sensors": [x.label for x in self.settings.sensors] if self.ok else [],
        }


class FirstBoot:
    """One run of first boot over an environment."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.root = env.root
        self.state_dir = env.root(paths.STATE_DIR)
        self.out = Outcome()
        self.checked: Checked | None = None

    # ------------------------------------------------------------------ the run

    def run(self, *, force: bool = False) -> Outcome:
        """Apply roost.toml (or explain why not); the outcome also goes to the report and the console."""
        done = self.root(paths.DONE_FILE)
        boot_file = self.env.boot_dir / paths.BOOT_FILE
        if done.exists() and not force:
            self.out.ok = self.out.finished = True
            self.out.notes.append(f"first boot has run already ({paths.DONE_FILE} exists): nothing to do")
            return self.out
        if not boot_file.exists() and (self.env.boot_dir / paths.APPLIED_FILE).exists() and self._gateway_toml_loads():
            # A power cut after the secrets came off the boot partition: everything else was applied.
            self.out.ok = True
            self.out.notes.append(f"roost.toml had been applied already ({paths.APPLIED_FILE}); finishing")
            self._step("done", self._write_done)
            self.out.ok = self.out.finished = not self.out.problems
            return self.out
        checked = check_file(boot_file, zones=self.env.zones)
        self.checked = checked
        self.out.settings = checked.settings
        self.out.problems = list(checked.problems.items)
        problems = checked.problems
        for name, needs, action in self._steps():
            if needs == (FULL,) and not checked.ok:
                self.out.skipped.append(f"{name}: roost.toml has problems")
            elif any(problems.under(section) for section in needs if section != FULL):
                self.out.skipped.append(f"{name}: {', '.join(s for s in needs if problems.under(s))} has problems")
            else:
                self._step(name, action)
        self.out.pin_set = self.out.pin_set or self.root(paths.PIN_FILE).exists()
        self.out.ok = not self.out.problems
        self._step("report", self._write_report)
        if self.out.ok:
            self._step("secrets", self._take_secrets_off)
            self.out.ok = not self.out.problems
        if self.out.ok:
            self._step("done", self._write_done)
            self.out.ok = self.out.finished = not self.out.problems
        if not self.out.ok:
            with contextlib.suppress(OSError):
                self._write_report()
            console.signal_error(self.root)
        return self.out

    def _steps(self) -> list[tuple[str, tuple[str, ...], Callable[[], str | None]]]:
        return [
            ("state folder", (), self._state_dir),
            ("key pair", (), self._key_pair),
            ("certificate", (), self._certificate),
            ("PIN", ("local",), self._pin),
            ("hostname", ("hostname",), self._hostname),
            ("time zone", ("timezone",), self._timezone),
            ("network", ("wifi", "network"), self._network),
            ("SSH", ("ssh",), self._ssh),
            ("enrollment", (FULL,), self._enrollment),
            ("gateway.toml", (), self._gateway_toml),
            ("bus groups", (), self._bus_groups),
            ("root file system", (FULL,), self._expand),
            ("ownership", (), self._ownership),
        ]

    def _step(self, name: str, action: Callable[[], str | None]) -> None:
        if self.env.on_step is not None:
            self.env.on_step(name)
        try:
            note = action()
        except (OSError, ValueError) as exc:
            self.out.problems.append(Problem("", f"first boot could not finish its {name} step: {exc}"))
            self.out.failed_steps += 1
            return
        if note:
            self.out.notes.append(note)

    def _live(self, *argv: str) -> None:
        if self.env.commands is None:
            return
        failure = self.env.commands(argv)
        if failure:
            self.out.notes.append(
                f"'{' '.join(argv)}' did not work ({failure}); "
                "what it applies is written and takes effect when its service starts"
            )

    # ------------------------------------------------------------------ steps

    def _state_dir(self) -> str | None:
        paths.make_dir(self.state_dir, 0o700)
        paths.make_dir(self.state_dir / identity.IDENTITY_DIR, 0o700)
        paths.make_dir(self.root(paths.LOCAL_DIR), 0o700)
        return None

    def _key_pair(self) -> str:
        self.out.gateway_id = self.env.gateway_id(self.state_dir)
        identity.IdentityStore(self.state_dir).public_key_pem()  # generates the key pair when there is none
        return f"gateway id {self.out.gateway_id}; its key pair is in {paths.STATE_DIR}/{identity.IDENTITY_DIR}"

    def _local_name(self) -> str:
        from gateway.localpage.cert import host_name

        return host_name(self.out.gateway_id or "")

    def _certificate(self) -> str:
        from gateway.localpage import cert

        made = cert.ensure(self.root(paths.LOCAL_DIR), self._local_name())
        self.out.fingerprint = made.fingerprint
        self.out.local_url = f"https://{self._local_name()}/"
        return f"local page certificate for {self._local_name()}, SHA-256 {made.fingerprint}"

    def _pin(self) -> str | None:
        from gateway.localpage import pin

        value = self.out.settings.pin
        if value is None:
            return None
        self.out.pin_set = True
        path = self.root(paths.PIN_FILE)
        with contextlib.suppress(pin.PinFileError):
            found = pin.load(path)
            if found is not None and found.matches(value):
                return "setup PIN unchanged"
        write_atomic(path, json.dumps(pin.hash_pin(value).as_json()), mode=0o600)
        return f"setup PIN stored hashed (scrypt) in {paths.PIN_FILE}"

    @property
    def _full(self) -> bool:
        """roost.toml has no problem: what it leaves out is taken away too (with problems, nothing is taken away)."""
        return self.checked is not None and self.checked.ok

    def _hostname(self) -> str | None:
        name = self.out.settings.hostname
        if name is None and not self._full:
            return None
        name = name or self._local_name().removesuffix(".local")
        write_atomic(self.root(paths.HOSTNAME), render.hostname_file(name))
        hosts = self.root(paths.HOSTS)
        current = hosts.read_text(encoding="utf-8") if hosts.exists() else None
        write_atomic(hosts, render.hosts_file(name, current))
        self._live("hostname", name)
        return f"hostname {name}"

    def _timezone(self) -> str | None:
        zone = self.out.settings.timezone
        if zone is None:
            return None
        write_atomic(self.root(paths.TIMEZONE), zone + "\n")
        paths.symlink_atomic(self.root(paths.LOCALTIME), f"{paths.ZONEINFO}/{zone}")
        return f"time zone {zone}"

    def _network(self) -> str | None:
        s = self.out.settings
        notes = []
        wifi_file, eth_file = self.root(paths.WIFI_CONNECTION), self.root(paths.ETHERNET_CONNECTION)
        if s.wifi is not None:
            write_atomic(wifi_file, render.wifi_connection(s.wifi, s.network), mode=0o600)
            write_atomic(self.root(paths.REGDOM_MODPROBE), render.regdom_modprobe(s.wifi.country))
            cmdline = self.env.boot_dir / "cmdline.txt"
            if cmdline.exists():
                text = cmdline.read_text(encoding="utf-8")
                write_atomic(cmdline, render.cmdline_with_regdom(text, s.wifi.country), mode=None)
            for name in paths.RFKILL_WLAN:
                write_atomic(self.root(paths.RFKILL_STATE_DIR) / name, "0\n")
            notes.append(f'Wi-Fi "{s.wifi.ssid}" in {s.wifi.country}')
            self._live("iw", "reg", "set", s.wifi.country)
            self._live("rfkill", "unblock", "wifi")
        elif self._full and paths.remove(wifi_file):
            notes.append("Wi-Fi connection removed (roost.toml has no [wifi])")
        if s.network is not None and s.wifi is None:
            write_atomic(eth_file, render.ethernet_connection(s.network), mode=0o600)
        elif self._full:
            paths.remove(eth_file)
        if not self._full and s.wifi is None and s.network is None:
            return None  # with problems, nothing is taken away
        if s.network is not None:
            notes.append(f"fixed address {s.network.address} on {'Wi-Fi' if s.wifi else 'Ethernet'}")
        else:
            notes.append("addresses by DHCP")
        self._live("nmcli", "connection", "reload")
        return "; ".join(notes)

    def _ssh(self) -> str | None:
        keys = self.out.settings.ssh_keys
        wants, alias = self.root(paths.SSH_WANTS), self.root(paths.SSH_ALIAS)
        auth = self.root(paths.ROOT_AUTHORIZED_KEYS)
        if keys:
            paths.make_dir(self.root(paths.ROOT_SSH_DIR), 0o700)
            write_atomic(auth, render.authorized_keys(keys), mode=0o600)
            paths.symlink_atomic(wants, paths.SSH_UNIT)
            paths.symlink_atomic(alias, paths.SSH_UNIT)
            self._live("systemctl", "daemon-reload")
            self._live("systemctl", "--no-block", "start", "ssh.service")
            return f"SSH on: {len(keys)} key{'s' if len(keys) > 1 else ''} for root"
        if not self._full:
            return None
        paths.remove(wants)
        paths.remove(alias)
        with contextlib.suppress(OSError):
            if auth.read_text(encoding="utf-8").startswith(render.AUTHORIZED_KEYS_MARK):
                paths.remove(auth)
        self._live("systemctl", "daemon-reload")
        self._live("systemctl", "--no-block", "stop", "ssh.service")
        return "SSH off (roost.toml gives no key)"

    def _enrollment(self) -> str:
        s = self.out.settings
        assert s.enrollment is not None and s.cloud is not None  # a full run: both checked out
        token_file = self.root(paths.CLAIM_TOKEN)
        if s.enrollment.claim_token is not None:
            write_atomic(token_file, s.enrollment.claim_token + "\n", mode=0o600)
            note = f"enrolls with the claim token ({paths.CLAIM_TOKEN})"
        else:
            paths.remove(token_file)
            note = "enrolls with the device flow: approve the code the local page shows"
        if s.cloud.ca_pem:
            write_atomic(self.root(paths.CLOUD_CA), s.cloud.ca_pem)
        else:
            paths.remove(self.root(paths.CLOUD_CA))
        return f"cloud {s.cloud.url}, tenant {s.cloud.tenant}; {note}"

    def _gateway_toml_loads(self) -> bool:
        from gateway import config as gwconfig
        from gateway.errors import ConfigError

        try:
            cfg = gwconfig.load(self.root(paths.GATEWAY_TOML))
        except ConfigError:
            return False
        local = getattr(cfg, "local", None)
        return local is None or bool(getattr(local, "enabled", False))

    def _gateway_toml(self) -> str:
        from gateway import config as gwconfig
        from gateway.errors import ConfigError

        full = self._full
        target = self.root(paths.GATEWAY_TOML)
        if not full and self._gateway_toml_loads():
            return f"{paths.GATEWAY_TOML} kept as it is (it works; roost.toml has problems)"
        text = render.gateway_toml(self.out.settings, recovery=not full)
        try:  # the gateway must be able to start with what is written: check with its own loader first
            gwconfig.loads(text, base_dir=target.parent, name=paths.GATEWAY_TOML)
        except ConfigError as exc:
            self.out.problems.append(Problem("sensors", f"the gateway would refuse its config: {exc}"))
            text = render.gateway_toml(self.out.settings, recovery=True)
            full = False
        write_atomic(target, text, mode=0o640)  # the gateway's user reads it through the group
        owner = service_user(self.root)
        if owner is not None:
            os.chown(target, 0, owner[1])
        return f"{paths.GATEWAY_TOML} written" + ("" if full else " (local page only, until roost.toml is fixed)")

    def _bus_groups(self) -> str | None:
        """The gateway's service gets only the groups of the buses gateway.toml uses (dialout, i2c, spi, bluetooth)."""
        from gateway import config as gwconfig
        from gateway.errors import ConfigError
        from gateway.systemd_units import bus_groups, groups_dropin

        try:
            cfg = gwconfig.load(self.root(paths.GATEWAY_TOML))
        except ConfigError as exc:
            return f"bus groups left as they are: {exc}"
        target = self.root(paths.BUS_GROUPS_DROPIN)
        target.parent.mkdir(parents=True, exist_ok=True)
        if write_atomic(target, groups_dropin(cfg), mode=0o644):
            self._live("systemctl", "daemon-reload")
        return "the gateway's bus groups: " + (", ".join(bus_groups(cfg)) or "none")

    def _expand(self) -> str:
        return self.env.resizer.expand()

    def _ownership(self) -> str | None:
        owner = service_user(self.root)
        if owner is None:
            return None
        uid, gid = owner
        for folder, dirs, files in os.walk(self.state_dir):
            for name in [*dirs, *files]:
                os.lchown(os.path.join(folder, name), uid, gid)
        os.chown(self.state_dir, uid, gid)
        return f"{paths.STATE_DIR} belongs to {paths.SERVICE_USER}"

    def _write_report(self) -> str | None:
        path = self.root(paths.REPORT_FILE)
        write_atomic(path, json.dumps(self.out.report(self.env.clock()), indent=1) + "\n", mode=0o644)
        self._own(path)
        return None

    def _take_secrets_off(self) -> str:
        note = bootfile.take_secrets_off(self.env.boot_dir)
        self._write_report()  # the report as it stands once the boot partition is clean
        return note

    def _write_done(self) -> str | None:
        at = datetime.fromtimestamp(self.env.clock(), UTC).isoformat(timespec="seconds")
        path = self.root(paths.DONE_FILE)
        write_atomic(path, json.dumps({"at": at}) + "\n", mode=0o644)
        self._own(path)
        return None

    def _own(self, path: Path) -> None:
        owner = service_user(self.root)
        if owner is not None:
            os.chown(path, *owner)


def service_user(root: SystemRoot) -> tuple[int, int] | None:
    """(uid, gid) of the ``roost`` user in the root's /etc/passwd, or None when it does not exist."""
    try:
        text = root(paths.PASSWD).read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and fields[0] == paths.SERVICE_USER:
            with contextlib.suppress(ValueError):
                return int(fields[2]), int(fields[3])
    return None


def run(env: Environment, *, force: bool = False) -> Outcome:
    """Run first boot over ``env``; the outcome (also written to the report)."""
    return FirstBoot(env).run(force=force)
