"""The imaging index on both catalogs: counts kept right, `find` at every level with MongoDB-style
conditions, the issuer in the patient key, and reconciling with files changed by hand."""

from __future__ import annotations

from typing import Any

import pytest

from medfabric.db import connect
from medfabric.errors import InvalidInput
from medfabric.imaging.ingest.model import IngestItem
from medfabric.service.fabric import Fabric
from tests.imaging.test_ingest_helpers import make_instance, seed_volumes

STUDY_A, STUDY_B, STUDY_C = "1.2.100", "1.2.200", "1.2.300"


@pytest.fixture
def indexed(fabric: Fabric) -> Fabric:
    """Two patients: P1 has an MR+CT study in 2024 (2 + 1 instances) and an MR study in 2023 (1);
    P2 (no study date, no body part) has one US instance."""
    seed_volumes(fabric)
    mr = {"patient_id": "P1", "study_uid": STUDY_A, "study_date": "20240301", "modality": "MR"}
    head = {"series_uid": "1.2.101", "BodyPartExamined": "HEAD"}
    blobs = [
        make_instance(instance_number=1, **mr, **head),
        make_instance(instance_number=2, **mr, **head),
        make_instance(series_uid="1.2.102", SeriesNumber=2, **{**mr, "modality": "CT"}),
        make_instance(patient_id="P1", study_uid=STUDY_B, series_uid="1.2.201", study_date="20230601",
                      patient_name="Doe^Jane^Q"),
        make_instance(patient_id="P2", study_uid=STUDY_C, series_uid="1.2.301", modality="US",
                      study_date=None, patient_name="Roe^Richard"),
    ]  # fmt: skip
    report = fabric.dicom.ingest([IngestItem(blob, f"b{n}") for n, blob in enumerate(blobs)])
    assert [o.status for o in report.outcomes] == ["stored"] * 5
    return fabric


def uids(rows: list[dict[str, Any]], key: str) -> list[Any]:
    return sorted(row[key] for row in rows)


def test_counts_at_every_level(indexed: Fabric) -> None:
    patients = {row["patient_id"]: row for row in indexed.dicom.find("patient")}
    assert patients["P1"]["number_of_patient_related_studies"] == 2
    assert patients["P2"]["number_of_patient_related_studies"] == 1
    assert patients["P1"]["patient_name"] == "Doe^Jane^Q"  # the latest name ingested
    studies = {row["study_uid"]: row for row in indexed.dicom.find("study")}
    assert studies[STUDY_A]["modalities_in_study"] == ["CT", "MR"]
    assert studies[STUDY_A]["number_of_study_related_series"] == 2
    assert studies[STUDY_A]["number_of_study_related_instances"] == 3
    assert studies[STUDY_C]["study_date"] is None
    series = {row["series_uid"]: row for row in indexed.dicom.find("series")}
    assert series["1.2.101"]["number_of_series_related_instances"] == 2
    assert series["1.2.102"]["series_number"] == 2
    assert len(indexed.dicom.find("instance")) == 5


ALL_SERIES = ["1.2.101", "1.2.102", "1.2.201", "1.2.301"]
CASES: list[tuple[str, dict[str, Any], str, list[Any]]] = [
    ("study", {"modality": "MR"}, "study_uid", [STUDY_A, STUDY_B]),  # any series below matches
    ("study", {"modalities_in_study": "CT"}, "study_uid", [STUDY_A]),
    ("study", {"study_date": {"$gt": "20240101"}}, "study_uid", [STUDY_A]),
    ("study", {"study_date": {"$exists": False}}, "study_uid", [STUDY_C]),
    ("study", {"study_date": {"$ne": "20240301"}}, "study_uid", [STUDY_B, STUDY_C]),  # missing: $ne holds
    ("study", {"$or": [{"modality": "US"}, {"study_date": "20230601"}]}, "study_uid", [STUDY_B, STUDY_C]),
    ("study", {"$not": {"modality": "MR"}}, "study_uid", [STUDY_C]),
    ("study", {"number_of_study_related_instances": {"$gte": 2}}, "study_uid", [STUDY_A]),
    ("series", {"modality": {"$in": ["CT", "US"]}}, "series_uid", ["1.2.102", "1.2.301"]),
    ("series", {"body_part_examined": {"$exists": True}}, "series_uid", ["1.2.101"]),
    ("series", {"patient_name": {"$like": "Roe%"}}, "series_uid", ["1.2.301"]),
    ("series", {"patient_name": {"$like": "roe%"}}, "series_uid", []),  # LIKE is case-sensitive
    ("series", {"series_description": {"$matches": "^Test"}}, "series_uid", ALL_SERIES),
    ("patient", {"modality": "CT"}, "patient_id", ["P1"]),
    ("patient", {"study_date": {"$lt": "20240101"}}, "patient_id", ["P1"]),
    ("instance", {"modality": "MR", "study_date": {"$gt": "20240101"}}, "instance_number", [1, 2]),
    ("instance", {"volume": "mri_2024"}, "instance_number", [1, 2]),
    ("instance", {"instance_number": {"$gt": "1"}}, "instance_number", []),  # int never compares with str
    ("instance", {"latest": True, "patient_id": "P2"}, "instance_number", [1]),
]


