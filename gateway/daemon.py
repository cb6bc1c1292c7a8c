"""The gateway daemon: buffer, hub, adapters and uplink under one supervisor, with a bounded shutdown.

Start order: state folder, buffer, hub, uplink, adapters (so nothing is acknowledged to a
device before the buffer can hold it). Stop order: adapters first (no new readings), then the
uplink gets ``shutdown_timeout_s`` to have in-flight packs acknowledged, then the buffer commits
and closes. A subsystem that is still busy at the deadline is named in the log and cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway import identity, observability
from gateway.actuation import Actuators
from gateway.adapters.base import Adapter
from gateway.buffer import DurableBuffer
from gateway.config import GatewayConfig
from gateway.dm.agent import heartbeat
from gateway.enrollment import TokenCredentials
from gateway.errors import GatewayError
from gateway.hub import Hub
from gateway.pairing import ALLOWED_KIND, Pairing
from gateway.registry import Registry
from gateway.rules_runner import RulesRunner
from gateway.uplink import Uplink

if TYPE_CHECKING:
    from gateway.dm.runtime import DmRuntime

_LOGGER = logging.getLogger(__name__)


@dataclass
class Daemon:
    """The running parts, for tests and the local page."""

    gateway_id: str
    buffer: DurableBuffer
    hub: Hub
    pairing: Pairing
    uplink: Uplink
    adapters: list[Adapter] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    identity: TokenCredentials | None = None
    """Enrollment and tokens, when the gateway uses its own identity (no ``cloud.password_file``)."""
    rules: RulesRunner | None = None
    """The rules engine's runner (its counters go into the heartbeat)."""
    registry: Registry | None = None
    """Paired devices and allowed sensors (BLE keys, Zigbee devices, names and locations)."""
    position: dict[str, float] | None = None
    """The configured position (``gateway.latitude``/``longitude``), where no GPS fix says better."""

    def rejected(self) -> int:
        """Inputs refused by every adapter since start."""
        return sum(a.rejected_total for a in self.adapters)


def _build_adapters(
    config: GatewayConfig, hub: Hub, pairing: Pairing, registry: Registry | None = None
) -> list[Adapter]:
    adapters: list[Adapter] = []
    if config.adapters.coap.enabled:
        # Imported only when configured: each radio's or protocol's library costs memory on a Pi.
        from gateway.adapters.coap import CoapAdapter

        adapters.append(CoapAdapter(config.adapters.coap, hub, pairing))
    if config.adapters.serial:
        from gateway.adapters.serial.adapter import SerialAdapter

        adapters.append(SerialAdapter(config.adapters.serial, hub, pairing))
    if config.adapters.i2c or config.adapters.spi:
        from gateway.adapters.chips.adapter import ChipAdapter

        a = config.adapters
        adapters.append(ChipAdapter(a.i2c, a.spi, a.polling, hub))
    if config.adapters.modbus:
        from gateway.adapters.modbus.adapter import ModbusAdapter

        polling = config.adapters.polling
        adapters.append(
            ModbusAdapter(
                config.adapters.modbus, hub, fail_threshold=polling.fail_threshold, backoff_max_s=polling.backoff_max_s
            )
        )
    if config.adapters.ble.enabled:
        from gateway.adapters.ble.adapter import BleAdapter  # imports bleak

        counters = config.gateway.state_dir / "ble-counters.json"
        adapters.append(BleAdapter(config.adapters.ble, hub, pairing, counters_file=counters, registry=registry))
    if config.adapters.zigbee.enabled:
        from gateway.adapters.zigbee.adapter import ZigbeeAdapter  # imports zigpy (about 48 MB)

        state_dir = config.gateway.state_dir
        adapters.append(ZigbeeAdapter(config.adapters.zigbee, hub, state_dir=state_dir, registry=registry))
    return adapters


