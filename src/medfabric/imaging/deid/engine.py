"""The de-identification engine's public face: Deidentifier, and the outcome it reports per instance.

Each instance is processed on its own; consistency across instances (pseudonyms, UIDs, date shifts) comes
from the keyed derivations in `pseudonyms`, never from shared state. The engine never writes an instance
it has quarantined, and never returns an original value except in `reid_pairs`, for the caller to encrypt.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import NamedTuple

from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from medfabric.imaging.deid.dicomio import encode_value, read_dataset, write_file
from medfabric.imaging.deid.instance import Elements, InstancePass, peek_text, text
from medfabric.imaging.deid.profiles import (
    BASIC_PROFILE_CODE,
    OPTION_CODES_CID7050,
    Option,
    Profile,
    quarantine_sop_classes,
)
from medfabric.imaging.deid.pseudonyms import Pseudonymizer
from medfabric.imaging.deid.rules import compile_profile
from medfabric.imaging.deid.table import load_table

#: File meta elements that name the sending or receiving system, or carry private information.
_META_REMOVED = tuple(Tag(t) for t in (0x00020016, 0x00020017, 0x00020018, 0x00020100, 0x00020102))
_SOP_CLASS_UID, _SOP_INSTANCE_UID, _BURNED_IN = 0x00080016, 0x00080018, 0x00280301
_METHOD_CODE_SEQUENCE, _MEDIA_SOP_INSTANCE_UID = Tag(0x00120064), Tag(0x00020003)


class ActionCount(NamedTuple):
    """How often one action was applied to one tag in an instance (nested occurrences included).

    Actions: X, Z, D, U, C as in the table; PID and PNAME for the Patient ID and Patient's Name
    pseudonyms; scrub when identifying text was removed from an attribute the table keeps.
    """

    tag: int
    keyword: str
    action: str
    occurrences: int


class ReidPair(NamedTuple):
    """One original value and the pseudonym that replaced it (for an encrypted re-identification map)."""

    attribute: str
    original: str
    pseudonym: str


@dataclass(frozen=True)
class DeidOutcome:
    """The result for one instance: the de-identified dataset, or the reason it was quarantined."""

    dataset: Dataset | None
    quarantined: str | None
    actions: tuple[ActionCount, ...]
    reid_pairs: tuple[ReidPair, ...]
    date_shift_days: int | None = None


class Deidentifier:
    """De-identifies instances under one profile and one secret (bytes, at least 16 of them)."""

    def __init__(self, profile: Profile, secret: bytes, *, collect_reid: bool = True) -> None:
        self.profile = profile
        self._rules = compile_profile(profile)
        self._pseudonyms = Pseudonymizer(secret, max_date_shift_days=profile.max_date_shift_days)
        self._collect_reid = collect_reid
        self._quarantined_classes, self._quarantined_prefixes = quarantine_sop_classes()
        codes = [BASIC_PROFILE_CODE] + [OPTION_CODES_CID7050[o] for o in sorted(profile.options)]
        header = f"medfabric {profile.name} (PS3.15 {load_table().edition})"[:64]
        temporal = (
            "MODIFIED"
            if Option.RETAIN_LONGITUDINAL_MODIFIED_DATES in profile.options
            else "UNMODIFIED"
            if Option.RETAIN_LONGITUDINAL_FULL_DATES in profile.options
            else "REMOVED"
        )
        self._marks = {
            Tag(0x00120062): _raw(0x00120062, "CS", "YES"),  # Patient Identity Removed
            Tag(0x00120063): _raw(0x00120063, "LO", [header] + [m for _, m in codes]),  # method
            Tag(0x00280303): _raw(0x00280303, "CS", temporal),  # Longitudinal Temporal Information Modified
        }
        self._code_items = [
            {
                Tag(0x00080100): _raw(0x00080100, "SH", value),
                Tag(0x00080102): _raw(0x00080102, "SH", "DCM"),
                Tag(0x00080104): _raw(0x00080104, "LO", meaning),
            }
            for value, meaning in codes
        ]

    def quarantine_reason(self, ds: Dataset) -> str | None:
        """Why `ds` must not be output under this profile, or None."""
        if not self.profile.quarantine:
            return None
        if peek_text(ds, _BURNED_IN).upper() == "YES":
            return "Burned In Annotation is YES"
        sop_class = peek_text(ds, _SOP_CLASS_UID)
        if not sop_class and getattr(ds, "file_meta", None) is not None:
            sop_class = text(ds.file_meta.get("MediaStorageSOPClassUID", ""))
        reason = self._quarantined_classes.get(sop_class)
        if reason is None:
            prefixes = self._quarantined_prefixes
            reason = next((why for prefix, why in prefixes if sop_class.startswith(prefix)), None)
        return reason

    def deidentify(self, ds: Dataset, *, in_place: bool = False) -> DeidOutcome:
        """De-identify one dataset; unless `in_place`, `ds` itself is left untouched."""
        reason = self.quarantine_reason(ds)
        if reason is not None:
            return DeidOutcome(dataset=None, quarantined=reason, actions=(), reid_pairs=())
        if not in_place:
            ds = copy.deepcopy(ds)
        work = InstancePass(self._rules, self._pseudonyms, ds, self._collect_reid)
        work.run(ds)
        self._mark(ds)
        counts = sorted(work.counts.items())
        return DeidOutcome(
            dataset=ds,
            quarantined=None,
            actions=tuple(ActionCount(tag, _keyword(tag), action, n) for (tag, action), n in counts),
            reid_pairs=tuple(ReidPair(attr, original, new) for original, (attr, new) in work.reid.items()),
            date_shift_days=work.shift if self._rules.shifts_dates else None,
        )

    def deidentify_file(self, src: Path, dst: Path) -> DeidOutcome:
        """De-identify the file `src` into `dst` (nothing is written for a quarantined instance)."""
        outcome = self.deidentify(read_dataset(src), in_place=True)
        if outcome.dataset is not None:
            write_file(dst, outcome.dataset)
        return outcome

    def _mark(self, ds: Dataset) -> None:
        """Record what was done (PS3.15 E.1.1, PS3.3 C.12.1) and make the file meta follow the dataset."""
        elements: Elements = ds._dict
        elements.update(self._marks)
        items = Sequence([Dataset(dict(item)) for item in self._code_items])
        elements[_METHOD_CODE_SEQUENCE] = DataElement(_METHOD_CODE_SEQUENCE, "SQ", items)
        meta = getattr(ds, "file_meta", None)
        if meta is None:
            return
        meta_elements: Elements = meta._dict
        for tag in _META_REMOVED:
            meta_elements.pop(tag, None)
        sop_instance = peek_text(ds, _SOP_INSTANCE_UID)
        if not sop_instance and Option.RETAIN_UIDS not in self.profile.options:
            original = peek_text(meta, _MEDIA_SOP_INSTANCE_UID)
            sop_instance = self._pseudonyms.uid(original) if original else ""
        if sop_instance:
            meta_elements[_MEDIA_SOP_INSTANCE_UID] = _raw(_MEDIA_SOP_INSTANCE_UID, "UI", sop_instance)


def _raw(tag: int, vr: str, value: str | list[str]) -> RawDataElement:
    """An encoded element, shared between outputs (raw elements are immutable)."""
    payload = encode_value(vr, value, "ascii")
    assert payload is not None
    return RawDataElement(Tag(tag), vr, len(payload), payload, 0, False, True, True, False)


@cache
def _keyword(tag: int) -> str:
    row = load_table().rows.get(tag)
    if row is not None and row.keyword:
        return row.keyword
    if (tag >> 16) & 1:
        return "(private)"
    return keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
