"""The imaging index, read side: `dicom find` at the patient, study, series or instance level.

Conditions are MongoDB-style JSON on snake_case fields (parsed by ``medfabric.docdb.conditions``)
and run in SQL. A field of the queried level or above it is a column of the joined rows; a field
below it (``modality`` in a study query) matches when any row below does, as ModalitiesInStudy
does in DICOM. Comparisons follow MongoDB: a missing attribute is null, and values compare only
within a type bracket. Read-only: never changes a row.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from medfabric.catalog.schema import dicom_instances, dicom_patients, dicom_series, dicom_studies, volumes
from medfabric.docdb.conditions import (
    And,
    Compare,
    Const,
    Exists,
    In,
    Like,
    Node,
    Not,
    Or,
    Regex,
    parse_condition,
)
from medfabric.docdb.sqlite_sql import REGEXP_FUNCTION, like_to_glob, regexp
from medfabric.errors import InvalidInput

LEVELS = ("patient", "study", "series", "instance")
TABLES = {
    "patient": dicom_patients,
    "study": dicom_studies,
    "series": dicom_series,
    "instance": dicom_instances,
}
# How a level's row points at its parent's: (column of the child, the parent level).
PARENT = {
    "study": ("patient_pk", "patient"),
    "series": ("study_pk", "study"),
    "instance": ("series_pk", "series"),
}


@dataclass(frozen=True)
class Field:
    level: str
    column: str
    kind: type  # str, int or bool: what a condition's value must be to compare
    empty_is_null: bool = False  # stored as "" when the attribute is missing


FIELDS: dict[str, Field] = {
    "patient_id": Field("patient", "patient_id", str, empty_is_null=True),
    "issuer_of_patient_id": Field("patient", "issuer", str, empty_is_null=True),
    "patient_name": Field("patient", "patient_name", str),
    "patient_birth_date": Field("patient", "birth_date", str),
    "patient_sex": Field("patient", "sex", str),
    "number_of_patient_related_studies": Field("patient", "study_count", int),
    "study_uid": Field("study", "study_uid", str),
    "study_date": Field("study", "study_date", str),
    "study_time": Field("study", "study_time", str),
    "accession_number": Field("study", "accession_number", str),
    "study_description": Field("study", "study_description", str),
    "referring_physician_name": Field("study", "referring_physician_name", str),
    "number_of_study_related_series": Field("study", "series_count", int),
    "number_of_study_related_instances": Field("study", "instance_count", int),
    "series_uid": Field("series", "series_uid", str),
    "modality": Field("series", "modality", str),
    "series_number": Field("series", "series_number", int),
    "series_description": Field("series", "series_description", str),
    "body_part_examined": Field("series", "body_part_examined", str),
    "number_of_series_related_instances": Field("series", "instance_count", int),
    "sop_uid": Field("instance", "sop_uid", str),
    "sop_class_uid": Field("instance", "sop_class_uid", str),
    "instance_number": Field("instance", "instance_number", int),
    "transfer_syntax": Field("instance", "transfer_syntax", str),
    "size": Field("instance", "size", int),
    "path": Field("instance", "path", str),
    "version": Field("instance", "version", int),
    "latest": Field("instance", "latest", bool),
    "ingested_at": Field("instance", "ingested_at", int),
    "volume": Field("instance", "volume_id", str),  # the volume's name (looked up by id)
}
# ModalitiesInStudy: the modalities of the study's series (matches when any does).
MODALITIES_IN_STUDY = "modalities_in_study"

COLUMNS = {
    "patient": [
        "patient_id",
        "issuer_of_patient_id",
        "patient_name",
        "patient_birth_date",
        "patient_sex",
        "number_of_patient_related_studies",
    ],
    "study": [
        "patient_id",
        "patient_name",
        "study_uid",
        "study_date",
        "study_time",
        "accession_number",
        "study_description",
        "referring_physician_name",
        MODALITIES_IN_STUDY,
        "number_of_study_related_series",
        "number_of_study_related_instances",
    ],
    "series": [
        "patient_id",
        "study_uid",
        "study_date",
        "series_uid",
        "modality",
        "series_number",
        "series_description",
        "body_part_examined",
        "number_of_series_related_instances",
    ],
    "instance": [
        "patient_id",
        "study_uid",
        "study_date",
        "series_uid",
        "modality",
        "sop_uid",
        "sop_class_uid",
        "instance_number",
        "transfer_syntax",
        "size",
        "volume",
        "path",
        "version",
        "latest",
        "ingested_at",
    ],
}
ORDER = {
    "patient": ["patient_id", "issuer_of_patient_id"],
    "study": ["study_date", "study_time", "study_uid"],
    "series": ["study_uid", "series_number", "series_uid"],
    "instance": ["series_uid", "instance_number", "sop_uid", "version"],
}


def find(
    conn: Connection,
    level: str,
    condition: Mapping[str, Any] | None = None,
    *,
    limit: int | None = None,
    offset: int = 0,
    volumes: Collection[int] | None = None,
    with_ino: bool = False,
) -> list[dict[str, Any]]:
    """Rows of ``level`` matching ``condition``, as plain JSON objects (COLUMNS[level]).

    ``volumes``: only rows with an instance stored in one of these volumes (the ones the caller may
    read; None: every volume). ``with_ino``: instance rows also carry ``_volume_id`` and ``_ino``, for
    a caller that checks each file's rights."""
    if level not in LEVELS:
        raise InvalidInput(f"unknown level {level!r}: one of {', '.join(LEVELS)}")
    if (limit is not None and limit < 0) or offset < 0:
        raise InvalidInput("limit and offset must not be negative")
    node = parse_condition(condition)
    query = _Query(conn.dialect.name, level)
    where = query.node(node)
    if query.needs_regexp and conn.dialect.name == "sqlite":
        conn.connection.driver_connection.create_function(  # type: ignore[union-attr]
            REGEXP_FUNCTION, 2, regexp, deterministic=True
        )
    if volumes is not None:
        allowed = sorted(volumes)
        where = sa.and_(
            where,
            query._below(
                level, "instance", lambda row: row.c.volume_id.in_(allowed) if allowed else sa.false()
            ),
        )
    select = query.select()
    if with_ino and level == "instance":
        instance = query.aliases["instance"]
        select = select.add_columns(instance.c.volume_id.label("_volume_id"), instance.c.ino.label("_ino"))
    statement = select.where(where).order_by(*[query.column(name) for name in ORDER[level]])
    if limit is not None:
        statement = statement.limit(limit)
    if offset:
        statement = statement.offset(offset)
    rows = []
    for found in conn.execute(statement):
        mapping = dict(found._mapping)
        row = query.row(mapping)
        if with_ino and level == "instance":
            row["_volume_id"], row["_ino"] = mapping["_volume_id"], mapping["_ino"]
        rows.append(row)
    return rows


