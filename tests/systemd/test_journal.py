"""The journal handler against a real unix datagram socket speaking the native protocol."""

from __future__ import annotations

import logging
import os
import socket
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from roost import journal, logsetup


def parse_native(data: bytes) -> dict[str, str]:
    """One native-protocol entry: KEY=value lines, or KEY, newline, u64 LE length, bytes, newline."""
    fields: dict[str, str] = {}
    i = 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            key, _, value = line.partition(b"=")
            fields[key.decode()] = value.decode()
            i = nl + 1
        else:
            (size,) = struct.unpack("<Q", data[nl + 1 : nl + 9])
            start = nl + 9
            fields[line.decode()] = data[start : start + size].decode()
            assert data[start + size : start + size + 1] == b"\n", "a binary field ends with a newline"
            i = start + size + 1
    return fields


@pytest.fixture
def journald(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "journal.sock"))
    sock.settimeout(5)
    try:
        yield sock
    finally:
        sock.close()


@pytest.fixture
def logger(journald: socket.socket) -> Iterator[tuple[logging.Logger, journal.JournalHandler]]:
    handler = journal.JournalHandler("roost-gateway", path=journald.getsockname())
    log = logging.getLogger("tests.journal")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    try:
        yield log, handler
    finally:
        log.removeHandler(handler)
        handler.close()


def test_a_record_arrives_with_its_fields(journald: socket.socket, logger: tuple[logging.Logger, object]) -> None:
    log, _ = logger
    log.warning("Sensor %s is not paired", "kitchen-1", extra={"sensor": "kitchen-1", "adapter": "coap"})
    fields = parse_native(journald.recv(65536))
    assert fields["MESSAGE"] == "Sensor kitchen-1 is not paired"
    assert fields["PRIORITY"] == "4"
    assert fields["SYSLOG_IDENTIFIER"] == "roost-gateway"
    assert fields["LOGGER"] == "tests.journal"
    assert fields["CODE_FILE"] == __file__
    assert fields["CODE_FUNC"] == "test_a_record_arrives_with_its_fields"
    assert int(fields["CODE_LINE"]) > 0
    assert fields["SENSOR"] == "kitchen-1"
    assert fields["ADAPTER"] == "coap"
    assert "REQUEST_ID" not in fields


def test_priorities_and_request_ids(journald: socket.socket, logger: tuple[logging.Logger, object]) -> None:
    log, _ = logger
    log.debug("d")
    log.info("i", extra={"request_id": "req-0001", "gateway": "gw-1"})
    log.error("e")
    log.critical("c")
    got = [parse_native(journald.recv(65536)) for _ in range(4)]
    assert [g["PRIORITY"] for g in got] == ["7", "6", "3", "2"]
    assert got[1]["REQUEST_ID"] == "req-0001" and got[1]["GATEWAY"] == "gw-1"


def test_multiline_messages_and_tracebacks_use_the_length_form(
    journald: socket.socket, logger: tuple[logging.Logger, object]
) -> None:
    log, _ = logger
    try:
        raise ValueError("bad frame")
    except ValueError:
        log.exception("Decoding failed\nsecond line")
    raw = journald.recv(65536)
    assert b"MESSAGE\n" in raw  # not MESSAGE=...: the value holds newlines
    fields = parse_native(raw)
    assert fields["MESSAGE"].startswith("Decoding failed\nsecond line\nTraceback")
    assert "ValueError: bad frame" in fields["MESSAGE"]
    assert fields["PRIORITY"] == "3"


def test_a_huge_message_is_cut_not_lost(journald: socket.socket, logger: tuple[logging.Logger, object]) -> None:
    log, _ = logger
    log.info("x" * 300_000)
    fields = parse_native(journald.recv(1 << 20))
    assert fields["MESSAGE"].endswith("[cut: 300000 bytes in all]")
    assert len(fields["MESSAGE"]) < journal.MAX_MESSAGE + 100


def test_without_a_journal_records_go_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    handler = journal.JournalHandler("roost-gateway", path=str(tmp_path / "no-such.sock"))
    log = logging.getLogger("tests.journal.gone")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("still seen")
    finally:
        log.removeHandler(handler)
        handler.close()
    assert "roost-gateway: WARNING tests.journal.gone: still seen" in capsys.readouterr().err
    assert handler.fallbacks == 1


def test_journal_stream_must_be_our_stderr(tmp_path: Path) -> None:
    with (tmp_path / "stream").open("w") as fh:
        st = os.fstat(fh.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert journal.stream_is_journal(env, fh.fileno())
        assert not journal.stream_is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"}, fh.fileno())
        assert not journal.stream_is_journal({"JOURNAL_STREAM": "garbage"}, fh.fileno())
        assert not journal.stream_is_journal({}, fh.fileno())


def test_logsetup_picks_the_journal_when_told(journald: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOST_JOURNAL_SOCKET", journald.getsockname())
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logsetup.setup("INFO", name="roost-test")
        handlers = [h for h in root.handlers if isinstance(h, journal.JournalHandler)]
        assert len(handlers) == 1 and handlers[0].identifier == "roost-test"
        logging.getLogger("gateway.x").info("through the root", extra={"adapter": "serial"})
        fields = parse_native(journald.recv(65536))
        assert fields["MESSAGE"] == "through the root" and fields["ADAPTER"] == "serial"
        assert fields["SYSLOG_IDENTIFIER"] == "roost-test"
    finally:
        for h in root.handlers[:]:
            root.removeHandler(h)
            h.close()
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])


def test_logsetup_keeps_stderr_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROOST_JOURNAL_SOCKET", raising=False)
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logsetup.setup("INFO", name="roost-test")
        assert not [h for h in root.handlers if isinstance(h, journal.JournalHandler)]
        assert any(getattr(h, "stream", None) is sys.stderr for h in root.handlers)
    finally:
        for h in root.handlers[:]:
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
