"""Mirrors between fabrics: full and incremental syncs, atomic apply, resume, promote, failback."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from medfabric.catalog.schema import blobs
from medfabric.errors import Conflict, InvalidInput, ReadOnly
from medfabric.replication import sync as sync_module
from medfabric.replication.transport import CommitResult, SyncTicket
from medfabric.service.fabric import Fabric
from medfabric.service.mirror_peer import MirrorPeer
from medfabric.service.writes import NewFile
from tests.conftest import make_fabric
from tests.replication.common import no_errors, view


@pytest.fixture
def source(fabric: Fabric) -> Fabric:
    """The hospital's fabric (on each catalog dialect), with a volume of studies."""
    fabric.volumes.create("mri", "/mri", replication=2)
    rng = random.Random(4)
    fabric.fs.write_many(
        [
            NewFile(f"/mri/p{i % 5}/s{i % 3}/i{i}.dcm", rng.randbytes(rng.choice([100, 9000, 70_000])))
            for i in range(60)
        ]
    )
    fabric.fs.write("/mri/large.nii", rng.randbytes(9_000_000))
    fabric.fs.symlink("/mri/large.nii", "/mri/latest")
    return fabric


@pytest.fixture
def dr(tmp_path: Path, source: Fabric) -> Iterator[Fabric]:
    """The disaster-recovery fabric, which knows the hospital's as `hospital`."""
    target = make_fabric(tmp_path / "dr", datadirs=2)
    target.remotes.add("hospital", str(source.config.home))
    target.volumes.create("mri_dr", "/mri", volume_type="mirror", source="mri@hospital", replication=1)
    try:
        yield target
    finally:
        target.close()


def blob_count(fabric: Fabric, volume: str) -> int:
    volume_id = fabric.volumes.info(volume).id
    with fabric.catalog.read() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).where(blobs.c.volume_id == volume_id)).scalar_one()
        )


def test_full_then_incremental_sync(source: Fabric, dr: Fabric) -> None:
    first = dr.mirrors.start("mri_dr")
    assert first.full and first.rows_added > 60
    snapshot = f"/mri/.snapshot/{first.snapshot}"
    assert view(dr, "/mri") == view(source, snapshot) == view(source, "/mri")
    assert dr.fs.readlink("/mri/latest") == "/mri/large.nii"
    source.fs.write("/mri/p0/s0/i0.dcm", b"corrected", overwrite=True)
    source.fs.remove("/mri/p1", recursive=True)
    source.fs.rename("/mri/p2", "/mri/p2-moved")
    source.fs.write("/mri/new.dcm", os.urandom(5000))
    source.fs.chmod("/mri/large.nii", 0o600)
    second = dr.mirrors.start("mri_dr")
    assert not second.full
    assert second.blobs_sent == 2  # only the two new bodies; moved and chmod'ed files send rows only
    assert view(dr, "/mri") == view(source, f"/mri/.snapshot/{second.snapshot}") == view(source, "/mri")
    assert dr.fs.stat("/mri/large.nii").mode & 0o777 == 0o600
    # The source keeps only the snapshot the mirror shows (the previous one was removed).
    assert [s.name for s in source.snapshots.list("mri")] == [second.snapshot]
    info = dr.volumes.info("mri_dr")
    assert (info.file_count, info.logical_bytes) == (
        source.volumes.info("mri").file_count,
        source.volumes.info("mri").logical_bytes,
    )
    assert dr.mirrors.verify("mri_dr").ok
    assert no_errors(dr) == [] and no_errors(source) == []
    status = dr.mirrors.status("mri_dr")
    assert status.state == "idle" and status.synced_snapshot == second.snapshot


def test_the_mirror_equals_the_snapshot_it_was_synced_from(source: Fabric, dr: Fabric) -> None:
    synced = dr.mirrors.start("mri_dr")
    expected = view(source, f"/mri/.snapshot/{synced.snapshot}")
    rng = random.Random(9)
    for step in range(30):  # the source moves on; neither the mirror nor the snapshot does
        files = [
            item.path for _d, _s, others in source.fs.walk("/mri") for item in others if item.type == "file"
        ]
        target = rng.choice(files)
        if step % 3 == 0:
            source.fs.remove(target)
        else:
            source.fs.write(target, rng.randbytes(500), overwrite=True)
        if step % 10 == 9:
            source.admin.gc(grace_seconds=0)
    assert view(dr, "/mri") == expected == view(source, f"/mri/.snapshot/{synced.snapshot}")
    assert view(source, "/mri") != expected
    with pytest.raises(ReadOnly):
        dr.fs.write("/mri/intruder", b"x")