def _control(
    config: GatewayConfig, daemon: Daemon, registry: Registry, page_allowed: Callable[[], bool]
) -> list[asyncio.Task[None]]:
    """The local control socket (``roost gateway pair``, ``unpair``, ``devices``, ``label``, ``status``) and,
    when ``[local] enabled``, the technician's local page, which serves the same handlers (and shows only a
    notice while device management has it off: disabled by the operator, or the gateway locked)."""
    from gateway.control import SOCKET_NAME, ControlServer, handlers_for
    from gateway.localpage.status import collect

    handlers = handlers_for(list(daemon.adapters), registry, status=lambda: collect(config, daemon))
    server = ControlServer(config.gateway.state_dir / SOCKET_NAME, handlers)
    tasks = [asyncio.create_task(server.run(), name="control socket")]
    if config.local.enabled:
        from gateway.localpage.server import serve  # imports aiohttp (and zeroconf when mdns is on)

        tasks.append(asyncio.create_task(serve(config, daemon, handlers, page_allowed), name="local page"))
    return tasks


async def _cancel_all(tasks: list[asyncio.Task[None]], deadline: float, what: str) -> None:
    for t in tasks:
        t.cancel()
    if not tasks:
        return
    _done, busy = await asyncio.wait(tasks, timeout=max(0.1, deadline - time.monotonic()))
    for t in busy:
        _LOGGER.warning("%s %s is still busy at the shutdown deadline", what, t.get_name())


def _token_credentials(config: GatewayConfig) -> TokenCredentials | None:
    """Token credentials unless a password is configured, or enrollment is off and no tokens are stored."""
    if config.cloud.password_file is not None:
        return None
    store = identity.IdentityStore(config.gateway.state_dir)
    if config.identity.enroll == "off" and not (store.folder / identity.TOKENS_FILE).exists():
        return None
    return TokenCredentials(config, store)


def _probation(config: GatewayConfig, uplink: Uplink, parts: list[asyncio.Task[None]]) -> list[asyncio.Task[None]]:
    """A new software version confirms itself once healthy (or ends the daemon at its deadline: docs/ota.md)."""
    root = config.update.root
    if root is None:
        return []
    from gateway.dm.ota.health import confirm_when_healthy

    confirm = confirm_when_healthy(
        root, connected=lambda: uplink.connected, parts=parts, healthy_for_s=config.update.healthy_for_s
    )
    return [asyncio.create_task(confirm, name="update probation")]


async def run(config: GatewayConfig, *, ready: Callable[[Daemon], None] | None = None) -> None:
    """Run the gateway until cancelled, then shut down within ``gateway.shutdown_timeout_s``.

    Device management may restart the parts in-process (a new config from the cloud, lock, unlock, wipe,
    a fake reboot): each restart is a new *generation* of the parts (docs/device-management.md).
    """
    from gateway.dm.runtime import MAX_GENERATIONS, DmRuntime

    dm = DmRuntime(config)
    await dm.open()
    for _ in range(MAX_GENERATIONS):
        effective = dm.effective()
        await _run_parts(effective, dm, ready=ready)
        if not dm.manager.restart.is_set():
            return
        if not await dm.after(effective):
            await observability.idle("factory state without credentials: put them in place and restart")
    raise GatewayError(f"restarted its parts {MAX_GENERATIONS} times: exiting for the service manager")


