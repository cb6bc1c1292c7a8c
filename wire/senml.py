"""SenML (RFC 8428) packs: resolve JSON and CBOR packs into Readings, encode Readings into packs.

A pack on the wire is CBOR (content-format 112) by default, JSON (110) accepted; either may be
zlib-compressed (RFC 1950). A reader tells them apart by the first byte: a CBOR array starts
0x80-0x9f, a JSON pack '[' (possibly after whitespace), zlib 0x78.
"""

from __future__ import annotations

import json
import math
import time
import zlib
from collections.abc import Iterable, Sequence
from typing import Any, Literal, NamedTuple

import cbor2

from wire.errors import InvalidName, PayloadError, PayloadTooLarge
from wire.names import split_name
from wire.reading import Reading, Value

# RFC 8428 section 6, table 4: CBOR labels.
CBOR_LABELS: dict[int, str] = {
    -1: "bver",
    -2: "bn",
    -3: "bt",
    -4: "bu",
    -5: "bv",
    -6: "bs",
    0: "n",
    1: "u",
    2: "v",
    3: "vs",
    4: "vb",
    5: "s",
    6: "t",
    7: "ut",
    8: "vd",
}
LABEL_CODES: dict[str, int] = {v: k for k, v in CBOR_LABELS.items()}
SENML_VERSION = 10
# RFC 8428 section 4.5.3: a resolved time below 2**28 is relative to "now".
RELATIVE_TIME_LIMIT = 2**28
CONTENT_FORMAT_JSON = 110
CONTENT_FORMAT_CBOR = 112
# The encoder starts a new base time rather than write a relative time longer than this: bt + t is summed
# in doubles, and with a large t the three roundings (bt, t, the sum) can together pass half a microsecond.
MAX_RELATIVE_US = 2**20 * 1_000_000
DEFAULT_MAX_BYTES = 1 << 20
DEFAULT_MAX_RECORDS = 100_000

Encoding = Literal["cbor", "json"]


def sniff(payload: bytes) -> Literal["cbor", "json", "zlib"]:
    """Tell a pack's encoding by its first byte, or raise PayloadError."""
    if not payload:
        raise PayloadError("empty payload: a SenML pack is an array of records")
    first = payload[0]
    if first == 0x78:
        return "zlib"
    if 0x80 <= first <= 0x9F:
        return "cbor"
    stripped = payload.lstrip()
    if stripped[:1] == b"[":
        return "json"
    raise PayloadError(
        f"not a SenML pack: first byte 0x{first:02x} is neither a CBOR array (0x80-0x9f), "
        "a JSON array '[' nor zlib (0x78)"
    )


def _inflate(payload: bytes, max_bytes: int) -> bytes:
    d = zlib.decompressobj()
    try:
        out = d.decompress(payload, max_bytes + 1)
    except zlib.error as exc:
        raise PayloadError(f"zlib-compressed pack is corrupt: {exc}") from exc
    if len(out) > max_bytes:
        raise PayloadTooLarge(len(out), max_bytes)
    if not d.eof:
        raise PayloadError("zlib-compressed pack is truncated")
    if d.unused_data:
        raise PayloadError(f"{len(d.unused_data)} bytes of garbage after the zlib-compressed pack")
    return out


