"""Snapshots: O(1) creation, immutable content, read-only paths, restore with a safety net."""

from __future__ import annotations

import os
import random

import pytest
import sqlalchemy as sa

from medfabric.catalog.schema import entries
from medfabric.clock import ManualClock
from medfabric.errors import Conflict, NotFound, ReadOnly
from medfabric.service.fabric import Fabric
from medfabric.service.writes import NewFile


@pytest.fixture
def vol(fabric: Fabric) -> Fabric:
    fabric.volumes.create("v", "/v", replication=2)
    return fabric


def _view(fabric: Fabric, root: str) -> dict[str, bytes | None]:
    view: dict[str, bytes | None] = {}
    for directory, dirs, files in fabric.fs.walk(root):
        relative = directory[len(root) :]
        for item in dirs:
            view[f"{relative}/{item.name}/"] = None
        for item in files:
            view[f"{relative}/{item.name}"] = fabric.fs.read(item.path)
    return view


def _row_count(fabric: Fabric) -> int:
    with fabric.catalog.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(entries)).scalar_one())


def test_creation_copies_nothing(vol: Fabric) -> None:
    vol.fs.write_many([NewFile(f"/v/d{i % 10}/f{i}", b"x") for i in range(500)])
    rows = _row_count(vol)
    vol.snapshots.create("v", "s1")
    assert _row_count(vol) == rows


def test_a_snapshot_never_changes_whatever_happens_to_the_volume(vol: Fabric) -> None:
    rng = random.Random(7)
    for i in range(60):
        vol.fs.write(f"/v/d{i % 4}/f{i}", rng.randbytes(rng.choice([10, 5000, 70_000])), parents=True)
    vol.snapshots.create("v", "frozen")
    expected = _view(vol, "/v/.snapshot/frozen")
    assert expected == _view(vol, "/v")
    for step in range(120):
        files = [item.path for _d, _s, others in vol.fs.walk("/v") for item in others]
        action = rng.choice(["overwrite", "delete", "rename", "write_at", "create", "rmdir"])
        target = rng.choice(files) if files else None
        if action == "overwrite" and target:
            vol.fs.write(target, rng.randbytes(3000), overwrite=True)
        elif action == "delete" and target:
            vol.fs.remove(target)
        elif action == "rename" and target:
            vol.fs.rename(target, f"/v/moved{step}")
        elif action == "write_at" and target:
            vol.fs.write_at(target, rng.randrange(0, 4000), b"patched")
        elif action == "rmdir" and vol.fs.exists(f"/v/d{step % 4}"):
            vol.fs.remove(f"/v/d{step % 4}", recursive=True)
        else:
            vol.fs.write(f"/v/new/{step}", rng.randbytes(100), parents=True)
        if step % 40 == 39:
            vol.admin.gc(grace_seconds=0)
    assert _view(vol, "/v/.snapshot/frozen") == expected
    assert _view(vol, "/v") != expected
    assert [p for p in vol.admin.fsck() if p.severity == "error"] == []


def test_snapshot_paths_are_read_only(vol: Fabric) -> None:
    vol.fs.write("/v/a", b"1")
    vol.snapshots.create("v", "s")
    for attempt in (
        lambda: vol.fs.write("/v/.snapshot/s/b", b"2"),
        lambda: vol.fs.write("/v/.snapshot/s/a", b"2", overwrite=True),
        lambda: vol.fs.remove("/v/.snapshot/s/a"),
        lambda: vol.fs.mkdir("/v/.snapshot/s/d"),
        lambda: vol.fs.rename("/v/a", "/v/.snapshot/s/c"),
        lambda: vol.fs.mkdir("/v/.snapshot"),
        lambda: vol.fs.chmod("/v/.snapshot/s/a", 0o600),
        lambda: vol.fs.write_at("/v/.snapshot/s/a", 0, b"z"),
    ):
        with pytest.raises(ReadOnly):
            attempt()
    assert vol.fs.stat("/v/.snapshot").type == "directory"
    assert [item.name for item in vol.fs.listdir("/v/.snapshot")] == ["s"]
    assert vol.fs.stat("/v/.snapshot/s").is_mount_point
    with pytest.raises(NotFound):
        vol.fs.stat("/v/.snapshot/nope/a")
    assert ".snapshot" not in [item.name for item in vol.fs.listdir("/v")]


