"""The values that cross the ingest pipeline: a parsed instance, a rejection, an item to ingest and
what became of it. Frozen dataclasses of plain values (they travel between processes); no I/O here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from medfabric.errors import MedfabricError

# Why a file was not stored. The first four are the synthetic corpus' BadFileReason values.
EMPTY = "empty"
NOT_DICOM = "not_dicom"
TRUNCATED = "truncated"
UNREADABLE = "unreadable"
MISSING_PREFIX = "missing_"  # + the attribute in snake_case, e.g. missing_sop_instance_uid
CONFLICT = "conflict"  # another object is stored under the SOP Instance UID (policy reject)
PATH_CONFLICT = "path_conflict"  # a file that the index does not know is in the way
UNROUTED = "unrouted"  # no routing rule matched and there is no default volume
NOT_FOUND = "not_found"  # the file vanished before it could be read
NOT_A_FILE = "not_a_file"  # a FIFO, socket or device: reading it could block or never end
DICOMDIR = "dicomdir"  # a media directory (PS3.10), not an instance

Status = Literal["stored", "duplicate", "rejected", "failed"]


@dataclass(frozen=True)
class ParsedInstance:
    """What ingest needs from one Part 10 file, read without its pixel data.

    Attribute values are as pydicom decodes them (trailing padding stripped); a missing or empty
    attribute is None. ``attributes`` is the file's data set as plain JSON (see ``attributes.py``),
    or ``attributes_text`` that as JSON text.
    """

    sop_instance_uid: str
    sop_class_uid: str
    series_instance_uid: str
    study_instance_uid: str
    transfer_syntax_uid: str
    size: int
    digest: bytes  # BLAKE3-256 of the whole file
    header_length: int  # bytes before Pixel Data (the part that was parsed)
    patient_id: str | None = None
    issuer_of_patient_id: str | None = None
    patient_name: str | None = None
    patient_birth_date: str | None = None
    patient_sex: str | None = None
    study_date: str | None = None
    study_time: str | None = None
    accession_number: str | None = None
    study_description: str | None = None
    referring_physician_name: str | None = None
    modality: str | None = None
    series_number: int | None = None
    series_description: str | None = None
    body_part_examined: str | None = None
    instance_number: int | None = None
    attributes: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # ``attributes`` as JSON text, less the metadata document's own fields, made by a parsing worker
    # (``metadata.with_attributes_text``); when set, ``attributes`` is left empty
    attributes_text: str | None = field(default=None, compare=False, repr=False)

    def fields(self) -> dict[str, Any]:
        """The instance under the field names that routing rules, `dicom find` and the metadata
        table share (snake_case, UIDs shortened as in the seed's query)."""
        return {
            "patient_id": self.patient_id,
            "issuer_of_patient_id": self.issuer_of_patient_id,
            "patient_name": self.patient_name,
            "patient_birth_date": self.patient_birth_date,
            "patient_sex": self.patient_sex,
            "study_uid": self.study_instance_uid,
            "study_date": self.study_date,
            "study_time": self.study_time,
            "accession_number": self.accession_number,
            "study_description": self.study_description,
            "referring_physician_name": self.referring_physician_name,
            "series_uid": self.series_instance_uid,
            "modality": self.modality,
            "series_number": self.series_number,
            "series_description": self.series_description,
            "body_part_examined": self.body_part_examined,
            "sop_uid": self.sop_instance_uid,
            "sop_class_uid": self.sop_class_uid,
            "instance_number": self.instance_number,
            "transfer_syntax": self.transfer_syntax_uid,
            "size": self.size,
        }


@dataclass(frozen=True)
class Rejection:
    """A file that ingest refuses, with a stable reason code and a sentence for people."""

    reason: str
    message: str


@dataclass(frozen=True)
class IngestItem:
    """One object offered to the pipeline by any ingest path.

    ``data`` is a DICOM Part 10 file (preamble, "DICM", file meta, data set). ``source`` says where
    it came from, for the report and the audit trail (a local path, "c-store from CT01", …).
    ``parsed`` may carry a parse of exactly these bytes made elsewhere (a worker process), so the
    pipeline does not parse twice. ``volume`` forces the volume, bypassing the routing rules.
    """

    data: bytes
    source: str
    parsed: ParsedInstance | None = None
    volume: str | None = None
    origin: str | None = (
        None  # a URI recorded as the stored file's lineage (file://host/path, dicom://AE@host)
    )


@dataclass(frozen=True)
class IngestOutcome:
    """What became of one item: stored (path, version), a duplicate of a stored object, rejected
    (bad input: ``reason``), or failed (the fabric refused: ``error``)."""

    source: str
    status: Status
    reason: str = ""
    message: str = ""
    volume: str | None = None
    path: str | None = None
    sop_uid: str | None = None
    version: int = 1
    size: int = 0
    error: MedfabricError | None = field(default=None, compare=False)
    patient_id: str | None = None
    study_uid: str | None = None
    series_uid: str | None = None

    def as_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"source": self.source, "status": self.status}
        if self.reason:
            document["reason"] = self.reason
        if self.message:
            document["message"] = self.message
        if self.error is not None:
            document["error"] = self.error.code
        for key in ("volume", "path", "sop_uid"):
            if getattr(self, key) is not None:
                document[key] = getattr(self, key)
        if self.status == "stored":
            document["version"] = self.version
            document["size"] = self.size
        return document


@dataclass
class IngestReport:
    """The outcomes of one ingest call (or of a whole import, merged), in the order offered."""

    outcomes: list[IngestOutcome] = field(default_factory=list)
    seconds: float = 0.0
    aborted: str | None = None  # why an import stopped early (the fabric refused a batch)

    def extend(self, other: IngestReport) -> None:
        self.outcomes.extend(other.outcomes)

    def counts(self) -> Counter[str]:
        return Counter(outcome.status for outcome in self.outcomes)

    @property
    def stored(self) -> list[IngestOutcome]:
        return [o for o in self.outcomes if o.status == "stored"]

    @property
    def duplicates(self) -> list[IngestOutcome]:
        return [o for o in self.outcomes if o.status == "duplicate"]

    @property
    def rejected(self) -> list[IngestOutcome]:
        return [o for o in self.outcomes if o.status == "rejected"]

    @property
    def failed(self) -> list[IngestOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def stored_bytes(self) -> int:
        return sum(o.size for o in self.outcomes if o.status == "stored")

    def summary(self) -> dict[str, Any]:
        counts = self.counts()
        rate = len(self.outcomes) / self.seconds if self.seconds > 0 else None
        return {
            "files": len(self.outcomes),
            "stored": counts["stored"],
            "duplicates": counts["duplicate"],
            "rejected": counts["rejected"],
            "failed": counts["failed"],
            "storedBytes": self.stored_bytes,
            "seconds": round(self.seconds, 3),
            "filesPerSecond": round(rate, 1) if rate is not None else None,
            "aborted": self.aborted,
            "rejections": [o.as_json() for o in self.outcomes if o.status in ("rejected", "failed")],
        }
