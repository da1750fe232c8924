"""The imaging index and the metadata table follow `fs rm` and `fs mv`, in the transaction that
changes the namespace: a removed instance is not found any more, a moved one is found where it is."""

from __future__ import annotations

from typing import Any

import pytest

from medfabric.db import connect
from medfabric.imaging.ingest.model import IngestItem
from medfabric.service.fabric import Fabric
from tests.imaging.test_ingest_helpers import instance_rows, make_instance, seed_volumes

SOPS = ("1.2.9.1", "1.2.9.2", "1.2.9.3")


def stored(fabric: Fabric) -> dict[str, str]:
    """SOP Instance UID → path, of three MR slices of one series in mri_studies."""
    seed_volumes(fabric)
    blobs = [
        make_instance(sop_uid=sop, instance_number=n, study_date="20230105") for n, sop in enumerate(SOPS)
    ]
    report = fabric.dicom.ingest([IngestItem(blob, f"item{n}") for n, blob in enumerate(blobs)])
    assert [outcome.status for outcome in report.outcomes] == ["stored"] * 3
    return {str(outcome.sop_uid): str(outcome.path) for outcome in report.outcomes}


def paths(fabric: Fabric) -> dict[str, str]:
    return {row["sop_uid"]: row["path"] for row in instance_rows(fabric)}


def documents(fabric: Fabric) -> dict[str, tuple[str, str]]:
    table = connect("/medical_metadata", fabric=fabric)
    return {doc["sop_uid"]: (doc["path"], doc["volume"]) for doc in table.find()}


def series_count(fabric: Fabric) -> Any:
    rows = fabric.dicom.find("series")
    return rows[0]["number_of_series_related_instances"] if rows else None


def test_a_removed_instance_leaves_the_index_and_the_metadata_table(fabric: Fabric) -> None:
    where = stored(fabric)
    fabric.fs.remove(where[SOPS[0]])
    assert set(paths(fabric)) == set(documents(fabric)) == {SOPS[1], SOPS[2]}
    assert series_count(fabric) == 2
    fabric.fs.remove("/mri_studies/P001", recursive=True)  # the patient's whole tree
    assert paths(fabric) == {} and documents(fabric) == {}
    assert fabric.dicom.find("patient") == [] and fabric.dicom.find("study") == []
    # and it can be ingested again, as new
    again = fabric.dicom.ingest([IngestItem(make_instance(sop_uid=SOPS[0], study_date="20230105"), "again")])
    assert [outcome.status for outcome in again.outcomes] == ["stored"]
    assert fabric.admin.fsck() == []


def test_a_renamed_file_or_directory_is_found_where_it_is(fabric: Fabric) -> None:
    where = stored(fabric)
    fabric.fs.rename(where[SOPS[0]], "/mri_studies/first.dcm")
    assert paths(fabric)[SOPS[0]] == "/mri_studies/first.dcm"
    assert documents(fabric)[SOPS[0]] == ("/mri_studies/first.dcm", "mri_studies")
    fabric.fs.rename("/mri_studies/P001", "/mri_studies/P001-renamed")
    moved = {
        sop: path.replace("/mri_studies/P001/", "/mri_studies/P001-renamed/") for sop, path in where.items()
    }
    moved[SOPS[0]] = "/mri_studies/first.dcm"
    assert paths(fabric) == moved
    assert {sop: path for sop, (path, _volume) in documents(fabric).items()} == moved
    assert all(fabric.fs.exists(path) for path in moved.values())
    # a directory whose name only begins like another's is left alone
    fabric.fs.mkdir("/mri_studies/P001-renamed-not")
    fabric.fs.rename("/mri_studies/P001-renamed-not", "/mri_studies/elsewhere")
    assert paths(fabric) == moved
    assert series_count(fabric) == 3


def test_a_file_moved_over_an_instance_replaces_it_in_the_index(fabric: Fabric) -> None:
    where = stored(fabric)
    fabric.fs.rename(where[SOPS[0]], where[SOPS[1]])  # POSIX rename over an existing file
    assert paths(fabric) == {SOPS[0]: where[SOPS[1]], SOPS[2]: where[SOPS[2]]}
    assert set(documents(fabric)) == {SOPS[0], SOPS[2]}


def test_instances_moved_to_another_volume_go_with_their_files(fabric: Fabric) -> None:
    where = stored(fabric)
    fabric.fs.rename("/mri_studies/P001", "/medical_images/P001")
    moved = {sop: path.replace("/mri_studies/", "/medical_images/") for sop, path in where.items()}
    rows = {row["sop_uid"]: row for row in instance_rows(fabric)}
    assert {sop: row["path"] for sop, row in rows.items()} == moved
    assert {row["volume"] for row in rows.values()} == {"medical_images"}
    assert documents(fabric) == {sop: (path, "medical_images") for sop, path in moved.items()}
    for sop, path in moved.items():  # the rows point at the files now there
        assert fabric.fs.stat(path).ino == _raw_row(fabric, sop)["ino"]
    fabric.fs.remove("/medical_images/P001", recursive=True)
    assert paths(fabric) == {}


@pytest.mark.parametrize("name", ["notes.txt", "plain.dcm"])
def test_files_the_index_does_not_know_change_nothing_in_it(fabric: Fabric, name: str) -> None:
    where = stored(fabric)
    fabric.fs.write(f"/mri_studies/{name}", b"not an instance")
    fabric.fs.rename(f"/mri_studies/{name}", "/mri_studies/other")
    fabric.fs.remove("/mri_studies/other")
    assert paths(fabric) == where


def _raw_row(fabric: Fabric, sop: str) -> dict[str, Any]:
    import sqlalchemy as sa

    from medfabric.catalog.schema import dicom_instances

    with fabric.catalog.read() as conn:
        row = conn.execute(sa.select(dicom_instances).where(dicom_instances.c.sop_uid == sop)).one()
    return dict(row._mapping)


def test_new_content_written_over_an_instance_takes_it_out_of_the_index(fabric: Fabric) -> None:
    where = stored(fabric)
    fabric.fs.write(where[SOPS[0]], b"something else", overwrite=True)
    assert set(paths(fabric)) == set(documents(fabric)) == {SOPS[1], SOPS[2]}
    fabric.fs.write(where[SOPS[1]], make_instance(sop_uid="1.2.9.9", study_date="20230105"), overwrite=True)
    assert set(paths(fabric)) == {SOPS[2]}
    fabric.dicom.reindex("mri_studies")  # reads what was written by hand
    assert paths(fabric) == {SOPS[2]: where[SOPS[2]], "1.2.9.9": where[SOPS[1]]}
