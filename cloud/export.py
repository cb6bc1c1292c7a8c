"""Export a range of readings (or one series' rollups) as CSV or Parquet, page by page from any store.

The rows come from the :class:`~cloud.store_api.ReadingStore` interface only (``readings`` with keyset paging
by ``after``, ``rollups`` by ``after_us``), so the same code exports from SQLite and PostgreSQL; memory stays
bounded by one page (CSV) or one row group (Parquet) whatever the range.

Raw columns, in this order (docs/reports.md):

- ``time``: RFC 3339 UTC with microseconds in CSV (``2026-11-18T12:00:00.123456Z``), ``timestamp[us, UTC]``
  in Parquet;
- ``tenant``, ``gateway``, ``sensor``, ``metric``: text;
- ``value``: the number (float64), empty/null when the reading is a boolean or a text;
- ``value_bool``: the boolean (``true``/``false`` in CSV), empty/null otherwise;
- ``value_text``: the text, empty/null otherwise;
- ``unit``: text, empty/null when none.

Exactly one of ``value``, ``value_bool`` and ``value_text`` is set on each row. Rollups (``resolution`` 1m or
1h) are kept per sensor and metric, and the store serves one series per call: a rollup export names
``sensor`` and ``metric``; without ``gateway`` the buckets are summed over the tenant's gateways (``gateway``
empty). Their columns: ``time`` (bucket start), ``tenant``, ``gateway``, ``sensor``, ``metric``, ``min``,
``max``, ``avg``, ``count``, ``last``, ``last_time``.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from cloud.export_request import (
    ExportRequest,
)
from cloud.rollups import Bucket, RollupQuery
from cloud.store import ReadingQuery, ReadingRow
from cloud.store_api import ReadingStore

PAGE_ROWS = 10_000
"""Rows asked of the store at once."""
ROW_GROUP_ROWS = 100_000
"""Rows in one Parquet row group (what a Parquet export holds in memory at most)."""

_TIME = pa.timestamp("us", tz="UTC")
RAW_SCHEMA = pa.schema(
    [
        ("time", _TIME),
        ("tenant", pa.string()),
        ("gateway", pa.string()),
        ("sensor", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("value_bool", pa.bool_()),
        ("value_text", pa.string()),
        ("unit", pa.string()),
    ]
)
ROLLUP_SCHEMA = pa.schema(
    [
        ("time", _TIME),
        ("tenant", pa.string()),
        ("gateway", pa.string()),
        ("sensor", pa.string()),
        ("metric", pa.string()),
        ("min", pa.float64()),
        ("max", pa.float64()),
        ("avg", pa.float64()),
        ("count", pa.int64()),
        ("last", pa.float64()),
        ("last_time", _TIME),
    ]
)


# -- pages from the store ----------------------------------------------------------------------------------------


async def reading_pages(
    store: ReadingStore, req: ExportRequest, page_rows: int = PAGE_ROWS
) -> AsyncIterator[list[ReadingRow]]:
    """The request's readings, a page at a time, in (time, tenant, gateway, sensor, metric) order."""
    after: tuple[int, str, str, str, str] | None = None
    while True:
        query = ReadingQuery(
            tenant=req.tenant, gateway=req.gateway, sensor=req.sensor, metric=req.metric,
            since_us=req.since_us, until_us=req.until_us, after=after, limit=page_rows,
        )  # fmt: skip
        rows = await store.readings(query)
        if rows:
            yield rows
        if len(rows) < page_rows:
            return
        last = rows[-1]
        after = (last.ts_us, last.tenant, last.gateway, last.sensor, last.metric)


async def bucket_pages(
    store: ReadingStore, req: ExportRequest, page_rows: int = PAGE_ROWS
) -> AsyncIterator[list[Bucket]]:
    """The request's series of rollup buckets, a page at a time, in time order."""
    assert req.sensor is not None and req.metric is not None and req.resolution != "raw"
    after_us: int | None = None
    while True:
        query = RollupQuery(
            tenant=req.tenant, sensor=req.sensor, metric=req.metric, resolution=req.resolution,
            gateway=req.gateway, since_us=req.since_us, until_us=req.until_us, after_us=after_us, limit=page_rows,
        )  # fmt: skip
        buckets = await store.rollups(query)
        if buckets:
            yield buckets
        if len(buckets) < page_rows:
            return
        after_us = buckets[-1].start_us


# -- rows as columns and as CSV ----------------------------------------------------------------------------------


def reading_columns(rows: Sequence[ReadingRow]) -> dict[str, list[Any]]:
    """Readings as the raw export's columns (times in µs)."""
    cols: dict[str, list[Any]] = {name: [] for name in RAW_SCHEMA.names}
    for r in rows:
        v = r.value
        cols["time"].append(r.ts_us)
        cols["tenant"].append(r.tenant)
        cols["gateway"].append(r.gateway)
        cols["sensor"].append(r.sensor)
        cols["metric"].append(r.metric)
        cols["value"].append(None if isinstance(v, (bool, str)) else float(v))
        cols["value_bool"].append(v if isinstance(v, bool) else None)
        cols["value_text"].append(v if isinstance(v, str) else None)
        cols["unit"].append(r.unit)
    return cols


