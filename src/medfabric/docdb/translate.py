"""Conditions → SQL WHERE clauses with MongoDB's matching rules, run entirely in the database.

Responsible for the semantics: type brackets, null matching missing fields, arrays matched whole or
by any element, dotted paths through arrays of sub-documents, negations that match missing fields.
It also shapes the SQL so that the planner can use expression indexes: for indexed fields it adds a
fast branch that is exact whenever no array lies on the path, OR-ed with branches for documents
that do hold an array there (each served by a small partial index). It never executes SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from medfabric.docdb.conditions import (
    And,
    Compare,
    Const,
    ElemMatch,
    Exists,
    In,
    Like,
    Node,
    Not,
    Or,
    Predicate,
    Regex,
    SizeIs,
    TypeIs,
)
from medfabric.docdb.paths import is_array_index
from medfabric.docdb.sqlbase import SQL_OPERATORS, Dialect, IdRef, Ref, SqlContext, bracket


class Translator:
    """Translates one condition; ``indexed`` holds the field paths that have an expression index."""

    def __init__(self, dialect: Dialect, ctx: SqlContext, indexed: Collection[tuple[str, ...]] = ()) -> None:
        self.dialect = dialect
        self.ctx = ctx
        self.indexed = frozenset(indexed)

    @staticmethod
    def may_use_indexes(node: Node) -> bool:
        """Whether the shape of ``node`` depends on the indexes (only top-level Compare/In on fields do)."""
        children = node.children if isinstance(node, (And, Or)) else (node,)
        return any(
            (isinstance(child, (Compare, In)) and not child.path.is_id)
            or (isinstance(child, (And, Or)) and Translator.may_use_indexes(child))
            for child in children
        )

    # --- the planner-friendly top level ---
    def where(self, node: Node) -> str:
        if isinstance(node, Or):
            flat = self._flatten_or(node)
            if flat is not None:
                return flat
        conjuncts: list[Node] = list(node.children) if isinstance(node, And) else [node]
        arms, rest = self._group(conjuncts)
        parts = (["(" + " OR ".join(arms) + ")"] if arms else []) + rest
        return " AND ".join(parts) if parts else "TRUE"

    def _group(self, conjuncts: list[Node]) -> tuple[list[str], list[str]]:
        """Split into an OR of index-served arms and the remaining AND terms."""
        sargable: list[tuple[Predicate, str]] = []
        rest: list[str] = []
        for node in conjuncts:
            fast = self._fast(node)
            if fast is not None:
                assert isinstance(node, (Compare, In))
                sargable.append((node, fast))
            elif isinstance(node, Or) and (flat := self._flatten_or(node)) is not None:
                rest.append(flat)
            else:
                rest.append(self.generic(node))
        if not sargable:
            return [], rest
        exact = " AND ".join(self.generic(node) for node, _ in sargable)
        arms = ["(" + " AND ".join(fast for _, fast in sargable) + ")"]
        seen: set[tuple[str, ...]] = set()
        for node, _ in sargable:
            for prefix in node.path.prefixes():
                if prefix.components not in seen:
                    seen.add(prefix.components)
                    has_array = self.dialect.is_array(self.dialect.static_path(prefix.components))
                    arms.append(f"({has_array} AND {self.dialect.opaque(exact)})")
        return arms, rest

    def _flatten_or(self, node: Or) -> str | None:
        arms: list[str] = []
        for child in node.children:
            child_arms, rest = self._group(list(child.children) if isinstance(child, And) else [child])
            if rest or not child_arms:
                return None
            arms.extend(child_arms)
        return "(" + " OR ".join(arms) + ")"

    def _fast(self, node: Node) -> str | None:
        """The predicate on the plain path, exact when no array lies on it, if an index can serve it."""
        if not isinstance(node, (Compare, In)) or node.path.components not in self.indexed or node.path.is_id:
            return None
        values = [node.value] if isinstance(node, Compare) else list(node.values)
        kinds = {bracket(v) for v in values}
        if len(kinds) != 1 or kinds.isdisjoint({"string", "int"}):
            return None
        ref = self.dialect.static_path(node.path.components)
        return self._element_predicate(node)(ref)

    # --- exact semantics ---
    def generic(self, node: Node, base: Ref | None = None) -> str:
        """Exact SQL for ``node``; paths start at the document, or at ``base`` inside $elemMatch."""
        if isinstance(node, Const):
            return "TRUE" if node.value else "FALSE"
        if isinstance(node, And):
            return "(" + " AND ".join(self.generic(child, base) for child in node.children) + ")"
        if isinstance(node, Or):
            return "(" + " OR ".join(self.generic(child, base) for child in node.children) + ")"
        if isinstance(node, Not):
            return f"(({self.generic(node.child, base)}) IS NOT TRUE)"
        return self._predicate(node, base)

    def _predicate(self, node: Predicate, base: Ref | None) -> str:
        path, dialect = node.path, self.dialect
        if base is not None:
            if not path.components:  # a value-form $elemMatch operator on the element itself
                return self._on_value(node, base)
            return self._walk(node, dialect.member(base, path.components[0]), path.components[1:])
        if path.is_id:
            return self._leaf(node, IdRef())
        if path.under_id:
            return "TRUE" if _matches_missing(node) else "FALSE"
        return self._walk(node, dialect.top(path.components[0]), path.components[1:])

    def _walk(self, node: Predicate, ref: Ref, rest: tuple[str, ...]) -> str:
        """MongoDB's path rule: through objects by key, through arrays into each sub-document element."""
        if not rest:
            return self._leaf(node, ref)
        dialect, key = self.dialect, rest[0]
        through_object = self._walk(node, dialect.member(ref, key), rest[1:])
        through_array = dialect.any_element(
            ref,
            self.ctx,
            lambda element: (
                f"({dialect.is_kind(element, ['object'])} AND "
                f"{self._walk(node, dialect.member(element, key), rest[1:])})"
            ),
        )
        if is_array_index(key):
            through_array = (
                f"({through_array} OR {self._walk(node, dialect.element(ref, int(key)), rest[1:])})"
            )
        otherwise = "TRUE" if _matches_missing(node) else "FALSE"
        return (
            f"(CASE {dialect.kind_name(ref)} WHEN {dialect.type_label('object')} THEN {through_object} "
            f"WHEN {dialect.type_label('array')} THEN {through_array} ELSE {otherwise} END)"
        )

    def _leaf(self, node: Predicate, ref: Ref) -> str:
        dialect = self.dialect
        if isinstance(node, Exists):
            return f"({dialect.kind_name(ref)} IS NOT NULL)"
        if isinstance(node, (SizeIs, ElemMatch)):
            return self._on_value(node, ref)
        predicate = self._element_predicate(node)
        terms = [predicate(ref)]
        if not isinstance(ref, IdRef):
            wanted = [node.value] if isinstance(node, Compare) and node.op == "eq" else None
            wanted = list(node.values) if isinstance(node, In) else wanted
            element_test = dialect.elements_include(ref, wanted, self.ctx) if wanted is not None else None
            if element_test is None:
                element_test = dialect.any_element(ref, self.ctx, predicate)
            terms.append(f"({dialect.is_array(ref)} AND {element_test})")
            if _matches_missing(node):
                terms.append(dialect.is_missing(ref))
        return "(" + " OR ".join(terms) + ")"

    def _on_value(self, node: Predicate, ref: Ref) -> str:
        """The predicate on the value itself, never on its elements (MongoDB's matchesSingleElement)."""
        dialect = self.dialect
        if isinstance(node, Exists):
            return f"({dialect.kind_name(ref)} IS NOT NULL)"
        if isinstance(node, SizeIs):
            size = dialect.size(ref, node.arrays_only)
            return "(" + " AND ".join(f"{size} {SQL_OPERATORS[op]} {n}" for op, n in node.bounds) + ")"
        if isinstance(node, ElemMatch):
            condition, on_values = node.condition, node.on_values

            def element_matches(element: Ref) -> str:
                if on_values:
                    return self.generic(condition, element)
                # sub-documents (and, as in MongoDB, nested arrays) are what a document condition can match
                container = dialect.is_kind(element, ["object", "array"])
                return f"({container} AND {self.generic(condition, element)})"

            return f"({dialect.is_array(ref)} AND {dialect.any_element(ref, self.ctx, element_matches)})"
        return self._element_predicate(node)(ref)

    def _element_predicate(self, node: Predicate) -> Callable[[Ref], str]:
        dialect, ctx = self.dialect, self.ctx
        if isinstance(node, Compare):
            if node.op == "eq":
                return lambda ref: dialect.equals(ref, node.value, ctx)
            return lambda ref: dialect.compare(ref, node.op, node.value, ctx)
        if isinstance(node, In):
            return lambda ref: dialect.in_values(ref, list(node.values), ctx)
        if isinstance(node, Like):
            return lambda ref: dialect.like(ref, node.pattern, node.escape, ctx)
        if isinstance(node, Regex):
            return lambda ref: dialect.regex(ref, node.pattern, node.flags, ctx)
        if isinstance(node, TypeIs):
            return lambda ref: dialect.is_kind(ref, node.kinds)
        raise AssertionError(f"no element predicate for {node!r}")


def _matches_missing(node: Predicate) -> bool:
    """Whether a missing value satisfies the predicate: only equality with null does."""
    if isinstance(node, Compare):
        return node.op == "eq" and node.value is None
    if isinstance(node, In):
        return any(v is None for v in node.values)
    return False
