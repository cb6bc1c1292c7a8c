"""A stand-in for NetworkManager's ``nmcli`` (the subset the gateway uses), keeping its profiles in a JSON file.

It behaves as NetworkManager 1.42 does for these calls, errors included: an unknown profile, a manual IPv4
method without an address, a PSK of the wrong length, and activation failing for a network that is not in
range (SSIDs in ``FAKE_NMCLI_NO_AP``) or a PSK the access point does not accept (``FAKE_NMCLI_AP_PSK``).
Every call is appended to the state's ``calls``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

ALIASES = {"wifi-sec.psk": "802-11-wireless-security.psk", "wifi-sec.key-mgmt": "802-11-wireless-security.key-mgmt"}
KNOWN = {
    "802-11-wireless.ssid", "802-11-wireless-security.psk", "802-11-wireless-security.key-mgmt", "ipv4.method",
    "ipv4.addresses", "ipv4.gateway", "ipv4.dns",
}  # fmt: skip


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace(":", "\\:")


def main(argv: list[str]) -> int:
    path = Path(os.environ["FAKE_NMCLI_STATE"])
    state: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"profiles": {}, "active": None}
    state.setdefault("calls", []).append(argv)
    opts: dict[str, str | bool] = {}
    args = list(argv)
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        opts[flag] = args.pop(0) if flag in {"--get-values", "-g", "--wait", "-w"} else True
    code = 0
    try:
        code = _run(state, opts, args)
    finally:
        path.write_text(json.dumps(state))
    return code


def _fail(code: int, message: str) -> int:
    print(f"Error: {message}", file=sys.stderr)
    return code


def _run(state: dict[str, Any], opts: dict[str, str | bool], args: list[str]) -> int:
    profiles: dict[str, dict[str, str]] = state["profiles"]
    if args[:2] == ["connection", "show"]:
        fields = str(opts.get("--get-values", "")).split(",")
        if len(args) == 2:
            for name in profiles:
                print(_escape(name))
            return 0
        profile = profiles.get(args[2])
        if profile is None:
            return _fail(10, f"{args[2]} - no such connection profile.")
        for f in fields:
            value = profile.get(f, "")
            if f.endswith(".psk") and not opts.get("--show-secrets"):
                value = ""
            print(_escape(value))
        return 0
    if args[:2] == ["connection", "add"]:
        kv = dict(zip(args[2::2], args[3::2], strict=False))
        profiles[kv["con-name"]] = {"802-11-wireless.ssid": kv["ssid"], "ipv4.method": "auto"}
        print(f"Connection '{kv['con-name']}' successfully added.")
        return 0
    if args[:2] == ["connection", "modify"]:
        profile = profiles.get(args[2])
        if profile is None:
            return _fail(10, f"unknown connection '{args[2]}'.")
        pairs = dict(zip(args[3::2], args[4::2], strict=False))
        new = dict(profile)
        for given, value in pairs.items():
            key = ALIASES.get(given, given)
            if key not in KNOWN:
                return _fail(2, f"invalid <setting>.<property> '{key}'.")
            new[key] = value
        psk = new.get("802-11-wireless-security.psk", "")
        if psk and not 8 <= len(psk) <= 63:
            return _fail(4, "Failed to modify connection: 802-11-wireless-security.psk: property is invalid")
        if new.get("ipv4.method") == "manual" and not new.get("ipv4.addresses"):
            return _fail(
                4, "Failed to modify connection: ipv4.addresses: this property cannot be empty for 'method=manual'"
            )
        profiles[args[2]] = new
        return 0
    if args[:2] == ["connection", "up"]:
        profile = profiles.get(args[2])
        if profile is None:
            return _fail(10, f"unknown connection '{args[2]}'.")
        ssid = profile.get("802-11-wireless.ssid", "")
        if ssid in os.environ.get("FAKE_NMCLI_NO_AP", "").split(","):
            return _fail(4, f"Connection activation failed: No network with SSID '{ssid}' found.")
        ap_psk = os.environ.get("FAKE_NMCLI_AP_PSK")
        if ap_psk is not None and profile.get("802-11-wireless-security.psk") != ap_psk:
            return _fail(4, "Connection activation failed: Secrets were required, but not provided.")
        state["active"] = args[2]
        print(
            "Connection successfully activated (D-Bus active path: /org/freedesktop/NetworkManager/ActiveConnection/7)"
        )
        return 0
    return _fail(2, f"argument '{' '.join(args)}' not understood.")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
