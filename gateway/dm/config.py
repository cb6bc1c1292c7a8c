"""The ``[dm]`` table of gateway.toml: device management's backends, deadlines and log ring."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from wire.typedconfig import ConfigValueError, doc


@dataclass(frozen=True, slots=True, kw_only=True)
class DmSection:
    """Device management: privileged actions, network backend, roll-back deadline, recent logs."""

    privileged: Literal["systemd", "fake"] = doc(
        "Reboot, restart and SSH through: systemd (the image's privileged helper units) or fake (demo, tests)",
        default="systemd",
    )
    network: Literal["networkmanager", "fake"] = doc(
        "Network settings through: networkmanager (nmcli, the image) or fake (demo, tests)", default="networkmanager"
    )
    nm_connection: str = doc(
        "With network = networkmanager: the connection profile the 'network' command changes", default="roost-wifi"
    )
    fake_network_loses_cloud: tuple[str, ...] = doc(
        "With network = fake: Wi-Fi SSIDs (or static addresses) the fake treats as not reaching the cloud",
        default=(),
    )
    rollback_after_s: float = doc(
        "Seconds a new config or network setting has to reach the cloud before it is rolled back", default=60.0
    )
    log_lines: int = doc("Log records kept in memory for the 'logs' command", default=1000)

    def __post_init__(self) -> None:
        if not 5.0 <= self.rollback_after_s <= 3600.0:
            raise ConfigValueError("rollback_after_s", "must be between 5 and 3600")
        if not 10 <= self.log_lines <= 100_000:
            raise ConfigValueError("log_lines", "must be between 10 and 100000")
