"""The catalog: migrations produce exactly the schema the code uses, on both dialects."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from medfabric.catalog.engine import HEAD_REVISION, normalize_url, open_catalog
from medfabric.catalog.schema import metadata
from medfabric.errors import InvalidInput, Unavailable


def test_migrations_match_the_schema(catalog_url: str) -> None:
    catalog = open_catalog(catalog_url, create=True)
    try:
        assert catalog.schema_revision() == HEAD_REVISION
        with catalog.engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), metadata)
        assert differences == []
    finally:
        catalog.close()


def test_sqlite_runs_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    catalog = open_catalog(f"sqlite:///{tmp_path / 'c.db'}", create=True)
    try:
        with catalog.read() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    finally:
        catalog.close()


def test_an_unreachable_catalog_is_a_clear_error() -> None:
    with pytest.raises(Unavailable, match="cannot reach the catalog"):
        open_catalog("postgresql://nobody@127.0.0.1:1/none")


def test_an_empty_database_is_not_a_catalog(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="no medfabric catalog"):
        open_catalog(f"sqlite:///{tmp_path / 'empty.db'}")


def test_urls_are_checked() -> None:
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    with pytest.raises(InvalidInput):
        normalize_url("mysql://u@h/db")
