"""Namespace operations: POSIX-like semantics, metadata, and paths that must not escape."""

from __future__ import annotations

import io
import os
import re
import socket
import stat
from pathlib import Path

import pytest

from medfabric.errors import Conflict, InvalidInput, NotEmpty, NotFound, PermissionDenied
from medfabric.fs.paths import local_file_uri
from medfabric.service.access import Principal
from medfabric.service.fabric import Fabric
from medfabric.service.writes import NewFile


@pytest.fixture
def vol(fabric: Fabric) -> Fabric:
    fabric.volumes.create("v", "/v")
    return fabric


def test_write_read_stat_list(vol: Fabric) -> None:
    vol.fs.mkdir("/v/a/b", parents=True)
    written = vol.fs.write("/v/a/b/file.dcm", b"DICM" * 100, mode=0o640, mtime_ns=1_600_000_000_000_000_000)
    info = vol.fs.stat("/v/a/b/file.dcm")
    assert info == written
    assert (info.type, info.size, stat.S_IMODE(info.mode), info.owner) == ("file", 400, 0o640, "admin")
    assert stat.S_ISREG(info.mode) and info.mtime_ns == 1_600_000_000_000_000_000
    assert vol.fs.read("/v/a/b/file.dcm") == b"DICM" * 100
    assert [e.name for e in vol.fs.listdir("/v/a")] == ["b"]
    assert vol.fs.stat("/v/a").type == "directory"
    walked = [
        (path, [d.name for d in dirs], [f.name for f in files]) for path, dirs, files in vol.fs.walk("/v")
    ]
    assert walked == [("/v", ["a"], []), ("/v/a", ["b"], []), ("/v/a/b", [], ["file.dcm"])]


def test_large_files_are_chunked_and_read_in_ranges(vol: Fabric) -> None:
    body = os.urandom(9 * 1024 * 1024 + 123)
    vol.fs.write("/v/big", io.BytesIO(body))
    with vol.fs.open("/v/big") as reader:
        assert reader.size == len(body)
        reader.seek(4 * 1024 * 1024 - 10)
        assert reader.read(20) == body[4 * 1024 * 1024 - 10 : 4 * 1024 * 1024 + 10]
        assert reader.pread(len(body) - 5, 100) == body[-5:]
        reader.seek(0)
        assert reader.read() == body
    assert vol.volumes.usage("v")["blobs"] == 3


def test_identical_content_is_stored_once(vol: Fabric) -> None:
    body = os.urandom(200_000)
    vol.fs.write("/v/one", body)
    vol.fs.write("/v/two", body)
    assert vol.volumes.usage("v")["blobs"] == 1
    assert vol.fs.read("/v/two") == body


def test_put_refuses_to_replace_unless_told(vol: Fabric) -> None:
    vol.fs.write("/v/f", b"old")
    with pytest.raises(Conflict, match="already exists"):
        vol.fs.write("/v/f", b"new")
    assert vol.fs.read("/v/f") == b"old"
    before = vol.fs.stat("/v/f")
    vol.fs.write("/v/f", b"newer", overwrite=True)
    after = vol.fs.stat("/v/f")
    assert vol.fs.read("/v/f") == b"newer" and after.ino == before.ino
    with pytest.raises(NotFound):
        vol.fs.write("/v/missing/f", b"x")
    vol.fs.write("/v/made/f", b"x", parents=True)
    vol.fs.mkdir("/v/dir")
    with pytest.raises(Conflict):
        vol.fs.write("/v/dir", b"x", overwrite=True)


@pytest.mark.parametrize(
    "path", ["/v/../etc/passwd", "/v/./x", "/v//x", "v/x", "/v/a\x00b", "/v/" + "n" * 256, ""]
)
def test_paths_that_try_to_escape_are_refused(vol: Fabric, path: str) -> None:
    with pytest.raises(InvalidInput):
        vol.fs.write(path, b"x")
    assert vol.fs.listdir("/v") == []


def test_batches_write_many_files_in_one_step_and_report_failures(vol: Fabric) -> None:
    vol.fs.write("/v/p/exists", b"x", parents=True)
    files = [NewFile(f"/v/p/s{i % 3}/{i}.dcm", os.urandom(3000)) for i in range(300)]
    files.append(NewFile("/v/p/exists", b"y"))
    files.append(NewFile("/nowhere/../x", b"z"))
    result = vol.fs.write_many(files)
    assert len(result.written) == 300
    assert set(result.errors) == {"/v/p/exists", "/nowhere/../x"}
    assert vol.fs.read("/v/p/exists") == b"x"
    assert vol.fs.read("/v/p/s1/1.dcm") == files[1].data
    assert vol.volumes.info("v").file_count == 301


