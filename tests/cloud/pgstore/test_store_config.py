"""``[store]`` and ``[retention]`` in cloud.toml: what is refused, with the key named; make_store's choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.config import loads
from cloud.errors import ConfigError, StoreError
from cloud.pgstore import PgStore
from cloud.retention import Keep, RetentionPolicy
from cloud.store import Store
from cloud.stores import make_store


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[store]\nbackend = "postgresql"\n',
            r"store\.dsn: backend = 'postgresql' needs exactly one of dsn and dsn_file",
        ),
        (
            '[store]\nbackend = "postgresql"\ndsn = "postgresql://roost:hunter2@db/roost"\n',
            r"store\.dsn: holds a password",
        ),
        ('[store]\ndsn = "host=db password=hunter2"\n', r"store\.dsn: holds a password"),
        ('[store]\nbackend = "mysql"\n', r"store\.backend: 'mysql' is not allowed"),
        ("[store]\npartition_days = 0\n", r"store\.partition_days: must be between 1 and 366"),
        ('[store]\nbackend = "postgresql"\ndsn_file = "missing"\n', r"store\.dsn_file: cannot be read"),
        ("[retention]\nraw_days = -1\n", r"retention\.raw_days: must be 0 \(forever\) or more days"),
        ('[[retention.tenants]]\nname = "Acme"\n', r"retention\.tenants\[0\]\.name"),
        ('[[retention.tenants]]\nname = "a"\n[[retention.tenants]]\nname = "a"\n', r"'a' is listed twice"),
        ('[[retention.tenants]]\nname = "a"\nhour_days = -2\n', r"retention\.tenants\[0\]\.hour_days"),
    ],
)
def test_bad_store_and_retention_settings_are_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        loads(text, base_dir=tmp_path)


def test_make_store_follows_the_backend_and_reads_the_dsn_file(tmp_path: Path) -> None:
    assert isinstance(make_store(loads("", base_dir=tmp_path)), Store)
    (tmp_path / "dsn").write_text("postgresql://roost:secret@db.example:5433/roost\n")
    store = make_store(loads('[store]\nbackend = "postgresql"\ndsn_file = "dsn"\n', base_dir=tmp_path))
    assert isinstance(store, PgStore)
    assert store.shown_dsn == "postgresql://roost@db.example:5433/roost"
    (tmp_path / "dsn").write_text("\n")
    with pytest.raises(StoreError, match="connection string file is empty"):
        make_store(loads('[store]\nbackend = "postgresql"\ndsn_file = "dsn"\n', base_dir=tmp_path))


def test_tenant_overrides_fall_back_to_the_defaults(tmp_path: Path) -> None:
    config = loads(
        '[retention]\nraw_days = 10\n[[retention.tenants]]\nname = "acme"\nminute_days = 0\n', base_dir=tmp_path
    )
    policy = RetentionPolicy.from_config(config.retention)
    assert policy.default == Keep(10, 365, 0)
    assert policy.tenants == {"acme": Keep(10, 0, 0)}
