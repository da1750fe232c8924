"""The verifier catches what a de-identifier left behind (negative tests on deliberately spoiled outputs)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from medfabric.imaging.deid import BASIC, LONGITUDINAL, RESEARCH, Finding, verify_deidentified, verify_path
from medfabric.imaging.deid.dicomio import encode_file
from medfabric.imaging.deid.verify import phi_variants

from .conftest import Deidentify
from .planted import PATIENTS, PlantedFile


def _clean(planted: list[PlantedFile], deidentify_planted: Deidentify, index: int = 0) -> Dataset:
    return dcmread(deidentify_planted(BASIC)[planted[index].path][1])


def _rules(findings: list[Finding]) -> set[str]:
    return {f.rule for f in findings}


def test_a_clean_output_has_no_findings(planted: list[PlantedFile], deidentify_planted: Deidentify) -> None:
    ds = _clean(planted, deidentify_planted)
    assert verify_deidentified(ds, BASIC, source_phi=planted[0].source_phi) == []


def test_phi_left_in_an_attribute_is_found_by_tag_path(
    planted: list[PlantedFile], deidentify_planted: Deidentify
) -> None:
    ds = _clean(planted, deidentify_planted)
    ds.PatientName = PATIENTS[0].name  # Z with the original value
    ds.ProcedureCodeSequence[0].CodeMeaning = f"CT for {PATIENTS[0].name_in_text}"
    findings = verify_deidentified(ds, BASIC, source_phi=planted[0].source_phi)
    where = {f.keyword for f in findings if f.rule == "phi-value"}
    assert "PatientName" in where and "ProcedureCodeSequence[0].CodeMeaning" in where


def test_table_violations_private_tags_overlays_and_curves(
    planted: list[PlantedFile], deidentify_planted: Deidentify
) -> None:
    ds = _clean(planted, deidentify_planted)
    ds.OtherPatientNames = "Nobody^Special"  # X
    ds.ReferencedPatientSequence = Sequence([Dataset()])  # X sequence
    ds.private_block(0x0041, "VENDOR X", create=True).add_new(0x01, "LO", "harmless?")
    ds.add_new(0x60003000, "OW", b"\0\0")
    ds.add_new(0x50000005, "US", 1)
    with pytest.warns(UserWarning):  # pydicom warns of the invalid UID when it is set and written
        ds.SOPInstanceUID = "1.2.03.4"  # not a valid UID (leading zero)
        findings = verify_deidentified(ds, BASIC)
    assert {"table-X", "private", "overlay", "curve", "invalid-uid", "meta-uid"} <= _rules(findings)
    assert {f.keyword for f in findings if f.rule == "table-X"} == {
        "OtherPatientNames",
        "ReferencedPatientSequence",
    }


def test_missing_markers_and_unshifted_temporal_flag(
    planted: list[PlantedFile], deidentify_planted: Deidentify
) -> None:
    ds = _clean(planted, deidentify_planted)
    del ds.PatientIdentityRemoved
    del ds.DeidentificationMethod
    del ds.DeidentificationMethodCodeSequence
    findings = verify_deidentified(ds, LONGITUDINAL)
    messages = " ".join(f.message for f in findings if f.rule == "marker")
    assert "Patient Identity Removed" in messages and "Longitudinal Temporal" in messages
    assert "De-identification Method" in messages


def test_quarantined_instances_are_flagged(
    planted: list[PlantedFile], deidentify_planted: Deidentify
) -> None:
    ds = _clean(planted, deidentify_planted)
    ds.BurnedInAnnotation = "YES"
    assert "quarantine" in _rules(verify_deidentified(ds, BASIC))


def test_bytes_are_searched_in_the_character_set_and_name_variants(
    planted: list[PlantedFile], deidentify_planted: Deidentify
) -> None:
    latin = PATIENTS[1]
    ds = _clean(planted, deidentify_planted, index=len(planted) // 2 + 1)
    assert ds.SpecificCharacterSet == "ISO_IR 100"
    # hidden where no attribute parser looks: an opaque private blob, in Latin-1, reordered and upper-case
    block = ds.private_block(0x0043, "BLOB", create=True)
    block.add_new(0x10, "OB", b"HDR;" + "JÜRGEN MÜLLER".encode("latin-1") + b";\0")
    raw = encode_file(ds)
    findings = verify_deidentified(ds, BASIC, source_phi=[latin.name], raw_bytes=raw)
    byte_hits = [f for f in findings if f.rule == "phi-bytes"]
    assert byte_hits and byte_hits[0].offset is not None
    offset = byte_hits[0].offset
    assert raw[offset : offset + 6].decode("latin-1").upper() in {"JÜRGEN", "MÜLLER"}
    assert {"Jürgen Müller", "Müller Jürgen", "Müller, Jürgen", "Jürgen", "Müller"} <= phi_variants(
        latin.name
    )


def test_verify_path_walks_a_tree_and_reports_unreadable_files(
    planted: list[PlantedFile], deidentify_planted: Deidentify, tmp_path: Path
) -> None:
    good = dcmread(deidentify_planted(BASIC)[planted[0].path][1])
    good.PatientComments = f"call {PATIENTS[0].name_in_text}"
    (tmp_path / "a" / "b").mkdir(parents=True)
    good.save_as(tmp_path / "a" / "b" / "x.dcm")
    (tmp_path / "a" / "junk.dcm").write_bytes(b"garbage")
    findings = verify_path(tmp_path, BASIC, planted[0].source_phi)
    by_file = {(Path(f.path or "").name, f.rule) for f in findings}
    assert ("x.dcm", "table-X") in by_file and ("x.dcm", "phi-value") in by_file
    assert ("junk.dcm", "unreadable") in by_file


def test_safe_private_attributes_pass_only_under_a_profile_that_keeps_them(
    planted: list[PlantedFile], deidentify_planted: Deidentify
) -> None:
    ds = dcmread(deidentify_planted(RESEARCH)[planted[0].path][1])
    assert any(e.tag.is_private for e in ds)  # GEMS_ACQU_01 table speed and friends
    assert not [f for f in verify_deidentified(ds, RESEARCH) if f.rule == "private"]
    assert [f for f in verify_deidentified(ds, BASIC) if f.rule == "private"]


def test_without_raw_bytes_the_dataset_is_encoded_for_the_search(
    planted: list[PlantedFile], deidentify_planted: Deidentify
) -> None:
    ds = _clean(planted, deidentify_planted)
    ds.add_new(0x00431010, "OB", b"x" * 4)  # a private element without its creator
    ds.ImageComments = "nothing"
    buffer = io.BytesIO()
    ds.save_as(buffer)
    assert _rules(verify_deidentified(ds, BASIC)) == _rules(
        verify_deidentified(ds, BASIC, raw_bytes=buffer.getvalue())
    )
