"""Catalog backups in the blob store, restore after losing the catalog, and the blob index rebuilt
from the packs alone."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import sqlalchemy as sa

from medfabric.catalog.schema import blobs, packs
from medfabric.errors import NotFound
from medfabric.service.backups import list_backups, restore_catalog
from medfabric.service.fabric import Fabric, open_fabric
from medfabric.service.writes import NewFile
from tests.conftest import make_fabric
from tests.replication.common import no_errors, view


def populate(fabric: Fabric, count: int = 80) -> None:
    fabric.volumes.create("mri", "/mri", replication=2)
    rng = random.Random(3)
    fabric.fs.write_many(
        [NewFile(f"/mri/s{i % 4}/i{i}.dcm", rng.randbytes(rng.randrange(100, 40_000))) for i in range(count)]
    )
    fabric.fs.write("/mri/volume.nii", rng.randbytes(9_500_000))


def test_the_blob_index_comes_back_from_the_packs_alone(fabric: Fabric) -> None:
    populate(fabric)
    fabric.snapshots.create("mri", "s")
    fabric.fs.remove("/mri/s1", recursive=True)
    expected = view(fabric, "/mri")
    with fabric.catalog.read() as conn:
        before = sorted(
            (bytes(b), p, o)
            for b, p, o in conn.execute(sa.select(blobs.c.blob_id, blobs.c.pack_id, blobs.c.offset))
        )
    with fabric.catalog.write() as conn:
        conn.execute(blobs.delete())
        conn.execute(packs.delete())
    report = fabric.backups.rebuild_index()
    assert report.blobs == len(before) and report.added == len(before) and report.stray_packs == []
    with fabric.catalog.read() as conn:
        after = sorted(
            (bytes(b), p, o)
            for b, p, o in conn.execute(sa.select(blobs.c.blob_id, blobs.c.pack_id, blobs.c.offset))
        )
    assert after == before
    assert view(fabric, "/mri") == expected
    assert view(fabric, "/mri/.snapshot/s/s1") != {}
    assert no_errors(fabric) == []
    fabric.fs.write("/mri/after-rebuild", b"writes still work")
    assert no_errors(fabric) == []


def test_a_stale_index_is_corrected(local_fabric: Fabric) -> None:
    populate(local_fabric, 20)
    with local_fabric.catalog.write() as conn:
        conn.execute(blobs.update().values(offset=blobs.c.offset + 1))  # every row points wrong
    report = local_fabric.backups.rebuild_index()
    assert report.moved == report.blobs > 0
    assert no_errors(local_fabric) == []


def test_restore_after_the_catalog_file_is_deleted(tmp_path: Path) -> None:
    fabric = make_fabric(tmp_path)
    populate(fabric)
    fabric.snapshots.create("mri", "before-backup")
    at_backup = view(fabric, "/mri")
    made = fabric.backups.backup()
    assert len(made.locations) == 3  # a copy in every data directory
    fabric.fs.write("/mri/after-backup.dcm", os.urandom(20_000))
    fabric.fs.remove("/mri/s0", recursive=True)
    fabric.close()
    for path in (tmp_path / "home").glob("catalog.db*"):
        path.unlink()
    with pytest.raises(Exception):  # noqa: B017 - the fabric cannot open without its catalog
        open_fabric(tmp_path / "home", "admin")
    result = restore_catalog(tmp_path / "home", user="admin")
    assert result.backup == made.name  # (the failed open left an empty catalog: kept aside)
    assert result.index is not None and result.index.added >= 1  # the file written after the backup
    restored = open_fabric(tmp_path / "home", "admin")
    try:
        assert view(restored, "/mri") == at_backup  # every file that existed at backup time
        assert not restored.fs.exists("/mri/after-backup.dcm")  # its entry lived only in the catalog
        assert restored.fs.exists("/mri/.snapshot/before-backup/s0")
        assert no_errors(restored) == []
        # The later file's bytes are still in a pack, but nothing names them: GC reclaims them.
        restored.admin.gc(grace_seconds=0)
        report = restored.admin.gc(grace_seconds=0)
        assert report.blobs_deleted == 0 and no_errors(restored) == []
        assert view(restored, "/mri") == at_backup
    finally:
        restored.close()


def test_restore_keeps_the_replaced_catalog_and_checks_what_it_restores(tmp_path: Path) -> None:
    fabric = make_fabric(tmp_path, datadirs=1)
    other = make_fabric(tmp_path / "other", datadirs=1)
    try:
        populate(fabric, 5)
        first = fabric.backups.backup()
        fabric.fs.write("/mri/x", b"x")
        second = fabric.backups.backup(keep=1)
        assert [b.name for b in fabric.backups.list()] == [second.name] != [first.name]
        other_backup = other.backups.backup()
    finally:
        fabric.close()
        other.close()
    result = restore_catalog(tmp_path / "home", second.name, user="admin")
    assert result.previous is not None and Path(result.previous).exists()
    with pytest.raises(NotFound):
        restore_catalog(tmp_path / "home", "20000101T000000.000Z.sqlite.zst", user="admin")
    stray = tmp_path / "data0" / "catalog-backups" / other_backup.name
    stray.write_bytes((tmp_path / "other" / "data0" / "catalog-backups" / other_backup.name).read_bytes())
    with pytest.raises(Exception, match=r"another fabric|master key"):  # sealed with its own key
        restore_catalog(tmp_path / "home", other_backup.name, user="admin")


@pytest.mark.postgres
def test_backup_and_restore_on_postgresql(tmp_path: Path, postgres: object) -> None:
    url = postgres.create_database(f"restore{os.getpid()}")  # type: ignore[attr-defined]
    fabric = make_fabric(tmp_path, url)
    populate(fabric, 10)
    at_backup = view(fabric, "/mri")
    made = fabric.backups.backup()
    assert made.name.endswith(".pgdump")
    fabric.fs.write("/mri/later", b"later")
    fabric.close()
    restore_catalog(tmp_path / "home", user="admin")
    restored = open_fabric(tmp_path / "home", "admin")
    try:
        assert view(restored, "/mri") == at_backup
        assert no_errors(restored) == []
    finally:
        restored.close()


@pytest.mark.seaweedfs
def test_backup_in_an_object_store(tmp_path: Path, s3_fabric: Fabric) -> None:
    populate(s3_fabric, 10)
    at_backup = view(s3_fabric, "/mri")
    s3_fabric.backups.backup()
    assert len(list_backups(list(s3_fabric.store.backends.values()))) == 1
    home = s3_fabric.config.home
    catalog = Path(str(s3_fabric.catalog.engine.url.database))
    s3_fabric.fs.write("/mri/later", b"later")
    for path in catalog.parent.glob(catalog.name + "*"):
        path.unlink()
    restore_catalog(home, user="admin")
    restored = open_fabric(home, "admin")
    try:
        assert view(restored, "/mri") == at_backup and no_errors(restored) == []
    finally:
        restored.close()
