"""``roost``: one command line for the demo, the gateway, the cloud and the technician's tools.

Each subcommand imports only what it needs, so ``roost decode`` starts fast and a gateway never
loads the cloud's libraries.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_USAGE = 2


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    print(f"roost: {message}", file=sys.stderr)
    return code


def _gateway_run(args: argparse.Namespace) -> int:
    from gateway import config as gwconfig
    from gateway.daemon import run as run_gateway
    from gateway.errors import ConfigError
    from roost import logsetup
    from roost.runner import run_until_signal

    try:
        cfg = gwconfig.load(Path(args.config))
    except ConfigError as exc:
        return _fail(str(exc))
    logsetup.setup(cfg.gateway.log_level, name="roost-gateway")
    return run_until_signal(lambda: run_gateway(cfg))


def _gateway_check(args: argparse.Namespace) -> int:
    from gateway import config as gwconfig
    from gateway.errors import ConfigError

    try:
        gwconfig.load(Path(args.config))
    except ConfigError as exc:
        return _fail(str(exc))
    print(f"{args.config}: OK")
    return 0


def _config_reference(cls: type, title: str) -> int:
    from wire.typedconfig import describe

    print(f"# {title}\n\n| key | default | meaning |\n|---|---|---|")
    for key, default, text in describe(cls):
        print(f"| `{key}` | `{default}` | {text} |")
    return 0


def _gateway_reference(_args: argparse.Namespace) -> int:
    from gateway.config import GatewayConfig

    return _config_reference(GatewayConfig, "Gateway config (gateway.toml)")


def _cloud_serve(args: argparse.Namespace) -> int:
    from cloud import config as cloudconfig
    from cloud.errors import ConfigError
    from cloud.server import serve
    from roost import logsetup
    from roost.runner import run_until_signal

    try:
        cfg = cloudconfig.load(Path(args.config))
    except ConfigError as exc:
        return _fail(str(exc))
    logsetup.setup(args.log_level, name="roost-cloud")
    return run_until_signal(lambda: serve(cfg))


def _cloud_reference(_args: argparse.Namespace) -> int:
    from cloud.config import CloudConfig

    return _config_reference(CloudConfig, "Cloud config (cloud.toml)")


def _demo(args: argparse.Namespace) -> int:
    from roost.demo import run_demo

    return run_demo(
        http_port=args.http_port, coap_port=args.coap_port, state_dir=args.state_dir, interval=args.interval
    )


def _decode(args: argparse.Namespace) -> int:
    from roost.decode import decode_command

    return decode_command(args)


def _decode_nmea(args: argparse.Namespace) -> int:
    from roost.decode import decode_nmea_command

    return decode_nmea_command(args)


def _decode_serial(args: argparse.Namespace) -> int:
    from roost.decode import decode_serial_command

    return decode_serial_command(args)


def _decode_line(args: argparse.Namespace) -> int:
    from roost.decode import decode_line_command

    return decode_line_command(args)


def _decode_ble(args: argparse.Namespace) -> int:
    from roost.decode import decode_ble_command

    return decode_ble_command(args)


def _decode_zcl(args: argparse.Namespace) -> int:
    from roost.decode import decode_zcl_command

    return decode_zcl_command(args)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    p = argparse.ArgumentParser(prog="roost", description="Roost edge gateway: demo, gateway, cloud and tools.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="run a cloud, a gateway and emulated sensors on this machine")
    demo.add_argument("--http-port", type=int, default=8080, help="the cloud's HTTP port (default 8080)")
    demo.add_argument("--coap-port", type=int, default=5683, help="the gateway's CoAP port (default 5683)")
    demo.add_argument("--state-dir", type=Path, default=None, help="keep state here (default: a new temp folder)")
    demo.add_argument("--interval", type=float, default=2.0, help="seconds between emulated sensor posts")
    demo.set_defaults(func=_demo)

    gw = sub.add_parser("gateway", help="the gateway daemon").add_subparsers(dest="gw", required=True, metavar="ACTION")
    run = gw.add_parser("run", help="run the gateway daemon")
    run.add_argument("--config", "-c", required=True, help="gateway.toml")
    run.set_defaults(func=_gateway_run)
    chk = gw.add_parser("check", help="check a gateway config file and exit")
    chk.add_argument("--config", "-c", required=True)
    chk.set_defaults(func=_gateway_check)
    gw.add_parser("config-reference", help="print every gateway option with its default").set_defaults(
        func=_gateway_reference
    )
    from roost import scan as scan_cli

    scan_cli.add_parser(gw)
    from roost import update_cli

    update_cli.add_parsers(gw)
    from roost import gateway_cli

    gateway_cli.add_parsers(gw)

    cl = sub.add_parser("cloud", help="the cloud companion").add_subparsers(dest="cl", required=True, metavar="ACTION")
    serve = cl.add_parser("serve", help="run the cloud (broker, ingest, store, API) in one process")
    serve.add_argument("--config", "-c", required=True, help="cloud.toml")
    serve.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    serve.set_defaults(func=_cloud_serve)
    cl.add_parser("config-reference", help="print every cloud option with its default").set_defaults(
        func=_cloud_reference
    )
    from roost import admin_cli

    admin_cli.add_parser(cl)
    from roost import oidc_cli

    oidc_cli.add_parser(cl)
    from roost import export_cli

    export_cli.add_parsers(cl)
    from roost import bundle_cli

    bundle_cli.add_parser(sub)

    from roost import rules_cli

    rules_cli.add_parser(sub)
    from roost import firstboot_cli

    firstboot_cli.add_parser(sub)
    from roost import image_cli

    image_cli.add_parser(sub)

    dec = sub.add_parser("decode", help="decode a payload a technician copied, print JSON")
    dsub = dec.add_subparsers(dest="format", required=True, metavar="FORMAT")
    ds = dsub.add_parser("senml", help="a SenML pack (CBOR, JSON or zlib) as hex, @file or - for stdin")
    ds.add_argument("payload", help="hex bytes, JSON text, @FILE or -")
    ds.set_defaults(func=_decode)
    dn = dsub.add_parser("nmea", help="one NMEA 0183 sentence from a GPS receiver ($GPGGA,...*47), or - for stdin")
    dn.add_argument("sentence", help="the sentence with its checksum (quote it: it holds '$' and '*'), or -")
    dn.set_defaults(func=_decode_nmea)
    dr = dsub.add_parser("serial", help="Roost serial protocol frames (one, or a captured stream) as hex, @file or -")
    dr.add_argument("frame", help="hex bytes of COBS frames (the last 00 may be left out), @FILE of raw bytes, or -")
    dr.set_defaults(func=_decode_serial)
    dl = dsub.add_parser("line", help="a metric=value[,metric=value] line (the line protocol), or - for stdin")
    dl.add_argument("text", help="the line (or several), or -")
    dl.add_argument("--sensor", default=None, help="the sensor id to show (the serial port's configured sensor)")
    dl.set_defaults(func=_decode_line)
    db = dsub.add_parser(
        "ble", help="one BLE advertisement: the raw AD structures a scanner app shows (0201061216d2fc41...), as hex"
    )
    db.add_argument("raw", help="the advertising data as hex (spaces, colons and a leading 0x are ignored)")
    db.add_argument("--mac", default=None, help="the sender's MAC address (needed to decrypt encrypted BTHome)")
    db.add_argument("--key", default=None, help="the device's bind key, 32 hex digits (encrypted BTHome)")
    db.set_defaults(func=_decode_ble)
    dz = dsub.add_parser(
        "zcl", help="one Zigbee ZCL frame (attribute report, read response, IAS zone notification) as hex"
    )
    dz.add_argument("frame", help="the ZCL frame as hex, header included (18 01 0a 00 00 29 69 08)")
    dz.add_argument("--cluster", required=True, help="the cluster id, hex (0x0402) or decimal")
    dz.add_argument(
        "--known",
        action="append",
        default=[],
        metavar="ATTR=VALUE",
        help="an attribute of the same cluster read earlier (divisor 0x0302=1000, zone type 0x0001=0x15); repeatable",
    )
    dz.set_defaults(func=_decode_zcl)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``roost`` command."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