def test_remove_files_and_trees(vol: Fabric) -> None:
    vol.fs.write("/v/t/a/b/c", b"1", parents=True)
    vol.fs.write("/v/t/d", b"2")
    with pytest.raises(NotEmpty):
        vol.fs.remove("/v/t")
    assert vol.fs.remove("/v/t", recursive=True) == 5
    assert not vol.fs.exists("/v/t")
    info = vol.volumes.info("v")
    assert (info.file_count, info.dir_count, info.logical_bytes) == (0, 0, 0)
    with pytest.raises(Conflict):
        vol.fs.remove("/v")
    with pytest.raises(NotFound):
        vol.fs.remove("/v/none")


def test_rename_is_posix_rename(vol: Fabric) -> None:
    vol.fs.write("/v/d/inner/file", b"payload", parents=True)
    inode = vol.fs.stat("/v/d").ino
    vol.fs.rename("/v/d", "/v/e")
    assert vol.fs.read("/v/e/inner/file") == b"payload"
    assert vol.fs.stat("/v/e").ino == inode and not vol.fs.exists("/v/d")
    vol.fs.write("/v/x", b"x")
    vol.fs.write("/v/y", b"y")
    vol.fs.rename("/v/x", "/v/y")  # replaces a file atomically
    assert vol.fs.read("/v/y") == b"x" and not vol.fs.exists("/v/x")
    with pytest.raises(Conflict):
        vol.fs.rename("/v/y", "/v/e")  # a file over a directory
    with pytest.raises(InvalidInput):
        vol.fs.rename("/v/e", "/v/e/inner/deeper")
    vol.fs.mkdir("/v/empty")
    vol.fs.rename("/v/e/inner", "/v/empty")  # a directory over an empty directory
    assert vol.fs.read("/v/empty/file") == b"payload"


def test_rename_of_a_large_directory_takes_one_row(vol: Fabric) -> None:
    vol.fs.write_many([NewFile(f"/v/big/{i}", b"x") for i in range(2000)])
    vol.fs.rename("/v/big", "/v/moved")
    assert len(vol.fs.listdir("/v/moved")) == 2000


def test_moving_across_volumes_copies(vol: Fabric) -> None:
    vol.volumes.create("w", "/w")
    vol.fs.write("/v/tree/f", b"data", parents=True)
    vol.fs.rename("/v/tree", "/w/tree")
    assert vol.fs.read("/w/tree/f") == b"data" and not vol.fs.exists("/v/tree")
    assert vol.volumes.info("v").file_count == 0 and vol.volumes.info("w").file_count == 1


def test_write_at_and_truncate(vol: Fabric) -> None:
    body = bytearray(os.urandom(10_000))
    vol.fs.write("/v/f", bytes(body))
    vol.fs.write_at("/v/f", 5000, b"X" * 100)
    body[5000:5100] = b"X" * 100
    assert vol.fs.read("/v/f") == body
    vol.fs.write_at("/v/f", 12_000, b"tail")
    body += bytes(2000) + b"tail"
    assert vol.fs.read("/v/f") == body
    vol.fs.truncate("/v/f", 3000)
    assert vol.fs.read("/v/f") == body[:3000]
    vol.fs.truncate("/v/f", 4000)
    assert vol.fs.read("/v/f") == body[:3000] + bytes(1000)
    assert vol.volumes.info("v").logical_bytes == 4000


def test_symlinks(vol: Fabric) -> None:
    vol.fs.symlink("../target", "/v/link")
    assert vol.fs.readlink("/v/link") == "../target"
    assert vol.fs.stat("/v/link").type == "symlink"


def test_mode_bits_govern_other_principals(vol: Fabric) -> None:
    vol.volumes.modify("v", read_ace="p", write_ace="p")  # open the volume's gate: mode bits decide
    vol.fs.mkdir("/v/shared", mode=0o777)
    vol.fs.write("/v/shared/private", b"secret", mode=0o600)
    vol.fs.write("/v/shared/public", b"hello", mode=0o644)
    bob = vol.acting_as(Principal("bob"))
    assert bob.fs.read("/v/shared/public") == b"hello"
    with pytest.raises(PermissionDenied):
        bob.fs.read("/v/shared/private")
    with pytest.raises(PermissionDenied):
        bob.fs.write("/v/shared/public", b"mine", overwrite=True)
    bob.fs.write("/v/shared/bobs", b"mine")
    assert vol.fs.stat("/v/shared/bobs").owner == "bob"
    with pytest.raises(PermissionDenied):
        bob.fs.chmod("/v/shared/public", 0o666)
    with pytest.raises(PermissionDenied):
        bob.fs.write("/v/top", b"x")  # the volume root is 0755, owned by admin
    vol.fs.chmod("/v/shared", 0o700)
    with pytest.raises(PermissionDenied):
        bob.fs.stat("/v/shared/public")