def bucket_columns(req: ExportRequest, buckets: Sequence[Bucket]) -> dict[str, list[Any]]:
    """Buckets of the request's series as the rollup export's columns (times in µs)."""
    n = len(buckets)
    return {
        "time": [b.start_us for b in buckets],
        "tenant": [req.tenant] * n,
        "gateway": [req.gateway] * n,
        "sensor": [req.sensor] * n,
        "metric": [req.metric] * n,
        "min": [b.min for b in buckets],
        "max": [b.max for b in buckets],
        "avg": [b.sum / b.count for b in buckets],
        "count": [b.count for b in buckets],
        "last": [b.last for b in buckets],
        "last_time": [b.last_us for b in buckets],
    }


def csv_bytes(batch: pa.RecordBatch, *, header: bool) -> bytes:
    """A batch as CSV lines (RFC 4180; times as RFC 3339 text; texts quoted), the header line first if asked."""
    for i, field in enumerate(batch.schema):
        if pa.types.is_timestamp(field.type):
            text = pc.strftime(batch.column(i), format="%Y-%m-%dT%H:%M:%SZ")  # %S carries the µs
            batch = batch.set_column(i, field.name, text)
    out = io.BytesIO()
    pa_csv.write_csv(batch, out, pa_csv.WriteOptions(include_header=header, quoting_style="needed"))
    return out.getvalue()


# -- the file, as a stream of bytes ------------------------------------------------------------------------------


class _Drain:
    """A write-only file for pyarrow whose bytes are taken away after each row group."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self._pos = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self.buffer += data
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def take(self) -> bytes:
        out = bytes(self.buffer)
        self.buffer.clear()
        return out


def _batch(req: ExportRequest, page: Sequence[ReadingRow] | Sequence[Bucket]) -> pa.RecordBatch:
    if req.resolution == "raw":
        return pa.RecordBatch.from_pydict(reading_columns(page), schema=RAW_SCHEMA)  # type: ignore[arg-type]
    return pa.RecordBatch.from_pydict(bucket_columns(req, page), schema=ROLLUP_SCHEMA)  # type: ignore[arg-type]


async def _batches(store: ReadingStore, req: ExportRequest, page_rows: int) -> AsyncIterator[pa.RecordBatch]:
    """The request's rows as Arrow batches, one per page (built on a worker thread: the event loop keeps serving)."""
    pages: AsyncIterator[Sequence[ReadingRow] | Sequence[Bucket]] = (
        reading_pages(store, req, page_rows) if req.resolution == "raw" else bucket_pages(store, req, page_rows)
    )
    async for page in pages:
        yield await asyncio.to_thread(_batch, req, page)


async def export_chunks(
    store: ReadingStore, req: ExportRequest, *, page_rows: int = PAGE_ROWS, row_group_rows: int = ROW_GROUP_ROWS
) -> AsyncIterator[bytes]:
    """The export file as chunks of bytes: a CSV page or a Parquet row group at a time (an empty range: header only)."""
    schema = _schema(req)
    if req.format == "csv":
        header = True
        async for batch in _batches(store, req, page_rows):
            yield await asyncio.to_thread(csv_bytes, batch, header=header)
            header = False
        if header:
            yield csv_bytes(_empty(schema), header=True)
        return
    sink = _Drain()
    writer = pq.ParquetWriter(pa.PythonFile(sink, mode="w"), schema, compression="zstd")
    pending: list[pa.RecordBatch] = []
    held = 0
    try:
        async for batch in _batches(store, req, page_rows):
            pending.append(batch)
            held += batch.num_rows
            if held >= row_group_rows:
                table = pa.Table.from_batches(pending, schema=schema)
                await asyncio.to_thread(writer.write_table, table, row_group_size=held)
                pending, held = [], 0
                yield sink.take()
        if pending:
            await asyncio.to_thread(
                writer.write_table, pa.Table.from_batches(pending, schema=schema), row_group_size=held
            )
    finally:
        writer.close()
    yield sink.take()


def _empty(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({name: [] for name in schema.names}, schema=schema)


def _schema(req: ExportRequest) -> pa.Schema:
    return RAW_SCHEMA if req.resolution == "raw" else ROLLUP_SCHEMA


async def export_to_file(store: ReadingStore, req: ExportRequest, path: Path) -> int:
    """Write the export to ``path`` (through a temporary file beside it); the bytes written."""
    tmp = path.with_name(path.name + ".part")
    size = 0
    try:
        with tmp.open("wb") as out:
            async for chunk in export_chunks(store, req):
                await asyncio.to_thread(out.write, chunk)
                size += len(chunk)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return size
