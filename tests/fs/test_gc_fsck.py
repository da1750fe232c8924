"""GC reclaims exactly what nothing reaches, after the grace period; fsck finds inconsistencies."""

from __future__ import annotations

import os

import sqlalchemy as sa

from medfabric.blobstore.local import LocalBackend
from medfabric.blobstore.pack import PACK_HEADER_SIZE
from medfabric.catalog.schema import blobs, packs, volumes
from medfabric.clock import ManualClock
from medfabric.service.fabric import Fabric
from medfabric.service.writes import NewFile


def _pack_files(fabric: Fabric) -> list[str]:
    names = []
    for backend in fabric.store.backends.values():
        assert isinstance(backend, LocalBackend)
        names += [p.name for p in backend.root.rglob("*.pack")]
    return names


def test_gc_keeps_live_data_and_reclaims_the_rest_after_the_grace_period(fabric: Fabric) -> None:
    fabric.volumes.create("v", "/v", replication=1)
    keep = os.urandom(100_000)
    fabric.fs.write("/v/keep", keep)
    fabric.fs.write_many([NewFile(f"/v/tmp/{i}", os.urandom(10_000)) for i in range(100)])
    fabric.fs.remove("/v/tmp", recursive=True)
    report = fabric.admin.gc()  # default grace: an hour; nothing is deleted yet
    assert report.blobs_marked == 100 and report.blobs_deleted == 0
    assert fabric.volumes.usage("v")["blobs"] == 101
    report = fabric.admin.gc(grace_seconds=0)
    assert report.blobs_deleted == 100
    assert fabric.volumes.usage("v")["blobs"] == 1
    assert fabric.fs.read("/v/keep") == keep
    assert [p for p in fabric.admin.fsck() if p.severity == "error"] == []


def test_a_blob_reused_during_the_grace_period_survives(fabric: Fabric) -> None:
    fabric.volumes.create("v", "/v", replication=1)
    body = os.urandom(50_000)
    fabric.fs.write("/v/a", body)
    fabric.fs.remove("/v/a")
    assert fabric.admin.gc().blobs_marked == 1
    fabric.fs.write("/v/b", body)  # dedups against the marked blob and clears the mark
    assert fabric.admin.gc(grace_seconds=0).blobs_deleted == 0
    assert fabric.fs.read("/v/b") == body


def test_compaction_rewrites_mostly_dead_packs(local_fabric: Fabric) -> None:
    fabric = local_fabric
    fabric.volumes.create("v", "/v", replication=2, compression="off")
    fabric.store.pack_target_size = 1024 * 1024  # small packs: the first one seals quickly
    files = [NewFile(f"/v/f{i}", os.urandom(20_000)) for i in range(120)]
    for start in range(0, 120, 20):
        fabric.fs.write_many(files[start : start + 20])
    for item in files[:100]:
        fabric.fs.remove(item.path)
    with fabric.catalog.read() as conn:
        sealed = conn.execute(sa.select(sa.func.count()).where(packs.c.state == "sealed")).scalar_one()
    assert sealed >= 1
    report = fabric.admin.gc(grace_seconds=0)
    assert report.packs_compacted >= 1 and report.bytes_reclaimed > 0
    for item in files[100:]:
        assert fabric.fs.read(item.path) == item.data
    assert [p for p in fabric.admin.fsck() if p.severity == "error"] == []


def test_removing_a_volume_frees_its_packs(local_fabric: Fabric) -> None:
    local_fabric.volumes.create("gone", "/gone")
    local_fabric.fs.write("/gone/a", os.urandom(10_000))
    assert _pack_files(local_fabric)
    local_fabric.volumes.remove("gone")
    local_fabric.admin.gc(grace_seconds=0)
    assert _pack_files(local_fabric) == []
    assert local_fabric.admin.fsck() == []


def test_stray_pack_objects_are_deleted_after_the_grace_period(
    tmp_path: object, local_fabric: Fabric
) -> None:
    backend = next(iter(local_fabric.store.backends.values()))
    assert isinstance(backend, LocalBackend)
    old_id = (1).to_bytes(6, "big").hex() + "00" * 10  # created in 1970
    backend.put(f"packs/9/00/{old_id}.pack", b"leftover")
    report = local_fabric.admin.gc(grace_seconds=60)
    assert report.objects_deleted == 1


def test_fsck_finds_missing_packs_bad_counters_and_missing_blobs(local_fabric: Fabric) -> None:
    fabric = local_fabric
    fabric.volumes.create("v", "/v", replication=1)
    fabric.fs.write("/v/a", os.urandom(1000))
    assert fabric.admin.fsck() == []
    with fabric.catalog.write() as conn:
        conn.execute(volumes.update().where(volumes.c.name == "v").values(file_count=5))
    kinds = {p.kind for p in fabric.admin.fsck()}
    assert "counters" in kinds
    with fabric.catalog.write() as conn:
        conn.execute(volumes.update().where(volumes.c.name == "v").values(file_count=1))
        conn.execute(blobs.delete())
    assert "missing-blob" in {p.kind for p in fabric.admin.fsck()}


def test_fsck_finds_a_deleted_pack_file(local_fabric: Fabric) -> None:
    local_fabric.volumes.create("v", "/v", replication=1)
    local_fabric.fs.write("/v/a", b"x" * 1000)
    for backend in local_fabric.store.backends.values():
        assert isinstance(backend, LocalBackend)
        for path in backend.root.rglob("*.pack"):
            path.unlink()
    assert "pack-missing" in {p.kind for p in local_fabric.admin.fsck()}


def test_gc_honours_an_injected_clock(tmp_path: os.PathLike[str]) -> None:
    from pathlib import Path

    from tests.conftest import make_fabric

    clock = ManualClock()
    fabric = make_fabric(Path(tmp_path), datadirs=1)
    fabric.close()
    from medfabric.service.fabric import open_fabric

    fabric = open_fabric(Path(tmp_path) / "home", "admin", clock=clock)
    try:
        fabric.volumes.create("v", "/v", replication=1)
        fabric.fs.write("/v/a", b"z" * 5000)
        fabric.fs.remove("/v/a")
        fabric.admin.gc()
        clock.advance(30 * 60 * 1000)
        assert fabric.admin.gc().blobs_deleted == 0
        clock.advance(31 * 60 * 1000)
        assert fabric.admin.gc().blobs_deleted == 1
    finally:
        fabric.close()


def test_an_empty_pack_claimed_by_a_writer_killed_before_creating_it_is_no_problem(
    local_fabric: Fabric,
) -> None:
    """A writer commits its claim of a new pack, then creates its object: killed in between, it
    leaves a row with nothing committed and no object — nothing lost, and reused by the next writer."""
    local_fabric.volumes.create("v", "/v", replication=1)
    local_fabric.fs.write("/v/a", b"x" * 1000)
    with local_fabric.catalog.write() as conn:
        row = dict(conn.execute(sa.select(packs)).first()._mapping)  # type: ignore[union-attr]
        row.update(id="ff" * 16, state="open", size=PACK_HEADER_SIZE, blob_count=0, writer="gone:1")
        conn.execute(packs.insert().values(**row))
    assert local_fabric.admin.fsck() == []
    with local_fabric.catalog.write() as conn:  # one that holds committed bytes is a problem, as ever
        conn.execute(packs.update().where(packs.c.id == "ff" * 16).values(size=PACK_HEADER_SIZE + 10))
    assert "pack-missing" in {p.kind for p in local_fabric.admin.fsck()}