def test_chown_chmod_utime(vol: Fabric) -> None:
    vol.fs.write("/v/f", b"x")
    vol.fs.chown("/v/f", "alice", "radiology")
    vol.fs.chmod("/v/f", 0o600)
    vol.fs.utime("/v/f", mtime_ns=1_000_000_000, atime_ns=2_000_000_000)
    info = vol.fs.stat("/v/f")
    assert (info.owner, info.group, stat.S_IMODE(info.mode), info.mtime_ns, info.atime_ns) == (
        "alice",
        "radiology",
        0o600,
        1_000_000_000,
        2_000_000_000,
    )


def test_a_callers_digest_becomes_the_blob_id_of_a_plain_small_file(vol: Fabric) -> None:
    import blake3

    bodies = [os.urandom(70_000) for _ in range(3)] + [bytes(4096)]
    digests = [blake3.blake3(body).digest() for body in bodies]
    vol.fs.write_many(
        [
            NewFile(f"/v/d/{n}", body, digest=digest)
            for n, (body, digest) in enumerate(zip(bodies, digests, strict=True))
        ]
    )
    for n, (body, digest) in enumerate(zip(bodies, digests, strict=True)):
        assert vol.fs.read(f"/v/d/{n}") == body
        with vol.fs.open(f"/v/d/{n}") as reader:
            parts = [part.blob_id for part in reader._parts]
        assert parts == ([digest] if any(body) else [None])  # all zeros: a hole, as without the hint
    assert vol.admin.fsck() == []


def test_an_encrypted_volume_keys_blob_ids_whatever_digest_the_caller_gives(local_fabric: Fabric) -> None:
    import blake3

    local_fabric.volumes.create("e", "/e", dare=True)
    body = os.urandom(50_000)
    local_fabric.fs.write_many([NewFile("/e/x", body, digest=blake3.blake3(body).digest())])
    with local_fabric.fs.open("/e/x") as reader:
        assert reader._parts[0].blob_id != blake3.blake3(body).digest()
    assert local_fabric.fs.read("/e/x") == body


def test_the_source_uri_of_an_import_resolves_symbolic_links(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "a.dcm").write_bytes(b"x")
    (tmp_path / "linked").symlink_to(real)
    (real / "b.dcm").symlink_to(real / "a.dcm")
    cache: dict[str, str] = {}
    for name, expected in (("linked/a.dcm", real / "a.dcm"), ("real/b.dcm", real / "a.dcm")):
        for resolved in (cache, None):
            uri = local_file_uri(tmp_path / name, resolved)
            assert uri == f"file://{socket.gethostname()}{expected.resolve()}"


def test_paths_resolve_in_one_walk_with_precise_errors(vol: Fabric) -> None:
    deep = "/v/P001/20240101/MR/1.2.3/1.2.3.4.dcm"  # the DICOM layout: six levels
    vol.fs.write_many([NewFile(deep, b"DICM")])
    assert vol.fs.read(deep) == b"DICM"
    assert vol.fs.stat("/v/P001/20240101").type == "directory"
    assert vol.fs.stat("/v").is_mount_point
    with pytest.raises(NotFound, match="/v/P001/20240101/CT: no such file or directory"):
        vol.fs.read("/v/P001/20240101/CT/1.2.3/x.dcm")
    with pytest.raises(InvalidInput, match=re.escape(f"{deep} is not a directory")):
        vol.fs.read(deep + "/below")
    vol.snapshots.create("v", "before")
    vol.fs.remove(deep)
    with pytest.raises(NotFound):
        vol.fs.read(deep)
    assert vol.fs.read("/v/.snapshot/before/P001/20240101/MR/1.2.3/1.2.3.4.dcm") == b"DICM"
    with pytest.raises(NotFound, match="no such file or directory"):
        vol.fs.read("/v/.snapshot/before/P002/x.dcm")