def test_a_killed_sync_resumes_and_the_mirror_is_never_partial(
    source: Fabric, dr: Fabric, monkeypatch: pytest.MonkeyPatch
) -> None:
    dr.mirrors.start("mri_dr")
    before = view(dr, "/mri")
    source.fs.write_many([NewFile(f"/mri/batch/f{i}", os.urandom(3000 + i)) for i in range(40)])
    monkeypatch.setattr(sync_module, "PAGE_ROWS", 7)
    monkeypatch.setattr(sync_module, "BATCH_BLOBS", 3)
    peer = dr.mirrors.peer
    real_stage = peer.stage
    staged: list[int] = []

    def failing_stage(ticket, page):  # type: ignore[no-untyped-def]
        if len(staged) == 3:
            raise KeyboardInterrupt("killed")  # not a MedfabricError: nothing cleans up after it
        staged.append(len(page.entries))
        return real_stage(ticket, page)

    monkeypatch.setattr(peer, "stage", failing_stage)
    blobs_before = blob_count(dr, "mri_dr")
    with pytest.raises(KeyboardInterrupt):
        dr.mirrors.start("mri_dr")
    sent_before_kill = blob_count(dr, "mri_dr") - blobs_before
    assert sent_before_kill > 0
    assert view(dr, "/mri") == before  # three pages staged, none visible
    assert dr.mirrors.status("mri_dr").rows_staged == sum(staged)
    monkeypatch.setattr(peer, "stage", real_stage)
    resumed = dr.mirrors.start("mri_dr")
    assert resumed.resumed
    assert resumed.blobs_sent == 40 - sent_before_kill  # nothing sent twice
    assert view(dr, "/mri") == view(source, "/mri")
    assert dr.mirrors.verify("mri_dr").ok and no_errors(dr) == []


def test_a_stopped_sync_resumes(source: Fabric, dr: Fabric, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync_module, "PAGE_ROWS", 10)
    peer = dr.mirrors.peer
    real_stage = peer.stage

    def stop_then_stage(ticket, page):  # type: ignore[no-untyped-def]
        dr.mirrors.stop("mri_dr")  # as `volume mirror stop` from another process would
        return real_stage(ticket, page)

    monkeypatch.setattr(peer, "stage", stop_then_stage)
    stopped = dr.mirrors.start("mri_dr")
    assert stopped.stopped and dr.mirrors.status("mri_dr").state == "stopped"
    assert dr.fs.listdir("/mri") == []
    monkeypatch.setattr(peer, "stage", real_stage)
    assert dr.mirrors.start("mri_dr").resumed
    assert view(dr, "/mri") == view(source, "/mri")


def test_promote_write_then_fail_back(tmp_path: Path, source: Fabric, dr: Fabric) -> None:
    dr.mirrors.start("mri_dr")
    source.snapshots.create("mri", "before-disaster")
    # The hospital is down: promote the mirror and keep working on it.
    dr.volumes.modify("mri_dr", volume_type="rw")
    dr.fs.write("/mri/written-during-outage.dcm", b"new study")
    dr.fs.remove("/mri/p3", recursive=True)
    # The hospital is back: its volume becomes a mirror of the promoted one, and syncs.
    source.remotes.add("dr", str(dr.config.home))
    source.volumes.modify("mri", volume_type="mirror", source="mri_dr@dr")
    back = source.mirrors.start("mri")
    assert back.full
    assert back.blobs_sent == 1  # everything else was already there: blob ids are content hashes
    assert view(source, "/mri") == view(dr, "/mri")
    assert source.mirrors.verify("mri").ok
    assert source.fs.exists("/mri/.snapshot/before-disaster/p3")  # nothing lost for good
    # And the other way round again: the hospital is primary once more.
    source.volumes.modify("mri", volume_type="rw")
    source.fs.write("/mri/after-failback.dcm", b"back home")
    dr.volumes.modify("mri_dr", volume_type="mirror", source="mri@hospital")
    dr.mirrors.start("mri_dr")
    assert view(dr, "/mri") == view(source, "/mri")
    assert no_errors(source) == [] and no_errors(dr) == []


def test_losing_the_base_snapshot_falls_back_to_a_full_sync(source: Fabric, dr: Fabric) -> None:
    first = dr.mirrors.start("mri_dr")
    source.snapshots.remove("mri", first.snapshot)
    source.fs.write("/mri/later.dcm", b"later")
    again = dr.mirrors.start("mri_dr")
    assert again.full and again.blobs_sent == 1
    assert view(dr, "/mri") == view(source, "/mri")


def test_a_mirror_in_the_same_fabric_and_its_own_snapshots(source: Fabric) -> None:
    source.volumes.create("mri_copy", "/mri_copy", volume_type="mirror", source="mri")
    source.mirrors.start("mri_copy")
    first_state = view(source, "/mri")
    source.snapshots.create("mri_copy", "kept")  # the mirror's own history
    source.fs.write("/mri/extra", b"extra")
    source.mirrors.start("mri_copy")
    assert view(source, "/mri_copy") == view(source, "/mri")
    assert [item.name for item in source.fs.listdir("/mri_copy/.snapshot")] == ["kept"]
    assert view(source, "/mri_copy/.snapshot/kept") == first_state
    assert not source.fs.exists("/mri_copy/.snapshot/kept/extra")
    assert source.mirrors.verify("mri_copy").ok