def load_records(payload: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> list[dict[str, Any]]:
    """Parse a pack (CBOR, JSON or zlib of either) into records with string labels; no resolution."""
    if len(payload) > max_bytes:
        raise PayloadTooLarge(len(payload), max_bytes)
    kind = sniff(payload)
    if kind == "zlib":
        payload = _inflate(payload, max_bytes)
        kind = sniff(payload)
        if kind == "zlib":
            raise PayloadError("a zlib pack inside a zlib pack is not allowed")
    if kind == "json":
        try:
            data = json.loads(payload)
        except (ValueError, RecursionError) as exc:  # RecursionError: arrays nested too deep
            raise PayloadError(f"JSON SenML pack does not parse: {exc}") from exc
        if not isinstance(data, list):
            raise PayloadError("a SenML pack must be a JSON array of records")
        return [_json_record(i, r) for i, r in enumerate(data)]
    try:
        data = cbor2.loads(payload)
    except Exception as exc:  # cbor2 raises several types for truncated or bad input
        raise PayloadError(f"CBOR SenML pack does not parse: {exc}") from exc
    if not isinstance(data, list):
        raise PayloadError("a SenML pack must be a CBOR array of records")
    return [_cbor_record(i, r) for i, r in enumerate(data)]


def _json_record(index: int, rec: Any) -> dict[str, Any]:
    if not isinstance(rec, dict):
        raise PayloadError(f"record {index} is not an object")
    return rec


def _cbor_record(index: int, rec: Any) -> dict[str, Any]:
    if not isinstance(rec, dict):
        raise PayloadError(f"record {index} is not a map")
    # Fast path: every label a known integer (what encoders send). 1.0 and True hash like 1, so
    # the key types are checked too before the result is trusted.
    try:
        out = {CBOR_LABELS[k]: v for k, v in rec.items()}
    except KeyError:
        return _cbor_record_slow(index, rec)
    for k in rec:
        if type(k) is not int:
            return _cbor_record_slow(index, rec)
    return out


def _cbor_record_slow(index: int, rec: dict[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in rec.items():
        if isinstance(key, int) and not isinstance(key, bool):
            label = CBOR_LABELS.get(key)
            if label is None:
                continue  # unknown integer labels are extensions a reader may ignore
            out[label] = value
        elif isinstance(key, str):
            out[key] = value
        else:
            raise PayloadError(f"record {index} has a label that is neither an integer nor a string")
    return out


def _number(index: int, label: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError(f"record {index}: '{label}' must be a number, not {type(value).__name__}")
    try:
        f = float(value)
    except OverflowError:  # an integer (JSON digits, CBOR bignum) too large for a float
        f = math.inf
    if not math.isfinite(f):
        raise PayloadError(f"record {index}: '{label}' must be a finite number")
    return f


def _string(index: int, label: str, value: Any) -> str:
    if not isinstance(value, str):
        raise PayloadError(f"record {index}: '{label}' must be a string, not {type(value).__name__}")
    return value


_KNOWN_LABELS = frozenset(LABEL_CODES)
_BASE_LABELS = frozenset({"bn", "bt", "bu", "bv", "bs", "bver"})


def _fnum(index: int, label: str, value: Any) -> float:
    """A finite float from a record field; the common case (a float) costs one subtraction."""
    if type(value) is float and value - value == 0.0:  # inf - inf and nan - nan are nan
        return value
    return _number(index, label, value)


def _base_fields(i: int, rec: dict[str, Any], bases: list[Any]) -> None:
    """Apply a record's base fields to ``bases`` = [bn, bt, bu, bv] (RFC 8428 section 4.5)."""
    if "bver" in rec:
        ver = rec["bver"]
        if isinstance(ver, bool) or not isinstance(ver, int) or ver > SENML_VERSION:
            raise PayloadError(f"record {i}: SenML version {ver!r} is not supported (up to {SENML_VERSION})")
    if "bn" in rec:
        bases[0] = _string(i, "bn", rec["bn"])
    if "bt" in rec:
        bases[1] = _number(i, "bt", rec["bt"])
    if "bu" in rec:
        bases[2] = _string(i, "bu", rec["bu"])
    if "bv" in rec:
        bases[3] = _number(i, "bv", rec["bv"])


def resolve(
    records: Sequence[dict[str, Any]],
    *,
    now: float | None = None,
    max_records: int = DEFAULT_MAX_RECORDS,
) -> list[Reading]:
    """Resolve records (RFC 8428 section 4.6) into Readings; names split at their last ':'."""
    if not records:
        raise PayloadError("the pack has no records")
    if len(records) > max_records:
        raise PayloadError(f"the pack has {len(records)} records, more than the {max_records} allowed")
    bases: list[Any] = ["", 0.0, None, 0.0]  # bn, bt, bu, bv
    now_ts = time.time() if now is None else now
    out: list[Reading] = []
    names: dict[str, tuple[str, str]] = {}  # a pack repeats its names: check each once
    for i, rec in enumerate(records):
        keys = rec.keys()
        if not keys <= _KNOWN_LABELS:
            for label in rec:
                if label.endswith("_"):
                    raise PayloadError(f"record {i}: must-understand label '{label}' is not supported")
        if not keys.isdisjoint(_BASE_LABELS):
            _base_fields(i, rec, bases)
        bn, bt, bu, bv = bases
        nkinds = ("v" in rec) + ("vs" in rec) + ("vb" in rec) + ("vd" in rec)
        if not nkinds and keys <= _BASE_LABELS:
            continue  # a record carrying only base values (its base name may end in ':', no metric yet)
        name = bn + _string(i, "n", rec["n"]) if "n" in rec else bn
        split = names.get(name)
        if split is None:
            if not name:
                raise PayloadError(f"record {i} has no name (neither 'bn' nor 'n')")
            try:
                split = names[name] = split_name(name)
            except InvalidName as exc:
                raise PayloadError(f"record {i}: {exc}") from exc
        value: Value
        if nkinds != 1:
            if nkinds > 1:
                kinds = [k for k in ("v", "vs", "vb", "vd") if k in rec]
                raise PayloadError(f"record {i} has more than one value ({', '.join(kinds)})")
            if "s" in rec:
                raise PayloadError(f"record {i}: sum-only records are not supported")
            raise PayloadError(f"record {i} ({name}) has no value ('v', 'vs' or 'vb')")
        if "v" in rec:
            number = _fnum(i, "v", rec["v"]) + bv
            if number - number != 0.0:
                raise PayloadError(f"record {i}: base value plus value is not a finite number")
            value = number
        elif "vs" in rec:
            value = _string(i, "vs", rec["vs"])
        elif "vb" in rec:
            value = rec["vb"]
            if value is not True and value is not False:
                raise PayloadError(f"record {i}: 'vb' must be true or false")
        else:
            raise PayloadError(f"record {i}: data values ('vd') are not supported")
        t = bt + _fnum(i, "t", rec["t"]) if "t" in rec else bt
        if t - t != 0.0:
            raise PayloadError(f"record {i}: base time plus time is not a finite number")
        if t < RELATIVE_TIME_LIMIT:
            t = now_ts + t
        unit = (_string(i, "u", rec["u"]) if "u" in rec else bu) or None
        out.append(Reading(split[0], split[1], value, round(t, 6), unit))
    if not out:
        raise PayloadError("the pack has no records with values")
    return out


def decode(
    payload: bytes,
    *,
    now: float | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_records: int = DEFAULT_MAX_RECORDS,
) -> list[Reading]:
    """Decode a SenML pack (CBOR, JSON or zlib of either) into Readings."""
    return resolve(load_records(payload, max_bytes=max_bytes), now=now, max_records=max_records)


def _compact_number(x: float) -> float | int:
    # An integral value encodes as a CBOR integer (1-5 bytes) instead of a 9-byte double.
    if x.is_integer() and abs(x) < 2**53:
        return int(x)
    return x


class _Labels(NamedTuple):
    bn: Any
    bt: Any
    t: Any
    u: Any
    bu: Any
    n: Any
    vb: Any
    vs: Any
    v: Any


_STRING_LABELS = _Labels(*_Labels._fields)
_INT_LABELS = _Labels(*(LABEL_CODES[k] for k in _Labels._fields))


def _records(readings: Iterable[Reading], lab: _Labels) -> list[dict[Any, Any]]:
    # The uplink's hot path: one dict per reading, built with the labels of the target encoding.
    recs: list[dict[Any, Any]] = []
    bn: str | None = None
    bt_us: int | None = None
    bu: str | None = None
    for sensor, metric, value, ts, unit in readings:
        rec: dict[Any, Any] = {}
        if bn is None or not (bn.startswith(sensor) and len(bn) == len(sensor) + 1):
            bn = sensor + ":"
            rec[lab.bn] = bn
        ts_us = round(ts * 1_000_000)
        if bt_us is None or abs(ts_us - bt_us) > MAX_RELATIVE_US:
            bt_us = ts_us
            rec[lab.bt] = _compact_number(ts_us / 1_000_000)
        elif ts_us != bt_us:
            rec[lab.t] = _compact_number(round((ts_us - bt_us) / 1_000_000, 6))
        if unit != bu:
            if unit is None:
                rec[lab.u] = ""  # an empty unit cancels the base unit for this record
            else:
                rec[lab.bu] = bu = unit
        rec[lab.n] = metric
        if value is True or value is False:
            rec[lab.vb] = value
        elif type(value) is str:
            rec[lab.vs] = value
        else:
            rec[lab.v] = _compact_number(float(value))
        recs.append(rec)
    return recs


def to_records(readings: Iterable[Reading]) -> list[dict[str, Any]]:
    """Records with string labels for ``readings``: base name per sensor run, base time, relative times."""
    return _records(readings, _STRING_LABELS)


def encode(readings: Iterable[Reading], *, encoding: Encoding = "cbor", compress: bool = False) -> bytes:
    """Encode Readings as a SenML pack; CBOR uses RFC 8428's integer labels."""
    if encoding == "cbor":
        body = cbor2.dumps(_records(readings, _INT_LABELS))
    else:
        body = json.dumps(_records(readings, _STRING_LABELS), separators=(",", ":"), allow_nan=False).encode()
    if compress:
        # Level 1: 0.17 µs a reading against 0.75 at level 6, for 5.1 B a reading against 4.7.
        return zlib.compress(body, 1)
    return body


def content_format(encoding: Encoding) -> int:
    """The CoAP content-format number of a SenML encoding."""
    return CONTENT_FORMAT_CBOR if encoding == "cbor" else CONTENT_FORMAT_JSON
