"""JSON document tables (MapR-DB JSON / OJAI) stored in the catalog database, queried with MongoDB's rules.

Storage layout, per table id N (the fabric allocates N; this package never chooses one):

- ``doc_N (_id TEXT PRIMARY KEY, doc)`` holds one row per document. ``_id`` is a string, kept only
  in its column (``insert`` generates a random UUID when a document has none); ``doc`` is the rest
  of the document as compact JSON: TEXT on SQLite (read with JSON1), JSONB on PostgreSQL. On
  PostgreSQL ``_id`` is collated "C", so that ``_id`` ranges and sorting follow byte order, as in
  MongoDB.
- ``doc_N_ix (name, fields)`` records the secondary indexes, e.g.
  ``("by_date", "modality:asc,study_date:desc")``.
- Index ``doc_N_ix_<name>`` is an expression index over the fields (``json_extract(doc, '$.modality')``
  on SQLite, ``(doc->'modality')`` on PostgreSQL). For each prefix of an indexed path, a partial
  index ``doc_N_arr_<hash>`` covers the (usually few) documents that hold an array there, with
  expression statistics ``doc_N_arr_<hash>_st`` on PostgreSQL.

Every operation takes the caller's SQLAlchemy connection and never commits or rolls back, so a
document changes in the caller's transaction. Conditions, projections and sort orders are
translated to SQL over JSON and run in the database: conditions.py parses both condition syntaxes,
translate.py holds MongoDB's matching rules and the index-friendly shape of the SQL, sqlite_sql.py and
postgres_sql.py spell it for each database, mutations.py applies OJAI mutations, table.py ties it up.

Choices worth knowing: ``update`` of a missing document raises NotFound unless ``upsert=True``;
``delete`` returns whether a document was there; ``limit=0`` means no limit, as in MongoDB; on an
error inside ``insert_many`` the caller must roll back (PostgreSQL has aborted the transaction anyway).
"""

from medfabric.docdb.indexes import IndexField, IndexInfo
from medfabric.docdb.table import DocumentTable

__all__ = ["DocumentTable", "IndexField", "IndexInfo"]
