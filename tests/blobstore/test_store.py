"""The blob store: replication, minimum replication, verified reads, and both backends."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medfabric.blobstore.backend import BackendError
from medfabric.blobstore.local import LocalBackend
from medfabric.blobstore.pack import pack_object_name
from medfabric.blobstore.s3 import S3Backend, S3Settings
from medfabric.errors import IntegrityError, Unavailable
from medfabric.service.fabric import Fabric
from medfabric.testing.servers import SeaweedServer


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.seaweedfs)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> LocalBackend | S3Backend:
    if request.param == "local":
        return LocalBackend(0, tmp_path / "data")
    server: SeaweedServer = request.getfixturevalue("seaweedfs")
    s3 = S3Backend(
        0,
        S3Settings(
            server.endpoint,
            f"b{os.getpid()}-{os.urandom(4).hex()}",
            "pre/",
            server.access_key,
            server.secret_key,
        ),
    )
    s3.ensure_bucket()
    return s3


def test_backend_objects(backend: LocalBackend | S3Backend) -> None:
    data = os.urandom(100_000)
    backend.put("packs/1/ab/x.pack", data)
    assert backend.read("packs/1/ab/x.pack", 10, 1000) == data[10:1010]
    info = backend.stat("packs/1/ab/x.pack")
    assert info is not None and info.size == len(data)
    assert [item.name for item in backend.list("packs/")] == ["packs/1/ab/x.pack"]
    with pytest.raises(BackendError):
        backend.read("packs/1/ab/x.pack", len(data) - 5, 10)
    with pytest.raises(BackendError):
        backend.read("packs/1/ab/missing.pack", 0, 1)
    backend.delete("packs/1/ab/x.pack")
    backend.delete("packs/1/ab/x.pack")  # absent: not an error
    assert backend.stat("packs/1/ab/x.pack") is None


def _pack_files(fabric: Fabric, volume_id: int) -> list[Path]:
    files = []
    for backend in fabric.store.backends.values():
        assert isinstance(backend, LocalBackend)
        files.extend(sorted((backend.root / "packs" / str(volume_id)).rglob("*.pack")))
    return files


def test_each_pack_is_written_to_replication_distinct_directories(local_fabric: Fabric) -> None:
    volume = local_fabric.volumes.create("v", "/v", replication=3, min_replication=2).volume
    local_fabric.fs.write("/v/a", b"x" * 5000)
    files = _pack_files(local_fabric, volume.id)
    assert len(files) == 3
    assert len({path.parents[3] for path in files}) == 3  # three data directories
    assert len({path.read_bytes() for path in files}) == 1  # byte-identical replicas


def test_a_flipped_byte_is_detected_and_served_from_another_replica(local_fabric: Fabric) -> None:
    volume = local_fabric.volumes.create(
        "v", "/v", replication=2, min_replication=1, compression="off"
    ).volume
    body = os.urandom(50_000)
    local_fabric.fs.write("/v/a", body)
    pack_id = _pack_files(local_fabric, volume.id)[0].stem
    first, second = (
        _replica_path(local_fabric, location, volume.id, pack_id)
        for location in local_fabric.store.replicas_of(pack_id)
    )
    _flip_byte(first, -100)  # the replica a read tries first
    assert local_fabric.fs.read("/v/a") == body
    assert any(alarm.name == "NODE_ALARM_BLOB_CORRUPTION" for alarm in local_fabric.admin.alarms())
    _flip_byte(second, -100)
    with pytest.raises(IntegrityError, match="no replica verifies"):
        local_fabric.fs.read("/v/a")


def _replica_path(fabric: Fabric, location_id: int, volume_id: int, pack_id: str) -> Path:
    backend = fabric.store.backends[location_id]
    assert isinstance(backend, LocalBackend)
    return backend.root / pack_object_name(volume_id, pack_id)


def _flip_byte(path: Path, position: int) -> None:
    damaged = bytearray(path.read_bytes())
    damaged[position] ^= 0x01
    path.write_bytes(bytes(damaged))


def test_a_write_fails_when_min_replication_cannot_be_met(local_fabric: Fabric) -> None:
    local_fabric.volumes.create("v", "/v", replication=3, min_replication=3)
    broken = list(local_fabric.store.backends.values())[1]
    assert isinstance(broken, LocalBackend)
    broken.root.chmod(0o500)
    blocker = broken.root / "packs"
    blocker.write_bytes(b"")  # a file where the pack directory must go: fails even for root
    try:
        with pytest.raises(Unavailable, match="required"):
            local_fabric.fs.write("/v/a", b"data")
        assert not local_fabric.fs.exists("/v/a")
    finally:
        blocker.unlink()
        broken.root.chmod(0o700)


def test_writes_succeed_at_min_replication_and_record_the_survivors(local_fabric: Fabric) -> None:
    volume = local_fabric.volumes.create("v", "/v", replication=3, min_replication=2).volume
    broken = list(local_fabric.store.backends.values())[2]
    assert isinstance(broken, LocalBackend)
    (broken.root / "packs").write_bytes(b"")
    try:
        local_fabric.fs.write("/v/a", b"data" * 100)
    finally:
        (broken.root / "packs").unlink()
    assert local_fabric.fs.read("/v/a") == b"data" * 100
    assert local_fabric.volumes.usage("v")["minReplicasOfAnyPack"] == 2
    assert len(_pack_files(local_fabric, volume.id)) == 2


def test_small_files_share_packs_unless_the_optimisation_is_off(local_fabric: Fabric) -> None:
    from medfabric.service.writes import NewFile

    volume = local_fabric.volumes.create("v", "/v", replication=1, min_replication=1).volume
    local_fabric.fs.write_many([NewFile(f"/v/a{i}", os.urandom(1000)) for i in range(50)])
    assert len(_pack_files(local_fabric, volume.id)) == 1
    local_fabric.admin.config_save({"mfs.enable.small.file.optimization": "0"})
    local_fabric.fs.write_many([NewFile(f"/v/b{i}", os.urandom(1000)) for i in range(50)])
    assert len(_pack_files(local_fabric, volume.id)) == 51


def test_a_restarted_writer_continues_the_open_pack_after_cutting_its_torn_tail(tmp_path: Path) -> None:
    from medfabric.service.fabric import open_fabric
    from tests.conftest import make_fabric

    first = make_fabric(tmp_path, datadirs=1)
    volume = first.volumes.create("v", "/v", replication=1).volume
    first.fs.write("/v/a", b"first" * 100)
    first.close()
    (pack,) = _pack_files_of(tmp_path / "data0", volume.id)
    committed = pack.stat().st_size
    with pack.open("ab") as handle:
        handle.write(b"garbage of a write that was never acknowledged")
    second = open_fabric(tmp_path / "home", "admin")
    try:
        second.fs.write("/v/b", b"second" * 100)
        assert _pack_files_of(tmp_path / "data0", volume.id) == [pack]
        assert pack.stat().st_size > committed
        assert second.fs.read("/v/a") == b"first" * 100
        assert second.fs.read("/v/b") == b"second" * 100
        assert [p for p in second.admin.fsck() if p.severity == "error"] == []
    finally:
        second.close()


def _pack_files_of(root: Path, volume_id: int) -> list[Path]:
    return sorted((root / "packs" / str(volume_id)).rglob("*.pack"))


@pytest.mark.seaweedfs
def test_a_fabric_on_seaweedfs_stores_reads_and_collects(s3_fabric: Fabric) -> None:
    from medfabric.service.writes import NewFile

    s3_fabric.volumes.create("v", "/v")
    big = os.urandom(9 * 1024 * 1024)
    s3_fabric.fs.write("/v/big", big)
    s3_fabric.fs.write_many([NewFile(f"/v/small/{i}", os.urandom(2000)) for i in range(100)])
    assert s3_fabric.fs.read("/v/big") == big
    assert len(s3_fabric.fs.listdir("/v/small")) == 100
    usage = s3_fabric.volumes.usage("v")
    assert usage["packs"] == 2  # the big file's pack and one pack for the hundred small files
    assert s3_fabric.admin.fsck() == []
    s3_fabric.fs.remove("/v/big")
    report = s3_fabric.admin.gc(grace_seconds=0)
    assert report.packs_deleted == 1
    assert [p for p in s3_fabric.admin.fsck() if p.severity == "error"] == []


def test_concurrent_batches_record_only_their_own_blobs(local_fabric: Fabric) -> None:
    """One batch rolling back (quota) must not take the blob rows of a batch that succeeded."""
    import threading

    from medfabric.errors import QuotaExceeded
    from medfabric.service.writes import NewFile

    local_fabric.volumes.create("v", "/v", replication=1, quota="5M")
    for attempt in range(6):
        start = threading.Barrier(2)
        outcome: dict[str, object] = {}

        def small(n: int = attempt) -> None:
            start.wait()
            outcome["small"] = local_fabric.fs.write_many(
                [NewFile(f"/v/ok{n}/{i}", os.urandom(2000)) for i in range(200)]
            )

        def too_big(n: int = attempt) -> None:
            start.wait()
            try:
                local_fabric.fs.write_many(
                    [NewFile(f"/v/big{n}/{i}", os.urandom(100_000)) for i in range(100)]
                )
            except QuotaExceeded as error:
                outcome["big"] = error

        threads = [threading.Thread(target=small), threading.Thread(target=too_big)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert isinstance(outcome.get("big"), QuotaExceeded)
        for i in range(200):
            local_fabric.fs.read(f"/v/ok{attempt}/{i}")
    assert [p for p in local_fabric.admin.fsck() if p.severity == "error"] == []


def test_a_batch_spanning_several_packs_is_written_gathered_and_reads_back(local_fabric: Fabric) -> None:
    """``write_many`` appends its blobs in gathered writes; a batch larger than a pack fills one pack,
    rotates to the next mid-batch, and every file reads back, with nothing left for fsck."""
    from medfabric.service.writes import NewFile

    volume = local_fabric.volumes.create("v", "/v", replication=2, min_replication=2).volume
    local_fabric.store.pack_target_size = 1024 * 1024  # about 15 of these 70 KB files per pack
    bodies = {f"/v/d/f{i}": os.urandom(70_000 + i) for i in range(100)}
    bodies.update({f"/v/d/s{i}": os.urandom(100 + i) for i in range(300)})  # many per gathered write
    result = local_fabric.fs.write_many([NewFile(path, body) for path, body in bodies.items()], parents=True)
    assert not result.errors
    assert len(_pack_files(local_fabric, volume.id)) >= 2 * 7  # two replicas of at least 7 packs
    for path, body in bodies.items():
        assert local_fabric.fs.read(path) == body
    assert [p for p in local_fabric.admin.fsck() if p.severity == "error"] == []
    assert local_fabric.scrub.run().clean


def test_sealed_packs_leave_the_page_cache_and_still_read_back(
    local_fabric: Fabric, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bulk write does not grow the page cache by its size: each pack, once sealed and durable, is
    released (``posix_fadvise(DONTNEED)``); the open pack is not. Reads are unaffected."""
    from medfabric.blobstore.local import LocalAppendHandle
    from medfabric.service.writes import NewFile

    released: list[str] = []
    original = LocalAppendHandle.release_cache

    def spy(handle: LocalAppendHandle) -> None:
        released.append(handle._path.stem)
        original(handle)

    monkeypatch.setattr(LocalAppendHandle, "release_cache", spy)
    volume = local_fabric.volumes.create("v", "/v", replication=1, min_replication=1).volume
    local_fabric.store.pack_target_size = 1024 * 1024
    bodies = {f"/v/f{i}": os.urandom(100_000) for i in range(60)}
    for start in range(0, 60, 10):  # six batches: packs fill and seal along the way
        names = list(bodies)[start : start + 10]
        local_fabric.fs.write_many([NewFile(path, bodies[path]) for path in names])
    packs = {path.stem for path in _pack_files(local_fabric, volume.id)}
    assert len(packs) >= 5
    assert set(released) < packs  # every released pack is one of the volume's; the open one is not
    assert len(set(released)) >= len(packs) - 2  # sealed packs are released once their fsync is done
    for path, body in bodies.items():
        assert local_fabric.fs.read(path) == body
