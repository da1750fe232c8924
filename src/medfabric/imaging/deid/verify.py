"""The verifier: checks a de-identified instance against a profile's table and searches its bytes for PHI.

It judges any tool's output (ours or another's) by what the profile allows, reports findings and never
modifies what it checks. Element findings name the tag path; byte findings name an offset in the file.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from pydicom import config as pydicom_config
from pydicom import dcmread, dcmwrite
from pydicom.charset import convert_encodings
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName, validate_value

from medfabric.imaging.deid.dicomio import PARSE_ERRORS
from medfabric.imaging.deid.profiles import BASIC_PROFILE_CODE, Option, Profile, quarantine_sop_classes
from medfabric.imaging.deid.rules import compile_profile

_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
_MIN_PHI = 3
_MIN_COMPONENT = 4
_MAX_HITS_PER_VALUE = 5
_STRING_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}
)


@dataclass(frozen=True)
class Finding:
    """One problem in a de-identified instance: a rule broken at a tag path or at a byte offset."""

    rule: str
    message: str
    tag: int | None = None
    keyword: str | None = None
    offset: int | None = None
    path: str | None = None


def _components(value: str) -> list[str]:
    return [c.strip() for c in value.strip().split("=")[0].split("^") if c.strip()] if "^" in value else []


def phi_variants(value: str) -> set[str]:
    """The spellings of an identifying value to look for: as given, and person-name re-orderings."""
    value = value.strip()
    variants = {value}
    components = _components(value)
    if components:
        variants.add(" ".join(components))
        variants.add(", ".join(components[:2]))
        variants.add(" ".join(reversed(components[:2])))
        variants.update(c for c in components if len(c) >= _MIN_COMPONENT)
    return {v for v in variants if len(v) >= _MIN_PHI}


def _alternation(variants: Iterable[tuple[str, bool]]) -> str:
    """One regex alternative per variant; a lone name component only matches as a whole (ASCII) word."""
    return "|".join(
        rf"(?<![A-Za-z0-9]){re.escape(v)}(?![A-Za-z0-9])" if whole else re.escape(v) for v, whole in variants
    )


class PhiSearch:
    """A compiled search for a set of identifying values, over decoded text and over raw bytes."""

    def __init__(self, source_phi: Iterable[str], encodings: Iterable[str] = ()) -> None:
        self.by_variant: dict[str, str] = {}
        whole_word: dict[str, bool] = {}
        for phi in source_phi:
            phi = str(phi).strip()
            components = set(_components(phi))
            for variant in phi_variants(phi):
                key = variant.casefold()
                self.by_variant.setdefault(key, phi)
                whole_word[key] = whole_word.get(key, True) and variant in components and variant.isascii()
        ordered = sorted(self.by_variant, key=len, reverse=True)
        self.text_pattern = (
            re.compile(_alternation((v, whole_word[v]) for v in ordered), re.IGNORECASE) if ordered else None
        )
        self.by_bytes: dict[bytes, str] = {}
        bytes_whole: dict[bytes, bool] = {}
        codecs = ["utf-8", "latin-1", *encodings]
        for variant in ordered:
            for spelling in {variant, variant.upper(), variant.lower(), variant.title()}:
                for codec in codecs:
                    try:
                        encoded = spelling.encode(codec).lower()
                    except (UnicodeError, LookupError):
                        continue
                    self.by_bytes.setdefault(encoded, self.by_variant[variant])
                    bytes_whole[encoded] = whole_word[variant]
        alternatives = [
            rb"(?<![A-Za-z0-9])" + re.escape(b) + rb"(?![A-Za-z0-9])" if bytes_whole[b] else re.escape(b)
            for b in sorted(self.by_bytes, key=len, reverse=True)
        ]
        self.bytes_pattern = re.compile(b"|".join(alternatives), re.IGNORECASE) if alternatives else None

    def in_text(self, text: str) -> str | None:
        if self.text_pattern is None:
            return None
        match = self.text_pattern.search(text)
        return None if match is None else self.by_variant.get(match.group(0).casefold())

    def in_bytes(self, data: bytes) -> Iterator[tuple[int, str]]:
        if self.bytes_pattern is None:
            return
        for match in self.bytes_pattern.finditer(data):
            yield match.start(), self.by_bytes.get(match.group(0).lower(), "?")


def _name(tag: int) -> str:
    if (tag >> 16) & 1:
        return f"private ({tag >> 16:04X},{tag & 0xFFFF:04X})"
    return keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _as_text(elem: DataElement) -> str:
    value = elem.value
    if isinstance(value, bytes) or value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value)
    if isinstance(value, PersonName):
        return str(value)
    return str(value) if isinstance(value, str | int | float) else ""


class _Checker:
    def __init__(self, profile: Profile, search: PhiSearch) -> None:
        self.rules = compile_profile(profile)
        self.profile = profile
        self.search = search
        self.findings: list[Finding] = []
        self.phi_seen: set[str] = set()

    def add(self, rule: str, message: str, tag: int | None = None, where: str = "") -> None:
        keyword = where or (None if tag is None else _name(tag))
        self.findings.append(Finding(rule=rule, message=message, tag=tag, keyword=keyword))

    def walk(self, ds: Dataset, prefix: str = "") -> None:
        codes = self.rules.codes
        for elem in ds:
            tag = int(elem.tag)
            where = prefix + _name(tag)
            group, element = tag >> 16, tag & 0xFFFF
            code = codes.get(tag)
            if group & 1:
                self.check_private(ds, tag, element, where)
            elif group & 0xFF00 == 0x5000:
                self.add("curve", f"{where}: curve data must be removed (X)", tag, where)
            elif group & 0xFF00 == 0x6000 and element in (0x3000, 0x4000):
                self.add("overlay", f"{where}: overlay data and comments must be removed (X)", tag, where)
            elif code == "X":
                self.add("table-X", f"{where} is present; the profile removes it (X)", tag, where)
            elif code is not None and code != "K":
                self.check_value(elem, code, where)
            if elem.VR == "SQ":
                for index, item in enumerate(elem.value):
                    self.walk(item, f"{where}[{index}].")
            else:
                phi = self.search.in_text(_as_text(elem))
                if phi is not None:
                    self.phi_seen.add(phi)
                    self.add("phi-value", f"{where} contains the identifying value {phi!r}", tag, where)

    def check_private(self, ds: Dataset, tag: int, element: int, where: str) -> None:
        if not self.rules.keep_safe_private:
            self.add("private", f"{where}: private attributes must be removed", tag, where)
            return
        if element <= 0xFF:
            return
        creator = ds.get((tag & 0xFFFF0000) | (element >> 8))
        name = str(creator.value).strip().upper() if creator is not None else ""
        if (name, tag >> 16, element & 0xFF) not in self.rules.safe_private:
            self.add("private", f"{where} (creator {name!r}) is not on the safe private list", tag, where)

    def check_value(self, elem: DataElement, code: str, where: str) -> None:
        vr = str(elem.VR)
        text = _as_text(elem)
        if vr == "UI" and "U" in code and text:
            for uid in text.split("\\"):
                if uid and (len(uid) > 64 or not _UID.match(uid)):
                    self.add("invalid-uid", f"{where}: {uid!r} is not a valid UID", int(elem.tag), where)
        if vr in _STRING_VRS and text:
            try:
                validate_value(vr, elem.value, pydicom_config.RAISE)
            except (ValueError, TypeError) as error:
                self.add(
                    "invalid-value",
                    f"{where}: replaced value is not a valid {vr}: {error}",
                    int(elem.tag),
                    where,
                )

    def check_markers(self, ds: Dataset) -> None:
        if str(ds.get("PatientIdentityRemoved", "")).upper() != "YES":
            self.add("marker", "Patient Identity Removed (0012,0062) is not YES", 0x00120062)
        if not ds.get("DeidentificationMethod") and not ds.get("DeidentificationMethodCodeSequence"):
            self.add(
                "marker", "neither De-identification Method nor its Code Sequence is present", 0x00120063
            )
        codes = {str(item.get("CodeValue", "")) for item in ds.get("DeidentificationMethodCodeSequence", [])}
        if ds.get("DeidentificationMethodCodeSequence") is not None and BASIC_PROFILE_CODE[0] not in codes:
            self.add(
                "marker", "De-identification Method Code Sequence lacks 113100 (Basic Profile)", 0x00120064
            )
        if (
            Option.RETAIN_LONGITUDINAL_MODIFIED_DATES in self.profile.options
            and str(ds.get("LongitudinalTemporalInformationModified", "")) != "MODIFIED"
        ):
            self.add(
                "marker",
                "dates are shifted but Longitudinal Temporal Information Modified is not MODIFIED",
                0x00280303,
            )
        meta = getattr(ds, "file_meta", None)
        sop_instance = str(ds.get("SOPInstanceUID", ""))
        if (
            meta is not None
            and "MediaStorageSOPInstanceUID" in meta
            and sop_instance
            and str(meta.MediaStorageSOPInstanceUID) != sop_instance
        ):
            self.add(
                "meta-uid", "Media Storage SOP Instance UID does not follow SOP Instance UID", 0x00020003
            )
        if self.profile.quarantine:
            classes, prefixes = quarantine_sop_classes()
            sop_class = str(ds.get("SOPClassUID", ""))
            if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
                self.add("quarantine", "instance is flagged Burned In Annotation YES", 0x00280301)
            elif sop_class in classes or any(sop_class.startswith(p) for p, _ in prefixes):
                self.add("quarantine", f"SOP Class {sop_class} is quarantined by the profile", 0x00080016)


def verify_deidentified(
    ds: Dataset, profile: Profile, *, source_phi: Iterable[str] = (), raw_bytes: bytes | None = None
) -> list[Finding]:
    """Every way `ds` (and its encoded bytes) falls short of `profile`, given its source's identifying values.

    Without `raw_bytes` the dataset is encoded with pydicom for the byte search.
    """
    charset = ds.get("SpecificCharacterSet")
    try:
        encodings = convert_encodings(charset) if charset else []
    except LookupError:
        encodings = []
    search = PhiSearch(source_phi, encodings)
    checker = _Checker(profile, search)
    checker.check_markers(ds)
    checker.walk(ds)
    if raw_bytes is None:
        buffer = io.BytesIO()
        dcmwrite(buffer, ds, enforce_file_format=getattr(ds, "file_meta", None) is not None)
        raw_bytes = buffer.getvalue()
    hits: dict[str, int] = {}
    for offset, phi in search.in_bytes(raw_bytes):
        if phi in checker.phi_seen or hits.get(phi, 0) >= _MAX_HITS_PER_VALUE:
            continue  # already reported at its element, or reported often enough
        hits[phi] = hits.get(phi, 0) + 1
        checker.findings.append(
            Finding(
                rule="phi-bytes", message=f"identifying value {phi!r} found at byte {offset}", offset=offset
            )
        )
    return checker.findings


def verify_path(path: Path, profile: Profile, source_phi: Iterable[str] = ()) -> list[Finding]:
    """Verify one file, or every file under a directory (recursively); findings carry their file's path."""
    phi = tuple(source_phi)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    findings: list[Finding] = []
    for file in files:
        raw = file.read_bytes()
        try:
            ds = dcmread(io.BytesIO(raw))
        except PARSE_ERRORS as error:  # a file that does not parse is itself the finding
            findings.append(
                Finding(rule="unreadable", message=f"not a readable DICOM file: {error}", path=str(file))
            )
            continue
        findings += [
            replace(f, path=str(file))
            for f in verify_deidentified(ds, profile, source_phi=phi, raw_bytes=raw)
        ]
    return findings
