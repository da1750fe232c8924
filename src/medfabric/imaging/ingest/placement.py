"""Where an instance lands: ``<mount>/<PatientID>/<StudyDate>/<Modality>/<SeriesUID>/<SOPInstanceUID>.dcm``.

Each component is made safe deterministically (docs/design/ingest.md): letters, digits, '-', '_' and
'.' (not first) are kept, every other byte of its UTF-8 form is written %XX, so no value can hold a
'/', be '.' or '..', or start a hidden name; an empty value gets a placeholder; an over-long one is
cut and suffixed with a hash. Pure functions: they never look at the fabric.
"""

from __future__ import annotations

import re

import blake3

from medfabric.imaging.ingest.model import ParsedInstance

NO_PATIENT_ID = "UNKNOWN"
NO_STUDY_DATE = "00000000"
NO_MODALITY = "OT"  # DICOM's "Other"
MAX_COMPONENT = 128  # bytes; well under NAME_MAX (255) with room for ".v12.dcm"
_KEPT = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
_DATE = re.compile(r"^\d{8}$")
_LEGACY_DATE = re.compile(r"^(\d{4})\.(\d{2})\.(\d{2})$")  # ACR-NEMA 2.0 style, still seen
# the common case (UIDs, most IDs): only kept characters, no leading '.', short enough — kept as is
_ALREADY_SAFE = re.compile(rf"[A-Za-z0-9_-][A-Za-z0-9_.-]{{0,{MAX_COMPONENT - 1}}}")


def safe_component(value: str | None, placeholder: str) -> str:
    """``value`` as one safe path component (``placeholder`` when it is empty)."""
    text = (value or "").strip(" \x00")
    if not text:
        return placeholder
    if _ALREADY_SAFE.fullmatch(text):
        return text
    out: list[str] = []
    for position, character in enumerate(text):
        if character in _KEPT and not (character == "." and position == 0):
            out.append(character)
        else:
            out.extend(f"%{byte:02X}" for byte in character.encode("utf-8", "surrogatepass"))
    safe = "".join(out)
    if len(safe) <= MAX_COMPONENT:
        return safe
    cut = safe[: MAX_COMPONENT - 18]
    percent = cut.rfind("%", len(cut) - 2)
    if percent >= 0:  # never split a %XX escape
        cut = cut[:percent]
    return f"{cut}~{blake3.blake3(text.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}"


def date_component(study_date: str | None) -> str:
    """StudyDate as YYYYMMDD; the placeholder when it is missing or not a date."""
    text = (study_date or "").strip()
    if _DATE.match(text):
        return text
    legacy = _LEGACY_DATE.match(text)
    if legacy:
        return "".join(legacy.groups())
    return NO_STUDY_DATE


def file_name(sop_uid: str, version: int = 1) -> str:
    """``<SOPInstanceUID>.dcm``; a later version kept under the same UID is ``<uid>.v<n>.dcm``."""
    stem = safe_component(sop_uid, NO_PATIENT_ID)
    return f"{stem}.dcm" if version == 1 else f"{stem}.v{version}.dcm"


def relative_path(parsed: ParsedInstance, version: int = 1) -> str:
    """The instance's path inside its volume (no leading '/')."""
    return "/".join(
        (
            safe_component(parsed.patient_id, NO_PATIENT_ID),
            date_component(parsed.study_date),
            safe_component(parsed.modality, NO_MODALITY),
            safe_component(parsed.series_instance_uid, NO_PATIENT_ID),
            file_name(parsed.sop_instance_uid, version),
        )
    )


def instance_path(mount_path: str, parsed: ParsedInstance, version: int = 1) -> str:
    """The instance's fabric path under a volume mounted at ``mount_path``."""
    return mount_path.rstrip("/") + "/" + relative_path(parsed, version)
