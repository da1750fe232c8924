"""Data lineage: where each file came from, and what was derived from what, with which transform.

An edge says "output was made from input by transform(params)". Inputs are fabric paths or URIs of
outside sources (``file://host/path`` for an import, ``dicom://AE@host`` for a C-STORE). Outputs are
found again by inode after a rename. Recording needs write access to the outputs' volume (the
service records while writing); reading needs read access to the path asked about.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from medfabric.catalog.schema import lineage
from medfabric.errors import InvalidInput, NotFound
from medfabric.fs.paths import local_file_uri
from medfabric.service.paths import locate, walk_checked

if TYPE_CHECKING:
    from medfabric.service.fabric import Fabric

MAX_DEPTH = 32


@dataclass(frozen=True)
class Edge:
    output: str
    input: str
    transform: str
    params: dict[str, Any]
    principal: str
    recorded_at: int

    def as_json(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "input": self.input,
            "transform": self.transform,
            "params": self.params,
            "principal": self.principal,
            "recordedAt": self.recorded_at,
        }


file_source = local_file_uri  # the URI of a local file on this host, as an input


def edge_rows(
    outputs: Sequence[tuple[str, int | None]],
    inputs: Sequence[str],
    transform: str,
    params: Mapping[str, Any],
    principal: str,
    now_ms: int,
) -> list[dict[str, Any]]:
    text = json.dumps(dict(params), sort_keys=True, default=str)
    return [
        {
            "output": output,
            "output_ino": ino,
            "input": source,
            "transform": transform,
            "params": text,
            "principal": principal,
            "recorded_at": now_ms,
        }
        for output, ino in outputs
        for source in inputs
    ]


def insert_edges(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(lineage.insert(), rows)


class LineageService:
    def __init__(self, fabric: Fabric) -> None:
        self.fabric = fabric

    def record(
        self,
        outputs: Sequence[str],
        inputs: Sequence[str],
        transform: str,
        params: Mapping[str, Any] | None = None,
    ) -> int:
        """Record that every output was derived from all inputs by ``transform`` with ``params``."""
        fabric = self.fabric
        if not outputs or not inputs or not transform:
            raise InvalidInput("lineage needs outputs, inputs and a transform")
        with fabric.access("lineage record") as note, fabric.catalog.write() as conn:
            note.detail = f"{transform}: {len(inputs)} inputs -> {len(outputs)} outputs"
            resolved: list[tuple[str, int | None]] = []
            for output in outputs:
                located = locate(conn, output)
                entry = walk_checked(conn, located, fabric.principal)[-1]
                from medfabric.service.access import WRITE, require

                if entry.is_file:
                    require(fabric.principal, located.volume, entry, WRITE, output)
                resolved.append((located.path, entry.ino))
            rows = edge_rows(
                resolved, list(inputs), transform, params or {}, fabric.principal.name, fabric.clock.now_ms()
            )
            insert_edges(conn, rows)
            return len(rows)

    def _edges_out_of(self, conn: Connection, path: str, ino: int | None) -> list[Edge]:
        condition = lineage.c.output == path
        if ino is not None:
            condition = sa.or_(condition, lineage.c.output_ino == ino)
        return [
            _edge(row) for row in conn.execute(sa.select(lineage).where(condition).order_by(lineage.c.id))
        ]

    def _edges_into(self, conn: Connection, path: str) -> list[Edge]:
        return [
            _edge(row)
            for row in conn.execute(sa.select(lineage).where(lineage.c.input == path).order_by(lineage.c.id))
        ]

    def show(self, path: str, *, direction: str = "upstream") -> list[Edge]:
        """Every edge reachable from ``path``: its sources (upstream), or what was made from it."""
        if direction not in ("upstream", "downstream"):
            raise InvalidInput("direction is upstream or downstream")
        fabric = self.fabric
        with fabric.access("lineage show", path) as note, fabric.catalog.read() as conn:
            ino: int | None = None
            if path.startswith("/"):
                located = locate(conn, path)
                note.target(located.volume)
                try:
                    ino = walk_checked(conn, located, fabric.principal)[-1].ino
                except NotFound:
                    ino = None
                path = located.path
            found: list[Edge] = []
            seen = {path}
            frontier = [(path, ino)]
            for _depth in range(MAX_DEPTH):
                following: list[tuple[str, int | None]] = []
                for node, node_ino in frontier:
                    edges = (
                        self._edges_out_of(conn, node, node_ino)
                        if direction == "upstream"
                        else self._edges_into(conn, node)
                    )
                    for edge in edges:
                        found.append(edge)
                        nxt = edge.input if direction == "upstream" else edge.output
                        if nxt not in seen:
                            seen.add(nxt)
                            following.append((nxt, None))
                frontier = following
                if not frontier:
                    break
            return found


def _edge(row: Any) -> Edge:
    return Edge(
        str(row.output),
        str(row.input),
        str(row.transform),
        json.loads(row.params),
        str(row.principal),
        int(row.recorded_at),
    )
