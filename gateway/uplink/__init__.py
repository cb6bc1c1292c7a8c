"""The uplink: buffered readings to the cloud over MQTT (WebSockets, TLS, QoS 1), deleted once acknowledged.

    core        the Uplink: connection loop, packs in flight, acknowledgements, health
    discovery   the cloud's discovery document (fetched, cached in the state folder) -> Target
    endpoint    an MQTT URL as aiomqtt connection settings

The uplink knows the buffer, never an adapter.
"""

from gateway.uplink.core import EventSource, ReadingSource, Uplink
from gateway.uplink.discovery import Target
from gateway.uplink.endpoint import Endpoint, parse_url

__all__ = ["Endpoint", "EventSource", "ReadingSource", "Target", "Uplink", "parse_url"]
