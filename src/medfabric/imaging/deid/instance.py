"""One instance's de-identification pass: walks the dataset once, recursively, applying compiled actions.

Elements the profile keeps are left as pydicom read them (undecoded) and written back byte for byte;
replacements are stored encoded, as if read from a file, so writing them costs no more. This module never
decodes pixel data and never shares state between instances: all it derives comes from the instance and
the keyed pseudonyms.
"""

from __future__ import annotations

import struct
from bisect import bisect_right
from collections.abc import Mapping, MutableMapping
from functools import cache
from itertools import accumulate
from typing import Any

from pydicom._dicom_dict import DicomDictionary
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from medfabric.imaging.deid.dicomio import encode_value, single_codec
from medfabric.imaging.deid.pseudonyms import Pseudonymizer
from medfabric.imaging.deid.rules import CompiledRules
from medfabric.imaging.deid.values import (
    DUMMY_BY_VR,
    TEMPORAL_VRS,
    TEXT_VRS,
    Term,
    identifying_terms,
    scrub_text,
    shift_dates,
    terms_in_bytes,
)

#: Top-level attributes whose values are scrubbed out of free text (with every top-level person name).
IDENTIFYING_KEYWORDS = (
    "AccessionNumber", "InstitutionName", "InstitutionAddress", "StationName", "InstitutionalDepartmentName",
    "PatientID", "IssuerOfPatientID", "PatientBirthDate", "OtherPatientIDs", "PatientAddress",
    "MedicalRecordLocator", "PatientTelephoneNumbers", "DeviceSerialNumber", "StudyID",
)  # fmt: skip
IDENTIFYING_TAGS = frozenset(int(tag_for_keyword(keyword) or 0) for keyword in IDENTIFYING_KEYWORDS)
PATIENT_ID, SPECIFIC_CHARACTER_SET = 0x00100020, 0x00080005
_ASCII_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI", "UR"})
_STRING_VRS = TEXT_VRS | _ASCII_VRS
_PN_TAGS = frozenset(tag for tag, entry in DicomDictionary.items() if entry[0] == "PN")

Element = DataElement | RawDataElement
Elements = MutableMapping[Any, Element]  # pydicom's own dict, keyed by BaseTag (an int)


@cache
def _dictionary_vr(tag: int) -> str:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


def fast_vr(elem: Element, tag: int) -> str:
    """The element's VR without decoding it; for implicit VR (or UN) the dictionary's, if it knows one."""
    vr = elem.VR
    if vr is None or vr == "UN":
        return "UN" if (tag >> 16) & 1 else _dictionary_vr(tag)
    return str(vr)


def peek(ds: Dataset, key: int) -> Any:
    """The value of `key` in `ds` (None if absent), decoded without replacing the raw element in `ds`."""
    elem = ds._dict.get(key)  # type: ignore[call-overload]
    if elem is None:
        return None
    if type(elem) is RawDataElement:
        charset = (
            "iso8859" if key == SPECIFIC_CHARACTER_SET else (ds.original_character_set or ds._character_set)
        )
        return convert_raw_data_element(elem, encoding=charset, ds=ds).value
    return elem.value


def peek_text(ds: Dataset, key: int) -> str:
    """The text of `key` in `ds` ("" if absent); an ASCII-only VR is decoded here, without pydicom."""
    elem = ds._dict.get(key)  # type: ignore[call-overload]
    if elem is None:
        return ""
    if (
        type(elem) is RawDataElement
        and isinstance(elem.value, bytes)
        and fast_vr(elem, int(key)) in _ASCII_VRS
    ):
        return elem.value.decode("latin-1").strip(" \0")
    return text(peek(ds, key))


def text(value: object) -> str:
    """A value as DICOM text: multiple values joined by backslashes, None as empty."""
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value)
    return str(value)


_HEADER = struct.Struct("<HH")
_LENGTH_16, _LENGTH_32 = struct.Struct("<H"), struct.Struct("<I")
_LONG_VR_BYTES = frozenset(
    vr.encode() for vr in ("OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV")
)


