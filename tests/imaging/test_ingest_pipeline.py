"""The one ingest pipeline on both catalogs: placement, routing, idempotency, duplicate policies,
atomicity with the namespace, events after commit, one audit record per instance, the metadata table."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from medfabric.db import connect
from medfabric.errors import InvalidInput, NotFound, QuotaExceeded
from medfabric.imaging.ingest.events import IngestEvent
from medfabric.imaging.ingest.model import IngestItem, IngestReport
from medfabric.service.access import Principal
from medfabric.service.fabric import AccessEvent, Fabric
from tests.imaging.test_ingest_helpers import instance_rows, make_instance, seed_volumes


def ingest(fabric: Fabric, *blobs: bytes, **options: Any) -> IngestReport:
    return fabric.dicom.ingest([IngestItem(blob, f"item{n}") for n, blob in enumerate(blobs)], **options)


def statuses(report: IngestReport) -> list[str]:
    return [outcome.status for outcome in report.outcomes]


def files_under(fabric: Fabric, path: str) -> list[str]:
    return [f"{top}/{entry.name}" for top, _dirs, others in fabric.fs.walk(path) for entry in others]


def test_routing_places_each_instance_in_its_volume(fabric: Fabric) -> None:
    seed_volumes(fabric)
    report = ingest(
        fabric,
        make_instance(modality="MR", study_date="20240510", sop_uid="1.2.3.1"),
        make_instance(modality="CT", study_date="20240510", sop_uid="1.2.3.2", series_uid="1.2.9"),
        make_instance(modality="MR", study_date="20230510", sop_uid="1.2.3.3", study_uid="1.2.8"),
        make_instance(modality="US", study_date="20240510", sop_uid="1.2.3.4", series_uid="1.2.10"),
        make_instance(modality="MR", study_date="20240510", sop_uid="1.2.3.5", patient_id="../../etc/passwd"),
    )
    assert statuses(report) == ["stored"] * 5
    assert [o.volume for o in report.outcomes] == [
        "mri_2024",
        "ct_2024",
        "mri_studies",
        "medical_images",
        "mri_2024",
    ]
    assert (
        report.outcomes[0].path
        == "/medical_images/mri/2024/P001/20240510/MR/1.2.826.0.1.3680043.8.498.1/1.2.3.1.dcm"
    )
    assert report.outcomes[4].path is not None and "/%2E.%2F..%2Fetc%2Fpasswd/" in report.outcomes[4].path
    assert fabric.fs.stat(report.outcomes[4].path).volume == "mri_2024"
    for outcome in report.outcomes:
        assert outcome.path is not None and fabric.fs.stat(outcome.path).volume == outcome.volume


def test_the_volume_option_overrides_routing(fabric: Fabric) -> None:
    seed_volumes(fabric)
    report = ingest(fabric, make_instance(modality="MR", study_date="20240510"), volume="mri_studies")
    assert report.outcomes[0].volume == "mri_studies"
    with pytest.raises(NotFound):
        ingest(fabric, make_instance(), volume="no_such_volume")


def test_without_a_route_an_instance_is_rejected(fabric: Fabric) -> None:
    seed_volumes(fabric, routes=False)
    fabric.dicom.configure(routes=[{"volume": "mri_studies", "modality": "MR"}])
    report = ingest(fabric, make_instance(modality="CT"), make_instance(modality="MR"))
    assert statuses(report) == ["rejected", "stored"]
    assert report.outcomes[0].reason == "unrouted"
    with pytest.raises(InvalidInput):
        fabric.dicom.configure(policy="overwrite")
    with pytest.raises(NotFound):
        fabric.dicom.configure(routes=[{"volume": "nowhere", "modality": "MR"}])


def test_an_identical_resend_stores_nothing(fabric: Fabric) -> None:
    seed_volumes(fabric)
    blob = make_instance()
    first = ingest(fabric, blob)
    before = fabric.volumes.info("mri_2024")
    again = ingest(fabric, blob, blob)
    assert statuses(again) == ["duplicate", "duplicate"]
    assert again.outcomes[0].path == first.outcomes[0].path
    after = fabric.volumes.info("mri_2024")
    assert (after.file_count, after.logical_bytes) == (before.file_count, before.logical_bytes)
    assert len(instance_rows(fabric)) == 1


def test_a_different_object_under_a_stored_uid_is_rejected_by_default(fabric: Fabric) -> None:
    seed_volumes(fabric)
    ingest(fabric, make_instance(sop_uid="1.2.3.9"))
    report = ingest(fabric, make_instance(sop_uid="1.2.3.9", pixel_byte=7))
    assert statuses(report) == ["rejected"] and report.outcomes[0].reason == "conflict"
    assert len(instance_rows(fabric)) == 1
    inside = ingest(fabric, make_instance(sop_uid="1.2.3.8"), make_instance(sop_uid="1.2.3.8", pixel_byte=7))
    assert statuses(inside) == ["stored", "rejected"]  # the same within one batch


def test_the_keep_policy_stores_both_versions(fabric: Fabric) -> None:
    seed_volumes(fabric)
    fabric.dicom.configure(policy="keep")
    first = ingest(fabric, make_instance(sop_uid="1.2.3.9"))
    second = ingest(fabric, make_instance(sop_uid="1.2.3.9", pixel_byte=7))
    assert statuses(second) == ["stored"] and second.outcomes[0].version == 2
    first_path, second_path = first.outcomes[0].path, second.outcomes[0].path
    assert first_path is not None and second_path == first_path.replace(".dcm", ".v2.dcm")
    rows = instance_rows(fabric, {"sop_uid": "1.2.3.9"})
    assert [(r["version"], r["latest"]) for r in rows] == [(1, False), (2, True)]
    assert fabric.dicom.find("series")[0]["number_of_series_related_instances"] == 1  # one SOP instance
    assert statuses(ingest(fabric, make_instance(sop_uid="1.2.3.9", pixel_byte=7))) == ["duplicate"]
    with connect("/medical_metadata", fabric=fabric) as table:
        assert {d["_id"] for d in table.find({"sop_uid": "1.2.3.9"})} == {"1.2.3.9", "1.2.3.9;v2"}


def test_bad_input_is_rejected_with_reasons_and_never_stops_the_batch(fabric: Fabric) -> None:
    seed_volumes(fabric)
    good = make_instance()
    report = ingest(
        fabric,
        b"",
        b"%PDF-1.4 not dicom",
        good[: len(good) - 10],
        make_instance(drop=("SOPInstanceUID",)),
        good,
    )
    assert statuses(report) == ["rejected"] * 4 + ["stored"]
    assert [o.reason for o in report.outcomes[:4]] == [
        "empty",
        "not_dicom",
        "truncated",
        "missing_sop_instance_uid",
    ]
    assert all(o.message for o in report.outcomes[:4])


def test_a_failure_inside_the_transaction_stores_nothing(
    fabric: Fabric, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_volumes(fabric)
    from medfabric.imaging import index

    def broken(*_args: Any, **_kwargs: Any) -> set[int]:
        raise InvalidInput("index unavailable")

    monkeypatch.setattr(index, "record", broken)
    report = ingest(fabric, make_instance(), make_instance())
    assert statuses(report) == ["failed", "failed"]
    assert files_under(fabric, "/medical_images/mri/2024") == []
    monkeypatch.undo()
    assert statuses(ingest(fabric, make_instance())) == ["stored"]


def test_a_refusal_of_the_fabric_fails_the_items(fabric: Fabric) -> None:
    seed_volumes(fabric)
    fabric.volumes.modify("mri_studies", quota="1K")
    report = ingest(fabric, *(make_instance(instance_number=n) for n in range(3)), volume="mri_studies")
    assert set(statuses(report)) == {"failed"}
    assert isinstance(report.outcomes[0].error, QuotaExceeded)


def test_events_go_out_after_commit_and_a_failing_listener_is_harmless(fabric: Fabric) -> None:
    seed_volumes(fabric)
    seen: list[IngestEvent] = []

    def committed(event: IngestEvent) -> None:
        assert instance_rows(fabric, {"sop_uid": event.sop_uid})  # already visible to other readers
        seen.append(event)

    def broken(_event: object) -> None:
        raise RuntimeError("subscriber down")

    fabric.engines.ingest_listeners.extend([broken, committed])
    report = ingest(fabric, make_instance(sop_uid="1.2.5.1"), b"", make_instance(sop_uid="1.2.5.1"))
    assert statuses(report) == ["stored", "rejected", "duplicate"]
    assert len(seen) == 1
    event = seen[0]
    assert (event.volume, event.sop_uid, event.modality, event.patient_id) == (
        "mri_2024",
        "1.2.5.1",
        "MR",
        "P001",
    )
    assert event.path == report.outcomes[0].path and event.size == report.outcomes[0].size


def test_every_instance_leaves_an_audit_record_with_its_identifiers(fabric: Fabric) -> None:
    seed_volumes(fabric)
    records: list[AccessEvent] = []
    fabric.add_access_listener(records.append)
    ingest(fabric, make_instance(sop_uid="1.2.6.1"), b"junk")
    ingested = [r for r in records if r.operation == "dicom ingest"]
    assert [r.outcome for r in ingested] == ["allowed", "failed"]
    stored = ingested[0]
    assert (stored.sop_uid, stored.patient_id, stored.volume) == ("1.2.6.1", "P001", "mri_2024")
    assert stored.study_uid == "1.2.826.0.1.3680043.8.498.2" and stored.path is not None
    assert "not_dicom" in ingested[1].detail


def test_an_audited_volume_keeps_a_verifiable_record_of_every_ingested_instance(fabric: Fabric) -> None:
    seed_volumes(fabric)
    fabric.admin.config_save({"mfs.enable.audit.log": "1"})
    fabric.audit.data("mri_2024", True)
    sops = [f"1.2.6.{n}" for n in range(1, 6)]
    report = ingest(fabric, *(make_instance(sop_uid=sop) for sop in sops), make_instance(sop_uid=sops[0]))
    assert statuses(report) == ["stored"] * 5 + ["duplicate"]
    ingested = [r for r in fabric.audit.query(volume="mri_2024") if r.operation == "dicom ingest"]
    assert sorted(r.sop_instance_uid for r in ingested) == sorted([*sops, sops[0]])
    assert all(r.outcome.value == "allowed" and r.patient_id == "P001" for r in ingested)
    written = [r for r in fabric.audit.query(volume="mri_2024") if r.operation == "write"]
    assert len([r for r in written if r.path and r.path.endswith(".dcm")]) == 5
    assert fabric.audit.verify().ok


def test_one_batch_of_instances_with_and_without_optional_attributes(fabric: Fabric) -> None:
    """Real batches mix files that carry PatientSex, StudyDescription, … with files that do not."""
    seed_volumes(fabric)
    report = ingest(
        fabric,
        make_instance(patient_id="P1", sop_uid="1.2.7.1", study_uid="1.2.7", series_uid="1.2.7.0"),
        make_instance(
            patient_id="P2",
            sop_uid="1.2.8.1",
            study_uid="1.2.8",
            series_uid="1.2.8.0",
            drop=("PatientSex", "PatientBirthDate", "StudyDescription", "SeriesDescription"),
        ),
        make_instance(
            patient_id="P3", sop_uid="1.2.9.1", study_uid="1.2.9", series_uid="1.2.9.0", drop=("PatientSex",)
        ),
    )
    assert statuses(report) == ["stored"] * 3
    patients = {row["patient_id"]: row for row in fabric.dicom.find("patient", {})}
    assert (patients["P1"]["patient_sex"], patients["P2"]["patient_sex"], patients["P3"]["patient_sex"]) == (
        "F",
        None,
        None,
    )


def test_the_seed_query_finds_the_metadata_documents(fabric: Fabric) -> None:
    seed_volumes(fabric)
    ingest(
        fabric,
        make_instance(modality="MR", study_date="20240510"),
        make_instance(modality="MR", study_date="20231231", study_uid="1.2.77"),
        make_instance(modality="CT", study_date="20240510", series_uid="1.2.78"),
    )
    with connect("/medical_metadata", fabric=fabric) as table:
        found = table.find({"modality": "MR", "study_date": {"$gt": "20240101"}})
    assert len(found) == 1
    document = found[0]
    assert (document["volume"], document["patient_id"], document["PatientName"]) == (
        "mri_2024",
        "P001",
        "Doe^Jane",
    )
    assert document["path"].startswith("/medical_images/mri/2024/P001/20240510/MR/")


def test_a_file_removed_by_hand_is_stored_again(fabric: Fabric) -> None:
    seed_volumes(fabric)
    blob = make_instance()
    path = ingest(fabric, blob).outcomes[0].path
    assert path is not None
    fabric.fs.remove(path)
    report = ingest(fabric, blob)
    assert statuses(report) == ["stored"] and report.outcomes[0].path == path
    assert len(instance_rows(fabric)) == 1


def test_a_user_who_may_write_the_volume_may_ingest_into_it(local_fabric: Fabric) -> None:
    seed_volumes(local_fabric)
    ingest(local_fabric, make_instance(sop_uid="1.2.7.1"))  # the metadata table now belongs to admin
    local_fabric.volumes.create("ward", "/ward", read_ace="p", write_ace="p")
    local_fabric.fs.chmod("/ward", 0o777)
    radiologist = local_fabric.acting_as(Principal("radiologist"))
    report = ingest(radiologist, make_instance(sop_uid="1.2.7.2"), volume="ward")
    assert statuses(report) == ["stored"]
    assert radiologist.fs.stat(str(report.outcomes[0].path)).owner == "radiologist"
    with connect("/medical_metadata", fabric=radiologist) as table:
        assert table.find_by_id("1.2.7.2") is not None
    denied = ingest(radiologist, make_instance(sop_uid="1.2.7.3"))  # routed to mri_2024: not writable
    assert statuses(denied) == ["failed"] and denied.outcomes[0].reason == "PermissionDenied"


def test_concurrent_ingests_of_the_same_instances_store_each_once(fabric: Fabric) -> None:
    seed_volumes(fabric)
    blobs = [make_instance(sop_uid=f"1.2.8.{n}", instance_number=n) for n in range(12)]
    reports: list[IngestReport] = []

    def worker(order: list[bytes]) -> None:
        for start in range(0, len(order), 3):
            reports.append(ingest(fabric, *order[start : start + 3]))

    threads = [
        threading.Thread(target=worker, args=(list(o),)) for o in (blobs, blobs[::-1], blobs[5:] + blobs[:5])
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outcomes = [o for report in reports for o in report.outcomes]
    assert sorted(o.status for o in outcomes) == ["duplicate"] * 24 + ["stored"] * 12
    rows = instance_rows(fabric)
    assert sorted(r["sop_uid"] for r in rows) == sorted(f"1.2.8.{n}" for n in range(12))
    for row in rows:
        assert fabric.fs.read(row["path"]) in blobs
    assert fabric.dicom.find("series")[0]["number_of_series_related_instances"] == 12
