"""``roost decode nmea``: one JSON document on stdout, errors on stderr with exit 1."""

from __future__ import annotations

import io
import json

import pytest

from roost.cli import main

GGA = "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47"


def test_decodes_the_reference_gga(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", "nmea", GGA]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert err == ""
    assert doc["sentence"] == "GGA" and doc["talker"] == "GP"
    assert doc["fix"]["lat"] == pytest.approx(48.1173) and doc["fix"]["lon"] == pytest.approx(11.5166667)
    assert doc["fix"]["alt"] == 545.4
    assert {"metric": "altitude", "value": 545.4, "unit": "m"} in doc["readings"]


def test_no_fix_prints_a_null_fix(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", "nmea", "$GPRMC,225446,V,,,,,,,191194,,,N*55"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["fix"] is None and doc["utc"] == "1994-11-19T22:54:46Z"
    assert {"metric": "valid", "value": False, "unit": None} in doc["readings"]


def test_reads_stdin(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(GGA + "\r\n"))
    assert main(["decode", "nmea", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["fix"]["satellites"] == 8


@pytest.mark.parametrize(
    ("sentence", "words"),
    [
        (GGA[:-2] + "46", "checksum mismatch: the sentence says 46, computed 47"),
        (GGA[:-3], "has no checksum"),
        (GGA[1:], "does not start with '$'"),
        ("$GPGSV,1,1,00*79", "not supported"),
    ],
)
def test_errors_go_to_stderr(capsys: pytest.CaptureFixture[str], sentence: str, words: str) -> None:
    assert main(["decode", "nmea", sentence]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("roost decode nmea: ") and words in err
