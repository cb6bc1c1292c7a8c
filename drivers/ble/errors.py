"""What the BLE decoders raise: one root, :class:`BleDecodeError` (a ``ValueError``), and a branch per problem.

::

    BleDecodeError               the advertisement cannot be decoded; .address, .format when known
    ├── MalformedAdvertisement   the bytes break the AD structure or the format's layout (truncated, bad length)
    ├── UnsupportedFormat        a known device family, but a format or version Roost does not decode
    └── SecurityError            radio data that failed a security check: drop it and count it
        ├── BindKeyRequired      an encrypted BTHome advertisement and no bind key for the device
        ├── AddressRequired      an encrypted BTHome advertisement without the sender's MAC (the nonce needs it)
        ├── BadMic               the bind key is wrong or the data was corrupted: the MIC did not match
        ├── ReplayedCounter      the encryption counter is not greater than the last one seen from that MAC
        └── NotEncrypted         the device has a bind key but this advertisement is plain: a downgrade or spoof

Radio data is untrusted: a decoder never lets another exception out (the fuzz tests hold it to that).
"""

from __future__ import annotations


class BleDecodeError(ValueError):
    """Root of every BLE decoding error; ``address`` (upper-case MAC) and ``format`` when known."""

    def __init__(self, problem: str, *, address: str | None = None, format: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.address = address
        self.format = format


class MalformedAdvertisement(BleDecodeError):
    """The bytes do not follow the AD structure layout or the format's layout."""


class UnsupportedFormat(BleDecodeError):
    """A device family Roost knows (by UUID or company id) in a format or version it does not decode."""


class SecurityError(BleDecodeError):
    """A security check failed (missing key, bad MIC, replayed counter, plain data from a keyed device)."""


class BindKeyRequired(SecurityError):
    """An encrypted advertisement and no bind key for the device."""


class AddressRequired(SecurityError):
    """An encrypted advertisement without the sender's MAC address, which is part of the nonce."""


class BadMic(SecurityError):
    """The message integrity check failed: a wrong bind key or corrupted data."""


class ReplayedCounter(SecurityError):
    """The encryption counter did not increase: a recorded advertisement played back (or the device reset)."""

    def __init__(self, problem: str, *, address: str, counter: int, last: int, format: str | None = None) -> None:
        super().__init__(problem, address=address, format=format)
        self.counter = counter
        self.last = last


class NotEncrypted(SecurityError):
    """A device configured with a bind key sent a plain advertisement."""
