"""The imaging index: patients / studies / series / instances in the catalog, written by ingest in the
files' own transaction (``rows``) and queried with JSON conditions (``query``).
"""

from medfabric.imaging.index.query import COLUMNS, FIELDS, LEVELS, find
from medfabric.imaging.index.rows import (
    InstanceRecord,
    StoredInstance,
    delete_instances,
    lookup,
    record,
    refresh_counts,
)

__all__ = [
    "COLUMNS",
    "FIELDS",
    "LEVELS",
    "InstanceRecord",
    "StoredInstance",
    "delete_instances",
    "find",
    "lookup",
    "record",
    "refresh_counts",
]
