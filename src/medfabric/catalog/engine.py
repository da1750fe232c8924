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

    def __init__(self, url: str, *, key: bytes | None = None) -> None:
        self.url = normalize_url(url)
        self.dialect = "sqlite" if self.url.startswith("sqlite") else "postgresql"
        if key is not None and self.dialect != "sqlite":
            raise InvalidInput(
                "only the embedded (SQLite) catalog is encrypted by medfabric; encrypt "
                "PostgreSQL's storage and connections on the server (see docs/design/security.md)"
            )
        self.key = key
        self.engine = self._create_engine()

    def _engine_url(self) -> str:
        if self.key is None:
            return self.url
        # SQLCipher (sqlcipher3), keyed with a raw 256-bit key: the whole file is AES-256 encrypted.
        path = self.url.split("sqlite:///", 1)[1]
        return f"sqlite+pysqlcipher://:x'{self.key.hex()}'@/{path}"

    def _create_engine(self) -> Engine:
        if self.dialect == "sqlite":
            engine = sa.create_engine(
                self._engine_url(),
                connect_args={"timeout": 60, "check_same_thread": False},
                poolclass=sa.pool.QueuePool,
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
    def write(self, *, durable: bool = True) -> Iterator[Connection]:
        """A write transaction; commits when the block exits without an exception.

        The commit is durable (fsync'd) unless ``durable`` is False: then it survives a crash of
        the process but not of the machine (SQLite synchronous=NORMAL, PostgreSQL
        synchronous_commit=off), for records whose writer chose that trade (the audit log may).
        """
        with self._connect() as conn:
            conn = conn.execution_options(medfabric_write=True)
            relaxed = not durable and self.dialect == "sqlite"
            if relaxed:  # outside any transaction, on the driver's connection (SQLite insists)
                _driver_execute(conn, "PRAGMA synchronous=NORMAL")
            try:
                with conn.begin():
                    if not durable and self.dialect == "postgresql":
                        conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
                    yield conn
            finally:
                if relaxed:
                    _driver_execute(conn, "PRAGMA synchronous=FULL")

    @contextlib.contextmanager
    def _connect(self) -> Iterator[Connection]:
        try:
            conn = self.engine.connect()
        except sa.exc.DatabaseError as error:
            if "not a database" in str(error):
                raise Unavailable(
                    f"cannot read the catalog at {self.safe_url}: it is encrypted with "
                    "another key, or the catalog key is missing"
                ) from error
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


def open_catalog(url: str, *, create: bool = False, key: bytes | None = None) -> Catalog:
    catalog = Catalog(url, key=key)
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


def _driver_execute(conn: Connection, statement: str) -> None:
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(statement)
    finally:
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
    """INSERT … ON CONFLICT DO NOTHING, on either dialect. Rows may name different columns (a column
    a row leaves out takes its default): one executemany per set of columns."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement: Any = pg_insert(table).on_conflict_do_nothing()
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(table).on_conflict_do_nothing()
    shapes: dict[frozenset[str], list[dict[str, Any]]] = {}
    for row in rows:
        shapes.setdefault(frozenset(row), []).append(row)
    for group in shapes.values():
        conn.execute(statement, group)


def chunked(items: list[Any], size: int = 500) -> Iterator[list[Any]]:
    """Slices small enough for an IN (…) list on every dialect."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
