"""The ``[update]`` table of gateway.toml: where the software slots live and how an update is judged."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wire.typedconfig import ConfigValueError, doc


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateSection:
    """Software updates (docs/ota.md): signed bundles installed into A/B slots, rolled back unless confirmed."""

    root: Path | None = doc(
        "Folder of the A/B slots (slots/a, slots/b, current, state.json), owned by the gateway's user; "
        "none: software updates are off",
        default=None,
    )
    public_key_file: Path | None = doc(
        "The update key (Ed25519 public key, PEM) bundles must be signed with; needed when root is set", default=None
    )
    hardware: str = doc("This gateway's hardware (amd64, arm64, armhf); auto: from the machine", default="auto")
    confirm_deadline_s: float = doc(
        "Seconds a new version has, after the switch, to be connected with its adapters running; "
        "past it the previous version comes back",
        default=300.0,
    )
    healthy_for_s: float = doc("Seconds the new version must stay healthy before it confirms itself", default=5.0)
    max_boots: int = doc("Starts of an unconfirmed new version before the boot check rolls it back", default=3)
    timeout_s: float = doc("Longest an update command may take (download, checks, install, switch)", default=1800.0)
    restart_delay_s: float = doc("Seconds between the update command's answer and the restart", default=2.0)

    def __post_init__(self) -> None:
        if self.root is not None and self.public_key_file is None:
            raise ConfigValueError("public_key_file", "is needed when root is set (bundles are only taken signed)")
        if self.hardware != "auto":
            from wire import bundle  # imported only then: it loads cryptography's Ed25519 (several MB)

            if self.hardware not in bundle.HARDWARE[:-1]:
                raise ConfigValueError("hardware", f"must be auto or one of {', '.join(bundle.HARDWARE[:-1])}")
        if self.confirm_deadline_s < 5:
            raise ConfigValueError("confirm_deadline_s", "must be at least 5 seconds")
        if not 0 <= self.healthy_for_s < self.confirm_deadline_s:
            raise ConfigValueError("healthy_for_s", "must be between 0 and confirm_deadline_s")
        if self.max_boots < 1:
            raise ConfigValueError("max_boots", "must be at least 1")
        if self.timeout_s < 10:
            raise ConfigValueError("timeout_s", "must be at least 10 seconds")
        if not 0 <= self.restart_delay_s <= 60:
            raise ConfigValueError("restart_delay_s", "must be between 0 and 60")

    def machine(self) -> str:
        """This gateway's hardware name."""
        import platform

        from wire import bundle

        return bundle.hardware_name(platform.machine()) if self.hardware == "auto" else self.hardware
