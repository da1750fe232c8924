"""Schedules and the scheduler, driven by an injected clock (no sleeps)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from medfabric.clock import ManualClock
from medfabric.errors import Conflict, InvalidInput, NotFound
from medfabric.replication.scheduler import Scheduler
from medfabric.service.fabric import Fabric, open_fabric
from medfabric.service.schedules import RuleSpec
from tests.conftest import make_fabric

HOUR = 3_600_000
DAY = 24 * HOUR
START = int(datetime(2025, 3, 3, 12, 0, tzinfo=UTC).timestamp() * 1000)  # a Monday, noon


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def timed(tmp_path: Path, clock: ManualClock) -> Iterator[Fabric]:
    make_fabric(tmp_path, datadirs=1).close()
    fabric = open_fabric(tmp_path / "home", "admin", clock=clock)
    fabric.volumes.create("mri_studies", "/mri_studies", replication=1)
    fabric.fs.write("/mri_studies/a.dcm", b"first")
    try:
        yield fabric
    finally:
        fabric.close()


def names(fabric: Fabric, volume: str = "mri_studies") -> list[str]:
    return [snapshot.name for snapshot in fabric.snapshots.list(volume)]


def test_seed_form_daily_keeps_the_newest_seven(timed: Fabric, clock: ManualClock) -> None:
    made = timed.schedules.create(
        "daily_mri_snapshot", RuleSpec(hourly=0, daily=1, retain="7"), path="/mri_studies"
    )
    assert made.jobs == ({"action": "snapshot", "volume": "mri_studies"},)
    assert timed.schedules.run_due() == []  # created at noon: the first run is at midnight
    for day in range(10):
        clock.advance(DAY)
        outcomes = timed.schedules.run_due()
        assert [outcome.action for outcome in outcomes] == ["snapshot"], day
        timed.fs.write(f"/mri_studies/day{day}", b"x")
    kept = names(timed)
    assert len(kept) == 7 and kept == sorted(kept)
    assert kept[0].startswith("daily_mri_snapshot.2025-03-07T") and kept[-1].startswith(
        "daily_mri_snapshot.2025-03-13T"
    )
    # A snapshot keeps what the volume held when it was taken.
    assert timed.fs.exists(f"/mri_studies/.snapshot/{kept[-1]}/day8")
    assert not timed.fs.exists(f"/mri_studies/.snapshot/{kept[-1]}/day9")


def test_missed_runs_are_caught_up_once(timed: Fabric, clock: ManualClock) -> None:
    timed.schedules.create("hourly", RuleSpec(hourly=1, retain="100"), volume="mri_studies")
    clock.advance(5 * DAY)  # the scheduler was down for five days: 120 hourly instants passed
    assert len(timed.schedules.run_due()) == 1
    assert timed.schedules.run_due() == []
    assert len(names(timed)) == 1
    clock.advance(HOUR)
    assert len(timed.schedules.run_due()) == 1
    assert len(names(timed)) == 2


def test_json_rules_with_time_retention_expire(timed: Fabric, clock: ManualClock) -> None:
    timed.schedules.create(
        None,
        RuleSpec(json='{"name":"nightly","rules":[{"frequency":"daily","retain":"3d","time":2}]}'),
        volume="mri_studies",
    )
    for _ in range(6):
        clock.advance(DAY)
        timed.schedules.run_due()
    kept = names(timed)
    assert len(kept) == 3  # each kept three days, then expired by the scheduler's pass
    timed.snapshots.preserve("mri_studies", kept[0])
    clock.advance(10 * DAY)
    timed.schedules.run_due()
    assert kept[0] in names(timed) and kept[1] not in names(timed)


def test_several_rules_share_one_snapshot_and_keep_it_by_their_own_retention(
    timed: Fabric, clock: ManualClock
) -> None:
    timed.schedules.create(
        "tiered",
        RuleSpec(
            json='{"rules":[{"frequency":"daily","retain":2},{"frequency":"weekly","day":"mon","retain":2}]}'
        ),
        volume="mri_studies",
    )
    for _ in range(21):  # three weeks
        clock.advance(DAY)
        timed.schedules.run_due()
    kept = names(timed)
    # Two newest dailies and two newest Mondays (one snapshot can be both).
    mondays = [name for name in kept if datetime.fromisoformat(name.split(".", 1)[1]).weekday() == 0]
    assert len(mondays) == 2
    assert 3 <= len(kept) <= 4


def test_volume_modify_attaches_and_detaches_a_schedule(timed: Fabric, clock: ManualClock) -> None:
    made = timed.schedules.create(
        "every_quarter_hour", RuleSpec(json='{"rules":[{"frequency":"quarterhourly","retain":2}]}')
    )
    assert made.jobs == ()
    timed.volumes.modify("mri_studies", schedule=str(made.id))
    clock.advance(15 * 60_000)
    assert len(timed.schedules.run_due()) == 1
    timed.volumes.modify("mri_studies", schedule="0")
    clock.advance(DAY)
    assert timed.schedules.run_due() == []
    with pytest.raises(NotFound):
        timed.volumes.modify("mri_studies", schedule="no-such-schedule")


def test_list_modify_remove_and_clear_errors(timed: Fabric) -> None:
    timed.schedules.create("a", RuleSpec(daily=1, retain="7"), path="/mri_studies")
    with pytest.raises(Conflict):
        timed.schedules.create("a", RuleSpec(daily=1))
    with pytest.raises(InvalidInput, match="no volume is mounted"):
        timed.schedules.create("b", RuleSpec(daily=1), path="/nowhere")
    with pytest.raises(InvalidInput, match="not a mirror"):
        timed.schedules.create("c", RuleSpec(daily=1), volume="mri_studies", action="mirror")
    changed = timed.schedules.modify("a", name="renamed", spec=RuleSpec(hourly=2, retain="3"))
    assert changed.name == "renamed" and changed.rules[0].frequency == "hourly"
    assert [s.name for s in timed.schedules.list()] == ["renamed"]
    timed.schedules.remove("renamed")
    assert timed.schedules.list() == []
    with pytest.raises(NotFound):
        timed.schedules.remove("renamed")


def test_two_schedulers_never_run_a_job_twice(tmp_path: Path, timed: Fabric, clock: ManualClock) -> None:
    timed.schedules.create("hourly", RuleSpec(hourly=1, retain="50"), volume="mri_studies")
    other = open_fabric(tmp_path / "home", "admin", clock=clock)
    try:
        for _ in range(5):
            clock.advance(HOUR)
            results: list[int] = []
            threads = [
                threading.Thread(target=lambda f=f: results.append(len(f.schedules.run_due())))
                for f in (timed, other)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert sorted(results) == [0, 1]
    finally:
        other.close()
    assert len(names(timed)) == 5


def test_scheduler_thread_starts_and_stops(timed: Fabric, clock: ManualClock) -> None:
    timed.schedules.create(
        "minutely", RuleSpec(json='{"rules":[{"frequency":"minute","retain":3}]}'), volume="mri_studies"
    )
    seen: list[object] = []
    done = threading.Event()

    def runner() -> list[object]:
        clock.advance(60_000)
        outcomes = timed.schedules.run_due()
        if len(seen) + len(outcomes) >= 4:
            done.set()
        return outcomes  # type: ignore[return-value]

    loop = Scheduler(runner, interval_s=0.01, on_outcome=seen.append)  # type: ignore[arg-type]
    loop.start()
    assert done.wait(30)
    loop.stop(timeout=30)
    assert not loop.running and loop.passes >= 4
    assert len(names(timed)) == 3  # count retention held while it ran


def test_a_failing_pass_does_not_end_the_loop() -> None:
    calls: list[int] = []

    def runner() -> list[object]:
        calls.append(1)
        raise RuntimeError("catalog unreachable")

    loop = Scheduler(runner, interval_s=0.01)  # type: ignore[arg-type]
    assert loop.tick() == [] and loop.last_error == "RuntimeError: catalog unreachable"
    assert loop.tick() == [] and len(calls) == 2


def test_mirror_syncs_scrubs_and_backups_run_on_schedules(timed: Fabric, clock: ManualClock) -> None:
    timed.volumes.create("mri_copy", "/mri_copy", volume_type="mirror", source="mri_studies", replication=1)
    syncs = timed.schedules.create("syncs", RuleSpec(hourly=1))
    timed.volumes.modify("mri_copy", mirror_schedule=syncs.name)
    timed.schedules.create("weekly_scrub", RuleSpec(weekly=1), action="scrub")
    timed.schedules.create("backups", RuleSpec(daily=1, retain="2"), action="backup")
    clock.advance(HOUR)
    (outcome,) = timed.schedules.run_due()
    assert (outcome.action, outcome.error) == ("mirror", None)
    assert timed.fs.read("/mri_copy/a.dcm") == b"first"
    timed.fs.write("/mri_studies/b.dcm", b"second")
    clock.advance(7 * DAY)  # one sync (caught up once), one scrub, one backup
    outcomes = {item.action: item for item in timed.schedules.run_due()}
    assert set(outcomes) == {"mirror", "scrub", "backup"}
    assert all(item.error is None for item in outcomes.values())
    assert "0 bad replicas" in outcomes["scrub"].result
    assert timed.fs.read("/mri_copy/b.dcm") == b"second"
    for _ in range(3):
        clock.advance(DAY)
        timed.schedules.run_due()
    assert len(timed.backups.list()) == 2  # the rule's count retention
    timed.volumes.modify("mri_copy", mirror_schedule="0")
    assert [job for s in timed.schedules.list() for job in s.jobs if job["action"] == "mirror"] == []