def test_restore_takes_a_safety_snapshot_and_needs_force_after_changes(vol: Fabric) -> None:
    vol.fs.write("/v/keep", b"old")
    vol.fs.write("/v/dir/inner", b"inner", parents=True)
    vol.snapshots.create("v", "good")
    vol.fs.write("/v/keep", b"new", overwrite=True)
    vol.fs.remove("/v/dir", recursive=True)
    vol.fs.write("/v/added", b"added")
    with pytest.raises(Conflict, match="-force"):
        vol.snapshots.restore("v", "good")
    assert vol.fs.read("/v/keep") == b"new"
    result = vol.snapshots.restore("v", "good", force=True)
    assert vol.fs.read("/v/keep") == b"old" and vol.fs.read("/v/dir/inner") == b"inner"
    assert not vol.fs.exists("/v/added")
    safety = f"/v/.snapshot/{result.safety_snapshot}"
    assert vol.fs.read(f"{safety}/added") == b"added" and vol.fs.read(f"{safety}/keep") == b"new"
    info = vol.volumes.info("v")
    assert (info.file_count, info.dir_count, info.logical_bytes) == (2, 1, 8)
    vol.fs.write("/v/after", b"still writable")
    assert [p for p in vol.admin.fsck() if p.severity == "error"] == []
    unchanged = vol.snapshots.create("v", "now")
    assert vol.snapshots.restore("v", unchanged.name).discarded.changed is False


def test_gc_never_frees_what_a_snapshot_reaches(vol: Fabric) -> None:
    body = os.urandom(300_000)
    vol.fs.write("/v/scan", body)
    vol.snapshots.create("v", "s")
    vol.fs.remove("/v/scan")
    vol.admin.gc(grace_seconds=0)
    vol.admin.gc(grace_seconds=0)
    assert vol.fs.read("/v/.snapshot/s/scan") == body
    vol.snapshots.remove("v", "s")
    report = vol.admin.gc(grace_seconds=0)
    assert report.entries_purged >= 1
    assert vol.volumes.usage("v")["blobs"] == 0


def test_snapshot_space_is_reported_and_not_counted_against_quota(vol: Fabric) -> None:
    vol.volumes.modify("v", quota="1M")
    vol.fs.write("/v/a", os.urandom(600_000))
    vol.snapshots.create("v", "s")
    vol.fs.remove("/v/a")
    vol.fs.write("/v/b", os.urandom(600_000))  # fits: the snapshot's 600 KB do not count
    described = vol.snapshots.describe(vol.snapshots.get("v", "s"))
    assert described["ownedsize"] == 600_000 and described["sharedsize"] == 0


def test_retention_expires_snapshots_unless_preserved(tmp_path: object) -> None:
    from pathlib import Path

    from medfabric.service.fabric import open_fabric
    from tests.conftest import make_fabric

    home = Path(str(tmp_path))
    make_fabric(home, datadirs=1).close()
    clock = ManualClock()
    fabric = open_fabric(home / "home", "admin", clock=clock)
    try:
        fabric.volumes.create("v", "/v", replication=1)
        fabric.snapshots.create("v", "short", retain="1h")
        fabric.snapshots.create("v", "kept", retain="1h")
        fabric.snapshots.preserve("v", "kept")
        fabric.snapshots.create("v", "forever")
        clock.advance(2 * 3_600_000)
        assert fabric.snapshots.expire() == [f"{fabric.volumes.info('v').id}:short"]
        assert [s.name for s in fabric.snapshots.list("v")] == ["kept", "forever"]
    finally:
        fabric.close()
