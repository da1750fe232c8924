"""SIGKILL at random instants of snapshot creation, restore and mirror sync, run as the CLI runs.

Each series kills ≥ 50 commands at instants drawn from a window that adapts to how long the
command takes on this machine now. After every attempt: an acknowledged command's effect is
there; a killed one left all of it or none of it; a mirror always equals the source snapshot it
says it shows. fsck is clean after each series.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from medfabric.service.fabric import Fabric
from medfabric.service.writes import NewFile
from tests.conftest import make_fabric
from tests.replication.common import no_errors, view

ATTEMPTS = 50
MEDFABRIC = [sys.executable, "-m", "medfabric.cli.main"]

pytestmark = pytest.mark.slow


class Killer:
    """Runs a command and kills it at a random instant of a window that adapts: it moves earlier
    each time the command finishes first and later each time it is killed, so it settles where
    about half the runs die, around the moment the command commits its work."""

    def __init__(self, home: Path, rng: random.Random) -> None:
        self.env = {**os.environ, "MEDFABRIC_HOME": str(home), "MEDFABRIC_USER": "admin"}
        self.rng = rng
        self.center = 1.0
        self.killed = 0
        self.finished = 0

    def timed(self, *args: str) -> float:
        started = time.monotonic()
        subprocess.run([*MEDFABRIC, *args], env=self.env, check=True, capture_output=True)
        return time.monotonic() - started

    def calibrate(self, work: list[list[str]]) -> None:
        self.center = 0.9 * sorted(self.timed(*args) for args in work)[len(work) // 2]

    def attempt(self, *args: str, steer: bool = True) -> bool:
        """True if the command finished (exit 0) before the kill; False if it was killed.
        Without ``steer`` the caller moves the window itself (``later``/``sooner``)."""
        process = subprocess.Popen(
            [*MEDFABRIC, *args], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            process.wait(timeout=self.rng.uniform(0.7, 1.3) * self.center)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
        code = process.wait()
        stderr = process.stderr.read() if process.stderr else b""
        if code == 0:
            self.finished += 1
            if steer:
                self.sooner()
            return True
        assert code == -signal.SIGKILL, f"medfabric {' '.join(args)} failed ({code}): {stderr.decode()}"
        self.killed += 1
        if steer:
            self.later()
        return False

    def attempt_inside(self, args: list[str], begun: Callable[[], bool], spread: float) -> bool:
        """Kill at a random instant within ``spread`` seconds after ``begun()`` first holds (the
        operation has started), whatever the interpreter's start-up took. True if it finished."""
        process = subprocess.Popen(
            [*MEDFABRIC, *args], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 60
        while process.poll() is None and not begun() and time.monotonic() < deadline:
            time.sleep(0.002)
        try:
            process.wait(timeout=self.rng.uniform(0, spread))
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
        code = process.wait()
        if code == 0:
            self.finished += 1
            return True
        stderr = process.stderr.read() if process.stderr else b""
        assert code == -signal.SIGKILL, f"medfabric {' '.join(args)} failed ({code}): {stderr.decode()}"
        self.killed += 1
        return False

    def sooner(self) -> None:
        self.center *= 0.95

    def later(self) -> None:
        self.center *= 1.04

    def check_mix(self, *, finished: int = 3) -> None:
        assert self.killed >= 15, f"only {self.killed} kills: the window missed the command"
        assert self.finished >= finished, f"only {self.finished} commands finished"


@pytest.fixture
def hospital(tmp_path: Path) -> Iterator[Fabric]:
    fabric = make_fabric(tmp_path / "hospital", datadirs=2)
    fabric.volumes.create("v", "/v", replication=2)
    fabric.fs.write_many([NewFile(f"/v/base/f{i}", os.urandom(2000 + i)) for i in range(20)])
    try:
        yield fabric
    finally:
        fabric.close()


def snapshot_names(fabric: Fabric) -> list[str]:
    return [snapshot.name for snapshot in fabric.snapshots.list("v")]


def test_killed_snapshot_creation(hospital: Fabric) -> None:
    rng = random.Random(41)
    killer = Killer(hospital.config.home, rng)
    killer.calibrate(
        [["volume", "snapshot", "create", "-volume", "v", "-snapshotname", f"warm{i}"] for i in range(3)]
    )
    expected: dict[str, dict[str, bytes | None]] = {}
    acknowledged: set[str] = set()
    for attempt in range(ATTEMPTS):
        hospital.fs.write(f"/v/new/f{attempt}", os.urandom(rng.randrange(10, 5000)), parents=True)
        name = f"s{attempt}"
        expected[name] = view(hospital, "/v")
        if killer.attempt("volume", "snapshot", "create", "-volume", "v", "-snapshotname", name):
            acknowledged.add(name)
    killer.check_mix()
    present = set(snapshot_names(hospital))
    assert acknowledged <= present, f"acknowledged snapshots lost: {acknowledged - present}"
    for name in present & set(expected):
        assert view(hospital, f"/v/.snapshot/{name}") == expected[name], name
    assert no_errors(hospital) == []
    hospital.admin.gc(grace_seconds=0)
    assert no_errors(hospital) == []


def test_killed_restore(hospital: Fabric) -> None:
    rng = random.Random(42)
    hospital.snapshots.create("v", "a")
    state_a = view(hospital, "/v")
    hospital.fs.remove("/v/base", recursive=True)
    hospital.fs.write_many([NewFile(f"/v/other/g{i}", os.urandom(3000 + i)) for i in range(20)])
    hospital.snapshots.create("v", "b")
    state_b = view(hospital, "/v")
    killer = Killer(hospital.config.home, rng)
    killer.calibrate(
        [
            ["volume", "snapshot", "restore", "-volume", "v", "-snapshotname", target, "-force"]
            for target in "aba"
        ]
    )
    targets = {"a": state_a, "b": state_b}
    for attempt in range(ATTEMPTS):
        hospital.fs.write(f"/v/written{attempt}", os.urandom(700))  # acknowledged before the restore
        before = view(hospital, "/v")
        safeties = {name for name in snapshot_names(hospital) if ".restore-safety." in name}
        target = rng.choice("ab")
        finished = killer.attempt(
            "volume", "snapshot", "restore", "-volume", "v", "-snapshotname", target, "-force"
        )
        after = view(hospital, "/v")
        new_safeties = {n for n in snapshot_names(hospital) if ".restore-safety." in n} - safeties
        if new_safeties:  # the restore committed: the volume is the snapshot, and nothing is lost
            assert after == targets[target], attempt
            (safety,) = new_safeties
            assert view(hospital, f"/v/.snapshot/{safety}") == before, attempt
        else:
            assert not finished and after == before, attempt
    killer.check_mix()
    assert no_errors(hospital) == []
    hospital.admin.gc(grace_seconds=0)
    assert no_errors(hospital) == []


def test_killed_mirror_sync(tmp_path: Path, hospital: Fabric) -> None:
    rng = random.Random(43)
    dr = make_fabric(tmp_path / "dr", datadirs=1)
    try:
        dr.remotes.add("hospital", str(hospital.config.home))
        dr.volumes.create("m", "/m", volume_type="mirror", source="v@hospital", replication=1)
        killer = Killer(dr.config.home, rng)
        start = ["volume", "mirror", "start", "-name", "m"]
        killer.calibrate([start, start, start])
        states = [view(hospital, "/v")]
        committed = 0  # index in states of the state the mirror showed last
        interrupted = 0  # attempts killed in the middle of a sync (it had begun, not committed)
        spread = 0.3  # seconds after a sync begins in which an inside kill falls (adapts)
        for attempt in range(ATTEMPTS):
            files = [path for path in states[-1] if states[-1][path] is not None]
            for path in rng.sample(files, min(3, len(files))):
                hospital.fs.write(f"/v{path}", os.urandom(rng.randrange(100, 100_000)), overwrite=True)
            hospital.fs.remove(f"/v{rng.choice(files)}")
            if attempt >= 3:  # the volume stays small: what goes in leaves again later
                hospital.fs.remove(f"/v/n{attempt - 3}", recursive=True)
            hospital.fs.write_many(
                [NewFile(f"/v/n{attempt}/f{i}", os.urandom(rng.randrange(1000, 250_000))) for i in range(6)]
            )
            states.append(view(hospital, "/v"))
            shown_before = dr.mirrors.status("m").synced_snapshot
            if attempt % 10 == 9:  # now and then a sync runs to the end: acknowledged
                killer.timed(*start)
                assert view(dr, "/m") == states[-1], attempt  # an acknowledged sync reaches now
            elif attempt % 2:  # an instant anywhere in the command's life, interpreter start-up included
                killer.attempt(*start, steer=False)
            else:  # an instant inside the sync itself
                owner = dr.mirrors.status("m").owner
                killer.attempt_inside(
                    start, lambda o=owner: dr.mirrors.status("m").owner not in (None, o), spread
                )
                after = dr.mirrors.status("m")
                if after.pending_snapshot is None:  # it committed: kill sooner after it begins
                    spread *= 0.8 if after.synced_snapshot != shown_before else 1.1
            mirror = view(dr, "/m")
            status = dr.mirrors.status("m")
            # Steer the window into the sync: later if it was killed before the sync began, sooner
            # if the sync had committed.
            if status.pending_snapshot is not None:
                interrupted += 1
            elif status.synced_snapshot != shown_before:
                killer.sooner()
            else:
                killer.later()
            if status.synced_snapshot is None:
                assert mirror == {}, attempt
                continue
            # Never partial: the mirror is exactly the source snapshot it says it shows, which is
            # one of the states the source went through since the last commit.
            assert mirror == view(hospital, f"/v/.snapshot/{status.synced_snapshot}"), attempt
            shown = [index for index in range(committed, len(states)) if states[index] == mirror]
            assert shown, f"attempt {attempt}: the mirror shows a state the source never had"
            committed = shown[0]
        killer.check_mix(finished=0)
        assert interrupted >= 10, f"only {interrupted} kills landed inside a sync"
        final = dr.mirrors.start("m")
        assert view(dr, "/m") == states[-1] == view(hospital, f"/v/.snapshot/{final.snapshot}")
        assert dr.mirrors.verify("m").ok
        # A killed sync leaves at most its pending snapshot behind; after this sync only one is kept.
        assert [name for name in snapshot_names(hospital) if name.startswith("mirror.")] == [final.snapshot]
        for fabric in (hospital, dr):
            assert no_errors(fabric) == []
            fabric.admin.gc(grace_seconds=0)
            assert no_errors(fabric) == []
        assert view(dr, "/m") == states[-1]
    finally:
        dr.close()
