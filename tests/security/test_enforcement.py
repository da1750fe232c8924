"""One enforcement point: a matrix of operations × principals × grants, each asserted allowed or denied.

Secure by default: a new volume is for its creator and the fabric's administrators until an ACL or
an ACE grants more. The seed's `acl edit -user radiologist:fc,data_scientist:r` must mean exactly
that: the radiologist controls the volume fully, the data scientist reads it, and nothing more.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from medfabric.errors import InvalidInput, NotFound, PermissionDenied
from medfabric.service.fabric import Fabric, open_fabric
from medfabric.service.writes import NewFile
from tests.conftest import make_fabric

Operation = Callable[[Fabric, str], object]

OPERATIONS: dict[str, Operation] = {
    "stat": lambda f, n: f.fs.stat("/mri/a.dcm"),
    "read": lambda f, n: f.fs.read("/mri/a.dcm"),
    "list": lambda f, n: f.fs.listdir("/mri/series"),
    "write new": lambda f, n: f.fs.write(f"/mri/new-{n}", b"x"),
    "overwrite": lambda f, n: f.fs.write("/mri/a.dcm", b"changed", overwrite=True),
    "batch write": lambda f, n: _batch(f, n),
    "mkdir": lambda f, n: f.fs.mkdir(f"/mri/dir-{n}"),
    "delete": lambda f, n: f.fs.remove("/mri/series/b.dcm"),
    "rename": lambda f, n: f.fs.rename("/mri/series/c.dcm", f"/mri/series/c-{n}.dcm"),
    "read snapshot": lambda f, n: f.fs.read("/mri/.snapshot/s0/a.dcm"),
    "create snapshot": lambda f, n: f.snapshots.create("mri", f"snap-{n}"),
    "modify volume": lambda f, n: f.volumes.modify("mri", advisory_quota="10G"),
    "edit volume acl": lambda f, n: f.security.acl_change("volume", volume="mri", user="guest:r"),
    "query table": lambda f, n: f.tables.count("/mri/meta"),
    "write table": lambda f, n: f.tables.change("/mri/meta", "insert_or_replace", {"_id": n}),
    "create volume": lambda f, n: f.volumes.create(f"vol-{n}", f"/vol-{n}"),
    "save config": lambda f, n: f.admin.config_save({"mfs.enable.audit.log": "1"}),
    "add user": lambda f, n: f.security.user_add(f"made-by-{n}"),
    "remove volume": lambda f, n: f.volumes.remove("mri"),
}

READS = {"stat", "read", "list", "read snapshot", "query table"}
DATA_WRITES = {"write new", "overwrite", "batch write", "mkdir", "delete", "rename", "write table"}
VOLUME_ADMIN = {"create snapshot", "modify volume", "edit volume acl", "remove volume"}
FABRIC_ADMIN = {"create volume", "save config", "add user"}

EXPECTED: dict[str, set[str]] = {  # principal -> operations allowed
    "admin": READS | DATA_WRITES | VOLUME_ADMIN | FABRIC_ADMIN,
    "radiologist": READS | DATA_WRITES | VOLUME_ADMIN,  # fc on the volume
    "data_scientist": READS,  # r on the volume
    "researcher": READS,  # in group research, named by the volume's readAce
    "stranger": set(),
}


def _batch(fabric: Fabric, name: str) -> None:
    result = fabric.fs.write_many([NewFile(f"/mri/batch-{name}/x.dcm", b"x")])
    if result.errors:
        raise next(iter(result.errors.values()))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("matrix")
    fabric = make_fabric(home, datadirs=1, user="admin")
    try:
        for user, groups in (
            ("radiologist", []),
            ("data_scientist", []),
            ("researcher", ["research"]),
            ("stranger", []),
        ):
            fabric.security.user_add(user, member_of=groups)
        fabric.volumes.create("mri", "/mri", read_ace="u:admin | g:research")
        fabric.security.acl_change("volume", volume="mri", user="radiologist:fc,data_scientist:r")
        fabric.fs.write("/mri/a.dcm", b"DICM")
        fabric.fs.write_many([NewFile(f"/mri/series/{n}.dcm", b"x") for n in "bc"])
        fabric.tables.create("/mri/meta")
        fabric.snapshots.create("mri", "s0")
    finally:
        fabric.close()
    return home


@pytest.mark.parametrize("operation", list(OPERATIONS))
@pytest.mark.parametrize("principal", list(EXPECTED))
def test_matrix(world: Path, tmp_path: Path, principal: str, operation: str) -> None:
    import shutil

    home = tmp_path / "copy"
    shutil.copytree(world, home)  # every cell starts from the same fabric
    _rebase(home, world)
    fabric = open_fabric(home / "home", principal)
    try:
        allowed = operation in EXPECTED[principal]
        if allowed:
            OPERATIONS[operation](fabric, principal)
        else:
            with pytest.raises(PermissionDenied):
                OPERATIONS[operation](fabric, principal)
    finally:
        fabric.close()


def _rebase(home: Path, original: Path) -> None:
    """The copied fabric's config names the original directories: point it at the copy."""
    config = home / "home" / "medfabric.toml"
    config.write_text(config.read_text().replace(str(original), str(home)))


