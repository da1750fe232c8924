"""The imaging metadata document: one per stored instance in `/medical_metadata`.

Hot fields in snake_case first (what the seed's query and most research queries use), then every
other attribute of the data set under its DICOM keyword (``attributes.py``). Pure functions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from medfabric.docdb.documents import EncodedDocument, encode_body
from medfabric.errors import InvalidInput
from medfabric.imaging.ingest.model import ParsedInstance

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

HOT_FIELDS = (
    "patient_id",
    "patient_name",
    "study_uid",
    "study_date",
    "modality",
    "series_uid",
    "sop_uid",
    "sop_class_uid",
    "path",
    "volume",
    "size",
    "transfer_syntax",
    "version",
    "ingested_at",
)


@dataclass(frozen=True)
class Placement:
    """Where an instance was put: what its metadata document records besides the DICOM attributes."""

    volume: str
    path: str
    version: int = 1
    ingested_at: int = 0  # ms since the epoch, UTC


def document_id(sop_uid: str, version: int) -> str:
    """``_id`` of a metadata document: the SOP Instance UID; ``<uid>;v<n>`` for a later version."""
    return sop_uid if version == 1 else f"{sop_uid};v{version}"


def metadata_document(dataset: Dataset | ParsedInstance, placement: Placement) -> dict[str, Any]:
    """The `/medical_metadata` document of one stored instance: hot fields, then every attribute."""
    if isinstance(dataset, ParsedInstance):
        parsed = dataset
    else:
        from medfabric.imaging.ingest.attributes import dataset_json
        from medfabric.imaging.ingest.parse import parsed_from_attributes

        meta = getattr(dataset, "file_meta", None)
        syntax = str(meta.get("TransferSyntaxUID") or "") if meta is not None else ""
        parsed = parsed_from_attributes(dataset_json(dataset), transfer_syntax_uid=syntax)
    fields = parsed.fields()
    document: dict[str, Any] = {"_id": document_id(parsed.sop_instance_uid, placement.version)}
    for key in HOT_FIELDS:
        document[key] = fields.get(key)
    document.update(
        path=placement.path,
        volume=placement.volume,
        version=placement.version,
        ingested_at=placement.ingested_at,
    )
    attributes = parsed.attributes
    if not attributes and parsed.attributes_text:
        attributes = json.loads(parsed.attributes_text)
    for key, value in attributes.items():
        document.setdefault(key, value)
    return document


def with_attributes_text(parsed: ParsedInstance) -> ParsedInstance:
    """``parsed`` carrying its attributes as JSON text instead of a dict: a parsing worker does the
    encoding, and sends the main process a string, which is much cheaper to pass than the dict."""
    own = set(HOT_FIELDS)
    try:
        text = encode_body({key: value for key, value in parsed.attributes.items() if key not in own})
    except InvalidInput:
        return parsed  # the main process reports it
    return replace(parsed, attributes={}, attributes_text=text)


def metadata_encoded(parsed: ParsedInstance, placement: Placement) -> EncodedDocument:
    """``metadata_document`` in stored form, equal to encoding it, spliced from the attributes'
    JSON text when a worker made it (no dict to build and encode on the ingest path)."""
    if parsed.attributes_text is None:
        document = metadata_document(parsed, placement)
        doc_id = document.pop("_id")
        return EncodedDocument(doc_id, encode_body(document))
    fields = parsed.fields()
    head: dict[str, Any] = {key: fields.get(key) for key in HOT_FIELDS}
    head.update(
        path=placement.path,
        volume=placement.volume,
        version=placement.version,
        ingested_at=placement.ingested_at,
    )
    body = encode_body(head)
    if parsed.attributes_text != "{}":
        body = f"{body[:-1]},{parsed.attributes_text[1:]}"
    return EncodedDocument(document_id(parsed.sop_instance_uid, placement.version), body)
