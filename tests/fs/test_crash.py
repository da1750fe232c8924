"""SIGKILL at random instants of `medfabric fs put`: no acknowledged write lost, nothing partial.

Invariant 1 of the architecture: a put that exited 0 reads back byte-identical after any later
crash; a put that was killed left either nothing or the whole file; fsck is clean.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medfabric.errors import NotFound
from medfabric.service.fabric import open_fabric
from tests.conftest import make_fabric

KILLS = 60


@pytest.mark.slow
def test_sigkill_during_put_loses_no_acknowledged_write(tmp_path: Path) -> None:
    fabric = make_fabric(tmp_path, datadirs=2)
    fabric.volumes.create("v", "/v", replication=2)
    fabric.close()
    rng = random.Random(20261125)
    env = {**os.environ, "MEDFABRIC_HOME": str(tmp_path / "home"), "MEDFABRIC_USER": "admin"}
    sources = tmp_path / "sources"
    sources.mkdir()
    outcomes: dict[str, tuple[bytes, bool]] = {}  # fabric path -> (content, acknowledged)
    # Kill within the time a put takes on this machine now (it may be loaded): time a few first.
    timings = []
    for warmup in range(3):
        body = rng.randbytes(9_000_000)
        source = sources / f"warmup{warmup}"
        source.write_bytes(body)
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "medfabric.cli.main", "fs", "put", str(source), f"/v/w{warmup}"],
            env=env,
            check=True,
            capture_output=True,
        )
        timings.append(time.monotonic() - started)
        outcomes[f"/v/w{warmup}"] = (body, True)
    window = sorted(timings)[1] * 1.3
    killed = 0
    for attempt in range(KILLS):
        size = rng.choice([0, 1, 700, 65_536, 300_000, 5_000_000, 9_000_000])
        body = rng.randbytes(size)
        source = sources / f"s{attempt}"
        source.write_bytes(body)
        target = f"/v/f{attempt}"
        process = subprocess.Popen(
            [sys.executable, "-m", "medfabric.cli.main", "fs", "put", str(source), target],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.0, window))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed += 1
        code = process.wait()
        outcomes[target] = (body, code == 0)
    assert killed >= 20, f"only {killed} of {KILLS} puts were killed: the test must hit writes in flight"
    acknowledged = sum(1 for path, (_body, ok) in outcomes.items() if ok and path.startswith("/v/f"))
    assert acknowledged >= 5

    reopened = open_fabric(tmp_path / "home", "admin")
    try:
        for path, (body, ok) in outcomes.items():
            try:
                stored = reopened.fs.read(path)
            except NotFound:
                assert not ok, f"{path} was acknowledged but is gone"
                continue
            assert stored == body, f"{path} reads back {len(stored)} bytes, not the {len(body)} written"
        assert [p for p in reopened.admin.fsck() if p.severity == "error"] == []
        reopened.admin.gc(grace_seconds=0)
        assert [p for p in reopened.admin.fsck() if p.severity == "error"] == []
        for path, (body, ok) in outcomes.items():
            if ok:
                assert reopened.fs.read(path) == body
    finally:
        reopened.close()
