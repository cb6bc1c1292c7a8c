"""Prometheus metrics at ``http://127.0.0.1:9108/metrics`` (``[metrics]`` in gateway.toml).

A custom collector reads the counters the parts already keep (the buffer's stats, the uplink's counters,
each adapter's stats, the rules engine's, the DM dispatcher's) when Prometheus scrapes: nothing is added
to the path a reading takes. The HTTP endpoint runs on the daemon's event loop, so a scrape reads the
counters from the thread that writes them. Metric names are listed in docs/operations.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import metadata
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway import watchdog
from gateway.metrics_config import MetricsSection

if TYPE_CHECKING:
    from gateway.daemon import Daemon

_LOGGER = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REQUEST_TIMEOUT_S = 5.0
MAX_REQUEST_BYTES = 8192


def _version() -> str:
    try:
        return metadata.version("roost")
    except metadata.PackageNotFoundError:  # pragma: no cover - a source tree without install
        return "unknown"


def _numbers(value: object, prefix: str = "") -> Iterator[tuple[str, float]]:
    """Numeric leaves of an adapter's stats, as dotted keys (per-device tables and accepted/rejected left out)."""
    if isinstance(value, bool | int | float):
        yield prefix, float(value)
    elif isinstance(value, Mapping):
        for key, sub in value.items():
            if key == "devices" or (not prefix and key in ("accepted", "rejected")):
                continue  # per-device tables: too many series; accepted/rejected have metrics of their own
            yield from _numbers(sub, f"{prefix}.{key}" if prefix else str(key))


class GatewayCollector(Collector):
    """Reads the running parts' counters at scrape time."""

    def __init__(
        self,
        daemon: Daemon,
        *,
        commands: Callable[[], Mapping[str, int]] = dict,
        parts: Sequence[asyncio.Task[None]] = (),
    ) -> None:
        self._d = daemon
        self._commands = commands
        self._parts = list(parts)

    def collect(self) -> Iterator[Metric]:
        """Every metric, from the counters as they are now."""
        yield from self._gateway()
        yield from self._buffer()
        yield from self._uplink()
        yield from self._adapters()
        yield from self._rules()
        dm = CounterMetricFamily(
            "roost_dm_commands", "Device-management commands answered, by status", labels=["status"]
        )
        for status, n in sorted(self._commands().items()):
            dm.add_metric([status], n)
        yield dm

    def _gateway(self) -> Iterator[Metric]:
        d = self._d
        info = GaugeMetricFamily("roost_gateway_info", "This gateway (value 1)", labels=["gateway", "version"])
        info.add_metric([d.gateway_id, _version()], 1)
        yield info
        health = watchdog.check(d, self._parts)
        yield GaugeMetricFamily(
            "roost_gateway_healthy", "1 while the watchdog finds the gateway healthy", value=int(health.ok)
        )
        yield GaugeMetricFamily("roost_gateway_start_time_seconds", "Unix time the parts started", value=d.started)

    def _buffer(self) -> Iterator[Metric]:
        st = self._d.buffer.stats()
        yield GaugeMetricFamily(
            "roost_buffer_readings", "Readings in the buffer (in flight included)", value=st["buffered"]
        )
        yield GaugeMetricFamily("roost_buffer_bytes", "Estimated size of the buffered readings", value=st["bytes"])
        yield GaugeMetricFamily(
            "roost_buffer_inflight_readings", "Readings sent and not yet acknowledged", value=st["inflight"]
        )
        yield GaugeMetricFamily("roost_buffer_events", "Events in the buffer", value=st["events_buffered"])
        yield CounterMetricFamily(
            "roost_buffer_commits", "Buffer transactions committed since start", value=st["commits"]
        )
        yield CounterMetricFamily(
            "roost_readings_received", "Readings stored in the buffer since start", value=st["received"]
        )
        drops = CounterMetricFamily(
            "roost_readings_dropped",
            "Readings not sent, by reason: full and age (since the buffer was created), shaped (uplink shaping "
            "rules), cloud-rejected (refused by the cloud for good)",
            labels=["reason"],
        )
        drops.add_metric(["full"], st["dropped_full"])
        drops.add_metric(["age"], st["dropped_age"])
        drops.add_metric(["shaped"], self._d.hub.shaped_out)
        drops.add_metric(["cloud-rejected"], self._d.uplink.rejected)
        yield drops
        yield CounterMetricFamily(
            "roost_events_received", "Events stored in the buffer since start", value=st["events_received"]
        )
        yield CounterMetricFamily(
            "roost_events_dropped", "Events dropped (event queue full) since the buffer was created",
            value=st["events_dropped"],
        )  # fmt: skip

    def _uplink(self) -> Iterator[Metric]:
        u = self._d.uplink
        yield GaugeMetricFamily(
            "roost_uplink_connected", "1 while connected to the cloud's broker", value=int(u.connected)
        )
        yield GaugeMetricFamily(
            "roost_uplink_inflight_packs", "Packs published and not yet acknowledged", value=u.inflight
        )
        yield CounterMetricFamily("roost_readings_sent", "Readings the cloud acknowledged since start", value=u.sent)
        yield CounterMetricFamily(
            "roost_uplink_packs_sent", "Packs the cloud acknowledged since start", value=u.sent_packs
        )
        yield CounterMetricFamily(
            "roost_uplink_packs_resent", "Packs published again (ack timeout, reconnect)", value=u.resent
        )
        yield CounterMetricFamily("roost_events_sent", "Events the cloud acknowledged since start", value=u.events_sent)
        yield CounterMetricFamily("roost_uplink_reconnects", "Connections made after an outage", value=u.reconnects)
        yield CounterMetricFamily(
            "roost_uplink_connect_failures", "Attempts to connect that failed", value=u.connect_failures
        )

    def _adapters(self) -> Iterator[Metric]:
        alive = {t.get_name(): not t.done() for t in self._parts}
        up = GaugeMetricFamily("roost_adapter_up", "1 while the adapter's task runs", labels=["adapter"])
        accepted = CounterMetricFamily(
            "roost_adapter_readings_accepted",
            "Readings the adapter handed in and the buffer stored",
            labels=["adapter"],
        )
        rejected = CounterMetricFamily(
            "roost_inputs_rejected", "Inputs an adapter refused, by reason", labels=["adapter", "reason"]
        )
        devices = GaugeMetricFamily("roost_adapter_devices", "Devices the adapter tracks", labels=["adapter"])
        available = GaugeMetricFamily(
            "roost_adapter_devices_available", "Devices heard from recently enough to count as available",
            labels=["adapter"],
        )  # fmt: skip
        stat = GaugeMetricFamily(
            "roost_adapter_stat", "The adapter's other figures from its health report", labels=["adapter", "stat"]
        )
        for a in self._d.adapters:
            up.add_metric([a.name], int(alive.get(f"adapter {a.name}", True)))
            accepted.add_metric([a.name], a.accepted)
            for reason, n in sorted(a.rejected.items()):
                rejected.add_metric([a.name, reason], n)
            try:
                stats: Mapping[str, Any] = a.stats()
            except Exception:  # one adapter's bug must not cost the scrape
                _LOGGER.exception("metrics: the %s adapter's figures failed", a.name)
                continue
            table = stats.get("devices")
            if isinstance(table, Mapping):
                devices.add_metric([a.name], len(table))
                n_avail = sum(1 for v in table.values() if isinstance(v, Mapping) and v.get("available"))
                available.add_metric([a.name], n_avail)
            for key, value in _numbers(stats):
                stat.add_metric([a.name, key], value)
        yield from (up, accepted, rejected, devices, available, stat)

    def _rules(self) -> Iterator[Metric]:
        r = self._d.rules
        if r is None:
            return
        evals = CounterMetricFamily("roost_rule_evaluations", "Readings each rule evaluated", labels=["rule"])
        outs = CounterMetricFamily(
            "roost_rule_outputs", "Alerts, commands and readings each rule emitted", labels=["rule"]
        )
        errs = CounterMetricFamily("roost_rule_errors", "Run-time errors in each rule", labels=["rule"])
        skipped = CounterMetricFamily(
            "roost_rule_readings_skipped", "Readings a rule could not use, by reason (late, unusable, overflow)",
            labels=["rule", "reason"],
        )  # fmt: skip
        active = GaugeMetricFamily("roost_rule_active_alerts", "Alerts open now", labels=["rule"])
        disabled = GaugeMetricFamily("roost_rule_disabled", "1 when the engine disabled the rule", labels=["rule"])
        for name, st in sorted(r.engine.stats().items()):
            evals.add_metric([name], st.events_in)
            outs.add_metric([name], st.outputs)
            errs.add_metric([name], st.errors)
            skipped.add_metric([name, "late"], st.late)
            skipped.add_metric([name, "unusable"], st.skipped)
            skipped.add_metric([name, "overflow"], st.overflow)
            active.add_metric([name], st.active_alerts)
            disabled.add_metric([name], int(st.disabled))
        yield from (evals, outs, errs, skipped, active, disabled)
        cmds = CounterMetricFamily(
            "roost_rule_commands", "Commands rules sent to devices, by outcome", labels=["outcome"]
        )
        cmds.add_metric(["done"], r.commands_done)
        cmds.add_metric(["failed"], r.commands_failed)
        yield cmds
        yield CounterMetricFamily(
            "roost_rule_outputs_dropped", "Rule outputs that could not be stored", value=r.dropped_outputs
        )
        yield GaugeMetricFamily(
            "roost_rules_load_failed",
            "1 when the last change to the rule files was refused",
            value=int(bool(r.last_error)),
        )


