"""The tamper-evident audit record: its fields, canonical bytes, chain hash and chain verification.

Pure values and functions: the caller stores records, hashes and the anchor. Nothing here ever
accepts a record it cannot serialise canonically, and verification never repairs, skips or reorders.

Canonical bytes: the record as a JSON object (plus ``"v": 1``) with every field present (``null``
when unknown), keys sorted, no whitespace, non-ASCII escaped (``ensure_ascii``, which also keeps
undecodable ``surrogateescape`` path bytes representable), integers only — no floats. That form is
identical on every Python version and easy to reproduce in another language.

Chain: ``hash_n = HMAC-SHA256(key, DOMAIN || hash_{n-1} || canonical(record_n))`` with
``hash_0 = 32 zero bytes`` and ``seq`` counting from 1. Why keyed: an unkeyed chain only proves
that records were not changed by someone who could not also rewrite every later hash — but whoever
can write the catalog (the attacker we worry about) can recompute an unkeyed chain and its anchor.
With the key held outside the catalog (fabric secret / KMS), rewriting needs the key too.
``key=None`` gives plain SHA-256 for tests and for exports verified by third parties without the
key, and must be chosen explicitly. The anchor (head seq + head hash), kept outside the log, turns
"nobody deleted the tail" into something ``verify_chain`` can check.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta

from medfabric.errors import IntegrityError, InvalidInput

FORMAT_VERSION = 1
HASH_SIZE = 32
GENESIS_HASH = bytes(HASH_SIZE)
MIN_KEY_SIZE = 32
_DOMAIN = b"medfabric.audit.v1\x00"
_HEX_HASH = re.compile(f"[0-9a-f]{{{2 * HASH_SIZE}}}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIME_US = 253_402_300_800_000_000  # 10000-01-01: beyond, datetime (and FHIR's instant) cannot go


class Interface(enum.StrEnum):
    CLI = "cli"
    API = "api"
    S3 = "s3"
    WEBHDFS = "webhdfs"
    DICOMWEB = "dicomweb"
    DIMSE = "dimse"
    FUSE = "fuse"


class Outcome(enum.StrEnum):
    ALLOWED = "allowed"
    DENIED = "denied"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One access, allowed or denied. DICOM identifiers use the DICOM keywords, snake-cased."""

    seq: int  # 1, 2, 3, … without gaps, per fabric
    time_us: int  # UTC, microseconds since the Unix epoch
    principal: str
    client_address: str | None
    interface: Interface
    operation: str  # e.g. read, write, create, delete, list, getattr, query, setace
    outcome: Outcome
    volume: str | None = None
    path: str | None = None  # written at write time, so renames later do not rewrite history
    file_id: str | None = None
    patient_id: str | None = None  # PatientID
    study_instance_uid: str | None = None  # StudyInstanceUID
    series_instance_uid: str | None = None  # SeriesInstanceUID
    sop_instance_uid: str | None = None  # SOPInstanceUID
    detail: str | None = None  # e.g. why access was denied

    def __post_init__(self) -> None:
        if type(self.seq) is not int or self.seq < 1:
            raise InvalidInput(f"audit record seq must be an int >= 1, not {self.seq!r}")
        if type(self.time_us) is not int or not 0 <= self.time_us < MAX_TIME_US:
            raise InvalidInput(
                f"audit record time_us must be an int in [0, year 10000), not {self.time_us!r}"
            )
        for name in ("principal", "operation"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise InvalidInput(f"audit record {name} must be non-empty text")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name not in ("seq", "time_us") and value is not None and not isinstance(value, str):
                raise InvalidInput(f"audit record {f.name} must be text, not {type(value).__name__}")
        try:
            object.__setattr__(self, "interface", Interface(self.interface))
            object.__setattr__(self, "outcome", Outcome(self.outcome))
        except ValueError as error:
            raise InvalidInput(f"audit record: {error}") from None

    @property
    def recorded_at(self) -> datetime:
        return _EPOCH + timedelta(microseconds=self.time_us)

    def canonical_bytes(self) -> bytes:
        document: dict[str, object] = {"v": FORMAT_VERSION}
        document.update((field.name, getattr(self, field.name)) for field in _FIELDS)  # all scalars
        document["interface"] = self.interface.value
        document["outcome"] = self.outcome.value
        return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")

    @classmethod
    def from_canonical(cls, data: bytes) -> AuditRecord:
        """The inverse of ``canonical_bytes``; refuses anything that is not exactly that form."""
        try:
            document = json.loads(data.decode("ascii"))
        except (UnicodeDecodeError, ValueError) as error:
            raise IntegrityError(f"audit record is not canonical JSON: {error}") from None
        expected = {"v", *(f.name for f in fields(cls))}
        if not isinstance(document, dict) or set(document) != expected or document["v"] != FORMAT_VERSION:
            raise IntegrityError("audit record has unexpected fields or format version")
        del document["v"]
        try:
            record = cls(**document)
        except InvalidInput as error:
            raise IntegrityError(f"audit record is invalid: {error.message}") from None
        if record.canonical_bytes() != data:
            raise IntegrityError("audit record bytes are not in canonical form")
        return record


def utc_now_us() -> int:
    return (datetime.now(UTC) - _EPOCH) // timedelta(microseconds=1)


_FIELDS = fields(AuditRecord)


def chain_hash(
    prev_hash: bytes, record: AuditRecord, *, key: bytes | None, canonical: bytes | None = None
) -> bytes:
    """The link for ``record`` after ``prev_hash`` (keyed HMAC-SHA256, or SHA-256 with ``key=None``);
    ``canonical``: ``record.canonical_bytes()``, if the caller has them already."""
    if len(prev_hash) != HASH_SIZE:
        raise InvalidInput(f"previous audit hash must be {HASH_SIZE} bytes, got {len(prev_hash)}")
    message = _DOMAIN + prev_hash + (canonical if canonical is not None else record.canonical_bytes())
    if key is None:
        return hashlib.sha256(message).digest()
    if len(key) < MIN_KEY_SIZE:
        raise InvalidInput(f"audit chain key must be at least {MIN_KEY_SIZE} bytes")
    return hmac.new(key, message, hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class Anchor:
    """The chain's head (last seq and its hash), kept outside the log; ``Anchor.GENESIS`` is the start."""

    seq: int
    head_hash: bytes

    def __post_init__(self) -> None:
        if type(self.seq) is not int or self.seq < 0 or len(self.head_hash) != HASH_SIZE:
            raise InvalidInput(f"an audit anchor needs seq >= 0 and a {HASH_SIZE}-byte hash")

    def to_json(self) -> str:
        document = {"hash": self.head_hash.hex(), "seq": self.seq, "v": FORMAT_VERSION}
        return json.dumps(document, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Anchor:
        try:
            document = json.loads(text)
            if set(document) != {"hash", "seq", "v"} or document["v"] != FORMAT_VERSION:
                raise ValueError("unexpected fields or format version")
            seq, head_hash = document["seq"], document["hash"]
            if type(seq) is not int or not isinstance(head_hash, str) or not _HEX_HASH.fullmatch(head_hash):
                raise ValueError("seq must be an integer and hash 64 lowercase hex digits")
            return cls(seq, bytes.fromhex(head_hash))
        except (ValueError, TypeError, InvalidInput) as error:
            raise InvalidInput(f"not an audit anchor: {error}") from None


GENESIS = Anchor(0, GENESIS_HASH)


def extend(head: Anchor, record: AuditRecord, *, key: bytes | None) -> Anchor:
    """Append ``record`` after ``head``: checks the seq follows, returns the new head (store both)."""
    if record.seq != head.seq + 1:
        raise InvalidInput(f"audit record seq {record.seq} does not follow head seq {head.seq}")
    return Anchor(record.seq, chain_hash(head.head_hash, record, key=key))


class ChainFailure(enum.StrEnum):
    HASH_MISMATCH = "hash_mismatch"  # a field, or the stored hash, was changed
    MISSING_RECORD = "missing_record"  # a seq gap: deleted (or moved later) records
    OUT_OF_ORDER = "out_of_order"  # a seq repeats or goes back: duplicated or reordered records
    TRUNCATED = "truncated"  # the log ends before the anchor's head
    ANCHOR_MISMATCH = "anchor_mismatch"  # the record at the anchor's seq has another hash


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    records_checked: int
    head: Anchor  # the last record that verified (``start`` if none)
    first_bad_seq: int | None = None
    failure: ChainFailure | None = None
    reason: str | None = None

    def raise_for_failure(self) -> None:
        if not self.ok:
            raise IntegrityError(f"audit chain broken at seq {self.first_bad_seq}: {self.reason}")


def verify_chain(
    records: Iterable[tuple[AuditRecord, bytes]],
    anchor: Anchor | None,
    *,
    key: bytes | None,
    start: Anchor = GENESIS,
) -> VerifyResult:
    """Check records (in stored order, each with its stored hash) from ``start``; stop at the first break.

    ``first_bad_seq`` is the seq at which the chain first stops being what it should be: the changed
    record, the first missing seq, or the first seq after the surviving tail. The anchor proves the log
    reached at least ``anchor.seq`` with ``anchor.head_hash``; records after it are chain-checked only.
    """
    if anchor is not None and anchor.seq < start.seq:
        raise InvalidInput(f"anchor seq {anchor.seq} precedes the verification start {start.seq}")
    head, checked = start, 0

    def broken(seq: int, failure: ChainFailure, reason: str) -> VerifyResult:
        return VerifyResult(False, checked, head, seq, failure, reason)

    anchor_hash = anchor.head_hash if anchor is not None else b""
    anchor_seq = anchor.seq if anchor is not None else -1
    if anchor_seq == start.seq and not hmac.compare_digest(anchor_hash, start.head_hash):
        return broken(start.seq, ChainFailure.ANCHOR_MISMATCH, "start hash differs from the anchor's")
    for record, stored_hash in records:
        expected = head.seq + 1
        if record.seq > expected:
            gap = f"seq {expected}" + (f"..{record.seq - 1}" if record.seq - 1 > expected else "")
            return broken(expected, ChainFailure.MISSING_RECORD, f"{gap} missing; next is {record.seq}")
        if record.seq < expected:
            reason = f"expected seq {expected}, found {record.seq} again"
            return broken(expected, ChainFailure.OUT_OF_ORDER, reason)
        link = chain_hash(head.head_hash, record, key=key)
        if not hmac.compare_digest(link, stored_hash):
            reason = "stored hash does not match the record and the chain"
            return broken(record.seq, ChainFailure.HASH_MISMATCH, reason)
        if record.seq == anchor_seq and not hmac.compare_digest(link, anchor_hash):
            return broken(record.seq, ChainFailure.ANCHOR_MISMATCH, "record hash differs from the anchor's")
        head, checked = Anchor(record.seq, link), checked + 1
    if head.seq < anchor_seq:
        reason = f"log ends at seq {head.seq} but the anchor's head is seq {anchor_seq}"
        return broken(head.seq + 1, ChainFailure.TRUNCATED, reason)
    return VerifyResult(True, checked, head)
