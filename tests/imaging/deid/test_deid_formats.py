"""The engine on pydicom's own test files: transfer syntaxes, nested references, character sets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from medfabric.imaging.deid import BASIC, Deidentifier, load_table, verify_path

from .conftest import SECRET

U_TAGS = {tag for tag, row in load_table().rows.items() if "U" in row.basic}


def _uids_to_replace(ds: Dataset) -> set[str]:
    found = set()
    for elem in ds.iterall():
        if int(elem.tag) in U_TAGS and elem.VR == "UI" and elem.value:
            found.update(str(v) for v in (elem.value if elem.VM > 1 else [elem.value]))
    return found


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # rtdose.dcm carries one in its source
@pytest.mark.parametrize(
    "name",
    [
        "CT_small.dcm",  # explicit VR, GE private groups (some on the safe list)
        "MR_small_implicit.dcm",
        "MR_small_bigendian.dcm",  # written back by pydicom: no raw fast path for big endian
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",  # encapsulated pixel data, copied undecoded
        "rtplan.dcm",
        "rtstruct.dcm",  # references nested four sequences deep; no Part 10 header either
        "rtdose.dcm",
        "nested_priv_SQ.dcm",
        "UN_sequence.dcm",
        "ExplVR_LitEndNoMeta.dcm",  # a dataset without the Part 10 header: one is added
        "ExplVR_BigEndNoMeta.dcm",
        "examples_overlay.dcm",
        "waveform_ecg.dcm",
    ],
)
def test_test_files_come_out_valid_with_every_uid_replaced(name: str, tmp_path: Path) -> None:
    source = Path(get_testdata_file(name))
    original = dcmread(source, force=True)
    outcome = Deidentifier(BASIC, SECRET).deidentify_file(source, tmp_path / name)
    assert outcome.quarantined is None
    data = (tmp_path / name).read_bytes()
    ds = dcmread(tmp_path / name)
    for _ in ds.iterall():
        pass
    phi = [str(original.get("PatientName", "")), str(original.get("PatientID", ""))]
    phi = [p for p in phi if len(p) > 3 and p.upper() not in ("ANONYMOUS", "ANONYMIZED")]
    for uid in _uids_to_replace(original):
        assert re.search(re.escape(uid.encode()) + rb"(?![0-9.])", data) is None, f"{uid} survived"
    assert verify_path(tmp_path / name, BASIC, phi) == []
    if "PixelData" in original:
        assert ds.PixelData == original.PixelData
    assert "SourceApplicationEntityTitle" not in ds.file_meta


def test_rtstruct_references_resolve_to_the_remapped_uids() -> None:
    original = dcmread(get_testdata_file("rtstruct.dcm"), force=True)
    outcome = Deidentifier(BASIC, SECRET).deidentify(original)
    ds = outcome.dataset
    assert ds is not None
    remapped = {pair.original: pair.pseudonym for pair in outcome.reid_pairs if pair.attribute == "UID"}
    frame = ds.ReferencedFrameOfReferenceSequence[0]
    original_frame = original.ReferencedFrameOfReferenceSequence[0]
    assert frame.FrameOfReferenceUID == remapped[original_frame.FrameOfReferenceUID]
    # the frame of reference each ROI names is the same remapped UID as the one declared above
    assert {roi.ReferencedFrameOfReferenceUID for roi in ds.StructureSetROISequence} == {
        frame.FrameOfReferenceUID
    }
    series = frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0].SeriesInstanceUID
    original_series = (
        original_frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0].SeriesInstanceUID
    )
    assert series == remapped[original_series] and series.startswith("2.25.")


def test_iso_2022_japanese_names_are_scrubbed_through_pydicom(tmp_path: Path) -> None:
    ds = dcmread(get_testdata_file("CT_small.dcm"))
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    ds.PatientName = "Yamada^Tarou=山田^太郎=やまだ^たろう"
    ds.ProcedureCodeSequence = [Dataset()]
    ds.ProcedureCodeSequence[0].CodeValue = "X1"
    ds.ProcedureCodeSequence[0].CodingSchemeDesignator = "99X"
    ds.ProcedureCodeSequence[0].CodeMeaning = "CT 山田太郎"
    source = tmp_path / "jp.dcm"
    ds.save_as(source, enforce_file_format=True)
    outcome = Deidentifier(BASIC, SECRET).deidentify_file(source, tmp_path / "out.dcm")
    assert outcome.quarantined is None
    out = dcmread(tmp_path / "out.dcm")
    assert out.ProcedureCodeSequence[0].CodeMeaning == "CT"
    assert (
        verify_path(tmp_path / "out.dcm", BASIC, ["Yamada^Tarou=山田^太郎=やまだ^たろう", "山田太郎"]) == []
    )
