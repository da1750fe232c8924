"""Deliberately broken inputs for ingest tests: not DICOM, empty, truncated, no SOPInstanceUID.

Each file comes with the category of reason an ingest pipeline should give when it rejects it.
The DICOM-derived ones start from a real synthetic CT instance, so only the defect differs.
"""

from __future__ import annotations

import io
from enum import StrEnum
from pathlib import Path

from pydicom import uid

from .encoding import file_meta
from .patients import make_patient
from .studies import SeriesRequest, plan_study
from .writer import render_series

BAD_FILES_SEED = 0


class BadFileReason(StrEnum):
    NOT_DICOM = "not_dicom"
    EMPTY = "empty"
    TRUNCATED = "truncated"
    MISSING_SOP_INSTANCE_UID = "missing_sop_instance_uid"


def _sample_ct_bytes(*, without_sop_instance_uid: bool) -> bytes:
    patient = make_patient(BAD_FILES_SEED, 0)
    study = plan_study(
        patient,
        seed=BAD_FILES_SEED,
        namespace="bad-files",
        study_index=0,
        modality="CT",
        year=2024,
        series=(SeriesRequest("CT_SOFT", 1, uid.ExplicitVRLittleEndian),),
        size="small",
    )
    ds = next(render_series(patient, study, study.series[0], BAD_FILES_SEED))
    buffer = io.BytesIO()
    if without_sop_instance_uid:
        meta = file_meta(ds, uid.ExplicitVRLittleEndian)
        meta.FileMetaInformationGroupLength = 0  # recomputed by the writer
        meta.FileMetaInformationVersion = b"\x00\x01"
        del meta.MediaStorageSOPInstanceUID  # leave no fallback for the missing attribute
        del ds.SOPInstanceUID
        ds.file_meta = meta
        ds.preamble = b"\0" * 128
        # enforce_file_format would refuse a file meta without Media Storage SOP Instance UID.
        ds.save_as(buffer, enforce_file_format=False, implicit_vr=False, little_endian=True)
    else:
        ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def write_bad_files(out: Path) -> dict[str, str]:
    """Write the broken files into `out`; return file name → expected BadFileReason value."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    complete = _sample_ct_bytes(without_sop_instance_uid=False)
    files: dict[str, tuple[bytes, BadFileReason]] = {
        "not_dicom.dcm": (
            b"%PDF-1.4\nThis is a referral letter, not a DICOM file.\n",
            BadFileReason.NOT_DICOM,
        ),
        "empty.dcm": (b"", BadFileReason.EMPTY),
        # Cut inside Pixel Data, as an interrupted transfer leaves it: pydicom still parses the header
        # (the RawDataElement's declared length exceeds the bytes read); decoding the pixels fails.
        "truncated.dcm": (complete[: len(complete) - len(complete) // 4], BadFileReason.TRUNCATED),
        "no_sop_instance_uid.dcm": (
            _sample_ct_bytes(without_sop_instance_uid=True),
            BadFileReason.MISSING_SOP_INSTANCE_UID,
        ),
    }
    for name, (content, _) in files.items():
        (out / name).write_bytes(content)
    return {name: str(reason) for name, (_, reason) in files.items()}
