"""The synthetic DICOM corpus: determinism, IOD conformance (dciodvfy), transfer syntaxes and
lossless round trips, planted PHI against the manifest, non-ASCII names, bad files, bulk CT."""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom import uid
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from medfabric.errors import InvalidInput
from medfabric.imaging.synth import (
    MANIFEST_NAME,
    PRIVATE_CREATOR,
    BadFileReason,
    CorpusSummary,
    generate_corpus,
    generate_ct_series_bulk,
    write_bad_files,
)
from medfabric.imaging.synth.encoding import InstanceEncoder
from medfabric.imaging.synth.patients import make_patient
from medfabric.imaging.synth.phi import PRIVATE_GROUP, PRIVATE_PATIENT_ID, PRIVATE_PATIENT_NAME
from medfabric.imaging.synth.studies import TRANSFER_SYNTAXES, SeriesRequest, plan_study
from medfabric.imaging.synth.writer import render_series

EXPECTED_SOP_CLASSES = {
    "CT": uid.CTImageStorage,
    "MR": uid.MRImageStorage,
    "CR": uid.ComputedRadiographyImageStorage,
    "US": uid.UltrasoundImageStorage,
    "OT": uid.SecondaryCaptureImageStorage,
}
PYTHON_CODECS = {None: "ascii", "ISO_IR 100": "latin_1", "ISO_IR 192": "utf-8"}
Corpus = tuple[CorpusSummary, dict[str, Any]]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    summary = generate_corpus(tmp_path_factory.mktemp("corpus"), patients=4, seed=0, size="small")
    return summary, json.loads(summary.manifest.read_text("utf-8"))


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _first_per_series(manifest: dict[str, Any]) -> Iterator[dict[str, Any]]:
    seen: set[str] = set()
    for entry in manifest["files"]:
        if entry["SeriesInstanceUID"] not in seen:
            seen.add(entry["SeriesInstanceUID"])
            yield entry


def _strings(ds: Dataset, codec: str) -> Iterator[str]:
    """Every text value in `ds`, sequences and private tags included; unknown (UN/OB) values decoded."""
    for element in ds.iterall():
        value = element.value
        if isinstance(value, bytes):
            yield value.decode(codec, errors="ignore")
            yield value.decode("utf-8", errors="ignore")
        elif isinstance(value, list | pydicom.multival.MultiValue):
            yield "\\".join(str(v) for v in value)
        elif element.VR != "SQ" and value is not None:
            yield str(value)


def test_same_seed_gives_identical_bytes_in_any_process_and_another_seed_differs(
    corpus: Corpus, tmp_path: Path
) -> None:
    summary, _ = corpus
    reference = _files(summary.root)
    again = generate_corpus(tmp_path / "again", patients=4, seed=0, size="small", workers=2)
    assert _files(again.root) == reference
    other = generate_corpus(tmp_path / "other", patients=4, seed=1, size="small")
    other_files = _files(other.root)
    assert set(other_files) == set(reference)  # same layout ...
    assert all(other_files[name] != reference[name] for name in reference)  # ... different content


def test_every_file_parses_decodes_and_matches_the_manifest(corpus: Corpus) -> None:
    summary, manifest = corpus
    on_disk = {p.relative_to(summary.root).as_posix() for p in summary.root.rglob("*.dcm")}
    assert on_disk == {entry["path"] for entry in manifest["files"]}
    assert summary.files == len(on_disk) and summary.total_bytes == sum(e["size"] for e in manifest["files"])
    for entry in manifest["files"]:
        path = summary.root / entry["path"]
        assert path.stat().st_size == entry["size"]
        ds = pydicom.dcmread(path)
        for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "Modality"):
            assert ds[keyword].value == entry[keyword], (entry["path"], keyword)
        assert ds.StudyDate == entry["StudyDate"] and ds.PatientID == entry["PatientID"]
        assert ds.file_meta.TransferSyntaxUID == entry["TransferSyntaxUID"]
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        pixels = ds.pixel_array
        expected_shape = (ds.Rows, ds.Columns) + ((3,) if ds.SamplesPerPixel == 3 else ())
        assert pixels.shape == expected_shape
        assert pixels.std() > 0  # a real image, not a blank frame
    assert len({e["SOPInstanceUID"] for e in manifest["files"]}) == len(manifest["files"])


