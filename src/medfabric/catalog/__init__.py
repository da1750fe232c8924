"""The catalog engine: every piece of metadata in SQL, through SQLAlchemy Core.

One schema (``schema.py``), versioned by Alembic (``migrations/``), running unchanged on SQLite
(the embedded default, WAL) and PostgreSQL (many stateless processes sharing one catalog).
"""

from medfabric.catalog.engine import Catalog, open_catalog

__all__ = ["Catalog", "open_catalog"]