def test_an_unknown_user_is_a_clear_error(world: Path) -> None:
    with pytest.raises(NotFound, match="unknown user 'mallory'"):
        open_fabric(world / "home", "mallory")


def test_a_malformed_ace_names_the_position(local_fabric: Fabric) -> None:
    with pytest.raises(InvalidInput, match="position"):
        local_fabric.volumes.create("bad", "/bad", read_ace="u:alice &")
    local_fabric.volumes.create("ok", "/ok")
    local_fabric.fs.write("/ok/f", b"1")
    with pytest.raises(InvalidInput, match="position"):
        local_fabric.security.setace("/ok/f", {"readfile": "(g:a | u:b"})


def test_file_aces_are_inherited_and_win_over_mode_bits(local_fabric: Fabric) -> None:
    fabric = local_fabric
    fabric.security.user_add("alice", member_of=["radiology"])
    fabric.security.user_add("bob")
    fabric.volumes.create("v", "/v", read_ace="p", write_ace="p")
    fabric.fs.mkdir("/v/cohort", mode=0o777)
    fabric.security.setace("/v/cohort", {"readfile": "g:radiology", "addchild": "g:radiology"})
    fabric.fs.write("/v/cohort/scan.dcm", b"DICM", mode=0o644)  # mode bits alone would let bob read
    assert fabric.security.getace("/v/cohort/scan.dcm") == {"readfile": "g:radiology"}
    alice = fabric.acting_as(_principal(fabric, "alice"))
    bob = fabric.acting_as(_principal(fabric, "bob"))
    assert alice.fs.read("/v/cohort/scan.dcm") == b"DICM"
    with pytest.raises(PermissionDenied, match="readfile ACE denies"):
        bob.fs.read("/v/cohort/scan.dcm")
    alice.fs.write("/v/cohort/alice.dcm", b"a")
    with pytest.raises(PermissionDenied):
        bob.fs.write("/v/cohort/bob.dcm", b"b")
    fabric.security.setace("/v/cohort", remove=True, recursive=True)
    assert bob.fs.read("/v/cohort/scan.dcm") == b"DICM"
    with pytest.raises(PermissionDenied):
        bob.security.setace("/v/cohort/scan.dcm", {"readfile": "p"})  # only the owner may


def test_snapshots_keep_the_aces_they_were_taken_with(local_fabric: Fabric) -> None:
    fabric = local_fabric
    fabric.security.user_add("bob")
    fabric.volumes.create("v", "/v", read_ace="p")
    fabric.fs.write("/v/f", b"1")
    fabric.security.setace("/v/f", {"readfile": "u:bob"})
    fabric.snapshots.create("v", "s")
    fabric.security.setace("/v/f", {"readfile": "u:admin"})
    bob = fabric.acting_as(_principal(fabric, "bob"))
    assert bob.fs.read("/v/.snapshot/s/f") == b"1"
    with pytest.raises(PermissionDenied):
        bob.fs.read("/v/f")


def _principal(fabric: Fabric, name: str) -> object:
    from medfabric.service.fabric import resolve_principal

    return resolve_principal(fabric.catalog, name)
