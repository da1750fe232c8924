"""Keyed, deterministic pseudonyms: HMAC-SHA256 of the original value under the caller's secret.

Same secret and same original give the same pseudonym in any process, which keeps studies coherent when
instances are de-identified independently. This module never stores originals and never logs the secret.
"""

from __future__ import annotations

import hashlib
import hmac

from medfabric.errors import InvalidInput

_UID_CACHE_LIMIT = 200_000


def _normalise_name(name: str) -> str:
    """A person name compared loosely: case-folded, components trimmed, empty trailing components dropped."""
    groups = []
    for group in name.split("="):
        components = [c.strip() for c in group.split("^")]
        while components and not components[-1]:
            components.pop()
        groups.append("^".join(components))
    while groups and not groups[-1]:
        groups.pop()
    return "=".join(groups).upper()


class Pseudonymizer:
    """Derives every replacement value from one secret; each kind of value has its own HMAC domain."""

    def __init__(self, secret: bytes, *, max_date_shift_days: int = 3650) -> None:
        if not isinstance(secret, bytes | bytearray) or len(secret) < 16:
            raise InvalidInput("the de-identification secret must be at least 16 bytes")
        self._mac = hmac.new(bytes(secret), digestmod=hashlib.sha256)
        self._max_shift = max_date_shift_days
        self._uids: dict[str, str] = {}

    def _digest(self, domain: bytes, value: str) -> bytes:
        mac = self._mac.copy()
        mac.update(domain + b"\x00" + value.encode("utf-8", "surrogateescape"))
        return mac.digest()

    def uid(self, original: str) -> str:
        """A 2.25 UID (a UUIDv8 read as an integer, at most 44 characters) standing for `original`."""
        original = original.rstrip("\x00 ")
        cached = self._uids.get(original)
        if cached is not None:
            return cached
        value = int.from_bytes(self._digest(b"uid", original)[:16], "big")
        value = (value & ~(0xF << 76)) | (0x8 << 76)  # UUID version 8 (RFC 9562 custom)
        value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
        replacement = f"2.25.{value}"
        if len(self._uids) >= _UID_CACHE_LIMIT:
            self._uids.clear()
        self._uids[original] = replacement
        return replacement

    def patient_id(self, original: str) -> str:
        """A Patient ID pseudonym: 'PSN' and 20 hex digits."""
        return "PSN" + self._digest(b"PatientID", original.strip()).hex()[:20].upper()

    def patient_name(self, original: str) -> str:
        """A Patient's Name pseudonym: family name 'PSN', given name 12 hex digits."""
        return "PSN^" + self._digest(b"PatientName", _normalise_name(original)).hex()[:12].upper()

    def ae_title(self, original: str) -> str:
        """An AE Title pseudonym (16 characters), for the Retain Device Identity Option's C actions."""
        return "AE" + self._digest(b"AE", original.strip()).hex()[:14].upper()

    def date_shift_days(self, patient_id: str) -> int:
        """The patient's date shift: a whole number of days in [-max_date_shift_days, -1]."""
        value = int.from_bytes(self._digest(b"DateShift", patient_id.strip())[:8], "big")
        return -(value % self._max_shift + 1)
