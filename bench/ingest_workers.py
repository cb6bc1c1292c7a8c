"""How fast ingest workers drain RabbitMQ's quorum queue into PostgreSQL: messages/s and readings/s per worker.

One real RabbitMQ 3.10 node (tests/rabbitmq_cluster.py) and PostgreSQL 15 (tests/pg.py) on this machine. The
queue ``roost.ingest`` is filled beforehand with SenML packs published to ``amq.topic`` under the routing keys
RabbitMQ's MQTT plugin gives gateways' publishes (``roost.default.gw-N.telemetry.bM``), persistent, confirmed.
Then one, and then two, ``roost cloud serve`` processes with ``role = "ingest"`` drain it: each message is
decoded, committed to PostgreSQL, acknowledged to RabbitMQ after the commit and answered with the gateway's
``ack``. The rate is read off PostgreSQL's row count, from the first stored row to the last.

Two shapes: packs of one reading (a fleet of small gateways: bench/fleet.py's load, one message per reading)
and packs of 100. The ceiling printed beside each is the PostgreSQL store's own commit rate for the same packs
(``PgStore.commit_all`` in this process, no broker), measured in the same run.

Usage: python bench/ingest_workers.py [--messages 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aio_pika
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cloud.broker.rabbitmq_amqp import INGESTED_KINDS  # noqa: E402
from cloud.pgstore import PgStore  # noqa: E402
from cloud.store import PackWrite  # noqa: E402
from tests.pg import PgServer, postgres_missing  # noqa: E402
from tests.rabbitmq_cluster import RabbitCluster, free_port, missing  # noqa: E402
from wire import senml  # noqa: E402
from wire.reading import Reading  # noqa: E402

GATEWAYS = 200
QUEUE = "roost.ingest"
T0 = 1_790_000_000.0


def _pack(gateway: int, n: int, per_pack: int) -> bytes:
    t = T0 + n * per_pack
    return senml.encode(
        [Reading(f"s{gateway}", "temperature", 20.0 + i / 10, t + i, "Cel") for i in range(per_pack)], encoding="cbor"
    )


async def _fill(url: str, messages: int, per_pack: int, offset: int) -> float:
    """Declare the ingest queue as the workers do and publish ``messages`` packs into it; seconds it took."""
    started = time.perf_counter()
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
        for key in INGESTED_KINDS:
            await queue.bind("amq.topic", routing_key=key)
        exchange = await channel.get_exchange("amq.topic")
        window = 500
        for start in range(0, messages, window):
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            _pack(k % GATEWAYS, offset + k, per_pack), delivery_mode=aio_pika.DeliveryMode.PERSISTENT
                        ),
                        routing_key=f"roost.default.gw-{k % GATEWAYS}.telemetry.b{offset + k}",
                    )
                    for k in range(start, min(messages, start + window))
                )
            )
    return time.perf_counter() - started


def _rows(dsn: str) -> int:
    """Readings stored so far (0 until a worker has created the schema)."""
    with psycopg.connect(dsn) as conn:
        try:
            row = conn.execute("SELECT count(*) FROM readings").fetchone()
        except psycopg.errors.UndefinedTable:
            return 0
        return int(row[0]) if row else 0


def _worker_config(tmp: Path, name: str, amqp: str, dsn: str) -> Path:
    path = tmp / f"{name}.toml"
    path.write_text(
        f"""
[server]
host = "127.0.0.1"
port = {free_port()}
role = "ingest"
[store]
path = "{tmp / name / "cloud.sqlite"}"
backend = "postgresql"
dsn = "{dsn}"
[identity]
enabled = false
[broker]
kind = "rabbitmq"
amqp_urls = ["{amqp}"]
amqp_prefetch = 1000
[ingest]
batch_max_delay_ms = 20
"""
    )
    return path


def _drain(tmp: Path, workers: int, amqp: str, dsn: str, expected: int, timeout: float = 300.0) -> float:
    """Start ``workers`` ingest workers; readings/s from the first new row to ``expected`` rows."""
    before = _rows(dsn)
    procs = [
        subprocess.Popen(
            [
                str(ROOT / ".venv" / "bin" / "roost"),
                "cloud",
                "serve",
                "--config",
                str(_worker_config(tmp, f"w{i}", amqp, dsn)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=(tmp / f"w{i}.log").open("wb"),
        )
        for i in range(workers)
    ]
    try:
        deadline = time.monotonic() + timeout
        first: tuple[float, int] | None = None
        while True:
            now, rows = time.monotonic(), _rows(dsn)
            if first is None and rows > before:
                first = (now, rows)
            if rows >= before + expected:
                break
            if now > deadline or any(p.poll() is not None for p in procs):
                raise SystemExit(f"the workers stored {rows - before} of {expected} readings; see {tmp}/w*.log")
            time.sleep(0.05)
        assert first is not None
        return (rows - first[1]) / max(1e-6, now - first[0])
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()


async def _store_ceiling(dsn: str, messages: int, per_pack: int, offset: int) -> float:
    """Readings/s PgStore.commit_all takes the same packs at, 500 packs a commit (an ingest batch), no broker."""
    store = PgStore(dsn)
    await store.open()
    try:
        packs = [
            PackWrite("default", f"gw-{k % GATEWAYS}", senml.decode(_pack(k % GATEWAYS, offset + k, per_pack)))
            for k in range(messages)
        ]
        started = time.perf_counter()
        for i in range(0, len(packs), 500):
            await store.commit_all(packs[i : i + 500], now=time.time())
        return messages * per_pack / (time.perf_counter() - started)
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20_000, help="packs of one reading per run (default 20,000)")
    args = parser.parse_args()
    why = missing() or postgres_missing()
    if why:
        raise SystemExit(f"cannot run: {why}")
    with tempfile.TemporaryDirectory(prefix="roost-ingest-workers-") as tmpdir:
        tmp = Path(tmpdir)
        with RabbitCluster(tmp / "rabbitmq", size=1) as node, PgServer(tmp / "pg") as pg:
            amqp = node.amqp_urls[0]
            print("ingest workers: one RabbitMQ 3.10 node, PostgreSQL 15, workers as `roost cloud serve` (2 cores)")
            offset = 0
            for per_pack, messages in ((1, args.messages), (100, max(100, args.messages // 20))):
                for workers in (1, 2):
                    dsn = pg.create_database(f"bench_{per_pack}_{workers}")
                    fill_s = asyncio.run(_fill(amqp, messages, per_pack, offset))
                    rate = _drain(tmp, workers, amqp, dsn, messages * per_pack)
                    ceiling = asyncio.run(
                        _store_ceiling(pg.create_database(f"ceil_{per_pack}_{workers}"), messages, per_pack, offset)
                    )
                    offset += messages
                    print(
                        f"  packs of {per_pack:>3} reading(s), {workers} worker(s): {rate / per_pack:8,.0f} messages/s"
                        f" = {rate:9,.0f} readings/s   (store ceiling, same packs, no broker:"
                        f" {ceiling:9,.0f} readings/s; queue filled at {messages / fill_s:,.0f} messages/s)",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
