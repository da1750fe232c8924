"""The shape of query results: parsing ``select`` and ``order_by``, and projecting fetched fields.

The database fetches only the top-level fields a projection names; this module trims them to the
selected dotted paths with MongoDB's rules (arrays keep their sub-documents, lose their scalars).
It never filters or sorts documents itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from medfabric.docdb.paths import FieldPath, parse_path
from medfabric.errors import InvalidInput

Trie: TypeAlias = dict[str, "Trie | None"]  # None: take the whole value
_MISSING = object()


@dataclass(frozen=True)
class SortKey:
    path: FieldPath
    descending: bool = False


@dataclass(frozen=True)
class Projection:
    """The fields to return (None: all of them) and whether ``_id`` is among them."""

    paths: tuple[FieldPath, ...] | None
    include_id: bool = True


def parse_select(select: object) -> Projection:
    """``"a,b.c"``, ``["a", "b.c"]`` or MongoDB's ``{"a": 1, "b.c": 1, "_id": 0}``; None: whole documents."""
    if select is None:
        return Projection(None)
    if isinstance(select, Mapping):
        include_id = True
        paths: list[FieldPath] = []
        for key, keep in select.items():
            if key == "_id" and not keep:
                include_id = False
            elif keep in (1, True) and isinstance(key, str):
                paths.append(parse_path(key))
            else:
                raise InvalidInput(
                    f"select {select!r}: name the fields to keep (exclusion works for _id only)"
                )
        return Projection(tuple(paths) if paths or include_id else None, include_id)
    items = select.split(",") if isinstance(select, str) else select
    if not isinstance(items, Sequence) or not all(isinstance(item, str) for item in items):
        raise InvalidInput(
            f"select takes field paths (a list, or one comma-separated string), not {select!r}"
        )
    return Projection(tuple(parse_path(item.strip()) for item in items if item.strip()))


def parse_order_by(order_by: object) -> tuple[SortKey, ...]:
    """``"a,b:desc"``, ``["a", ("b", "desc")]`` or ``{"a": 1, "b": -1}``."""
    if order_by is None:
        return ()
    if isinstance(order_by, str):
        items: list[Any] = [item for item in order_by.split(",") if item.strip()]
    elif isinstance(order_by, Mapping):
        items = list(order_by.items())
    elif isinstance(order_by, Sequence):
        items = list(order_by)
    else:
        raise InvalidInput(f"order_by takes field paths with directions, not {order_by!r}")
    keys: list[SortKey] = []
    for item in items:
        if isinstance(item, str):
            path, _, direction = item.strip().rpartition(":") if ":" in item else (item.strip(), "", "asc")
            keys.append(SortKey(parse_path(path.strip()), _descending(direction.strip(), order_by)))
        elif isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str):
            keys.append(SortKey(parse_path(item[0]), _descending(item[1], order_by)))
        else:
            raise InvalidInput(f"order_by: cannot read {item!r}")
    return tuple(keys)


def _descending(direction: object, spec: object) -> bool:
    if direction in ("asc", "ASC", 1):
        return False
    if direction in ("desc", "DESC", -1):
        return True
    raise InvalidInput(f"order_by {spec!r}: direction must be asc/desc (or 1/-1), not {direction!r}")


def projection_trie(paths: Sequence[FieldPath]) -> Trie:
    trie: Trie = {}
    for path in paths:
        node = trie
        for component in path.components[:-1]:
            child = node.get(component, {})
            if child is None:  # a shorter path already takes the whole value
                break
            node[component] = child
            node = child
        else:
            node[path.components[-1]] = None
    return trie


def project(trie: Trie | None, value: Any) -> Any:
    """The part of ``value`` under ``trie``; _MISSING when nothing of it is there."""
    if trie is None:
        return value
    if isinstance(value, dict):
        out = {}
        for key, sub in trie.items():
            if key in value:
                kept = project(sub, value[key])
                if kept is not _MISSING:
                    out[key] = kept
        return out
    if isinstance(value, list):
        kept_items = [project(trie, item) for item in value if isinstance(item, (dict, list))]
        return [item for item in kept_items if item is not _MISSING]
    return _MISSING


def assemble(
    doc_id: str | None, top_keys: Sequence[str], texts: Sequence[str | None], trie: Trie
) -> dict[str, Any]:
    """A projected document from the JSON text of each fetched top-level field (None when missing)."""
    document: dict[str, Any] = {} if doc_id is None else {"_id": doc_id}
    for key, text in zip(top_keys, texts, strict=True):
        if text is None:
            continue
        kept = project(trie[key], json.loads(text))
        if kept is not _MISSING:
            document[key] = kept
    return document
