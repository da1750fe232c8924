"""Volumes: the options of SEMANTICS.md, nesting, quotas, and bad input that changes nothing."""

from __future__ import annotations

import pytest

from medfabric.errors import (
    Conflict,
    InvalidInput,
    NotEmpty,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    ReadOnly,
)
from medfabric.service.access import Principal
from medfabric.service.fabric import Fabric


def test_seed_volumes_nest_under_their_parent(fabric: Fabric) -> None:
    fabric.volumes.create("medical_images", "/medical_images", replication=3)
    mri = fabric.volumes.create("mri_2024", "/medical_images/mri/2024", parent_volume="medical_images").volume
    fabric.volumes.create("ct_2024", "/medical_images/ct/2024", parent_volume="medical_images")
    assert mri.replication == 3 and mri.parent_id is not None
    assert [entry.name for entry in fabric.fs.listdir("/medical_images")] == ["ct", "mri"]
    listing = fabric.fs.listdir("/medical_images/mri")
    assert [(entry.name, entry.volume, entry.is_mount_point) for entry in listing] == [
        ("2024", "mri_2024", True)
    ]
    fabric.fs.write("/medical_images/mri/2024/a.dcm", b"MR")
    assert fabric.fs.stat("/medical_images/mri/2024/a.dcm").volume == "mri_2024"
    assert fabric.volumes.info("mri_2024").file_count == 1
    assert fabric.volumes.info("medical_images").file_count == 0


def test_a_parent_volume_cannot_be_removed_while_volumes_are_mounted_inside(fabric: Fabric) -> None:
    fabric.volumes.create("medical_images", "/medical_images")
    fabric.volumes.create("mri_2024", "/medical_images/mri/2024", parent_volume="medical_images")
    with pytest.raises(NotEmpty, match="mri_2024"):
        fabric.volumes.remove("medical_images")
    with pytest.raises(NotEmpty):
        fabric.fs.remove("/medical_images/mri", recursive=True)
    assert fabric.volumes.info("medical_images").mounted
    fabric.volumes.remove("mri_2024")
    fabric.volumes.remove("medical_images")
    assert [v.name for v in fabric.volumes.list()] == ["mapr.cluster.root"]
    assert not fabric.fs.exists("/medical_images")


def test_mount_unmount_rename(fabric: Fabric) -> None:
    fabric.volumes.create("studies", "/studies")
    fabric.fs.write("/studies/x", b"1")
    fabric.volumes.unmount("studies")
    assert not fabric.fs.exists("/studies/x")
    with pytest.raises(Conflict):
        fabric.volumes.unmount("studies")
    fabric.volumes.mount("studies", "/elsewhere/studies")
    assert fabric.fs.read("/elsewhere/studies/x") == b"1"
    fabric.volumes.rename("studies", "archive")
    assert fabric.volumes.info("archive").mount_path == "/elsewhere/studies"
    with pytest.raises(NotFound):
        fabric.volumes.info("studies")


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"name": "bad name", "path": "/x"}, InvalidInput),
        ({"name": "x", "path": "/../etc"}, InvalidInput),
        ({"name": "x", "path": "relative"}, InvalidInput),
        ({"name": "x", "path": "/"}, Conflict),
        ({"name": "x", "path": "/x", "replication": 7}, InvalidInput),
        ({"name": "x", "path": "/x", "replication": 2, "min_replication": 3}, InvalidInput),
        ({"name": "x", "path": "/x", "quota": "lots"}, InvalidInput),
        ({"name": "x", "path": "/x", "quota": "1G", "advisory_quota": "2G"}, InvalidInput),
        ({"name": "x", "path": "/x", "parent_volume": "nope"}, NotFound),
        ({"name": "x", "path": "/deep/er", "createparent": False}, NotFound),
    ],
)
def test_bad_volume_options_are_refused_and_change_nothing(
    fabric: Fabric, arguments: dict[str, object], error: type[Exception]
) -> None:
    before = [v.name for v in fabric.volumes.list()]
    with pytest.raises(error):
        fabric.volumes.create(**arguments)  # type: ignore[arg-type]
    assert [v.name for v in fabric.volumes.list()] == before
    assert fabric.fs.listdir("/") == []


def test_duplicates_are_conflicts(fabric: Fabric) -> None:
    fabric.volumes.create("a", "/a")
    with pytest.raises(Conflict):
        fabric.volumes.create("a", "/b")
    with pytest.raises(Conflict):
        fabric.volumes.create("b", "/a")
    fabric.fs.mkdir("/taken")
    with pytest.raises(Conflict):
        fabric.volumes.create("c", "/taken")