async def _run_parts(config: GatewayConfig, dm: DmRuntime, *, ready: Callable[[Daemon], None] | None) -> None:
    """One generation of the parts, until cancelled, a part fails, or device management restarts them."""
    from gateway.dm.runtime import RestartParts

    state_dir = config.gateway.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        os.chmod(state_dir, 0o700)
    gw_id = identity.gateway_id(state_dir, config.gateway.id)
    coap = config.adapters.coap
    async with DurableBuffer.from_config(config.buffer_path, config.buffer) as buffer:
        hub = Hub(buffer)
        registry = Registry.in_state_dir(state_dir)
        allowed = [d["id"] for d in registry.devices(ALLOWED_KIND)]  # sensors paired by command since
        pairing = Pairing([*config.paired, *allowed], accept_any=coap.accept == "any")
        adapters = _build_adapters(config, hub, pairing, registry)
        rules_runner = RulesRunner(
            hub,
            [*config.rules.files, state_dir / "dm" / "rules.toml"],
            actuators=lambda: Actuators(adapters),
            tick_s=config.rules.tick_s,
        )
        daemon_ref: list[Daemon] = []
        tokens = _token_credentials(config)
        agent = dm.dispatcher()
        if config.update.root is not None:  # software updates (docs/ota.md)
            from gateway.dm.ota import command as ota_command

            ota_command.register(agent, config.update, ca_file=config.cloud.ca_file)
        from gateway.dm.nodefw import command as node_firmware  # serial nodes' firmware

        node_firmware.register(
            agent, config.node_firmware, lambda: adapters, work_dir=state_dir / "dm", ca_file=config.cloud.ca_file
        )

        async def on_command(request_id: str, payload: bytes) -> bytes | None:
            result = await agent.handle(request_id, payload)
            return None if result is None else result.encode()

        uplink = Uplink(
            gateway_id=gw_id,
            tenant=config.gateway.tenant,
            cloud=config.cloud,
            uplink=config.uplink,
            buffer=dm.data_source(buffer),
            state_dir=state_dir,
            extra_counters=lambda: {"rejected": daemon_ref[0].rejected() if daemon_ref else 0},
            credentials=tokens,
            commands=on_command,
            extra_health=lambda: heartbeat(daemon_ref[0]) if daemon_ref else {},
            desired=dm.manager.on_desired,
            reported=dm.manager.reported_payload,
        )
        if tokens is not None:
            tokens.use_channel(uplink)
        daemon = Daemon(
            gw_id, buffer, hub, pairing, uplink, adapters, identity=tokens, rules=rules_runner, registry=registry,
            position=config.gateway.position,
        )  # fmt: skip
        daemon_ref.append(daemon)
        dm.attach(daemon, tokens)
        _LOGGER.info("Gateway %s (tenant %s) starting; buffer %s", gw_id, config.gateway.tenant, config.buffer_path)
        uplink_task = asyncio.create_task(uplink.run(), name="uplink")
        adapter_tasks = [asyncio.create_task(a.run(), name=f"adapter {a.name}") for a in adapters]
        adapter_tasks += _control(config, daemon, registry, lambda: dm.state.switches.features()["local-page"])
        adapter_tasks.append(asyncio.create_task(rules_runner.run(), name="rules"))
        identity_tasks = [asyncio.create_task(tokens.run(), name="identity")] if tokens is not None else []
        probation = _probation(config, uplink, adapter_tasks)
        dm_tasks = dm.tasks(uplink)
        obs_tasks = observability.tasks(config, daemon, agent, [uplink_task, *adapter_tasks])
        if ready is not None:
            ready(daemon)
        try:
            # Run until cancelled, or until a part fails for good (it is logged and the daemon exits).
            parts = [uplink_task, *adapter_tasks, *identity_tasks, *probation, *dm_tasks, *obs_tasks]
            done, _ = await asyncio.wait(parts, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                exc = None if t.cancelled() else t.exception()
                if exc is not None and not isinstance(exc, RestartParts):
                    _LOGGER.error("%s failed: %s", t.get_name(), exc)
                    raise exc
        finally:
            deadline = time.monotonic() + config.gateway.shutdown_timeout_s
            _LOGGER.info("Gateway %s stopping", gw_id)
            if not dm.manager.restart.is_set():
                observability.stopping()
            await _cancel_all(obs_tasks, deadline, "observability")
            await _cancel_all(adapter_tasks, deadline, "adapter")
            await _cancel_all(identity_tasks, deadline, "identity")
            await _cancel_all(probation, deadline, "update probation")
            await _cancel_all(dm_tasks, deadline, "device management")
            registry.close()
            hub.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    uplink.flush(max(0.1, deadline - time.monotonic() - 0.5)), max(0.2, deadline - time.monotonic())
                )
            await _cancel_all([uplink_task], deadline + 1.0, "uplink")
    _LOGGER.info("Gateway %s stopped", gw_id)
