"""Alembic environment: migrations run on the connection the Catalog hands over."""

from __future__ import annotations

from alembic import context

from medfabric.catalog.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("medfabric migrations run through Catalog.upgrade(), which passes a connection")


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """JSON tables (doc_N, doc_N_ix and their indexes) are made at run time by medfabric.docdb."""
    text = name or ""
    return not text.startswith("doc_") or text.startswith("doc_tables")


context.configure(
    connection=connection, target_metadata=metadata, render_as_batch=True, include_object=include_object
)
context.run_migrations()
