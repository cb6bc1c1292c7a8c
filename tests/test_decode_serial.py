"""``roost decode serial`` and ``roost decode line``: JSON on stdout, a reason on stderr and exit 1 for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from roost.cli import main

VECTORS = Path(__file__).resolve().parent / "vectors" / "roostserial"


def _vector(name: str) -> str:
    return str(json.loads((VECTORS / f"{name}.json").read_text())["wire"])


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_stream_names_its_readings_after_the_announcement(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "decode", "serial", _vector("announce-node-7") + " " + _vector("readings-temp-hum"))
    assert code == 0, err
    doc = json.loads(out)
    assert doc["format"] == "roost-serial"
    assert [f["type"] for f in doc["frames"]] == ["ANNOUNCE", "READINGS"]
    assert doc["frames"][0]["message"]["node_id"] == "node-7"
    assert [(r["sensor"], r["metric"], r["value"], r["unit"]) for r in doc["readings"]] == [
        ("node-7", "temp", 21.5, "Cel"),
        ("node-7", "hum", 40.0, "%RH"),
    ]
    assert all(r["ts"].endswith("Z") for r in doc["readings"])


def test_one_frame_without_its_delimiter(capsys: pytest.CaptureFixture[str]) -> None:
    wire = _vector("readings-temp-hum").removesuffix(" 00")
    code, out, _ = _run(capsys, "decode", "serial", wire)
    assert code == 0
    assert [r["sensor"] for r in json.loads(out)["readings"]] == [None, None]  # no announcement: unknown
    code, out, _ = _run(capsys, "decode", "serial", _vector("command-set-interval"))
    assert json.loads(out)["frames"] == [
        {"type": "COMMAND", "seq": 42, "message": {"kind": "SetInterval", "seconds": 300}}
    ]


@pytest.mark.parametrize(
    ("arg", "words"),
    [
        (_vector("err-crc"), "CRC mismatch: the frame says 0x1CD4, its bytes give 0x1CD5"),
        ("04 01 03", "truncated frame"),
        (_vector("err-truncated-short"), "truncated frame: 3 bytes"),
        (_vector("err-version-2"), "protocol version 2 is not supported"),
        (_vector("err-unknown-type"), "message type 0x7F is not defined"),
        (_vector("err-readings-json"), "CBOR"),
        ("zz", "not hex"),
        ("00 00", "no frame"),
    ],
)
def test_bad_frames_say_what_is_wrong(capsys: pytest.CaptureFixture[str], arg: str, words: str) -> None:
    code, out, err = _run(capsys, "decode", "serial", arg)
    assert code == 1 and out == ""
    assert err.startswith("roost decode serial: ") and words in err


def test_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "decode", "line", "temp=21.5,door=true", "--sensor", "arduino-1")
    assert code == 0
    assert json.loads(out) == {
        "format": "line",
        "readings": [
            {"sensor": "arduino-1", "metric": "temp", "value": 21.5, "unit": None},
            {"sensor": "arduino-1", "metric": "door", "value": True, "unit": None},
        ],
    }


@pytest.mark.parametrize(
    ("text", "words"), [("temp=abc", "not a number"), ("", "empty"), ("a=1\nb", "line 2: item 1 'b'")]
)
def test_bad_lines_say_what_is_wrong(capsys: pytest.CaptureFixture[str], text: str, words: str) -> None:
    code, out, err = _run(capsys, "decode", "line", text)
    assert code == 1 and out == ""
    assert err.startswith("roost decode line: ") and words in err
