"""The data-protection commands as a user types them: the seed's forms, -json envelopes, exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from medfabric.cli.main import cli


class Medfabric:
    """`medfabric …` run in-process against one fabric home (fast; the crash tests use processes)."""

    def __init__(self, home: Path) -> None:
        self.env = {"MEDFABRIC_HOME": str(home), "MEDFABRIC_USER": "admin"}
        self.home = home

    def __call__(self, *args: str, code: int = 0, stdin: bytes | None = None) -> str:
        result = CliRunner().invoke(cli, list(args), env=self.env, input=stdin, catch_exceptions=False)
        assert result.exit_code == code, (
            f"medfabric {' '.join(args)} exited {result.exit_code}: {result.output}"
        )
        return result.output

    def json(self, *args: str, code: int = 0) -> Any:
        document = json.loads(self(*args, "-json", code=code))
        assert document["status"] == ("OK" if code == 0 else "ERROR")
        return document["data"]


def init(tmp_path: Path, name: str) -> Medfabric:
    shell = Medfabric(tmp_path / name / "home")
    shell(
        "init",
        "-name",
        name,
        "-datadir",
        str(tmp_path / name / "d0"),
        "-datadir",
        str(tmp_path / name / "d1"),
    )
    return shell


@pytest.fixture
def hospital(tmp_path: Path) -> Medfabric:
    shell = init(tmp_path, "hospital")
    shell("volume", "create", "-name", "mri_studies", "-path", "/mri_studies")
    source = tmp_path / "exports"
    (source / "series").mkdir(parents=True)
    for i in range(12):
        (source / "series" / f"IM{i:04}.dcm").write_bytes(os.urandom(4000 + i))
    shell("fs", "put", "-r", str(source), "/mri_studies")
    return shell


def test_seed_schedule_and_the_scheduler(hospital: Medfabric) -> None:
    hospital(
        "schedule",
        "create",
        "-name",
        "daily_mri_snapshot",
        "-path",
        "/mri_studies",
        "-hourly",
        "0",
        "-daily",
        "1",
        "-retain",
        "7",
    )
    listed = hospital.json("schedule", "list")
    assert listed[0]["name"] == "daily_mri_snapshot"
    assert listed[0]["rules"] == [{"frequency": "daily", "time": 0, "minute": 0, "retain": "7"}]
    assert listed[0]["attached"] == [{"action": "snapshot", "volume": "mri_studies"}]
    hospital(
        "schedule",
        "create",
        "-action",
        "backup",
        "-schedule",
        '{"name":"right_now","rules":[{"frequency":"once","retain":3}]}',
    )
    ran = hospital.json("scheduler", "tick")
    assert [(row["schedule"], row["action"], row["error"]) for row in ran] == [("right_now", "backup", None)]
    assert len(hospital.json("catalog", "list")) == 1
    assert hospital.json("scheduler", "tick") == []  # a once rule runs once
    hospital(
        "schedule", "modify", "-id", "daily_mri_snapshot", "-name", "nightly", "-daily", "1", "-retain", "14d"
    )
    assert hospital.json("schedule", "info", "-id", "nightly")[0]["rules"][0]["retain"] == "14d"
    hospital("volume", "modify", "-name", "mri_studies", "-schedule", "0")
    assert hospital.json("schedule", "info", "-id", "nightly")[0]["attached"] == []
    hospital("volume", "modify", "-name", "mri_studies", "-schedule", "nightly")
    assert hospital.json("schedule", "info", "-id", "nightly")[0]["attached"][0]["volume"] == "mri_studies"
    error = hospital.json(
        "schedule", "create", "-name", "bad", "-schedule", '{"rules":[{"frequency":"sometimes"}]}', code=22
    )
    assert error == []
    hospital("schedule", "remove", "-id", "nightly")
    hospital("schedule", "remove", "-id", "nightly", code=2)


def test_seed_mirror_to_a_remote_cluster_and_back(tmp_path: Path, hospital: Medfabric) -> None:
    dr = init(tmp_path, "dr")
    hospital("remote", "add", "remote-cluster", str(dr.home))
    assert hospital.json("remote", "list")[0]["fabricname"] == "dr"
    out = hospital(
        "mirror",
        "create",
        "-name",
        "mri_dr",
        "-source",
        "/mri_studies",
        "-target",
        "/mapr/remote-cluster/mri_studies",
    )
    assert "Created mirror volume mri_dr" in out
    assert dr("fs", "cat", "/mri_studies/exports/series/IM0003.dcm", code=0) == hospital(
        "fs", "cat", "/mri_studies/exports/series/IM0003.dcm"
    )
    status = hospital.json("volume", "mirror", "status", "-name", "mri_dr@remote-cluster")[0]
    assert status["state"] == "idle" and status["source"] == "mri_studies@hospital"
    assert hospital.json("mirror", "verify", "-name", "mri_dr@remote-cluster")[0]["consistent"] is True
    # The DR side pulls on its own too: it registers the hospital and syncs.
    dr("remote", "add", "hospital", str(hospital.home))
    hospital("fs", "rm", "/mri_studies/exports/series/IM0000.dcm")
    synced = dr.json("volume", "mirror", "start", "-name", "mri_dr")[0]
    assert synced["full"] is False
    dr("fs", "stat", "/mri_studies/exports/series/IM0000.dcm", code=2)
    dr("fs", "put", "-", "/mri_studies/x", code=30, stdin=b"x")  # a mirror is read-only
    dr(
        "volume",
        "create",
        "-name",
        "second",
        "-path",
        "/second",
        "-type",
        "mirror",
        "-source",
        "mri_studies@hospital",
    )
    assert dr.json("volume", "mirror", "start", "-name", "second", "-full")[0]["full"] is True
    assert [row["volumename"] for row in dr.json("mirror", "list")] == ["mri_dr", "second"]
    # Promote, write, fail back.
    dr("volume", "modify", "-name", "mri_dr", "-type", "rw")
    dr("fs", "put", "-", "/mri_studies/during-outage.txt", stdin=b"written on the DR side")
    hospital(
        "volume", "modify", "-name", "mri_studies", "-type", "mirror", "-source", "mri_dr@remote-cluster"
    )
    hospital("volume", "mirror", "start", "-name", "mri_studies")
    assert hospital.json("mirror", "verify", "-name", "mri_studies")[0]["consistent"] is True
    assert hospital("fs", "cat", "/mri_studies/during-outage.txt") == "written on the DR side"
    dr("volume", "mirror", "stop", "-name", "second")
    hospital("remote", "remove", "remote-cluster")
    hospital("remote", "remove", "remote-cluster", code=2)


def test_scrub_and_catalog_commands(hospital: Medfabric) -> None:
    report = hospital.json("scrub")[0]
    assert report["packs"] >= 1 and report["problems"] == []
    pack = next(Path(hospital.home).parent.rglob("*.pack"))
    data = bytearray(pack.read_bytes())
    data[100] ^= 1
    pack.write_bytes(bytes(data))
    assert "BAD: pack" in hospital("scrub", code=1)
    assert hospital.json("scrub", "-repair")[0]["repaired"]
    hospital("scrub")
    made = hospital.json("catalog", "backup", "-keep", "2")[0]
    assert [row["name"] for row in hospital.json("catalog", "list")] == [made["name"]]
    assert hospital.json("catalog", "rebuild-index")[0]["packs"] >= 1
    for path in Path(hospital.home).glob("catalog.db*"):
        path.unlink()
    restored = hospital.json("catalog", "restore")[0]
    assert restored["backup"] == made["name"]
    assert len(hospital.json("fs", "ls", "-R", "/mri_studies")) == 14


def test_scheduler_run_is_a_loop_that_stops_on_interrupt(hospital: Medfabric) -> None:
    hospital(
        "schedule",
        "create",
        "-volume",
        "mri_studies",
        "-schedule",
        '{"name":"now","rules":[{"frequency":"once"}]}',
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "medfabric.cli.main", "scheduler", "run", "-interval", "0.2"],
        env={**os.environ, **hospital.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not hospital.json(
        "volume", "snapshot", "list", "-volume", "mri_studies"
    ):
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert b"schedule=now action=snapshot" in out and b"Scheduler stopped" in err