def test_modalities_sop_classes_and_dates_spread_over_three_years(
    corpus: Corpus,
) -> None:
    summary, manifest = corpus
    assert set(summary.by_modality) == set(EXPECTED_SOP_CLASSES)
    assert set(summary.by_sop_class) == set(EXPECTED_SOP_CLASSES.values())
    for entry in manifest["files"]:
        assert entry["SOPClassUID"] == EXPECTED_SOP_CLASSES[entry["Modality"]]
    years = {(e["Modality"], e["StudyDate"][:4]) for e in manifest["files"]}
    assert {year for _, year in years} == {"2023", "2024", "2025"}
    assert ("MR", "2024") in years  # routing rules such as "MR of 2024" have data
    assert summary.patients == 4 and summary.studies == 12
    assert len({e["StudyInstanceUID"] for e in manifest["files"]}) == 12


def test_ct_and_mr_series_have_consistent_geometry(corpus: Corpus) -> None:
    summary, manifest = corpus
    for modality in ("CT", "MR"):
        series_uid = next(e["SeriesInstanceUID"] for e in manifest["files"] if e["Modality"] == modality)
        paths = [summary.root / e["path"] for e in manifest["files"] if e["SeriesInstanceUID"] == series_uid]
        slices = [pydicom.dcmread(p) for p in paths]
        assert len(slices) >= 5
        assert len({s.FrameOfReferenceUID for s in slices}) == 1
        assert {tuple(s.ImageOrientationPatient) for s in slices} == {(1, 0, 0, 0, 1, 0)}
        z = [float(s.ImagePositionPatient[2]) for s in slices]
        steps = np.diff(z)
        assert np.allclose(steps, steps[0]) and steps[0] != 0
        if modality == "CT":
            assert abs(steps[0]) == float(slices[0].SliceThickness)
            ct = slices[0]
            assert (ct.Rows, ct.Columns, ct.BitsAllocated, ct.PixelRepresentation) == (64, 64, 16, 1)
            assert ct.pixel_array.dtype == np.int16
            assert (ct.RescaleSlope, ct.RescaleIntercept, ct.RescaleType) == (1, -1024, "HU")
            hu = ct.pixel_array * float(ct.RescaleSlope) + float(ct.RescaleIntercept)
            assert hu.min() < -900 and hu.max() > 500  # air and bone
            assert ct.KVP and ct.ImageType[:3] == ["ORIGINAL", "PRIMARY", "AXIAL"]
        assert [s.InstanceNumber for s in slices] == list(range(1, len(slices) + 1))


def test_ultrasound_is_rgb_with_burned_in_annotation(corpus: Corpus) -> None:
    summary, manifest = corpus
    for entry in (e for e in manifest["files"] if e["Modality"] == "US"):
        ds = pydicom.dcmread(summary.root / entry["path"])
        assert ds.BurnedInAnnotation == "YES" and ds.SamplesPerPixel == 3
        expected = "YBR_RCT" if entry["TransferSyntaxUID"] == uid.JPEG2000Lossless else "RGB"
        assert ds.PhotometricInterpretation == expected
        assert ds.pixel_array.shape == (120, 160, 3)


def test_all_five_transfer_syntaxes_are_in_the_corpus(corpus: Corpus) -> None:
    summary, _ = corpus
    assert set(summary.by_transfer_syntax) == set(TRANSFER_SYNTAXES)


@pytest.mark.parametrize("protocol", ["CT_SOFT", "MR_T2", "US_ABDOMEN", "SC_SCREEN", "CR_PA"])
def test_every_transfer_syntax_round_trips_losslessly(protocol: str) -> None:
    patient = make_patient(7, 0)
    decoded: dict[str, list[np.ndarray]] = {}
    for transfer_syntax in TRANSFER_SYNTAXES:
        modality = {"CT": "CT", "MR": "MR", "US": "US", "SC": "OT", "CR": "CR"}[protocol[:2]]
        study = plan_study(
            patient, seed=7, namespace="test", study_index=0, modality=modality, year=2024,
            series=(SeriesRequest(protocol, 2, transfer_syntax),), size="small",
        )  # fmt: skip
        encoder = InstanceEncoder()
        decoded[transfer_syntax] = []
        for ds in render_series(patient, study, study.series[0], seed=7):
            parsed = pydicom.dcmread(io.BytesIO(b"".join(encoder.encode(ds))))
            assert parsed.file_meta.TransferSyntaxUID == transfer_syntax
            decoded[transfer_syntax].append(parsed.pixel_array)
    native = decoded[uid.ExplicitVRLittleEndian]
    for transfer_syntax, frames in decoded.items():
        for frame, reference in zip(frames, native, strict=True):
            assert frame.dtype == reference.dtype and np.array_equal(frame, reference), transfer_syntax


