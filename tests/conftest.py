"""Fixtures every test directory may use."""

pytest_plugins = ["tests.pg_fixtures"]  # pg_server (one PostgreSQL for the session), pg_dsn (a fresh database)
