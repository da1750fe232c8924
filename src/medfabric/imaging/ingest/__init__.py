"""DICOM ingest: one pipeline (parse → validate → place → store → index → publish → audit) that every
ingest path calls, plus its two local drivers, bulk import and the watched drop folder.

Front ends use ``fabric.dicom`` (``medfabric.service.imaging``); nothing here is a way around it.
"""

from medfabric.imaging.ingest.events import IngestEvent
from medfabric.imaging.ingest.metadata import Placement, metadata_document
from medfabric.imaging.ingest.model import IngestItem, IngestOutcome, IngestReport, ParsedInstance, Rejection
from medfabric.imaging.ingest.parse import parse_instance

__all__ = [
    "IngestEvent",
    "IngestItem",
    "IngestOutcome",
    "IngestReport",
    "ParsedInstance",
    "Placement",
    "Rejection",
    "metadata_document",
    "parse_instance",
]