@pytest.mark.parametrize("transfer_syntax", TRANSFER_SYNTAXES)
def test_series_encoder_writes_exactly_what_pydicom_writes(transfer_syntax: str) -> None:
    patient = make_patient(3, 2)
    study = plan_study(
        patient, seed=3, namespace="test", study_index=1, modality="US", year=2025,
        series=(SeriesRequest("US_ABDOMEN", 3, transfer_syntax),), size="small",
    )  # fmt: skip
    encoder = InstanceEncoder()
    for ds in render_series(patient, study, study.series[0], seed=3):
        fast = b"".join(encoder.encode(ds))
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        assert fast == buffer.getvalue()


def test_manifest_phi_is_planted_in_the_files_including_sequences_and_private_tags(
    corpus: Corpus,
) -> None:
    summary, manifest = corpus
    for patient in manifest["patients"]:
        codec = PYTHON_CODECS[patient["SpecificCharacterSet"]]
        texts: list[str] = []
        for entry in _first_per_series(manifest):
            if entry["PatientID"] == patient["PatientID"]:
                texts.extend(_strings(pydicom.dcmread(summary.root / entry["path"]), codec))
        haystack = "\n".join(texts)
        missing = [phi for phi in patient["phi_strings"] if phi not in haystack]
        assert not missing, (patient["PatientID"], missing)
        assert {"PatientName", "PatientID", "PatientAddress", "AccessionNumber"} <= set(patient["phi"])


def test_phi_hides_in_sequences_private_blocks_and_free_text(corpus: Corpus) -> None:
    summary, manifest = corpus
    entry = next(e for e in manifest["files"] if e["TransferSyntaxUID"] == uid.ExplicitVRLittleEndian)
    patient = next(p for p in manifest["patients"] if p["PatientID"] == entry["PatientID"])
    ds = pydicom.dcmread(summary.root / entry["path"])
    name, patient_id = patient["PatientName"], patient["PatientID"]
    name_in_text = patient["phi"]["PatientNameInText"][-1]
    assert str(ds.ReferencedPatientSequence[0].PatientName) == name
    assert ds.OtherPatientIDsSequence[0].PatientID in patient["phi"]["OtherPatientIDs"]
    request = ds.RequestAttributesSequence[0]
    assert request.AccessionNumber == ds.AccessionNumber
    assert name_in_text in request.RequestedProcedureDescription
    assert name_in_text in ds.ProcedureCodeSequence[0].CodeMeaning
    assert name_in_text in ds.StudyDescription and patient_id in ds.ImageComments
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR)
    assert str(block[PRIVATE_PATIENT_NAME].value) == name
    assert block[PRIVATE_PATIENT_ID].value == patient_id
    private_items = [e for e in ds.iterall() if e.tag.is_private and e.VR == "SQ"]
    assert private_items and str(private_items[0].value[0].PatientName) == name
    # Implicit VR files carry the same private block, unparsed (UN), as a de-identifier will meet it.
    implicit = next(
        e for e in manifest["files"]
        if e["TransferSyntaxUID"] == uid.ImplicitVRLittleEndian and e["PatientID"] == patient_id
    )  # fmt: skip
    raw = (summary.root / implicit["path"]).read_bytes()
    assert patient_id.encode() in raw and PRIVATE_CREATOR.encode() in raw


