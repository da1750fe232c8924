"""`dicom find` shows a principal only what its grants let it read: the index holds every volume's
patients, so a query must not become a way around the volumes' ACLs and ACEs."""

from __future__ import annotations

import pytest

from medfabric.imaging.ingest.model import IngestItem
from medfabric.service.fabric import Fabric, resolve_principal
from tests.imaging.test_ingest_helpers import make_instance


@pytest.fixture
def hospital(local_fabric: Fabric) -> Fabric:
    fabric = local_fabric
    for user, groups in (("radiologist", []), ("scientist", []), ("researcher", ["research"]), ("guest", [])):
        fabric.security.user_add(user, member_of=groups)
    fabric.volumes.create("mri", "/mri")
    fabric.volumes.create("ct", "/ct", read_ace="g:research")
    fabric.security.acl_change("volume", volume="mri", user="radiologist:fc,scientist:r")
    items = [
        IngestItem(make_instance(patient_id="P-MRI", modality="MR", sop_uid="1.2.1.1"), "a", volume="mri"),
        IngestItem(
            make_instance(
                patient_id="P-CT", modality="CT", sop_uid="1.2.2.1", study_uid="1.2.9", series_uid="1.2.9.1"
            ),
            "b",
            volume="ct",
        ),
        IngestItem(
            make_instance(
                patient_id="P-CT", modality="CT", sop_uid="1.2.2.2", study_uid="1.2.9", series_uid="1.2.9.1"
            ),
            "c",
            volume="ct",
        ),
    ]
    report = fabric.dicom.ingest(items)
    assert [o.status for o in report.outcomes] == ["stored"] * 3
    return fabric


def as_user(fabric: Fabric, name: str) -> Fabric:
    return fabric.acting_as(resolve_principal(fabric.catalog, name))


def sops(fabric: Fabric, level: str = "instance") -> list[str]:
    key = {"instance": "sop_uid", "series": "series_uid", "study": "study_uid", "patient": "patient_id"}[
        level
    ]
    return sorted(row[key] for row in fabric.dicom.find(level, {}))


def test_each_principal_finds_only_the_volumes_it_may_read(hospital: Fabric) -> None:
    assert sops(hospital) == ["1.2.1.1", "1.2.2.1", "1.2.2.2"]  # the administrator
    for user in ("radiologist", "scientist"):  # the volume ACL grants mri
        assert sops(as_user(hospital, user)) == ["1.2.1.1"]
        assert sops(as_user(hospital, user), "patient") == ["P-MRI"]
    assert sops(as_user(hospital, "guest")) == []
    for level in ("patient", "study", "series"):
        assert sops(as_user(hospital, "guest"), level) == []


def test_a_volume_readace_admits_instances_whose_files_may_be_read(hospital: Fabric) -> None:
    researcher = as_user(hospital, "researcher")
    assert sops(researcher) == ["1.2.2.1", "1.2.2.2"]  # readAce g:research, files 0644
    (hidden,) = [row["path"] for row in hospital.dicom.find("instance", {"sop_uid": "1.2.2.2"})]
    hospital.security.setace(hidden, {"readfile": "u:admin"})
    assert sops(researcher) == ["1.2.2.1"]
    with pytest.raises(Exception, match="readfile ACE denies"):
        researcher.fs.read(hidden)  # find agrees with the file system
    assert [row["sop_uid"] for row in researcher.dicom.find("instance", {}, limit=1, offset=0)] == ["1.2.2.1"]
    # aggregate levels use volume ACLs only: the readAce volume's studies are not listed
    assert sops(researcher, "study") == []
