"""The seam between query semantics and SQL text: what each database dialect must be able to say.

translate.py speaks only through this interface (value references, type tests, comparisons), so
MongoDB's rules live in one place and each dialect only knows its own JSON functions. Nothing here
executes SQL, and literal values never enter SQL text: they are bound as parameters.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any

from medfabric.docdb.conditions import JsonValue, Kind, RangeOp

SQL_OPERATORS: dict[RangeOp, str] = {"eq": "=", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


def dump_json(value: Any) -> str:
    """The one JSON text form medfabric writes: compact, UTF-8, no NaN."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class SqlContext:
    """Collects the bound parameters and fresh aliases of one statement."""

    def __init__(self, placeholder: Callable[[str], str]) -> None:
        self.params: dict[str, Any] = {}
        self._placeholder = placeholder
        self._aliases = 0
        self.needs_functions = False  # SQLite: the statement calls medfabric's SQL functions
        self.subquery_depth = 0  # how deeply correlated subqueries over array elements nest
        self._depth = 0

    def bind(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return self._placeholder(name)

    def nested(self, body: Callable[[Ref], str]) -> Callable[[Ref], str]:
        """``body`` for the inside of a subquery over array elements, keeping count of the nesting."""

        def tracked(element: Ref) -> str:
            self._depth += 1
            self.subquery_depth = max(self.subquery_depth, self._depth)
            try:
                return body(element)
            finally:
                self._depth -= 1

        return tracked

    def alias(self) -> str:
        self._aliases += 1
        return f"e{self._aliases}"


class Ref:
    """A reference to a JSON value inside the current row; each dialect has its own kinds."""


class IdRef(Ref):
    """The document's ``_id``: always a string, kept in its own column."""


class MissingRef(Ref):
    """A path that can never exist (below ``_id``)."""


class Dialect(ABC):
    """SQL fragments over JSON for one database; predicates are TRUE, FALSE, or NULL for missing values."""

    name: str

    @abstractmethod
    def placeholder(self, name: str) -> str: ...

    @abstractmethod
    def literal(self, text: str) -> str:
        """A SQL string literal (only for field names and JSON paths, which must be inline for indexes)."""

    # --- value references ---
    @abstractmethod
    def static_path(self, components: Iterable[str]) -> Ref:
        """The value at a path of nested objects, spelt exactly as the expression indexes spell it."""

    @abstractmethod
    def top(self, key: str) -> Ref: ...

    @abstractmethod
    def member(self, ref: Ref, key: str) -> Ref: ...

    @abstractmethod
    def element(self, ref: Ref, index: int) -> Ref: ...

    @abstractmethod
    def any_element(self, ref: Ref, ctx: SqlContext, body: Callable[[Ref], str]) -> str:
        """EXISTS an element of the array at ``ref`` for which ``body`` holds (``ref`` is an array)."""

    def elements_include(self, ref: Ref, values: list[JsonValue], ctx: SqlContext) -> str | None:
        """A subquery-free test that the array at ``ref`` holds one of ``values`` (None: there is none)."""
        return None

    @abstractmethod
    def kind_name(self, ref: Ref) -> str:
        """SQL yielding the value's JSON type name (see :meth:`type_label`); NULL when missing."""

    @abstractmethod
    def type_label(self, kind: Kind) -> str:
        """The literal :meth:`kind_name` yields for objects and arrays."""

    @abstractmethod
    def is_kind(self, ref: Ref, kinds: Iterable[Kind]) -> str: ...

    # --- predicates on a present value (the element-wise part of MongoDB's rules) ---
    @abstractmethod
    def equals(self, ref: Ref, value: JsonValue, ctx: SqlContext) -> str: ...

    @abstractmethod
    def compare(self, ref: Ref, op: RangeOp, value: str | int | float | bool, ctx: SqlContext) -> str: ...

    @abstractmethod
    def in_values(self, ref: Ref, values: list[JsonValue], ctx: SqlContext) -> str: ...

    @abstractmethod
    def like(self, ref: Ref, pattern: str, escape: str | None, ctx: SqlContext) -> str: ...

    @abstractmethod
    def regex(self, ref: Ref, pattern: str, flags: str, ctx: SqlContext) -> str: ...

    @abstractmethod
    def size(self, ref: Ref, arrays_only: bool) -> str:
        """SQL integer: elements of an array, keys of an object, characters of a string; NULL otherwise."""

    # --- ordering and projection ---
    @abstractmethod
    def sort_terms(self, ref: Ref, descending: bool, ctx: SqlContext) -> list[str]: ...

    @abstractmethod
    def field_json(self, key: str) -> str:
        """SQL giving the JSON text of a top-level field, NULL when it is missing."""

    def opaque(self, predicate: str) -> str:
        """The predicate, hidden from index matching when the planner would misuse it."""
        return f"({predicate})"

    def is_missing(self, ref: Ref) -> str:
        return f"{self.kind_name(ref)} IS NULL"

    def is_array(self, ref: Ref) -> str:
        return f"{self.kind_name(ref)} = {self.type_label('array')}"


def bracket(value: JsonValue) -> Kind | None:
    """MongoDB's comparison bracket of a scalar operand (numbers compare across int and float)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "int"
    if isinstance(value, str):
        return "string"
    return None