def test_replication_is_capped_by_data_directories_with_a_warning(fabric: Fabric) -> None:
    result = fabric.volumes.create("wide", "/wide", replication=5, min_replication=4)
    assert (result.volume.replication, result.volume.min_replication) == (3, 3)
    assert result.warnings and "capped" in result.warnings[0]


def test_hard_quota_refuses_the_write_that_would_pass_it(fabric: Fabric) -> None:
    fabric.volumes.create("q", "/q", quota="100K")
    fabric.fs.write("/q/a", b"x" * 60_000)
    with pytest.raises(QuotaExceeded):
        fabric.fs.write("/q/b", b"x" * 60_000)
    assert not fabric.fs.exists("/q/b")
    assert fabric.volumes.info("q").logical_bytes == 60_000
    with pytest.raises(QuotaExceeded):
        fabric.fs.write("/q/stream", iter([b"x" * 30_000, b"y" * 30_000]))
    assert not fabric.fs.exists("/q/stream")
    with pytest.raises(QuotaExceeded):
        fabric.fs.write_at("/q/a", 60_000, b"z" * 60_000)
    assert fabric.fs.stat("/q/a").size == 60_000
    assert any(alarm.name == "VOLUME_ALARM_QUOTA_EXCEEDED" for alarm in fabric.admin.alarms())
    fabric.fs.remove("/q/a")
    fabric.fs.write("/q/b", b"x" * 60_000)


def test_advisory_quota_raises_and_clears_an_alarm(fabric: Fabric) -> None:
    fabric.volumes.create("q", "/q", advisory_quota="10K")
    fabric.fs.write("/q/a", b"x" * 20_000)
    alarms = fabric.admin.alarms("volume q")
    assert [alarm.name for alarm in alarms] == ["VOLUME_ALARM_ADVISORY_QUOTA_EXCEEDED"]
    fabric.fs.remove("/q/a")
    assert fabric.admin.alarms("volume q") == []


def test_read_only_and_mirror_volumes_refuse_writes(fabric: Fabric) -> None:
    fabric.volumes.create("ro", "/ro")
    fabric.fs.write("/ro/a", b"1")
    fabric.volumes.modify("ro", readonly=True)
    for attempt in (
        lambda: fabric.fs.write("/ro/b", b"2"),
        lambda: fabric.fs.remove("/ro/a"),
        lambda: fabric.fs.mkdir("/ro/d"),
        lambda: fabric.fs.rename("/ro/a", "/ro/c"),
        lambda: fabric.fs.chmod("/ro/a", 0o600),
    ):
        with pytest.raises(ReadOnly):
            attempt()
    assert fabric.fs.read("/ro/a") == b"1"
    fabric.volumes.create("m", "/m", volume_type="mirror")
    with pytest.raises(ReadOnly, match="mirror"):
        fabric.fs.write("/m/x", b"1")
    promoted = fabric.volumes.modify("m", volume_type="rw").volume
    assert promoted.writable
    fabric.fs.write("/m/x", b"1")


def test_only_administrators_manage_volumes(fabric: Fabric) -> None:
    guest = fabric.acting_as(Principal("guest"))
    with pytest.raises(PermissionDenied):
        guest.volumes.create("mine", "/mine")
    fabric.volumes.create("v", "/v")
    for attempt in (
        lambda: guest.volumes.modify("v", quota="1G"),
        lambda: guest.volumes.remove("v"),
        lambda: guest.volumes.unmount("v"),
        lambda: guest.admin.config_save({"a.b": "1"}),
    ):
        with pytest.raises(PermissionDenied):
            attempt()


def test_volume_usage_reports_logical_and_stored_bytes(fabric: Fabric) -> None:
    fabric.volumes.create("u", "/u", replication=2, compression="zstd")
    fabric.fs.write("/u/text", b"DICOM " * 10_000)
    usage = fabric.volumes.usage("u")
    info = fabric.volumes.describe(fabric.volumes.info("u"), usage)
    assert info["logicalBytes"] == 60_000 and info["numFiles"] == 1
    assert 0 < usage["storedBytes"] < 60_000  # compressed
    assert usage["packs"] == 1 and usage["minReplicasOfAnyPack"] == 2
    assert usage["replicatedBytes"] == 2 * usage["packBytes"]
