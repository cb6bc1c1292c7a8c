"""The readings API's rollup answers (``resolution=1m|1h|auto``): buckets of one sensor's metric."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cloud.errors import ApiError
from cloud.rollups import Bucket, Resolution, RollupQuery, choose
from cloud.store_api import ReadingStore


def resolve(resolution: Resolution, points: int, since_us: int | None, until_us: int | None) -> str:
    """The resolution to answer with; ``auto`` needs the range it divides (ApiError(400) naming what is missing)."""
    if resolution == "auto":
        if since_us is None:
            raise ApiError(400, "resolution=auto needs since (the start of the range)", parameter="since")
        if until_us is None:
            raise ApiError(400, "resolution=auto needs until (the end of the range)", parameter="until")
    if resolution == "raw":
        return "raw"  # as before rollups: an empty range is an empty page
    if since_us is not None and until_us is not None and until_us <= since_us:
        raise ApiError(400, "until must be after since", parameter="until")
    span = until_us - since_us if since_us is not None and until_us is not None else None
    return choose(resolution, span, points)


def item(b: Bucket, rfc3339: Callable[[int], str]) -> dict[str, Any]:
    """A bucket as the API shows it (``rfc3339``: the API's time format)."""
    return {
        "t": rfc3339(b.start_us),
        "min": b.min,
        "max": b.max,
        "avg": b.sum / b.count,
        "count": b.count,
        "last": b.last,
        "last_ts": rfc3339(b.last_us),
    }


async def page(
    store: ReadingStore,
    *,
    resolution: str,
    tenant: str | None,
    gateway: str | None,
    sensor: str | None,
    metric: str | None,
    since_us: int | None,
    until_us: int | None,
    after: tuple[int, str, str, str, str] | None,
    limit: int,
    rfc3339: Callable[[int], str],
) -> tuple[list[dict[str, Any]], list[Any] | None]:
    """One page of buckets and the key of its last one when there are more (for the cursor)."""
    for name, given in (("sensor", sensor), ("metric", metric)):
        if given is None:
            why = f"resolution={resolution} needs {name} (rollups are kept per sensor and metric)"
            raise ApiError(400, why, parameter=name)
    assert sensor is not None and metric is not None
    query = RollupQuery(
        tenant=tenant,
        sensor=sensor,
        metric=metric,
        resolution=resolution,
        gateway=gateway,
        since_us=since_us,
        until_us=until_us,
        after_us=after[0] if after is not None else None,
        limit=limit + 1,
    )
    buckets = await store.rollups(query)
    shown = buckets[:limit]
    more = len(buckets) > limit
    key = [shown[-1].start_us, tenant or "", gateway or "", sensor, metric] if more else None
    return [item(b, rfc3339) for b in shown], key