def test_non_ascii_names_round_trip_with_their_specific_character_set(
    corpus: Corpus,
) -> None:
    summary, manifest = corpus
    character_sets = {p["PatientName"]: p["SpecificCharacterSet"] for p in manifest["patients"]}
    assert set(character_sets.values()) >= {"ISO_IR 100", "ISO_IR 192"}
    names = list(character_sets)
    assert any(set(name) & set("äöüÄÖÜß") for name in names)  # German, in ISO_IR 100
    assert any(set(name) & set("ØøÅåÆæÞþ") for name in names)  # Nordic, in UTF-8
    assert any(any("\u3040" <= ch <= "\u30ff" for ch in name) for name in names)  # Japanese kana
    assert any(any("\u4e00" <= ch <= "\u9fff" for ch in name) for name in names)  # CJK ideographs
    for patient in manifest["patients"]:
        entry = next(e for e in manifest["files"] if e["PatientID"] == patient["PatientID"])
        raw = (summary.root / entry["path"]).read_bytes()
        ds = pydicom.dcmread(io.BytesIO(raw))
        assert ds.get("SpecificCharacterSet") == patient["SpecificCharacterSet"]
        assert str(ds.PatientName) == patient["PatientName"]
        codec = PYTHON_CODECS[patient["SpecificCharacterSet"]]
        assert patient["PatientName"].encode(codec) in raw
        if "=" in patient["PatientName"]:
            assert ds.PatientName.ideographic == patient["PatientName"].split("=")[1]


@pytest.mark.parametrize("modality", ["CT", "MR", "CR", "US", "OT"])
def test_dciodvfy_reports_no_errors(corpus: Corpus, modality: str) -> None:
    summary, manifest = corpus
    one_per_transfer_syntax = {
        e["TransferSyntaxUID"]: e for e in reversed(manifest["files"]) if e["Modality"] == modality
    }
    assert one_per_transfer_syntax
    for entry in one_per_transfer_syntax.values():
        result = subprocess.run(
            ["dciodvfy", str(summary.root / entry["path"])], capture_output=True, text=True, check=False
        )
        report = result.stdout + result.stderr
        assert report.strip(), "dciodvfy printed nothing"
        errors = [line for line in report.splitlines() if line.startswith("Error")]
        assert not errors, (entry["path"], entry["TransferSyntaxUID"], errors)


def test_bad_files_fail_for_the_reasons_they_claim(tmp_path: Path) -> None:
    reasons = write_bad_files(tmp_path)
    assert sorted(reasons.values()) == sorted(reason.value for reason in BadFileReason)
    by_reason = {reason: tmp_path / name for name, reason in reasons.items()}
    assert by_reason["empty"].stat().st_size == 0
    for reason in ("empty", "not_dicom"):
        with pytest.raises(InvalidDicomError):
            pydicom.dcmread(by_reason[reason])
    truncated = pydicom.dcmread(by_reason["truncated"])
    pixel_data = truncated.get_item("PixelData")
    assert isinstance(pixel_data, RawDataElement) and len(pixel_data.value) < pixel_data.length
    with pytest.raises(ValueError):
        _ = truncated.pixel_array
    anonymous = pydicom.dcmread(by_reason["missing_sop_instance_uid"])
    assert "SOPInstanceUID" not in anonymous and "MediaStorageSOPInstanceUID" not in anonymous.file_meta
    assert anonymous.SOPClassUID == uid.CTImageStorage


def test_bulk_ct_corpus_is_full_size_ct_in_long_series(tmp_path: Path) -> None:
    summary = generate_ct_series_bulk(tmp_path / "bulk", instances=260, seed=5, size="full", workers=2)
    assert summary.files == 260 and dict(summary.by_modality) == {"CT": 260}
    assert summary.series == 2 and summary.manifest.name == MANIFEST_NAME
    assert 500_000 < summary.total_bytes / summary.files < 560_000
    manifest = json.loads(summary.manifest.read_text("utf-8"))
    first = pydicom.dcmread(summary.root / manifest["files"][0]["path"])
    assert (first.Rows, first.Columns) == (512, 512) and first.pixel_array.dtype == np.int16
    # Slices sharing a phantom template still differ: no two instances carry the same pixels.
    series = [e for e in manifest["files"] if e["SeriesInstanceUID"] == first.SeriesInstanceUID][:40]
    digests = {pydicom.dcmread(summary.root / e["path"]).PixelData for e in series}
    assert len(digests) == len(series)


def test_invalid_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        generate_corpus(tmp_path, patients=0)
    with pytest.raises(InvalidInput):
        generate_corpus(tmp_path, size="huge")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        generate_ct_series_bulk(tmp_path, instances=0, seed=0)
    with pytest.raises(InvalidInput):
        generate_ct_series_bulk(tmp_path, instances=1, seed=0, transfer_syntax=uid.JPEGBaseline8Bit)