def test_verify_finds_a_damaged_mirror(tmp_path: Path, source: Fabric) -> None:
    target = make_fabric(tmp_path / "dr1", datadirs=1)
    try:
        target.remotes.add("hospital", str(source.config.home))
        target.volumes.create("m", "/m", volume_type="mirror", source="mri@hospital")
        target.mirrors.start("m")
        for pack in (tmp_path / "dr1").rglob("*.pack"):
            data = bytearray(pack.read_bytes())
            data[len(data) // 2] ^= 0x55
            pack.write_bytes(bytes(data))
        report = target.mirrors.verify("m")
        assert not report.ok
        assert all("unreadable" in problem or "differs" in problem for _path, problem in report.mismatches)
    finally:
        target.close()


def test_clear_errors(source: Fabric, dr: Fabric) -> None:
    with pytest.raises(Conflict, match="not a mirror volume"):
        source.mirrors.start("mri")
    with pytest.raises(InvalidInput, match="only with -type mirror"):
        dr.volumes.create("x", "/x", source="mri@hospital")
    with pytest.raises(InvalidInput, match=r"not available yet|home directory"):
        dr.remotes.add("web", "https://dr.example.org")
    with pytest.raises(Conflict):
        dr.remotes.add("hospital", str(source.config.home))


@pytest.mark.seaweedfs
def test_mirror_into_a_fabric_on_seaweedfs(tmp_path: Path, s3_fabric: Fabric) -> None:
    hospital = make_fabric(tmp_path / "hospital", datadirs=2)
    try:
        hospital.volumes.create("mri", "/mri", replication=2)
        hospital.fs.write_many([NewFile(f"/mri/f{i}", os.urandom(20_000 + i)) for i in range(30)])
        hospital.fs.write("/mri/big", os.urandom(6_000_000))
        hospital.remotes.add("dr", str(s3_fabric.config.home))
        status, result = hospital.mirrors.create("mri_dr", "/mri", "/mapr/dr/mri")
        assert result is not None and result.full and status.synced_snapshot == result.snapshot
        assert view(s3_fabric, "/mri") == view(hospital, "/mri")
        hospital.fs.write("/mri/f0", b"changed", overwrite=True)
        again = hospital.mirrors.start("mri_dr@dr")
        assert again.blobs_sent == 1
        assert view(s3_fabric, "/mri") == view(hospital, "/mri")
        assert hospital.mirrors.verify("mri_dr@dr").ok
        assert no_errors(s3_fabric) == []
    finally:
        hospital.close()


def test_an_encrypted_source_is_refused_clearly(source: Fabric, dr: Fabric) -> None:
    source.volumes.create("sealed", "/sealed", dare=True)
    source.fs.write("/sealed/x", b"phi")
    dr.volumes.create("sealed_dr", "/sealed", volume_type="mirror", source="sealed@hospital")
    with pytest.raises(InvalidInput, match="blake3-keyed"):
        dr.mirrors.start("sealed_dr")
    assert dr.mirrors.status("sealed_dr").state == "failed"
    assert [s.name for s in source.snapshots.list("sealed")] == []  # it took no source snapshot


def test_snapshots_left_by_syncs_killed_after_their_commit_are_removed_later(
    source: Fabric, dr: Fabric, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sync killed after its commit, before it removed the older source snapshot, leaves it to
    the next sync; if that one is killed at the same point too, neither snapshot may be forgotten."""
    dr.mirrors.start("mri_dr")
    real_commit, real_drop = MirrorPeer.commit, MirrorPeer.drop_snapshot
    committed = {"now": False}

    def commit(self: MirrorPeer, ticket: SyncTicket, source_next_counter: int) -> CommitResult:
        result = real_commit(self, ticket, source_next_counter)
        committed["now"] = True
        return result

    def drop(self: MirrorPeer, volume: str, name: str) -> None:
        if committed["now"]:
            raise KeyboardInterrupt("killed")  # as a kill right after the commit would
        real_drop(self, volume, name)

    monkeypatch.setattr(MirrorPeer, "commit", commit)
    monkeypatch.setattr(MirrorPeer, "drop_snapshot", drop)
    for step in range(3):
        source.fs.write(f"/mri/killed{step}.dcm", os.urandom(2000))
        committed["now"] = False
        with pytest.raises(KeyboardInterrupt):
            dr.mirrors.start("mri_dr")
        assert view(dr, "/mri") == view(source, "/mri")  # committed all the same
        assert len(source.snapshots.list("mri")) == 2  # the one shown, and one left to remove
    monkeypatch.setattr(MirrorPeer, "drop_snapshot", real_drop)
    final = dr.mirrors.start("mri_dr")
    assert [s.name for s in source.snapshots.list("mri")] == [final.snapshot]
    assert view(dr, "/mri") == view(source, "/mri") and dr.mirrors.verify("mri_dr").ok
