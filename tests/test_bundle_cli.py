"""Update bundles: ``roost bundle keygen/build/verify`` and every refusal a gateway makes (wire.bundle)."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from roost.cli import main
from tests.gateway.ota_rig import Keys, make_bundle, make_wheel
from wire import bundle

Member = tuple[tarfile.TarInfo, bytes | None]


def _members(path: Path) -> list[Member]:
    out: list[Member] = []
    with tarfile.open(path) as tar:
        for m in tar.getmembers():
            fh = tar.extractfile(m)
            out.append((m, fh.read() if fh is not None else None))
    return out


def _rewrite(src: Path, dst: Path, change: Callable[[list[Member]], list[Member]]) -> Path:
    with tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in change(_members(src)):
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return dst


def _file(name: str, data: bytes) -> Member:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _verify(path: Path, keys: Keys) -> bundle.Manifest:
    with path.open("rb") as fh:
        return bundle.verify(fh, keys.private.public_key())


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return Keys(tmp_path)


def test_cli_keygen_build_verify_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bundle", "keygen", "--out", str(tmp_path / "upd")]) == 0
    assert (tmp_path / "upd.key").stat().st_mode & 0o777 == 0o600
    assert main(["bundle", "keygen", "--out", str(tmp_path / "upd")]) != 0  # never overwrites a key by accident
    wheels = tmp_path / "w"
    make_wheel(wheels, "1.2.0")
    make_wheel(wheels, "3.0", name="somedep")
    capsys.readouterr()
    out = tmp_path / "b.bundle"
    assert (
        main(["bundle", "build", "--key", str(tmp_path / "upd.key"), "--out", str(out), "--wheels", str(wheels)]) == 0
    )
    built = json.loads(capsys.readouterr().out)
    assert built["manifest"]["version"] == "1.2.0" and built["manifest"]["hardware"] == ["any"]
    assert len(built["manifest"]["files"]) == 2
    assert main(["bundle", "verify", str(out), "--pubkey", str(tmp_path / "upd.pub")]) == 0
    assert json.loads(capsys.readouterr().out)["manifest"]["version"] == "1.2.0"
    # a lower version than the one installed, then forced
    assert main(["bundle", "verify", str(out), "--pubkey", str(tmp_path / "upd.pub"), "--installed", "1.10"]) == 3
    assert "lower-version" in capsys.readouterr().err
    args = ["bundle", "verify", str(out), "--pubkey", str(tmp_path / "upd.pub"), "--installed", "1.10", "--force"]
    assert main(args) == 0
    # another key
    main(["bundle", "keygen", "--out", str(tmp_path / "other")])
    capsys.readouterr()
    assert main(["bundle", "verify", str(out), "--pubkey", str(tmp_path / "other.pub")]) == 3
    err = capsys.readouterr().err
    assert "bad-signature" in err and "this gateway trusts key" in err


def test_xz_bundles_verify_too(tmp_path: Path, keys: Keys) -> None:
    from roost.bundle_cli import build_bundle

    out = tmp_path / "b.tar.xz"
    build_bundle([make_wheel(tmp_path / "w", "2.0")], keys.private, out, xz=True)
    assert _verify(out, keys).version == "2.0"


def test_a_good_bundle_verifies_and_writes_its_files(tmp_path: Path, keys: Keys) -> None:
    good = make_bundle(tmp_path, keys, "2.0.1")
    written: dict[str, io.BytesIO] = {}

    class Sink(io.BytesIO):
        def close(self) -> None:
            written[self.name] = io.BytesIO(self.getvalue())
            super().close()

    def open_out(entry: bundle.FileEntry) -> Sink:
        s = Sink()
        s.name = entry.path
        return s

    with good.open("rb") as fh:
        manifest = bundle.verify(fh, keys.private.public_key(), open_out=open_out)
    assert manifest.version == "2.0.1"
    assert list(written) == ["wheels/roost-2.0.1-py3-none-any.whl"]


def _refused(path: Path, keys: Keys) -> bundle.BundleError:
    with pytest.raises(bundle.BundleError) as info:
        _verify(path, keys)
    return info.value


def test_bad_signature_is_refused(tmp_path: Path, keys: Keys) -> None:
    good = make_bundle(tmp_path, keys, "2.0")
    other = Keys(tmp_path, Ed25519PrivateKey.generate())
    assert _refused(good, other).reason == "bad-signature"

    def edit_manifest(ms: list[Member]) -> list[Member]:
        info, data = ms[0]
        assert data is not None
        return [(info, data.replace(b'"2.0"', b'"9.0"')), *ms[1:]]

    assert _refused(_rewrite(good, tmp_path / "m.bundle", edit_manifest), keys).reason == "bad-signature"
    no_sig = _rewrite(good, tmp_path / "nosig.bundle", lambda ms: [ms[0], *ms[2:]])
    assert _refused(no_sig, keys).reason == "bad-signature"


def test_a_tampered_wheel_is_a_hash_mismatch(tmp_path: Path, keys: Keys) -> None:
    good = make_bundle(tmp_path, keys, "2.0")

    def flip(ms: list[Member]) -> list[Member]:
        info, data = ms[2]
        assert data is not None
        return [*ms[:2], (info, data[:-1] + bytes([data[-1] ^ 1]))]

    err = _refused(_rewrite(good, tmp_path / "t.bundle", flip), keys)
    assert err.reason == "hash-mismatch" and "wheels/roost-2.0" in str(err)
    shorter = _rewrite(good, tmp_path / "s.bundle", lambda ms: [*ms[:2], (ms[2][0], (ms[2][1] or b"")[:-1])])
    assert _refused(shorter, keys).reason == "size-mismatch"


def test_extra_missing_and_unsafe_members_are_refused(tmp_path: Path, keys: Keys) -> None:
    good = make_bundle(tmp_path, keys, "2.0")
    extra = _rewrite(good, tmp_path / "x.bundle", lambda ms: [*ms, _file("wheels/evil-1.0-py3-none-any.whl", b"x")])
    assert _refused(extra, keys).reason == "extra-file"
    missing = _rewrite(good, tmp_path / "mi.bundle", lambda ms: ms[:2])
    assert _refused(missing, keys).reason == "missing-file"
    for name in ("../evil.whl", "/etc/passwd", "wheels/../../x.whl", "wheels/a/../b.whl", "notes.txt"):
        bad = _rewrite(good, tmp_path / "p.bundle", lambda ms, n=name: [*ms, _file(n, b"x")])  # type: ignore[misc]
        assert _refused(bad, keys).reason == "unsafe-path", name

    def symlink(ms: list[Member]) -> list[Member]:
        info = tarfile.TarInfo(ms[2][0].name)
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/shadow"
        return [*ms[:2], (info, None)]

    assert _refused(_rewrite(good, tmp_path / "l.bundle", symlink), keys).reason == "not-regular-file"
    assert _refused(_write(tmp_path / "junk.bundle", b"not a tar at all" * 100), keys).reason == "malformed"
    cut = good.read_bytes()[:2000]
    assert _refused(_write(tmp_path / "cut.bundle", cut), keys).reason in {"malformed", "missing-file", "size-mismatch"}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_manifest_paths_are_checked_before_anything_is_read() -> None:
    for path in ("../x.whl", "/abs.whl", "wheels//x.whl", "wheels/./x.whl", "x.whl", "wheels/x.py"):
        with pytest.raises(bundle.BundleError) as info:
            bundle.check_path(path)
        assert info.value.reason == "unsafe-path"
    bundle.check_path("wheels/roost-0.2.0-py3-none-any.whl")


def test_lower_version_and_other_hardware_are_refused(tmp_path: Path, keys: Keys) -> None:
    arm = _verify(make_bundle(tmp_path, keys, "2.0", platform="linux_aarch64"), keys)
    assert arm.hardware == ("arm64",)
    with pytest.raises(bundle.BundleError) as info:
        bundle.check_applicable(arm, installed="1.0", hardware="amd64")
    assert info.value.reason == "wrong-hardware" and "arm64" in str(info.value) and "amd64" in str(info.value)
    bundle.check_applicable(arm, installed="1.0", hardware="arm64")
    anyhw = _verify(make_bundle(tmp_path, keys, "2.0"), keys)
    for installed, reason in (("2.1", "lower-version"), ("2.0", "same-version"), ("2.0.0", "same-version")):
        with pytest.raises(bundle.BundleError) as info:
            bundle.check_applicable(anyhw, installed=installed, hardware="armhf")
        assert info.value.reason == reason
        bundle.check_applicable(anyhw, installed=installed, hardware="armhf", force=True)
    bundle.check_applicable(anyhw, installed="2.0rc1", hardware="armhf")
    bundle.check_applicable(anyhw, installed="unknown", hardware="armhf")


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("1.0", "1.0.1"),
        ("1.9", "1.10"),
        ("1.0a1", "1.0b1"),
        ("1.0rc2", "1.0"),
        ("1.0.dev1", "1.0a1"),
        ("1.0", "1.0.post1"),
    ],
)
def test_versions_order_like_pep_440(older: str, newer: str) -> None:
    assert bundle.parse_version(older) < bundle.parse_version(newer)
    assert bundle._subset_version(older) < bundle._subset_version(newer)


def test_hardware_names() -> None:
    assert bundle.hardware_name("aarch64") == "arm64" and bundle.hardware_name("x86_64") == "amd64"
    assert bundle.hardware_of_wheels(["a-1-py3-none-any.whl", "b-1-cp311-cp311-manylinux_2_17_x86_64.whl"]) == (
        "amd64",
    )