def nested_tags_are_inert(data: bytes, implicit: bool, actions: Mapping[int, object]) -> bool:
    """True when every element encoded in a sequence value is one the profile leaves alone.

    Items are read linearly (item headers skipped, nested sequences descended into); a private,
    curve, overlay or group-length tag, a tag with an action, a nested Specific Character Set, or
    anything that does not parse cleanly answers False.
    """
    position, size = 0, len(data)
    try:
        while position + 8 <= size:
            group, element = _HEADER.unpack_from(data, position)
            if group == 0xFFFE:  # item, item delimiter, sequence delimiter
                position += 8
                continue
            tag = (group << 16) | element
            if group & 1 or element == 0 or group & 0xFF00 in (0x5000, 0x6000) or tag in actions:
                return False
            if tag == SPECIFIC_CHARACTER_SET:
                return False
            if implicit:
                length, header = _LENGTH_32.unpack_from(data, position + 4)[0], 8
                descend = length == 0xFFFFFFFF or _dictionary_vr(tag) == "SQ"
            else:
                vr = data[position + 4 : position + 6]
                if vr in _LONG_VR_BYTES:
                    length, header = _LENGTH_32.unpack_from(data, position + 8)[0], 12
                else:
                    length, header = _LENGTH_16.unpack_from(data, position + 6)[0], 8
                if vr == b"UN" and length == 0xFFFFFFFF:
                    return False  # a sequence encoded implicitly inside an explicit one: not read here
                if not vr.isalpha() or not vr.isupper():
                    return False
                descend = vr == b"SQ"
            position += header if descend else header + length
    except struct.error:
        return False
    return position == size


