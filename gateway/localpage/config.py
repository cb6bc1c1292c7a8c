"""``[local]``: the technician's local page (docs/local-page.md).

Pure dataclasses: nothing here imports aiohttp or zeroconf, so loading a config costs nothing when the
page is off.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wire.typedconfig import ConfigValueError, doc

PIN_FOLDER = "local"
"""Under the state folder: pin.json, cert.pem and key.pem."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalSection:
    """The local page: HTTPS on the site's network, protected by the setup PIN, announced over mDNS."""

    enabled: bool = doc("Serve the local page (imports aiohttp and zeroconf)", default=False)
    host: str = doc("Address to listen on ('::' for every address, IPv4 included)", default="::")
    port: int = doc("HTTPS port (443 needs CAP_NET_BIND_SERVICE, which the service unit grants)", default=443)
    pin_file: Path | None = doc(
        "The setup PIN's hash (JSON, scrypt; written by first boot from roost.toml's [local] pin); "
        "none = state_dir/local/pin.json",
        default=None,
    )
    mdns: bool = doc("Announce the page as roost-XXXX.local (_https._tcp) over mDNS", default=True)
    session_idle_s: float = doc("A signed-in browser is signed out after this many seconds idle", default=900.0)
    pin_attempts: int = doc("Wrong PINs allowed per client per minute before it has to wait", default=5)
    lockout_s: float = doc("How long a client that used up its PIN attempts waits", default=60.0)
    live_queue: int = doc(
        "Readings waiting for one live page, at most; a slow browser loses the oldest (counted)", default=256
    )
    live_clients: int = doc("Live reading streams open at once, at most", default=8)

    def __post_init__(self) -> None:
        if not self.host:
            raise ConfigValueError("host", "must be an address ('::', '0.0.0.0', '127.0.0.1', ...)")
        if not 0 <= self.port <= 65535:
            raise ConfigValueError("port", "must be between 0 and 65535")
        if not 1 <= self.session_idle_s <= 86400:
            raise ConfigValueError("session_idle_s", "must be between 1 and 86400 seconds")
        if not 1 <= self.pin_attempts <= 100:
            raise ConfigValueError("pin_attempts", "must be between 1 and 100")
        if not 1 <= self.lockout_s <= 3600:
            raise ConfigValueError("lockout_s", "must be between 1 and 3600 seconds")
        if not 8 <= self.live_queue <= 100_000:
            raise ConfigValueError("live_queue", "must be between 8 and 100000")
        if not 1 <= self.live_clients <= 100:
            raise ConfigValueError("live_clients", "must be between 1 and 100")

    def pin_path(self, state_dir: Path) -> Path:
        """Where the PIN's hash is read from."""
        return self.pin_file or state_dir / PIN_FOLDER / "pin.json"
