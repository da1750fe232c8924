"""Scrub: random byte flips in packs are all detected, all repaired from a replica or a mirror,
and otherwise reported with the paths they damage; lost replicas raise an alarm and come back."""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from medfabric import alarms
from medfabric.catalog.schema import packs
from medfabric.service.fabric import Fabric, open_fabric
from medfabric.service.writes import NewFile
from tests.conftest import make_fabric
from tests.replication.common import no_errors, view


def reopen(fabric: Fabric) -> Fabric:
    """What a `medfabric scrub` process sees: no writer of this process holds a pack open."""
    home = fabric.config.home
    fabric.close()
    return open_fabric(home, "admin")


def populate(fabric: Fabric, volume: str, files: int, *, seed: int) -> None:
    fabric.store.pack_target_size = 48 * 1024  # many small packs: 1 % of them is a few
    rng = random.Random(seed)
    fabric.fs.write_many(
        [
            NewFile(f"/{volume}/d{i % 7}/f{i}.dcm", rng.randbytes(rng.randrange(2_000, 30_000)))
            for i in range(files)
        ]
    )


def pack_objects(root: Path) -> list[Path]:
    return sorted(root.rglob("*.pack"))


def location_of(fabric: Fabric, path: Path) -> int:
    return next(i for i, backend in fabric.store.backends.items() if path.parents[3] == Path(backend.uri))


def flip(path: Path, rng: random.Random) -> int:
    data = bytearray(path.read_bytes())
    offset = rng.randrange(len(data))
    data[offset] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(data))
    return offset


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[Fabric]:
    fabric = make_fabric(tmp_path, datadirs=3)
    fabric.volumes.create("mri", "/mri", replication=2)
    populate(fabric, "mri", 500, seed=1)
    fabric.snapshots.create("mri", "s")
    fabric = reopen(fabric)
    try:
        yield fabric
    finally:
        fabric.close()


