"""`medfabric table …`: JSON tables after maprcli's `table` family, plus insert and find."""

from __future__ import annotations

import json as jsonlib
import sys
from pathlib import Path
from typing import Any

import click

from medfabric.cli.common import command, emit, json_option, open_fabric, opt, print_fields, print_json


@click.group("table")
def table() -> None:
    """JSON tables (MapR-DB JSON) in the namespace."""


@command(table, "create")
@opt("path", required=True, help="Where the table lives, e.g. /medical_metadata.")
@json_option
def create(path: str, json: bool) -> None:
    """Create a JSON table.

    Example: medfabric table create -path /medical_metadata
    """
    with open_fabric() as fabric:
        info = fabric.tables.create(path)
    emit(json, [info.as_json()], f"Created table {path}")


@command(table, "delete")
@opt("path", required=True)
@json_option
def delete(path: str, json: bool) -> None:
    """Delete a JSON table and its documents."""
    with open_fabric() as fabric:
        fabric.tables.delete(path)
    emit(json, [], f"Deleted table {path}")


@command(table, "info")
@opt("path", required=True)
@json_option
def info(path: str, json: bool) -> None:
    """Show a table's size and indexes."""
    with open_fabric() as fabric:
        document = fabric.tables.info(path).as_json()
    emit(json, [document], lambda: print_fields(document))


@click.group("index")
def index() -> None:
    """Secondary indexes of a JSON table."""


table.add_command(index)


@command(index, "add")
@opt("path", required=True)
@opt("index", required=True, help="The index's name.")
@opt("indexedfields", required=True, help='Fields with directions, e.g. "modality:asc,study_date:desc".')
@json_option
def index_add(path: str, index: str, indexedfields: str, json: bool) -> None:
    """Add a secondary index (a real database index the queries use).

    Example: medfabric table index add -path /medical_metadata -index by_date
    -indexedfields "modality:asc,study_date:desc"
    """
    with open_fabric() as fabric:
        added = fabric.tables.add_index(path, index, indexedfields)
    emit(
        json, [{"name": added.name, "indexedfields": added.spec}], f"Added index {added.name} ({added.spec})"
    )


@command(index, "remove")
@opt("path", required=True)
@opt("index", required=True)
@json_option
def index_remove(path: str, index: str, json: bool) -> None:
    """Remove a secondary index."""
    with open_fabric() as fabric:
        fabric.tables.drop_index(path, index)
    emit(json, [], f"Removed index {index}")


@command(index, "list")
@opt("path", required=True)
@json_option
def index_list(path: str, json: bool) -> None:
    """List a table's secondary indexes."""
    with open_fabric() as fabric:
        rows = [
            {"name": found.name, "indexedfields": found.spec} for found in fabric.tables.list_indexes(path)
        ]

    def text() -> None:
        for row in rows:
            click.echo(f"{row['name']}  {row['indexedfields']}")

    emit(json, rows, text)


@command(table, "insert")
@opt("path", required=True)
@opt("file", required=True, help="JSON Lines (one document per line), or - for standard input.")
@opt("replace", is_flag=True, help="Replace documents whose _id exists (default: refuse them).")
@json_option
def insert(path: str, file: str, replace: bool, json: bool) -> None:
    """Insert documents from a JSON Lines file.

    Example: medfabric table insert -path /medical_metadata -file docs.jsonl
    """
    from medfabric.errors import InvalidInput

    text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    documents: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            document = jsonlib.loads(line)
        except jsonlib.JSONDecodeError as error:
            raise InvalidInput(f"{file}, line {number}: not JSON ({error.msg})") from error
        if not isinstance(document, dict):
            raise InvalidInput(f"{file}, line {number}: a document is a JSON object")
        documents.append(document)
    with open_fabric() as fabric:
        count = fabric.tables.change(path, "insert_many", documents, replace=replace)
    emit(json, [{"inserted": count}], f"Inserted {count} documents into {path}")


@command(table, "find")
@opt("path", required=True)
@opt(
    "c",
    "--condition",
    help='A JSON condition, e.g. \'{"modality": "MR", "study_date": {"$gt": "20240101"}}\'.',
)
@opt("select", help="Comma-separated fields to return.")
@opt("orderby", help="Fields to sort by, e.g. study_date:desc.")
@opt("limit", type=click.IntRange(0))
@opt("offset", type=click.IntRange(0))
@json_option
def find(
    path: str,
    c: str | None,
    select: str | None,
    orderby: str | None,
    limit: int | None,
    offset: int | None,
    json: bool,
) -> None:
    """Find documents matching a condition (MongoDB semantics, run in the database).

    Example: medfabric table find -path /medical_metadata -c '{"modality": "MR"}' -limit 10
    """
    with open_fabric() as fabric:
        rows = fabric.tables.find(path, c, select=select, order_by=orderby, limit=limit, offset=offset)
    if json:
        print_json(
            {
                "status": "OK",
                "timestamp": __import__("time").time_ns() // 1_000_000,
                "total": len(rows),
                "data": rows,
            }
        )
        return
    for row in rows:
        click.echo(jsonlib.dumps(row, ensure_ascii=False, default=str))
