"""Acting on local devices through the adapter that owns them: a Roost node on a real pty."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.ptylink import PtyLink
from drivers.roostserial import messages as m
from drivers.roostserial.node_emulator import NodeEmulator
from gateway.actuation import Actuators
from gateway.adapters.base import ActuationError
from tests.gateway.serial_rig import eventually, port, rig


async def test_actions_reach_the_node_that_owns_the_sensor(tmp_path: Path) -> None:
    link = tmp_path / "node"
    node = NodeEmulator("pump-1", interval_s=10, outputs=2)
    async with rig(tmp_path, [port(link, accept="any")]) as r, PtyLink(node, link=link):
        await eventually(lambda: "pump-1" in r.adapter.nodes(), what="the announcement")
        act = Actuators([r.adapter])
        assert act.actions("pump-1") == ["identify", "set-interval", "actuate", "on", "off", "reboot"]
        assert await act.actuate("pump-1", "on", {"output": 1}) == {
            "sensor": "pump-1",
            "action": "on",
            "result": "done",
        }
        assert node.output_values == {1: 1}
        await act.actuate("pump-1", "off")  # output 0 by default
        assert node.output_values == {1: 1, 0: 0}
        await act.actuate("pump-1", "actuate", {"output": 0, "value": 200})
        assert node.output_values[0] == 200
        await act.actuate("pump-1", "set-interval", {"seconds": 5})
        assert node.interval_s == 5
        with pytest.raises(ActuationError, match="'output' must be a whole number from 0 to 1"):
            await act.actuate("pump-1", "on", {"output": 7})
        with pytest.raises(ActuationError, match="'seconds'"):
            await act.actuate("pump-1", "set-interval", {"seconds": "often"})
        with pytest.raises(ActuationError, match="cannot 'dim'; it can: identify, set-interval"):
            await act.actuate("pump-1", "dim")
        with pytest.raises(ActuationError, match="no device 'pump-9' can be acted on now"):
            await act.actuate("pump-9", "on")
        assert (act.done, act.failed) == (4, 4)


async def test_a_node_without_outputs_offers_no_switching(tmp_path: Path) -> None:
    link = tmp_path / "node"
    node = NodeEmulator("probe-1", interval_s=10, outputs=0, capabilities=m.Capability.SET_INTERVAL)
    async with rig(tmp_path, [port(link, accept="any")]) as r, PtyLink(node, link=link):
        await eventually(lambda: "probe-1" in r.adapter.nodes(), what="the announcement")
        act = Actuators([r.adapter])
        assert act.actions("probe-1") == ["identify", "set-interval"]
        with pytest.raises(ActuationError, match="cannot 'on'"):
            await act.actuate("probe-1", "on")


async def test_the_dm_agent_actuate_command_goes_through_the_same_path(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from gateway.dm.agent import build_dispatcher
    from wire.commands import Command

    link = tmp_path / "node"
    node = NodeEmulator("pump-1", interval_s=10, outputs=2)
    async with rig(tmp_path, [port(link, accept="any")]) as r, PtyLink(node, link=link):
        await eventually(lambda: "pump-1" in r.adapter.nodes(), what="the announcement")
        daemon = SimpleNamespace(adapters=[r.adapter])
        agent = build_dispatcher(lambda: daemon)  # type: ignore[arg-type, return-value]
        cmd = Command(command="actuate", args={"sensor": "pump-1", "action": "on", "args": {"output": 1}})
        res = await agent.handle("req-actuate-1", cmd.encode())
        assert res is not None and res.status == "ok" and node.output_values == {1: 1}
        bad = Command(command="actuate", args={"sensor": "pump-1"})
        res = await agent.handle("req-actuate-2", bad.encode())
        assert res is not None and res.status == "invalid" and "'action'" in str(res.error)
        gone = Command(command="actuate", args={"sensor": "nobody", "action": "on"})
        res = await agent.handle("req-actuate-3", gone.encode())
        assert res is not None and res.status == "error" and "no device 'nobody'" in str(res.error)
