"""Fixtures for the JSON table tests: every test runs on SQLite (WAL, on disk) and on PostgreSQL 15.

One throw-away PostgreSQL serves the whole session (the suite's ``postgres`` fixture when there is
one; each pytest-xdist worker has its own); each test gets a fresh table id inside a transaction
that is rolled back afterwards.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from medfabric.docdb import DocumentTable
from medfabric.testing.servers import PostgresServer, postgres_server

_table_ids = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_engine(request: pytest.FixtureRequest) -> Iterator[sa.Engine]:
    with contextlib.ExitStack() as stack:
        try:  # the suite's own server, when the top-level conftest provides one
            server: PostgresServer = request.getfixturevalue("postgres")
        except pytest.FixtureLookupError:
            server = stack.enter_context(postgres_server())
        url = server.create_database(f"docdb_{os.getpid()}").replace("postgresql://", "postgresql+psycopg://")
        engine = sa.create_engine(url)
        yield engine
        engine.dispose()


def sqlite_engine(path: Path) -> sa.Engine:
    engine = sa.create_engine(f"sqlite:///{path}")

    @sa.event.listens_for(engine, "connect")
    def _wal(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA journal_mode=WAL")

    return engine


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    if request.param == "sqlite":
        engine = sqlite_engine(tmp_path / "catalog.db")
        yield engine
        engine.dispose()
    else:
        yield request.getfixturevalue("postgres_engine")


@pytest.fixture
def conn(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection inside a transaction that the test never commits."""
    with engine.connect() as connection:
        transaction = connection.begin()
        yield connection
        if transaction.is_active:
            transaction.rollback()


@pytest.fixture
def table(conn: sa.Connection) -> DocumentTable:
    created = DocumentTable(next(_table_ids))
    created.create(conn)
    return created


def new_table_id() -> int:
    return next(_table_ids)
