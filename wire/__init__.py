"""The gateway<->cloud contract: names, topics, the SenML codec and envelopes. No I/O.

Both the gateway and the cloud import this package; it imports nothing of Roost's.
"""

from wire.errors import InvalidName, PayloadError, WireError
from wire.reading import Reading, Value

__all__ = ["InvalidName", "PayloadError", "Reading", "Value", "WireError"]
