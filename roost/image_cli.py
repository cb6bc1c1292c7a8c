"""``roost image build``: the gateway's SD-card image (arm64, Raspberry Pi) or a PC/VM image (amd64)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _build(args: argparse.Namespace) -> int:
    from roost.image.build import Options, build
    from roost.image.tools import BuildError

    for flag, path in (("--ssh-key", args.ssh_key), ("--update-pub", args.update_pub)):
        if path is not None and not path.is_file():
            print(f"roost image build: {flag} {path}: no such file", file=sys.stderr)
            return 2
    opts = Options(
        arch=args.arch,
        suite=args.suite,
        out=args.out,
        cache=args.cache,
        ssh_key=args.ssh_key,
        update_pub=args.update_pub,
        keep_raw=args.keep_raw,
        xz_level=args.xz_level,
    )
    try:
        result = build(opts, say=lambda text: print(text, flush=True))
    except BuildError as exc:
        print(f"roost image build: {exc}", file=sys.stderr)
        return 1
    print(f"image:    {result.image_xz} ({result.xz_size / 2**20:.0f} MiB; {result.raw_size / 2**20:.0f} MiB raw)")
    print(f"sha256:   {result.sha256_file}")
    print(f"manifest: {result.manifest_json}")
    print(f"root file system sha256: {result.rootfs_sha256}")
    print(f"built in {result.timings.get('total', 0):.0f} s")
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``roost image ...``."""
    from roost.image.build import DEFAULT_CACHE

    img = sub.add_parser("image", help="build the gateway's SD-card image").add_subparsers(
        dest="image", required=True, metavar="ACTION"
    )
    b = img.add_parser("build", help="build an image from Debian's packages and this checkout (needs root)")
    b.add_argument("--arch", choices=["arm64", "amd64"], default="arm64", help="arm64: Raspberry Pi 3/4; amd64: PC/VM")
    b.add_argument("--suite", default="bookworm", help="the Debian release (default bookworm)")
    b.add_argument("--out", type=Path, default=Path("dist/image"), help="where the image goes (default dist/image)")
    b.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"kept between builds (default {DEFAULT_CACHE})")
    b.add_argument("--ssh-key", type=Path, default=None, help="a public key for root's SSH login (SSH is off without)")
    b.add_argument("--update-pub", type=Path, default=None, help="the update key's public half (/etc/roost/update.pub)")
    b.add_argument("--keep-raw", action="store_true", help="keep the uncompressed .img next to the .img.xz")
    b.add_argument("--xz-level", type=int, choices=range(10), default=6, metavar="0-9", help="xz level (default 6)")
    b.set_defaults(func=_build)