def test_every_flip_is_found_and_repaired_from_a_replica(tmp_path: Path, replicated: Fabric) -> None:
    expected = view(replicated, "/mri")
    objects = pack_objects(tmp_path)
    assert len(objects) >= 200
    rng = random.Random(11)
    flipped_total = 0
    for _round in range(8):
        # 1 % of the pack objects, never both replicas of one pack (that blob would be lost for good)
        chosen = list({path.stem: path for path in rng.sample(objects, max(1, len(objects) // 100))}.values())
        for path in chosen:
            flip(path, rng)
        flipped = {(path.stem, location_of(replicated, path)) for path in chosen}
        found = replicated.scrub.run()
        reported = {(problem.pack_id, problem.location_id) for problem in found.problems}
        assert reported == flipped  # 100 % detected, nothing else reported
        assert found.unrecoverable == [] and not found.clean
        fixed = replicated.scrub.run(repair=True)
        assert {(item["pack"], item["location"]) for item in fixed.repaired} == flipped
        assert replicated.scrub.run().clean  # 100 % repaired
        flipped_total += len(flipped)
    assert flipped_total >= 16
    assert view(replicated, "/mri") == expected
    assert no_errors(replicated) == []


def test_a_record_bad_in_every_replica_is_reported_with_the_paths_it_damages(
    tmp_path: Path, replicated: Fabric
) -> None:
    path = pack_objects(tmp_path / "data0")[3]
    twin = next(p for p in pack_objects(tmp_path) if p.name == path.name and p != path)
    offset = 32 + 64 + 10  # inside the first record's payload: the same blob in both replicas
    for copy in (path, twin):
        data = bytearray(copy.read_bytes())
        data[offset] ^= 0xFF
        copy.write_bytes(bytes(data))
    report = replicated.scrub.run(repair=True)
    assert len(report.unrecoverable) == 1
    lost = report.unrecoverable[0]["paths"]
    assert any(p.startswith("/mri/d") for p in lost) and any(p.startswith("/mri/.snapshot/s/d") for p in lost)
    assert alarms.BLOB_CORRUPTION in [alarm.name for alarm in replicated.admin.alarms("volume mri")]


def test_a_mirror_holds_the_good_copy(tmp_path: Path) -> None:
    hospital = make_fabric(tmp_path / "hospital", datadirs=1)
    dr = make_fabric(tmp_path / "dr", datadirs=1)
    try:
        hospital.volumes.create("mri", "/mri", replication=1)
        populate(hospital, "mri", 300, seed=2)
        hospital.remotes.add("dr", str(dr.config.home))
        hospital.mirrors.create("mri_dr", "/mri", "dr:/mri")
        expected = view(hospital, "/mri")
        hospital = reopen(hospital)
        objects = pack_objects(tmp_path / "hospital")
        rng = random.Random(5)
        chosen = rng.sample(objects, max(2, len(objects) // 100))
        for path in chosen:
            flip(path, rng)
        found = hospital.scrub.run()
        assert {problem.pack_id for problem in found.problems} == {path.stem for path in chosen}
        fixed = hospital.scrub.run(repair=True)
        assert fixed.unrecoverable == [] and len(fixed.recovered) >= len(chosen) - len(fixed.garbage)
        after = hospital.scrub.run()
        assert after.problems == [] and after.unrecoverable == []
        assert view(hospital, "/mri") == expected
        assert no_errors(hospital) == []
    finally:
        hospital.close()
        dr.close()


def test_a_lost_data_directory_raises_an_alarm_and_is_re_replicated(
    tmp_path: Path, replicated: Fabric
) -> None:
    expected = view(replicated, "/mri")
    shutil.rmtree(tmp_path / "data1" / "packs")
    found = replicated.scrub.run()
    assert found.under_replicated and {p.problem for p in found.problems} == {"missing"}
    names = [alarm.name for alarm in replicated.admin.alarms("volume mri")]
    assert alarms.DATA_UNDER_REPLICATED in names
    replicated.scrub.run(repair=True)
    assert replicated.scrub.run().clean
    assert alarms.DATA_UNDER_REPLICATED not in [alarm.name for alarm in replicated.admin.alarms("volume mri")]
    assert view(replicated, "/mri") == expected and no_errors(replicated) == []


def test_a_pack_short_of_replicas_gets_a_new_one(replicated: Fabric) -> None:
    with replicated.catalog.write() as conn:
        pack_id, replicas = conn.execute(sa.select(packs.c.id, packs.c.replicas).limit(1)).one()
        kept = str(replicas).split(",")[0]
        conn.execute(packs.update().where(packs.c.id == pack_id).values(replicas=kept))
    found = replicated.scrub.run()
    assert [item["pack"] for item in found.under_replicated] == [pack_id]
    fixed = replicated.scrub.run(repair=True)
    assert [item["action"] for item in fixed.repaired] == ["replica added"]
    assert replicated.scrub.run().clean
    with replicated.catalog.read() as conn:
        assert (
            len(
                str(conn.execute(sa.select(packs.c.replicas).where(packs.c.id == pack_id)).scalar()).split(
                    ","
                )
            )
            == 2
        )


def test_scrub_of_a_pack_a_writer_holds_waits(replicated: Fabric) -> None:
    replicated.fs.write("/mri/open", os.urandom(5000))  # this process now holds an open pack
    with replicated.catalog.read() as conn:
        pack_id = conn.execute(sa.select(packs.c.id).where(packs.c.writer.is_not(None))).scalar()
    home = replicated.config.home
    path = next(Path(p) for p in Path(home).parent.rglob(f"{pack_id}.pack"))
    flip(path, random.Random(3))
    report = replicated.scrub.run(repair=True)
    assert report.busy == [pack_id] and not report.clean
    replicated = reopen(replicated)  # the writer is gone: now it can be repaired
    try:
        replicated.scrub.run(repair=True)
        assert replicated.scrub.run().clean
    finally:
        replicated.close()
