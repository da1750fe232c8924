"""Secondary index definitions: parsing ``"modality:asc,study_date:desc"`` and writing their DDL.

Each index is one expression index over the fields (exact for documents without arrays on the
paths) plus, per path prefix, a partial index over the documents that hold an array there, which
is what lets translate.py stay exact without giving up the index. Never executes SQL itself.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from medfabric.docdb.paths import FieldPath, parse_path
from medfabric.docdb.postgres_sql import PgJson
from medfabric.docdb.sqlbase import Dialect
from medfabric.docdb.sqlite_sql import SqlitePath
from medfabric.errors import InvalidInput

INDEX_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")
MAX_INDEX_FIELDS = 16


@dataclass(frozen=True)
class IndexField:
    path: FieldPath
    descending: bool = False

    @property
    def spec(self) -> str:
        return f"{self.path}:{'desc' if self.descending else 'asc'}"


@dataclass(frozen=True)
class IndexInfo:
    """A secondary index as ``list_indexes`` reports it."""

    name: str
    fields: tuple[IndexField, ...]

    @property
    def spec(self) -> str:
        return ",".join(f.spec for f in self.fields)


def check_index_name(name: object) -> str:
    if not isinstance(name, str) or not INDEX_NAME.fullmatch(name):
        raise InvalidInput(f"index name {name!r}: use 1-40 letters, digits or '_', starting with a letter")
    return name


def parse_index_fields(fields: str | Sequence[str]) -> tuple[IndexField, ...]:
    items = fields.split(",") if isinstance(fields, str) else list(fields)
    parsed: list[IndexField] = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise InvalidInput(f"indexed fields: cannot read {item!r} in {fields!r}")
        text, _, direction = item.strip().partition(":") if ":" in item else (item.strip(), "", "asc")
        if direction.strip().lower() not in ("asc", "desc"):
            raise InvalidInput(f"indexed field {item!r}: the order must be asc or desc")
        parsed.append(IndexField(parse_path(text.strip()), direction.strip().lower() == "desc"))
    if not parsed or len(parsed) > MAX_INDEX_FIELDS:
        raise InvalidInput(f"an index needs 1 to {MAX_INDEX_FIELDS} fields, not {len(parsed)}")
    if len({f.path for f in parsed}) != len(parsed):
        raise InvalidInput(f"indexed fields {fields!r} name a field twice")
    return tuple(parsed)


def value_expression(dialect: Dialect, path: FieldPath) -> str:
    """The indexed expression of a field: exactly what translate.py compares."""
    if path.is_id:
        return "_id"
    ref = dialect.static_path(path.components)
    if isinstance(ref, SqlitePath):
        return f"json_extract(doc, {ref.path_sql})"
    assert isinstance(ref, PgJson)
    return f"({ref.expr})"


def index_ddl(dialect: Dialect, table: str, sql_name: str, fields: Sequence[IndexField]) -> str:
    columns = ", ".join(value_expression(dialect, f.path) + (" DESC" if f.descending else "") for f in fields)
    return f"CREATE INDEX {sql_name} ON {table} ({columns})"


def array_index_name(table: str, prefix: FieldPath) -> str:
    digest = hashlib.sha1("\x00".join(prefix.components).encode()).hexdigest()[:16]
    return f"{table}_arr_{digest}"


def array_index_ddl(dialect: Dialect, table: str, prefix: FieldPath) -> list[str]:
    ref = dialect.static_path(prefix.components)
    kind, name = dialect.kind_name(ref), array_index_name(table, prefix)
    statements = [f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({kind}) WHERE {dialect.is_array(ref)}"]
    if dialect.name == "postgresql":
        # PostgreSQL keeps no statistics for a partial index's expression: without these it guesses
        # that 0.5% of the rows hold an array, and a plan that costly turns JIT compilation on
        statements.append(f"CREATE STATISTICS IF NOT EXISTS {name}_st ON ({kind}) FROM {table}")
    return statements


def drop_array_index_ddl(dialect: Dialect, table: str, prefix: FieldPath) -> list[str]:
    name = array_index_name(table, prefix)
    statements = [f"DROP INDEX IF EXISTS {name}"]
    if dialect.name == "postgresql":
        statements.append(f"DROP STATISTICS IF EXISTS {name}_st")
    return statements


def array_prefixes(indexes: Sequence[IndexInfo]) -> set[FieldPath]:
    return {
        prefix for info in indexes for f in info.fields if not f.path.is_id for prefix in f.path.prefixes()
    }