def count(conn: Connection, level: str, condition: Mapping[str, Any] | None = None) -> int:
    return len(find(conn, level, condition))


def _field_column(name: str, field: Field, row: Any) -> ColumnElement[Any]:
    column: ColumnElement[Any] = row.c[field.column]
    if name == "volume":
        return sa.select(volumes.c.name).where(volumes.c.id == column).scalar_subquery()
    return sa.func.nullif(column, "") if field.empty_is_null else column


class _Query:
    """Aliases of the joined tables for one level, and the translation of a condition into SQL."""

    def __init__(self, dialect: str, level: str) -> None:
        self.dialect = dialect
        self.level = level
        self.depth = LEVELS.index(level)
        self.aliases = {name: TABLES[name].alias(f"{name}_row") for name in LEVELS[: self.depth + 1]}
        self.volume = volumes.alias("volume_row")
        self.needs_regexp = False

    def select(self) -> sa.Select[Any]:
        joined: Any = self.aliases[self.level]
        for name in reversed(LEVELS[: self.depth]):
            child = LEVELS[LEVELS.index(name) + 1]
            column = PARENT[child][0]
            joined = joined.join(self.aliases[name], self.aliases[child].c[column] == self.aliases[name].c.id)
        selected: list[Any] = [
            self.column(name).label(name) for name in COLUMNS[self.level] if name != "volume"
        ]
        if self.level == "instance":
            joined = joined.join(self.volume, self.volume.c.id == self.aliases["instance"].c.volume_id)
            selected.append(self.volume.c.name.label("volume"))
        return sa.select(*selected).select_from(joined)

    def column(self, name: str) -> ColumnElement[Any]:
        if name == MODALITIES_IN_STUDY:
            return self.aliases["study"].c.modalities
        field = FIELDS[name]
        return _field_column(name, field, self.aliases[field.level])

    def row(self, mapping: Mapping[str, Any]) -> dict[str, Any]:
        result = {name: mapping[name] for name in COLUMNS[self.level]}
        if MODALITIES_IN_STUDY in result:
            result[MODALITIES_IN_STUDY] = [m for m in (result[MODALITIES_IN_STUDY] or "").split("\\") if m]
        if "latest" in result:
            result["latest"] = bool(result["latest"])
        return result

    # -- conditions --

    def node(self, node: Node) -> ColumnElement[bool]:
        if isinstance(node, Const):
            return sa.true() if node.value else sa.false()
        if isinstance(node, And):
            return sa.and_(*[self.node(child) for child in node.children])
        if isinstance(node, Or):
            return sa.or_(*[self.node(child) for child in node.children])
        if isinstance(node, Not):
            return sa.not_(self.node(node.child))
        if not isinstance(node, (Compare, In, Exists, Like, Regex)):
            raise InvalidInput(f"{type(node).__name__} conditions are not supported by dicom find")
        name = ".".join(node.path.components)
        if name == MODALITIES_IN_STUDY:
            return self._below(
                "study", "series", lambda series: self._predicate(series.c.modality, str, node)
            )
        field = FIELDS.get(name)
        if field is None:
            known = ", ".join(sorted([*FIELDS, MODALITIES_IN_STUDY]))
            raise InvalidInput(f"unknown field {name!r} in the condition (one of {known})")
        target_depth = LEVELS.index(field.level)
        if target_depth <= self.depth:
            return self._predicate(self.column(name), field.kind, node)

        def make(row: Any) -> ColumnElement[bool]:
            return self._predicate(_field_column(name, field, row), field.kind, node)

        return self._below(self.level, field.level, make)

    def _below(
        self, anchor: str, target: str, make: Callable[[Any], ColumnElement[bool]]
    ) -> ColumnElement[bool]:
        """EXISTS a row at ``target`` under the anchor level's row for which ``make`` holds."""
        if LEVELS.index(target) <= LEVELS.index(anchor):
            return make(self.aliases[target])
        if anchor not in self.aliases:  # e.g. modalities_in_study in a patient query
            return self._below(self.level, target, make)
        chain = list(LEVELS[LEVELS.index(anchor) + 1 : LEVELS.index(target) + 1])
        rows = {name: TABLES[name].alias(f"{name}_below") for name in chain}
        first = rows[chain[0]]
        joined: Any = first
        for upper, lower in itertools.pairwise(chain):
            joined = joined.join(rows[lower], rows[lower].c[PARENT[lower][0]] == rows[upper].c.id)
        return (
            sa.select(sa.literal(1))
            .select_from(joined)
            .where(first.c[PARENT[chain[0]][0]] == self.aliases[anchor].c.id, make(rows[target]))
            .exists()
        )

    def _predicate(self, column: ColumnElement[Any], kind: type, node: Node) -> ColumnElement[bool]:
        """Two-valued SQL (never NULL), so that NOT means what MongoDB's $not/$ne mean."""
        if isinstance(node, Exists):
            return column.isnot(None)
        if isinstance(node, Compare):
            return self._compare(column, kind, node.op, node.value)
        if isinstance(node, In):
            return sa.or_(sa.false(), *[self._compare(column, kind, "eq", value) for value in node.values])
        if isinstance(node, Like):
            if kind is not str:
                return sa.false()
            if self.dialect == "sqlite":
                return sa.and_(column.isnot(None), column.op("GLOB")(like_to_glob(node.pattern, node.escape)))
            pattern = node.pattern if node.escape is not None else node.pattern.replace("\\", "\\\\")
            return sa.and_(column.isnot(None), column.like(pattern, escape=node.escape))
        assert isinstance(node, Regex)
        if kind is not str:
            return sa.false()
        if self.dialect == "sqlite":
            self.needs_regexp = True
            flags = f"(?{node.flags})" if node.flags else ""
            return sa.and_(column.isnot(None), sa.func.medfabric_regexp(flags + node.pattern, column) == 1)
        if set(node.flags) - {"i"}:
            raise InvalidInput("dicom find supports only the 'i' regular expression option on PostgreSQL")
        return sa.and_(column.isnot(None), column.op("~*" if node.flags else "~")(node.pattern))

    def _compare(self, column: ColumnElement[Any], kind: type, op: str, value: Any) -> ColumnElement[bool]:
        if value is None:
            return column.is_(None) if op in ("eq", "lte", "gte") else sa.false()
        if kind is bool:
            matches = isinstance(value, bool)
        elif kind is int:
            matches = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            matches = isinstance(value, str)
        if not matches:
            return sa.false()  # MongoDB: values of another type bracket never compare
        operators: dict[str, Callable[[Any, Any], Any]] = {
            "eq": lambda a, b: a == b,
            "lt": lambda a, b: a < b,
            "lte": lambda a, b: a <= b,
            "gt": lambda a, b: a > b,
            "gte": lambda a, b: a >= b,
        }
        result: ColumnElement[bool] = sa.and_(column.isnot(None), operators[op](column, value))
        return result


def summary(conn: Connection) -> list[dict[str, Any]]:
    """Instances (latest versions), bytes, series and studies per volume and modality."""
    rows = conn.execute(
        sa.select(
            volumes.c.name,
            dicom_series.c.modality,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(dicom_instances.c.size), 0),
            sa.func.count(sa.distinct(dicom_series.c.id)),
            sa.func.count(sa.distinct(dicom_series.c.study_pk)),
        )
        .select_from(
            dicom_instances.join(dicom_series, dicom_series.c.id == dicom_instances.c.series_pk).join(
                volumes, volumes.c.id == dicom_instances.c.volume_id
            )
        )
        .where(dicom_instances.c.latest.is_(True))
        .group_by(volumes.c.name, dicom_series.c.modality)
        .order_by(volumes.c.name, dicom_series.c.modality)
    )
    return [
        {
            "volume": name,
            "modality": modality,
            "instances": int(n),
            "bytes": int(size),
            "series": int(s),
            "studies": int(t),
        }
        for name, modality, n, size, s, t in rows
    ]
