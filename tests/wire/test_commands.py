"""wire.commands: the command and result payloads of cmd/{request_id} and cmd-result/{request_id}."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wire.commands import Command, Result, check_request_id, decode_command, decode_result
from wire.errors import PayloadError


def test_command_and_result_round_trip() -> None:
    cmd = Command(command="rotate-credentials", args={"reason": "audit"}, deadline=1764100030.0, issued_by="op:a/o")
    assert decode_command(cmd.encode()) == cmd
    res = Result(request_id="abcdef0123", status="error", error="no network", finished=1.5)
    assert decode_result(res.encode()) == res


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b"[]", "JSON object"),
        (b"{", "JSON object"),
        (b'{"command": "Rotate Now"}', "'command' must be a name"),
        (b'{"command": "reboot", "args": [1]}', "'args'"),
        (b'{"command": "reboot", "deadline": "soon"}', "'deadline'"),
        (b'{"command": "reboot", "colour": 1}', "unknown field"),
        (b'{"command": "reboot", "issued_by": 7}', "'issued_by'"),
    ],
)
def test_bad_commands_are_refused_naming_the_field(payload: bytes, words: str) -> None:
    with pytest.raises(PayloadError, match=words):
        decode_command(payload)


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b'{"status": "ok"}', "request_id"),
        (b'{"request_id": "abcdefgh", "status": "fine"}', "status"),
        (b'{"request_id": "abcdefgh", "status": "ok", "result": 3}', "'result'"),
        (b'{"request_id": "abcdefgh", "status": "ok", "error": 3}', "'error'"),
    ],
)
def test_bad_results_are_refused_naming_the_field(payload: bytes, words: str) -> None:
    with pytest.raises(PayloadError, match=words):
        decode_result(payload)


@pytest.mark.parametrize("rid", ["short", "has space in it", "x" * 65, "a/b/c/d/e/f", "abc+defgh"])
def test_request_ids_are_safe_topic_levels(rid: str) -> None:
    with pytest.raises(ValueError, match="request id"):
        check_request_id(rid)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_decode_or_give_a_payload_error(raw: bytes) -> None:
    for decode, kind in ((decode_command, Command), (decode_result, Result)):
        with contextlib.suppress(PayloadError):
            assert isinstance(decode(raw), kind)