def test_find_with_conditions(indexed: Fabric) -> None:
    for level, condition, key, expected in CASES:
        assert uids(indexed.dicom.find(level, condition), key) == expected, (level, condition)


def test_find_takes_json_text_limit_and_offset(indexed: Fabric) -> None:
    assert len(indexed.dicom.find("instance", '{"patient_id": "P1"}')) == 4
    page = indexed.dicom.find("instance", None, limit=2, offset=1)
    assert len(page) == 2 and page[0] == indexed.dicom.find("instance")[1]


MALFORMED = [
    '{"modality": ',
    "[1, 2]",
    '{"Modality": "MR"}',
    '{"modality": {"$near": 1}}',
    '{"x": {"$size": 1}}',
]


def test_malformed_conditions_are_invalid_input(indexed: Fabric) -> None:
    for condition in MALFORMED:
        with pytest.raises(InvalidInput):
            indexed.dicom.find("study", condition)
    with pytest.raises(InvalidInput):
        indexed.dicom.find("galaxy")


def test_the_issuer_is_part_of_the_patient_key(fabric: Fabric) -> None:
    seed_volumes(fabric)
    fabric.dicom.ingest(
        [
            IngestItem(make_instance(patient_id="123", issuer="HOSPITAL_A", study_uid="1.2.1"), "a"),
            IngestItem(
                make_instance(patient_id="123", issuer="HOSPITAL_B", study_uid="1.2.2", series_uid="1.2.3"),
                "b",
            ),
        ]
    )
    patients = fabric.dicom.find("patient", {"patient_id": "123"})
    assert uids(patients, "issuer_of_patient_id") == ["HOSPITAL_A", "HOSPITAL_B"]


def test_reindex_follows_files_removed_renamed_and_written_by_hand(indexed: Fabric) -> None:
    fabric = indexed
    mr = fabric.dicom.find("instance", {"series_uid": "1.2.101"})
    ct = fabric.dicom.find("instance", {"series_uid": "1.2.102"})[0]
    fabric.fs.remove(mr[0]["path"])
    fabric.fs.rename(ct["path"], ct["path"].replace(".dcm", ".renamed.dcm"))
    fabric.fs.write(
        "/mri_studies/by-hand/x.dcm", make_instance(sop_uid="1.2.999", patient_id="P9"), parents=True
    )
    fabric.fs.write("/mri_studies/by-hand/notes.txt", b"not an instance")
    # removals and renames are followed at once (test_index_follows_namespace.py); files written by
    # hand wait for a reindex, which parses them
    assert not fabric.dicom.find("instance", {"sop_uid": mr[0]["sop_uid"]})
    assert not fabric.dicom.find("instance", {"sop_uid": "1.2.999"})
    results = {row["volume"]: row for row in fabric.dicom.reindex()}
    assert (results["mri_2024"]["removed"], results["ct_2024"]["moved"]) == (0, 0)
    assert (results["mri_studies"]["added"], results["mri_studies"]["skipped"]) == (1, 1)
    studies = {row["study_uid"]: row for row in fabric.dicom.find("study")}
    assert studies[STUDY_A]["number_of_study_related_instances"] == 2
    assert fabric.dicom.find("instance", {"series_uid": "1.2.102"})[0]["path"].endswith(".renamed.dcm")
    assert fabric.dicom.find("instance", {"sop_uid": "1.2.999"})[0]["path"] == "/mri_studies/by-hand/x.dcm"
    with connect("/medical_metadata", fabric=fabric) as table:
        assert table.find_by_id(mr[0]["sop_uid"]) is None
        moved = table.find_by_id(ct["sop_uid"])
        assert moved is not None and moved["path"].endswith(".renamed.dcm")
        assert table.find_by_id("1.2.999") is not None
    fabric.fs.remove(mr[1]["path"])
    fabric.dicom.reindex("mri_2024")
    assert fabric.dicom.find("study", {"study_uid": STUDY_A})[0]["modalities_in_study"] == ["CT"]
    fabric.volumes.remove("ct_2024")
    removed = fabric.dicom.reindex()[-1]
    assert removed == {"volume": "(removed volumes)", "removed": 1, "moved": 0, "added": 0, "skipped": 0}
    assert not fabric.dicom.find("study", {"study_uid": STUDY_A})
