"""What an export asks for (:class:`ExportRequest`) and its checks, without pyarrow (which :mod:`cloud.export` loads).

The API and the reports import these at start; pyarrow (about 58 MB of memory) is imported only when an export
runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from wire.names import check_gateway, check_metric, check_sensor, check_tenant

ExportFormat = Literal["csv", "parquet"]
ExportResolution = Literal["raw", "1m", "1h"]
FORMATS: tuple[str, ...] = ("csv", "parquet")
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ExportInvalid(ValueError):
    """An export that cannot be made as asked; ``parameter`` names the request parameter at fault."""

    def __init__(self, parameter: str, problem: str) -> None:
        super().__init__(problem)
        self.parameter = parameter
        self.problem = problem


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportRequest:
    """What to export: a tenant's readings in [since, until), optionally of one gateway, sensor, metric."""

    tenant: str
    format: ExportFormat = "csv"
    gateway: str | None = None
    sensor: str | None = None
    metric: str | None = None
    since_us: int | None = None
    until_us: int | None = None
    resolution: ExportResolution = "raw"

    def __post_init__(self) -> None:
        checks = (
            ("tenant", check_tenant, self.tenant),
            ("gateway", check_gateway, self.gateway),
            ("sensor", check_sensor, self.sensor),
            ("metric", check_metric, self.metric),
        )
        for name, check, value in checks:
            if value is not None:
                try:
                    check(value)
                except ValueError as exc:
                    raise ExportInvalid(name, str(exc)) from None
        if self.format not in FORMATS:
            raise ExportInvalid("format", f"format must be csv or parquet, not {self.format!r}")
        if self.resolution not in ("raw", "1m", "1h"):
            raise ExportInvalid("resolution", f"resolution must be raw, 1m or 1h, not {self.resolution!r}")
        if self.since_us is not None and self.until_us is not None and self.until_us <= self.since_us:
            raise ExportInvalid("until", "until must be after since")
        if self.resolution != "raw":
            for name in ("sensor", "metric"):
                if getattr(self, name) is None:
                    raise ExportInvalid(
                        name, f"resolution={self.resolution} needs {name}: rollups are exported one series at a time"
                    )

    def filename(self) -> str:
        """A file name that says what the export holds (``roost-acme-20261118T000000Z-....csv``)."""
        parts = ["roost", self.tenant]
        parts += [p for p in (self.gateway, self.sensor, self.metric) if p]
        if self.resolution != "raw":
            parts.append(self.resolution)
        for us in (self.since_us, self.until_us):
            if us is not None:
                parts.append((_EPOCH + timedelta(microseconds=us)).strftime("%Y%m%dT%H%M%SZ"))
        safe = "-".join(parts).replace("/", "_").replace(":", "_")
        return f"{safe}.{self.format}"