class InstancePass:
    """The state of de-identifying one instance: its patient's date shift, text terms and the tallies."""

    def __init__(
        self, rules: CompiledRules, pseudonyms: Pseudonymizer, ds: Dataset, collect_reid: bool
    ) -> None:
        self.rules = rules
        self.actions = rules.actions
        self.pseudonyms = pseudonyms
        self.collect_reid = collect_reid
        self.counts: dict[tuple[int, str], int] = {}
        self.reid: dict[str, tuple[str, str]] = {}
        charset_text = peek_text(ds, SPECIFIC_CHARACTER_SET)
        charset_key: str | tuple[str, ...] = (
            tuple(charset_text.split("\\")) if "\\" in charset_text else charset_text
        )
        # one codec decodes and encodes text directly; None (ISO 2022 code extensions) defers to pydicom
        self.codec = single_codec(charset_key or "ISO_IR 100")
        self.implicit = ds.original_encoding[0] is True
        self.patient_id = self.text_of(ds, PATIENT_ID)
        self._shift: int | None = None
        self.terms: tuple[Term, ...] = ()
        self.residual_bytes: tuple[bytes, ...] | None = None
        if rules.cleans_text or rules.profile.scrub_residual:
            self.terms = self._identifying_terms(ds)
            if self.terms and self.codec is not None:
                words = tuple(term for term, _ in self.terms)
                self.residual_bytes = terms_in_bytes(words, (self.codec, "utf-8"))
        self.residual = rules.profile.scrub_residual and bool(self.terms)
        self.pending: list[tuple[Dataset, Any, int, Element, str]] = []

    # ---- reading and writing values -----------------------------------------------------------------

    def text_of(self, ds: Dataset, key: int) -> str:
        """The text of a string element, decoding raw bytes directly when the character set allows."""
        elem = ds._dict.get(key)  # type: ignore[call-overload]
        if elem is None:
            return ""
        value = elem.value
        codec = self.codec
        plain = type(elem) is RawDataElement and fast_vr(elem, int(key)) in _STRING_VRS
        if plain and isinstance(value, bytes) and codec is not None:
            decoded: str = value.decode(codec, "replace")
            return decoded.strip(" \0")
        return text(peek(ds, key))

    def put(self, ds: Dataset, key: int, vr: str, value: object) -> None:
        """Replace `key` with `value`, stored encoded (as a raw element) when it is plain text or a number."""
        payload = encode_value(vr, value, self.codec) if vr in _STRING_VRS else None  # text: any endianness
        if payload is None:
            ds[key] = DataElement(key, vr, value)
            return
        elements: Elements = ds._dict
        raw = RawDataElement(key, vr, len(payload), payload, 0, self.implicit, True, True, False)  # type: ignore[arg-type]
        elements[key] = raw

    def _identifying_terms(self, ds: Dataset) -> tuple[Term, ...]:
        values: list[str] = []
        names: list[str] = []
        for key, elem in ds._dict.items():
            tag = int(key)
            if tag in IDENTIFYING_TAGS:
                values.append(self.text_of(ds, key))
            elif tag in _PN_TAGS or (elem.VR == "PN" and not (tag >> 16) & 1):
                names.append(self.text_of(ds, key))
        return identifying_terms(tuple(values), tuple(names))

    @property
    def shift(self) -> int:
        if self._shift is None:
            self._shift = self.pseudonyms.date_shift_days(self.patient_id)
        return self._shift

    def count(self, tag: int, action: str) -> None:
        key = (tag, action)
        self.counts[key] = self.counts.get(key, 0) + 1

    def pair(self, attribute: str, original: str, pseudonym: str) -> None:
        if self.collect_reid and original and original not in self.reid:
            self.reid[original] = (attribute, pseudonym)

    # ---- the walk ----------------------------------------------------------------------------------

    def walk(self, ds: Dataset) -> None:
        actions = self.actions
        elements: Elements = ds._dict
        saw_private = False
        for key in list(elements):
            tag = int(key)  # int keys: pydicom's BaseTag compares in Python, an int in C
            pair = actions.get(tag)
            elem = elements[key]
            if pair is not None:
                is_sequence = fast_vr(elem, tag) == "SQ"
                self.apply(ds, key, tag, elem, pair[1] if is_sequence else pair[0], is_sequence)
                continue
            group = tag >> 16
            if group & 1:
                saw_private = True
                self.private(ds, key, tag)
            elif tag & 0xFFFF == 0 and group > 2:
                del elements[key]  # a retired group length would be wrong after removals
            elif group & 0xFF00 in (0x5000, 0x6000):
                # curves go (X), and so does each overlay group whole: its Overlay Data is X, and an
                # overlay module left without it would be incomplete
                del elements[key]
                self.count(tag, "X")
            else:
                vr = fast_vr(elem, tag)
                if vr == "SQ":
                    if self.sequence_needs_walk(elem):
                        for item in ds[key].value:
                            self.walk(item)
                elif self.residual and vr in TEXT_VRS:
                    self.pending.append((ds, key, tag, elem, vr))
        if saw_private and self.rules.keep_safe_private:
            self.drop_unused_creators(ds)

    def sequence_needs_walk(self, elem: Element) -> bool:
        """Whether a sequence the table does not list holds anything to act on.

        Its undecoded bytes are scanned for the tags of its nested elements (and for identifying terms):
        a sequence of plain codes, the common case, is then left undecoded, which saves pydicom parsing
        it. Anything the scan does not positively clear is walked.
        """
        if not isinstance(elem, RawDataElement) or elem.is_little_endian is False:
            return True
        value = elem.value
        if not isinstance(value, bytes):
            return True
        if self.residual:
            spellings = self.residual_bytes
            if spellings is None:
                return True
            lowered = value.lower()
            if any(spelling in lowered for spelling in spellings):
                return True
        return not nested_tags_are_inert(value, self.implicit, self.actions)

    def apply(self, ds: Dataset, key: int, tag: int, elem: Element, action: str, seq: bool) -> None:
        if action == "K":  # kept as the profile says: not even the residual scrub touches it
            if seq:
                for item in ds[key].value:
                    self.walk(item)
            return
        self.count(tag, action)
        if action == "X":
            elements: Elements = ds._dict
            del elements[key]
        elif seq:  # Z empties a sequence; C cleans inside it
            if action == "C":
                for item in ds[key].value:
                    self.walk(item)
            else:
                ds[key] = DataElement(key, "SQ", Sequence())
        elif action == "Z":
            self.put(ds, key, self.vr_of(ds, key, tag, elem), None)
        elif action in ("D", "U"):
            vr = self.vr_of(ds, key, tag, elem)
            if vr == "UI":
                self.remap_uids(ds, key)
            else:
                self.put(ds, key, vr, DUMMY_BY_VR.get(vr) if action == "D" else None)
        elif action == "C":
            self.clean(ds, key, tag, elem)
        elif action in ("PID", "PNAME"):
            original = self.text_of(ds, key)
            if original:
                if action == "PID":
                    pseudonym, vr, attribute = self.pseudonyms.patient_id(original), "LO", "PatientID"
                else:
                    pseudonym, vr, attribute = self.pseudonyms.patient_name(original), "PN", "PatientName"
                self.put(ds, key, vr, pseudonym)
                self.pair(attribute, original, pseudonym)

    @staticmethod
    def vr_of(ds: Dataset, key: int, tag: int, elem: Element) -> str:
        vr = fast_vr(elem, tag)
        return vr if len(vr) == 2 else str(ds[key].VR)  # an ambiguous dictionary VR: let pydicom resolve

    def remap_uids(self, ds: Dataset, key: int) -> None:
        originals = self.text_of(ds, key)
        if not originals:
            return
        remapped = []
        for original in originals.split("\\"):
            original = original.strip(" \0")
            new = self.pseudonyms.uid(original) if original else ""
            remapped.append(new)
            self.pair("UID", original, new)
        self.put(ds, key, "UI", remapped if len(remapped) > 1 else remapped[0])

    def clean(self, ds: Dataset, key: int, tag: int, elem: Element) -> None:
        vr = self.vr_of(ds, key, tag, elem)
        if vr in TEMPORAL_VRS:
            self.put(ds, key, vr, shift_dates(self.text_of(ds, key), vr, self.shift))
        elif vr == "AE":
            original = self.text_of(ds, key)
            if original:
                self.put(ds, key, vr, [self.pseudonyms.ae_title(v) for v in original.split("\\")])
        elif vr == "UI":
            self.remap_uids(ds, key)
        elif vr in TEXT_VRS:
            self.scrub(ds, key, vr)

    def run(self, ds: Dataset) -> None:
        """Apply the profile to `ds`, then scrub identifying text out of what the table keeps."""
        self.walk(ds)
        self.scrub_pending()

    def scrub_pending(self) -> None:
        """The residual scrub, batched: one pass of substring searches over every undecoded candidate.

        Most instances have no identifying term in any such value, and then nothing is decoded.
        """
        spellings = self.residual_bytes
        undecoded: list[tuple[Dataset, Any, int, str]] = []
        chunks: list[bytes] = []
        for ds, key, tag, elem, vr in self.pending:
            value = elem.value if type(elem) is RawDataElement else None
            if spellings is not None and isinstance(value, bytes):
                undecoded.append((ds, key, tag, vr))
                chunks.append(value)
            elif self.scrub(ds, key, vr):
                self.count(tag, "scrub")
        if not chunks or spellings is None:
            return
        blob = b"\0".join(chunks).lower()  # NUL never occurs in a term, so no match spans two values
        starts = list(accumulate((len(c) + 1 for c in chunks[:-1]), initial=0))
        hit: set[int] = set()
        for spelling in spellings:
            found = blob.find(spelling)
            while found != -1:
                index = bisect_right(starts, found) - 1
                hit.add(index)
                found = blob.find(spelling, starts[index + 1] if index + 1 < len(starts) else len(blob))
        for index in sorted(hit):
            ds, key, tag, vr = undecoded[index]
            if self.scrub(ds, key, vr):
                self.count(tag, "scrub")

    def scrub(self, ds: Dataset, key: int, vr: str) -> bool:
        """Remove the instance's identifying terms from a text element; True if it changed."""
        if not self.terms:
            return False
        original = self.text_of(ds, key)
        parts = [scrub_text(part, self.terms) for part in original.split("\\")]
        dummy = str(DUMMY_BY_VR.get(vr, ""))
        # a value scrubbed to nothing becomes the dummy: it may be Type 1 (a label, a description)
        cleaned = "\\".join(
            part if part or not before else dummy
            for part, before in zip(parts, original.split("\\"), strict=True)
        )
        if cleaned == original:
            return False
        self.put(ds, key, vr, cleaned)
        return True

    def private(self, ds: Dataset, key: int, tag: int) -> None:
        element = tag & 0xFFFF
        safe_mode = self.rules.keep_safe_private
        if safe_mode and 0x10 <= element <= 0xFF:
            return  # a private creator: kept while its block keeps an element (see drop_unused_creators)
        if safe_mode and element > 0xFF:
            creator = peek(ds, (tag & 0xFFFF0000) | (element >> 8))
            name = creator.decode("latin-1") if isinstance(creator, bytes) else text(creator)
            if (name.strip("\x00 ").upper(), tag >> 16, element & 0xFF) in self.rules.safe_private:
                return
        elements: Elements = ds._dict
        del elements[key]
        self.count(tag, "X")

    def drop_unused_creators(self, ds: Dataset) -> None:
        tags = [int(t) for t in ds._dict]
        used = {(t >> 16, (t & 0xFFFF) >> 8) for t in tags if (t >> 16) & 1 and t & 0xFFFF > 0xFF}
        for tag in tags:
            if (tag >> 16) & 1 and 0x10 <= tag & 0xFFFF <= 0xFF and (tag >> 16, tag & 0xFF) not in used:
                del ds[tag]
                self.count(tag, "X")