def registry_for(collector: GatewayCollector) -> CollectorRegistry:
    """A registry with the gateway's collector and the process' own figures (RSS, CPU, open files)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(namespace="roost", registry=registry)
    return registry


async def _answer(registry: CollectorRegistry, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            head = await reader.readuntil(b"\r\n\r\n")
    except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        writer.close()
        return
    request_line = head.split(b"\r\n", 1)[0].decode("latin-1", errors="replace").split()
    method, target = [*request_line, "", ""][:2]
    path = target.split("?", 1)[0]
    if method not in ("GET", "HEAD"):
        status, ctype, body = "405 Method Not Allowed", "text/plain", b"only GET\n"
    elif path in ("/metrics", "/"):
        status, ctype, body = "200 OK", CONTENT_TYPE, generate_latest(registry)
    else:
        status, ctype, body = "404 Not Found", "text/plain", b"the metrics are at /metrics\n"
    head_out = f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    try:
        writer.write(head_out.encode() + (b"" if method == "HEAD" else body))
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            await writer.drain()
    except (TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve(section: MetricsSection, collector: GatewayCollector) -> None:
    """Serve ``/metrics`` until cancelled; a port that cannot be bound is logged and metrics stay off."""
    registry = registry_for(collector)
    try:
        server = await asyncio.start_server(
            lambda r, w: _answer(registry, r, w), section.host, section.port, limit=MAX_REQUEST_BYTES
        )
    except OSError as exc:
        _LOGGER.error(
            "Metrics are off: cannot listen on %s:%d (%s); is another program using that port? ([metrics] port)",
            section.host, section.port, exc.strerror or exc,
        )  # fmt: skip
        return
    _LOGGER.info("Metrics at http://%s:%d/metrics", section.host, section.port)
    async with server:
        await server.serve_forever()
