"""First boot against a directory tree: a full run, a bad file, re-runs, and runs cut short part-way."""

from __future__ import annotations

import configparser
import json
import os
from collections.abc import Sequence
from pathlib import Path

import pytest
from cryptography import x509

from gateway import config as gwconfig
from gateway.firstboot import paths
from gateway.firstboot.apply import Outcome, run
from gateway.localpage import cert, pin
from tests.firstboot.rig import (
    CLAIM,
    GOOD,
    LOCAL_NAME,
    PIN,
    PSK,
    SECRETS,
    SERVICE_GID,
    SERVICE_UID,
    SSH_KEY,
    RecordingResizer,
    Tree,
    environment,
    make_tree,
    mode,
)

BAD = GOOD.replace('country = "de"', 'country = "XX"').replace("Europe/Berlin", "Mars/Olympus")
IS_ROOT = os.geteuid() == 0


class PowerCut(Exception):
    """Stands for the power going off: nothing after it runs."""


def _run(tree: Tree, **kwargs: object) -> Outcome:
    force = bool(kwargs.pop("force", False))
    return run(environment(tree, **kwargs), force=force)


def _nm(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(path.read_text())
    return parser


def _snapshot(root: Path, skip: tuple[str, ...] = ()) -> dict[str, tuple[int, bytes]]:
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if rel in skip or path.is_dir():
            continue
        out[rel] = (mode(path), os.readlink(path).encode() if path.is_symlink() else path.read_bytes())
    return out


def test_full_run_writes_every_file(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    resizer = RecordingResizer()
    out = _run(tree, resizer=resizer)
    assert out.ok and out.finished, [str(p) for p in out.problems]

    cfg = gwconfig.load(tree(paths.GATEWAY_TOML))  # the gateway's own loader takes it
    assert cfg.gateway.state_dir == Path("/var/lib/roost") and cfg.gateway.tenant == "acme"
    assert cfg.cloud.url == "https://cloud.example.net"
    assert cfg.identity.claim_token_file == Path(paths.CLAIM_TOKEN)
    (chip,) = cfg.adapters.i2c
    assert (chip.chip, chip.emulated, chip.sensor_id, chip.interval_s) == ("bme280", True, "barn-climate", 5.0)
    assert cfg.adapters.ble.enabled and cfg.adapters.ble.devices[0].name == "fridge"
    assert cfg.paired == ("greenhouse-1",)
    assert cfg.update.root == Path("/opt/roost") and cfg.update.public_key_file == Path(paths.UPDATE_PUBKEY)
    assert cfg.local.enabled
    assert mode(tree(paths.GATEWAY_TOML)) == 0o640  # it holds BLE bind keys: the roost group reads it
    # The service gets the groups of the buses configured (I2C and BLE here), not dialout or spi.
    dropin = tree(paths.BUS_GROUPS_DROPIN).read_text()
    assert "SupplementaryGroups=\nSupplementaryGroups=i2c bluetooth\n" in dropin
    gateway_toml = tree(paths.GATEWAY_TOML).read_text()
    assert PSK not in gateway_toml and CLAIM not in gateway_toml and PIN not in gateway_toml

    assert tree(paths.CLAIM_TOKEN).read_text() == CLAIM + "\n" and mode(tree(paths.CLAIM_TOKEN)) == 0o600
    assert set(json.loads(tree(paths.PIN_FILE).read_text())) == {"scheme", "n", "r", "p", "salt", "hash"}
    hashed = pin.load(tree(paths.PIN_FILE))
    assert hashed is not None and hashed.matches(PIN) and not hashed.matches("7654321")
    assert mode(tree(paths.PIN_FILE)) == 0o600 and PIN not in tree(paths.PIN_FILE).read_text()
    assert mode(tree(paths.STATE_DIR) / "identity" / "key.pem") == 0o600

    page_cert = x509.load_pem_x509_certificate(tree(paths.CERT_FILE).read_bytes())
    san = page_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [LOCAL_NAME]
    assert out.fingerprint == cert.fingerprint(tree(paths.CERT_FILE).read_bytes())
    assert mode(tree(paths.CERT_KEY_FILE)) == 0o600
    assert out.local_url == f"https://{LOCAL_NAME}/"
    lines = "\n".join(out.console_lines())
    assert out.fingerprint in lines and LOCAL_NAME in lines and "done" in lines

    assert tree(paths.HOSTNAME).read_text() == "barn-gw\n"
    assert "127.0.1.1\tbarn-gw" in tree(paths.HOSTS).read_text().splitlines()
    assert tree(paths.TIMEZONE).read_text() == "Europe/Berlin\n"
    assert os.readlink(tree(paths.LOCALTIME)) == "/usr/share/zoneinfo/Europe/Berlin"

    wifi = tree(paths.WIFI_CONNECTION)
    assert mode(wifi) == 0o600
    nm = _nm(wifi)
    assert nm["connection"]["type"] == "wifi" and nm["connection"]["id"] == "roost-wifi"
    assert nm["wifi"]["ssid"] == "Farm Net" and nm["wifi"]["mode"] == "infrastructure"
    assert nm["wifi-security"]["key-mgmt"] == "wpa-psk" and nm["wifi-security"]["psk"] == PSK
    assert nm["ipv4"]["method"] == "auto"
    assert "ieee80211_regdom=DE" in tree(paths.REGDOM_MODPROBE).read_text()
    cmdline = (tree.boot / "cmdline.txt").read_text()
    assert cmdline.count("\n") == 1 and cmdline.split() == [
        "console=serial0,115200", "console=tty1", "root=PARTUUID=4a3e915f-02", "rootwait",
        "cfg80211.ieee80211_regdom=DE",
    ]  # fmt: skip
    assert not tree(paths.ETHERNET_CONNECTION).exists()

    assert tree(paths.ROOT_AUTHORIZED_KEYS).read_text().splitlines()[1] == SSH_KEY
    assert mode(tree(paths.ROOT_AUTHORIZED_KEYS)) == 0o600 and mode(tree(paths.ROOT_SSH_DIR)) == 0o700
    assert os.readlink(tree(paths.SSH_WANTS)) == paths.SSH_UNIT == os.readlink(tree(paths.SSH_ALIAS))

    assert [c.argv[0] for c in resizer.ran or []] == ["sfdisk", "partx", "resize2fs"]

    assert not (tree.boot / "roost.toml").exists()
    applied = (tree.boot / "roost.toml.applied").read_text()
    assert "# the barn's Wi-Fi" in applied and applied.count('"(applied, removed)"') == 4
    for f in tree.boot.iterdir():
        for secret in SECRETS:
            assert secret not in f.read_text(), f"{secret} left in {f.name}"

    report = json.loads(tree(paths.REPORT_FILE).read_text())
    assert report["ok"] is True and report["errors"] == [] and report["local_page"]["fingerprint"] == out.fingerprint
    assert not any(secret in json.dumps(report) for secret in SECRETS)
    assert tree(paths.DONE_FILE).exists()
    assert mode(tree(paths.STATE_DIR)) == 0o700
    assert (tree.root / "sys/class/leds/ACT/trigger").read_text() == "none\n"  # no error signal
    if IS_ROOT:
        owners = {
            (p.lstat().st_uid, p.lstat().st_gid) for p in [tree(paths.STATE_DIR), *tree(paths.STATE_DIR).rglob("*")]
        }
        assert owners == {(SERVICE_UID, SERVICE_GID)}
        assert tree(paths.GATEWAY_TOML).stat().st_gid == SERVICE_GID


def test_bad_file_leaves_a_reachable_gateway_and_runs_again(tmp_path: Path) -> None:
    tree = make_tree(tmp_path, BAD)
    resizer = RecordingResizer()
    out = _run(tree, resizer=resizer)
    assert not out.ok and not out.finished
    assert {p.key for p in out.problems} == {"wifi.country", "timezone"}

    report = json.loads(tree(paths.REPORT_FILE).read_text())
    assert report["ok"] is False
    assert {(e["key"], e["line"]) for e in report["errors"]} == {("wifi.country", 6), ("timezone", 3)}
    assert all(e["message"] for e in report["errors"])
    assert not tree(paths.DONE_FILE).exists()  # the next boot runs first boot again

    cfg = gwconfig.load(tree(paths.GATEWAY_TOML))  # the local page runs; nothing else does
    assert cfg.local.enabled and cfg.identity.enroll == "off"
    assert not cfg.adapters.coap.enabled and not cfg.adapters.i2c and not cfg.adapters.ble.enabled
    assert tree(paths.CERT_FILE).exists() and out.fingerprint
    assert pin.load(tree(paths.PIN_FILE)) is not None  # [local] checked out: the technician can sign in
    assert tree(paths.HOSTNAME).read_text() == "barn-gw\n"  # so did the hostname
    assert not tree(paths.WIFI_CONNECTION).exists()  # [wifi] did not
    assert not tree(paths.TIMEZONE).exists()
    assert not tree(paths.CLAIM_TOKEN).exists() and resizer.ran is None  # nothing risky
    assert (tree.boot / "roost.toml").read_text() == BAD  # left for the installer to fix
    assert (tree.root / "sys/class/leds/ACT/trigger").read_text() == "heartbeat\n"
    shown = "\n".join(out.console_lines())
    assert "line 6: wifi.country:" in shown and "line 3: timezone:" in shown and out.fingerprint in shown

    (tree.boot / "roost.toml").write_text(GOOD)  # fixed, and powered on again
    again = _run(tree)
    assert again.ok and again.finished
    assert again.fingerprint == out.fingerprint  # the certificate the technician saw stays
    assert gwconfig.load(tree(paths.GATEWAY_TOML)).adapters.i2c


def test_no_roost_toml_is_a_problem_too(tmp_path: Path) -> None:
    tree = make_tree(tmp_path, None)
    out = _run(tree)
    assert not out.ok and "there is no roost.toml" in out.problems[0].message
    assert gwconfig.load(tree(paths.GATEWAY_TOML)).local.enabled
    assert not tree(paths.DONE_FILE).exists()
    assert "no setup PIN yet" in "\n".join(out.console_lines())


def test_bad_file_keeps_a_working_gateway_toml(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    assert _run(tree).finished
    before = tree(paths.GATEWAY_TOML).read_bytes()
    (tree.boot / "roost.toml").write_text(BAD)
    out = _run(tree, force=True)
    assert not out.ok
    assert tree(paths.GATEWAY_TOML).read_bytes() == before  # the running gateway is not taken down
    assert tree(paths.DONE_FILE).exists()  # from the first run; this one added nothing


def test_rerun_changes_nothing(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    assert _run(tree).finished
    first = _snapshot(tree.root, skip=("var/lib/roost/firstboot-report.json", "var/lib/roost/firstboot.done"))
    (tree.boot / "roost.toml").write_text(GOOD)
    out = _run(tree, force=True)
    assert out.ok and out.finished
    assert _snapshot(tree.root, skip=("var/lib/roost/firstboot-report.json", "var/lib/roost/firstboot.done")) == first
    assert "setup PIN unchanged" in out.notes


def test_done_marker_stops_a_second_run(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    assert _run(tree).finished
    (tree.boot / "roost.toml").write_text(BAD)
    out = _run(tree)
    assert out.finished and "nothing to do" in out.notes[0]
    assert (tree.boot / "roost.toml").read_text() == BAD


STEPS = ["state folder", "key pair", "certificate", "PIN", "hostname", "time zone", "network", "SSH", "enrollment",
         "gateway.toml", "bus groups", "root file system", "ownership", "report", "secrets", "done"]  # fmt: skip


@pytest.mark.parametrize("step", STEPS)
def test_cut_short_then_run_again(step: str, tmp_path: Path) -> None:
    tree = make_tree(tmp_path)

    def cut(name: str) -> None:
        if name == step:
            raise PowerCut(name)

    with pytest.raises(PowerCut):
        _run(tree, on_step=cut)
    assert not tree(paths.DONE_FILE).exists()
    leftovers = [p for p in tree.root.rglob(".*.tmp")]
    assert leftovers == []
    out = _run(tree)  # the next boot
    assert out.ok and out.finished, [str(p) for p in out.problems]
    assert gwconfig.load(tree(paths.GATEWAY_TOML)).adapters.i2c
    assert pin.load(tree(paths.PIN_FILE)) is not None and tree(paths.CLAIM_TOKEN).exists()
    assert not (tree.boot / "roost.toml").exists() and (tree.boot / "roost.toml.applied").exists()


def test_ssh_off_and_static_ethernet(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    assert _run(tree).finished
    text = GOOD.split("[wifi]")[0] + GOOD[GOOD.index("[cloud]") :]
    text = text.replace(f'[ssh]\nauthorized_key = "{SSH_KEY}"\n', "").replace('hostname = "barn-gw"\n', "")
    text += '[network]\naddress = "192.168.7.20/24"\ngateway = "192.168.7.1"\ndns = ["192.168.7.1", "9.9.9.9"]\n'
    (tree.boot / "roost.toml").write_text(text)
    out = _run(tree, force=True)
    assert out.ok and out.finished, [str(p) for p in out.problems]
    for gone in (paths.SSH_WANTS, paths.SSH_ALIAS, paths.ROOT_AUTHORIZED_KEYS, paths.WIFI_CONNECTION):
        assert not os.path.lexists(tree(gone)), gone
    nm = _nm(tree(paths.ETHERNET_CONNECTION))
    assert nm["connection"]["type"] == "ethernet" and nm["ipv4"]["method"] == "manual"
    assert nm["ipv4"]["address1"] == "192.168.7.20/24,192.168.7.1" and nm["ipv4"]["dns"] == "192.168.7.1;9.9.9.9;"
    assert tree(paths.HOSTNAME).read_text() == LOCAL_NAME.removesuffix(".local") + "\n"  # the default name


def test_device_flow_and_cloud_ca(tmp_path: Path) -> None:
    from tests.pki import make_ca

    tree = make_tree(tmp_path)
    make_ca(tree.boot / "cloud-ca.pem", "Cloud CA")
    text = GOOD.replace(f'claim_token = "{CLAIM}"', 'method = "device-flow"')
    text = text.replace("[cloud]\n", '[cloud]\nca_file = "cloud-ca.pem"\n')
    (tree.boot / "roost.toml").write_text(text)
    out = _run(tree)
    assert out.ok and out.finished, [str(p) for p in out.problems]
    cfg = gwconfig.load(tree(paths.GATEWAY_TOML))
    assert cfg.identity.claim_token_file is None and cfg.cloud.ca_file == Path(paths.CLOUD_CA)
    assert tree(paths.CLOUD_CA).read_bytes() == (tree.boot / "cloud-ca.pem").read_bytes()
    assert not tree(paths.CLAIM_TOKEN).exists()


def test_on_a_device_the_settings_are_applied_at_once_too(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    ran: list[tuple[str, ...]] = []

    def commands(argv: Sequence[str]) -> str | None:
        ran.append(tuple(argv))
        return "iw is not installed" if argv[0] == "iw" else None

    out = _run(tree, commands=commands)
    assert out.ok and out.finished
    assert ran == [
        ("hostname", "barn-gw"),
        ("iw", "reg", "set", "DE"),
        ("rfkill", "unblock", "wifi"),
        ("nmcli", "connection", "reload"),
        ("systemctl", "daemon-reload"),
        ("systemctl", "--no-block", "start", "ssh.service"),
        ("systemctl", "daemon-reload"),  # the bus groups' drop-in
    ]
    assert any(n.startswith("'iw reg set DE' did not work (iw is not installed); what it") for n in out.notes)


def test_console_gets_the_lines_with_crlf(tmp_path: Path) -> None:
    import io

    from gateway.firstboot.console import Console

    journal, device = io.StringIO(), tmp_path / "console"
    device.write_text("")
    Console(journal, device).say(["one", "two"])
    assert journal.getvalue() == "one\ntwo\n" and device.read_bytes() == b"one\r\ntwo\r\n"
    Console(journal, tmp_path / "no-such-dir" / "console").say(["three"])  # an unwritable console is skipped
    assert journal.getvalue().endswith("three\n")


def test_a_step_that_fails_on_its_own_is_reported_and_first_boot_runs_again(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    tree(paths.NM_CONNECTIONS).parent.mkdir(parents=True)
    tree(paths.NM_CONNECTIONS).write_text("a file where the folder should be")
    out = _run(tree)
    assert not out.ok and not out.finished
    (problem,) = out.problems
    assert problem.message.startswith("first boot could not finish its network step:")
    assert "first boot met 1 problem" in out.console_lines()[0]
    assert json.loads(tree(paths.REPORT_FILE).read_text())["ok"] is False
    assert (tree.boot / "roost.toml").exists() and not tree(paths.DONE_FILE).exists()
    assert gwconfig.load(tree(paths.GATEWAY_TOML)).adapters.i2c  # the rest was applied
    tree(paths.NM_CONNECTIONS).unlink()
    assert _run(tree).finished


def test_journal_stream_is_recognised(tmp_path: Path) -> None:
    from gateway.firstboot.console import stderr_is_journal

    with (tmp_path / "stream").open("w") as fh:
        st = os.fstat(fh.fileno())
        assert stderr_is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, fh.fileno())
        assert not stderr_is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"}, fh.fileno())
        assert not stderr_is_journal({}, fh.fileno()) and not stderr_is_journal({"JOURNAL_STREAM": "x"}, fh.fileno())


@pytest.mark.parametrize(
    "broken", ["[wifi\n", GOOD.replace("Europe/Berlin", "Mars/Olympus").split("[wifi]")[0] + "[local]\npin = 1\n"]
)
def test_a_broken_rerun_takes_nothing_away(broken: str, tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    assert _run(tree).finished
    keep = (paths.WIFI_CONNECTION, paths.ROOT_AUTHORIZED_KEYS, paths.SSH_WANTS, paths.HOSTNAME, paths.GATEWAY_TOML)
    before = {p: (tree(p).read_bytes() if not tree(p).is_symlink() else os.readlink(tree(p))) for p in keep}
    (tree.boot / "roost.toml").write_text(broken)  # no [wifi], no [ssh], no hostname: and it has problems
    out = _run(tree, force=True)
    assert not out.ok
    after = {p: (tree(p).read_bytes() if not tree(p).is_symlink() else os.readlink(tree(p))) for p in keep}
    assert after == before
