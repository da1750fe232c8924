"""The engine on planted studies: nothing identifying survives, outputs are valid and coherent DICOM."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from medfabric.errors import InvalidInput, NotFound
from medfabric.imaging.deid import BASIC, LONGITUDINAL, Deidentifier, verify_deidentified, verify_path
from medfabric.imaging.deid.verify import PhiSearch

from .conftest import OTHER_SECRET, SECRET, Deidentify
from .planted import PATIENTS, PRIVATE_CREATOR, STUDY_DATE, PlantedFile, planted_instance


def _bytes_contain(data: bytes, value: str) -> bool:
    lowered = data.lower()
    for codec in ("utf-8", "latin-1"):
        try:
            if value.encode(codec).lower() in lowered:
                return True
        except UnicodeEncodeError:
            continue
    return False


def test_no_planted_value_survives_in_any_output_byte(
    planted: list[PlantedFile], deidentify_planted: Deidentify
) -> None:
    outputs = deidentify_planted(BASIC)
    for item in planted:
        outcome, target = outputs[item.path]
        assert outcome.quarantined is None
        data = target.read_bytes()
        leaks = [value for value in item.source_phi if _bytes_contain(data, value)]
        leaks += [value for value in item.patient.name.split("^") if _bytes_contain(data, value)]
        assert leaks == [], f"{target}: {leaks}"
        assert list(PhiSearch(item.source_phi).in_bytes(data)) == []


def test_outputs_verify_clean_and_parse(planted: list[PlantedFile], deidentify_planted: Deidentify) -> None:
    outputs = deidentify_planted(BASIC)
    for item in planted:
        _, target = outputs[item.path]
        assert verify_path(target, BASIC, item.source_phi) == []
        ds = dcmread(target)
        for _ in ds.iterall():
            pass
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert PRIVATE_CREATOR not in str(ds) and not any(e.tag.is_private for e in ds.iterall())
        assert not any(e.tag.group & 0xFF00 in (0x5000, 0x6000) for e in ds)
        assert ds.PixelData == dcmread(item.path).PixelData  # pixel data untouched


def test_actions_follow_the_table(planted: list[PlantedFile], deidentify_planted: Deidentifier) -> None:
    item = planted[1]
    outcome, target = deidentify_planted(BASIC)[item.path]
    ds = dcmread(target)
    assert "OtherPatientNames" not in ds and "ImageComments" not in ds  # X
    assert "RequestAttributesSequence" not in ds and "OtherPatientIDsSequence" not in ds  # X sequences
    assert ds.StudyDate == "" and ds.AccessionNumber == "" and ds.PatientSex == ""  # Z
    assert ds.SeriesDate == "19000101" and ds.ContentDate == "19000101"  # X/D, Z/D: a valid dummy date
    assert ds.InstitutionName == "ANONYMIZED"  # X/Z/D
    assert "ReferencedStudySequence" not in ds  # X/Z on a (Type 3) sequence: an empty one is invalid
    assert ds.PatientID.startswith("PSN") and ds.PatientName.family_name == "PSN"
    assert [c.CodeValue for c in ds.DeidentificationMethodCodeSequence] == ["113100"]
    assert ds.LongitudinalTemporalInformationModified == "REMOVED"
    code_meaning = ds.ProcedureCodeSequence[0].CodeMeaning  # not in the table: kept, names scrubbed
    assert code_meaning == "CT chest -"
    counted = {(a.keyword, a.action) for a in outcome.actions}
    assert {
        ("PatientName", "PNAME"),
        ("PatientID", "PID"),
        ("ImageComments", "X"),
        ("StudyDate", "Z"),
        ("SOPInstanceUID", "U"),
        ("CodeMeaning", "scrub"),
    } <= counted


def test_uids_stay_coherent_across_instances_and_engines(
    planted: list[PlantedFile], deidentify_planted: Deidentify, tmp_path: Path
) -> None:
    # half the instances through a second, independent engine with the same secret
    second = Deidentifier(BASIC, SECRET)
    outputs = dict(deidentify_planted(BASIC))
    for item in planted[::2]:
        target = tmp_path / item.path.name / f"{id(item)}.dcm"
        outputs[item.path] = (second.deidentify_file(item.path, target), target)
    new_series: dict[str, set[str]] = defaultdict(set)
    new_study: dict[str, set[str]] = defaultdict(set)
    new_frame: dict[str, set[str]] = defaultdict(set)
    sop_map: dict[str, str] = {}
    datasets = {}
    for item in planted:
        ds = dcmread(outputs[item.path][1])
        datasets[item.sop_uid] = ds
        new_series[item.series_uid].add(ds.SeriesInstanceUID)
        new_study[item.study_uid].add(ds.StudyInstanceUID)
        new_frame[item.frame_uid].add(ds.FrameOfReferenceUID)
        sop_map[item.sop_uid] = ds.SOPInstanceUID
    assert all(len(uids) == 1 for uids in (*new_series.values(), *new_study.values(), *new_frame.values()))
    assert len(set(sop_map.values())) == len(planted)
    for uids in (new_series, new_study, new_frame):
        for original, (new,) in uids.items():
            assert new != original and new.startswith("2.25.") and len(new) <= 64
    for item in planted:
        if item.referenced_sop_uid is not None:
            reference = datasets[item.sop_uid].ReferencedImageSequence[0].ReferencedSOPInstanceUID
            assert reference == sop_map[item.referenced_sop_uid]  # resolves inside the output set


def _deidentify_bytes(path: Path) -> bytes:
    ds = Deidentifier(BASIC, SECRET).deidentify(dcmread(path)).dataset
    assert ds is not None
    from medfabric.imaging.deid.dicomio import encode_file

    return encode_file(ds)


def test_same_secret_same_output_in_other_processes_other_secret_other_output(
    planted: list[PlantedFile],
) -> None:
    paths = [item.path for item in planted[:4]]
    with ProcessPoolExecutor(max_workers=2) as pool:
        remote = list(pool.map(_deidentify_bytes, paths))
    local = [_deidentify_bytes(path) for path in paths]
    assert remote == local
    engine, other = Deidentifier(BASIC, SECRET), Deidentifier(BASIC, OTHER_SECRET)
    a = engine.deidentify(dcmread(paths[0])).dataset
    b = other.deidentify(dcmread(paths[0])).dataset
    assert a is not None and b is not None
    for keyword in ("PatientID", "PatientName", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        assert a.get(keyword) != b.get(keyword)


def _dates(ds: Dataset) -> dict[str, str]:
    return {k: str(ds.get(k)) for k in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")}


def test_modified_dates_shift_one_patient_consistently(
    planted: list[PlantedFile], deidentify_planted: Deidentify
) -> None:
    outputs = deidentify_planted(LONGITUDINAL)
    shifts: dict[int, set[int]] = defaultdict(set)
    original = dt.date(int(STUDY_DATE[:4]), int(STUDY_DATE[4:6]), int(STUDY_DATE[6:]))
    for item in planted:
        outcome, target = outputs[item.path]
        ds = dcmread(target)
        assert outcome.date_shift_days is not None and -3650 <= outcome.date_shift_days <= -1
        shifts[item.patient.index].add(outcome.date_shift_days)
        expected = (original + dt.timedelta(days=outcome.date_shift_days)).strftime("%Y%m%d")
        assert set(_dates(ds).values()) == {expected}
        assert ds.AcquisitionDateTime == expected + "101500.000000"  # DT: the date moves, the time stays
        assert ds.StudyTime == "101500"  # TM: whole-day shifts leave times as they are
        assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
        assert "113107" in [c.CodeValue for c in ds.DeidentificationMethodCodeSequence]
        assert ds.PatientBirthDate == ""  # Z whatever the option: not in its column
    assert all(len(values) == 1 for values in shifts.values())
    assert shifts[0] != shifts[1]  # two patients, two (keyed) shifts


def test_burned_in_and_risky_sop_classes_are_quarantined(tmp_path: Path) -> None:
    engine = Deidentifier(BASIC, SECRET)
    burned = planted_instance(PATIENTS[0], 1, 1)
    burned.BurnedInAnnotation = "YES"
    outcome = engine.deidentify(burned)
    assert outcome.dataset is None and outcome.quarantined == "Burned In Annotation is YES"
    for sop_class in (
        "1.2.840.10008.5.1.4.1.1.7",
        "1.2.840.10008.5.1.4.1.1.6.1",
        "1.2.840.10008.5.1.4.1.1.88.11",
    ):
        ds = planted_instance(PATIENTS[0], 1, 1)
        ds.SOPClassUID = sop_class
        path = tmp_path / "in.dcm"
        ds.save_as(path, enforce_file_format=True)
        outcome = engine.deidentify_file(path, tmp_path / "out.dcm")
        assert outcome.quarantined and not (tmp_path / "out.dcm").exists()
    permissive = Deidentifier(BASIC.extend("no-quarantine", quarantine=False), SECRET)
    assert permissive.deidentify(burned).dataset is not None


def test_reidentification_pairs_match_the_output(
    planted: list[PlantedFile], deidentify_planted: Deidentify
) -> None:
    item = planted[0]
    outcome, target = deidentify_planted(BASIC)[item.path]
    ds = dcmread(target)
    pairs = {(p.attribute, p.original): p.pseudonym for p in outcome.reid_pairs}
    assert pairs[("PatientID", item.patient.patient_id)] == ds.PatientID
    assert pairs[("PatientName", item.patient.name)] == str(ds.PatientName)
    assert pairs[("UID", item.sop_uid)] == ds.SOPInstanceUID
    assert pairs[("UID", item.series_uid)] == ds.SeriesInstanceUID
    assert Deidentifier(BASIC, SECRET, collect_reid=False).deidentify(dcmread(item.path)).reid_pairs == ()


def test_deidentify_leaves_its_input_alone_unless_in_place(planted: list[PlantedFile]) -> None:
    original = dcmread(planted[0].path)
    engine = Deidentifier(BASIC, SECRET)
    out = engine.deidentify(original).dataset
    assert out is not None and original.PatientName == PATIENTS[0].name and out is not original
    assert original.file_meta.MediaStorageSOPInstanceUID == planted[0].sop_uid
    assert verify_deidentified(out, BASIC, source_phi=planted[0].source_phi) == []
    in_place = engine.deidentify(original, in_place=True).dataset
    assert in_place is original and original.PatientName != PATIENTS[0].name


def test_bad_files_get_clear_errors(tmp_path: Path) -> None:
    engine = Deidentifier(BASIC, SECRET)
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom at all" * 10)
    with pytest.raises(InvalidInput):
        engine.deidentify_file(junk, tmp_path / "out.dcm")
    with pytest.raises(NotFound):
        engine.deidentify_file(tmp_path / "missing.dcm", tmp_path / "out.dcm")
    assert not (tmp_path / "out.dcm").exists()
