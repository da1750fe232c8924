"""Connections and transactions on the catalog, identical in intent on SQLite and PostgreSQL.

``Catalog.write()`` is the only way to change the catalog: on SQLite it takes the write lock up
front (BEGIN IMMEDIATE) so two writers never deadlock on a lock upgrade; on PostgreSQL callers
lock the rows they change (volumes are locked with FOR UPDATE). A committed write is durable:
SQLite runs in WAL mode with synchronous=FULL.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from medfabric.errors import InvalidInput, Unavailable

MIGRATIONS = Path(__file__).parent / "migrations"


def _head_revision() -> str:
    """Migrations are numbered NNNN_name.py in one line of history: the head is the highest."""
    numbers = [path.name[:4] for path in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py")]
    return max(numbers)


HEAD_REVISION = _head_revision()


def normalize_url(url: str) -> str:
    """Accept the URLs operators write (``postgresql://``) and pick our drivers."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith(("sqlite:", "postgresql+psycopg:")):
        return url
    raise InvalidInput(f"unsupported catalog URL {url!r}: use sqlite:///PATH or postgresql://…")


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


class Catalog:
    """The catalog database: one engine, with read and write transactions."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.dialect = "sqlite" if self.url.startswith("sqlite") else "postgresql"
        self.engine = self._create_engine()

    def _create_engine(self) -> Engine:
        if self.dialect == "sqlite":
            engine = sa.create_engine(
                self.url,
                connect_args={"timeout": 60, "check_same_thread": False},
                pool_size=8,
                max_overflow=8,
            )
            event.listen(engine, "connect", _sqlite_on_connect)
            event.listen(engine, "begin", _sqlite_on_begin)
            return engine
        return sa.create_engine(
            self.url, pool_size=8, max_overflow=8, pool_pre_ping=True, connect_args={"connect_timeout": 5}
        )

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction: a consistent view of the catalog."""
        with self._connect() as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction; commits (durably) when the block exits without an exception."""
        with self._connect() as conn:
            conn = conn.execution_options(medfabric_write=True)
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def _connect(self) -> Iterator[Connection]:
        try:
            conn = self.engine.connect()
        except sa.exc.OperationalError as error:
            raise Unavailable(f"cannot reach the catalog at {self.safe_url}: {_first_line(error)}") from error
        with conn:
            yield conn

    @property
    def safe_url(self) -> str:
        return sa.engine.make_url(self.url).render_as_string(hide_password=True)

    def schema_revision(self) -> str | None:
        with self.read() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return None
            value = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
            return str(value) if value is not None else None

    def upgrade(self) -> None:
        """Bring the schema to the newest revision (creating it on an empty database)."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.write() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def ensure_current(self) -> None:
        revision = self.schema_revision()
        if revision is None:
            raise Unavailable(f"{self.safe_url} holds no medfabric catalog (run `medfabric init`)")
        if revision != HEAD_REVISION:
            if revision > HEAD_REVISION:
                raise Unavailable(
                    f"the catalog is at schema {revision}, newer than this medfabric "
                    f"({HEAD_REVISION}): upgrade medfabric"
                )
            self.upgrade()

    def close(self) -> None:
        self.engine.dispose()


def open_catalog(url: str, *, create: bool = False) -> Catalog:
    catalog = Catalog(url)
    if create:
        catalog.upgrade()
    else:
        catalog.ensure_current()
    return catalog


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # We issue BEGIN ourselves (see _sqlite_on_begin): the driver must not.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    if conn.get_execution_options().get("medfabric_write"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def insert_ignoring_duplicates(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """INSERT … ON CONFLICT DO NOTHING, on either dialect."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn.execute(pg_insert(table).on_conflict_do_nothing(), rows)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        conn.execute(sqlite_insert(table).on_conflict_do_nothing(), rows)


def chunked(items: list[Any], size: int = 500) -> Iterator[list[Any]]:
    """Slices small enough for an IN (…) list on every dialect."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
