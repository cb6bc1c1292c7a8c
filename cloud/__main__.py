"""``python -m cloud --config cloud.toml``: run the cloud companion until SIGINT or SIGTERM.

Once it listens it writes one JSON line to stdout, ``{"base_url": ..., "mqtt_ws_url": ..., ...}``, for scripts
and tests that start it with port 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from pathlib import Path

from cloud.config import load
from cloud.errors import CloudError, ConfigError
from cloud.server import ServerInfo, serve

_LOGGER = logging.getLogger("cloud")


def _announce(info: ServerInfo) -> None:
    line = {
        "base_url": info.base_url,
        "port": info.port,
        "mqtt_ws_url": info.mqtt_ws_url,
        "api_url": info.api_url,
        "tcp_port": info.tcp_port,
    }
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


async def _run(config_path: Path) -> None:
    config = load(config_path)
    logging.getLogger().setLevel(config.server.log_level)
    main = asyncio.current_task()
    assert main is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, main.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await serve(config, ready=_announce)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the server; 0 on a clean stop, 2 on a config error, 1 on a failure."""
    parser = argparse.ArgumentParser(prog="python -m cloud", description="Run the Roost cloud companion.")
    parser.add_argument("--config", type=Path, required=True, help="path of cloud.toml")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("transitions").setLevel(logging.WARNING)  # amqtt's state machine logs every step at INFO
    try:
        asyncio.run(_run(args.config))
    except CloudError as exc:
        _LOGGER.error("%s", exc)
        return 2 if isinstance(exc, ConfigError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
