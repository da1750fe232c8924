"""Alembic environment: migrations run on the connection the Catalog hands over."""

from __future__ import annotations

from alembic import context

from medfabric.catalog.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("medfabric migrations run through Catalog.upgrade(), which passes a connection")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
context.run_migrations()
