"""Bundle downloads resume where a cut connection (or a restart) left them, with Range requests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.dm.ota.download import DownloadError, download
from tests.gateway.ota_rig import RangeServer


def test_a_cut_download_resumes_with_range(tmp_path: Path) -> None:
    served = tmp_path / "srv"
    served.mkdir()
    data = os.urandom(300_000)
    (served / "b.tar").write_bytes(data)
    with RangeServer(served) as srv:
        srv.cut_after, srv.cuts_left = 100_000, 2
        got = download(f"{srv.base}/b.tar", tmp_path / "dl" / "b.tar", max_bytes=1 << 20, sleep=lambda _s: None)
        assert got.read_bytes() == data
        assert srv.requests[0] is None
        assert srv.requests[1:] == ["bytes=100000-", "bytes=200000-"]
    assert not (tmp_path / "dl" / "b.tar.part").exists()


def test_a_part_left_by_a_restart_is_resumed_only_for_the_same_url(tmp_path: Path) -> None:
    served = tmp_path / "srv"
    served.mkdir()
    data = os.urandom(50_000)
    (served / "b.tar").write_bytes(data)
    dest = tmp_path / "dl" / "b.tar"
    dest.parent.mkdir()
    with RangeServer(served) as srv:
        url = f"{srv.base}/b.tar"
        (dest.parent / "b.tar.part").write_bytes(data[:20_000])
        (dest.parent / "b.tar.part.url").write_text(url)
        assert download(url, dest, max_bytes=1 << 20).read_bytes() == data
        assert srv.requests == ["bytes=20000-"]
        (dest.parent / "b.tar.part").write_bytes(b"stale bytes of another bundle")
        (dest.parent / "b.tar.part.url").write_text(url + "?old")
        assert download(url, dest, max_bytes=1 << 20).read_bytes() == data
        assert srv.requests[-1] is None


def test_download_refusals_say_why(tmp_path: Path) -> None:
    served = tmp_path / "srv"
    served.mkdir()
    (served / "big").write_bytes(b"x" * 5000)
    with RangeServer(served) as srv:
        with pytest.raises(DownloadError, match="HTTP 404"):
            download(f"{srv.base}/nope", tmp_path / "d", max_bytes=100)
        with pytest.raises(DownloadError, match="5000 bytes, over the 1000"):
            download(f"{srv.base}/big", tmp_path / "d", max_bytes=1000)
        srv.cut_after, srv.cuts_left = 10, 100
        with pytest.raises(DownloadError, match=r"gave up .* after 3 attempts"):
            download(f"{srv.base}/big", tmp_path / "d", max_bytes=10_000, attempts=3, sleep=lambda _s: None)
    with pytest.raises(DownloadError, match="only http"):
        download("ftp://x/y", tmp_path / "d", max_bytes=10)
