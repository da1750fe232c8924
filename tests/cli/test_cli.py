"""The command line as a user types it: MapR-style options, -json envelopes, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

MEDFABRIC = [sys.executable, "-m", "medfabric.cli.main"]


class Shell:
    def __init__(self, home: Path, user: str = "admin") -> None:
        self.env = {**os.environ, "MEDFABRIC_HOME": str(home), "MEDFABRIC_USER": user}

    def run(
        self, *args: str, input: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        result = subprocess.run(
            [*MEDFABRIC, *args], env=self.env, input=input, capture_output=True, timeout=120
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"medfabric {' '.join(args)} exited {result.returncode}: {result.stderr.decode()}"
            )
        return result

    def json(self, *args: str, check: bool = True) -> dict[str, object]:
        result = self.run(*args, "-json", check=check)
        document: dict[str, object] = json.loads(result.stdout)
        return document


@pytest.fixture
def shell(tmp_path: Path) -> Shell:
    sh = Shell(tmp_path / "home")
    sh.run(
        "init",
        "-name",
        "cli.fabric",
        "-datadir",
        str(tmp_path / "d0"),
        "-datadir",
        str(tmp_path / "d1"),
        "-datadir",
        str(tmp_path / "d2"),
    )
    return sh


SEED = [
    "volume create -name mri_studies -path /mri_studies",
    'config save -values {"mfs.enable.small.file.optimization":"1"}',
    "node list -columns hostname,svc",
    "volume create -name medical_images -path /medical_images -replication 3",
    "volume create -name mri_2024 -path /medical_images/mri/2024 -parentvolume medical_images",
    "volume create -name ct_2024 -path /medical_images/ct/2024 -parentvolume medical_images",
    "dashboard info -json",
    "volume info -name medical_images -usage",
]


def test_the_seed_commands_run_verbatim(shell: Shell) -> None:
    for line in SEED:
        args = line.split(" ")
        if args[0] == "config":
            args = ["config", "save", "-values", '{"mfs.enable.small.file.optimization":"1"}']
        shell.run(*args)
    info = shell.json("volume", "info", "-name", "medical_images", "-usage")
    data = info["data"][0]  # type: ignore[index]
    assert data["numreplicas"] == 3 and data["mountdir"] == "/medical_images"
    dashboard = shell.json("dashboard", "info")["data"][0]  # type: ignore[index]
    assert dashboard["cluster"]["name"] == "cli.fabric"
    assert len(dashboard["utilization"]["storage"]) == 3
    assert dashboard["volumes"]["count"] == 5
    nodes = shell.json("node", "list", "-columns", "hostname,svc")
    assert list(nodes["data"][0]) == ["hostname", "svc"]  # type: ignore[index]


def test_posix_long_options_work_too(shell: Shell) -> None:
    shell.run("volume", "create", "--name", "x", "--path", "/x", "--replication", "2")
    assert shell.json("volume", "info", "--name", "x")["data"][0]["numreplicas"] == 2  # type: ignore[index]


def test_the_json_envelope_has_typed_fields(shell: Shell) -> None:
    document = shell.json("volume", "list")
    assert document["status"] == "OK" and isinstance(document["timestamp"], int)
    assert document["total"] == len(document["data"]) == 1  # type: ignore[arg-type]
    volume = document["data"][0]  # type: ignore[index]
    assert isinstance(volume["numreplicas"], int) and isinstance(volume["mounted"], bool)


def test_errors_have_exit_codes_and_envelopes(shell: Shell) -> None:
    missing = shell.run("volume", "info", "-name", "nope", "-json", check=False)
    assert missing.returncode == 2
    document = json.loads(missing.stdout)
    assert document["status"] == "ERROR" and "does not exist" in document["errors"][0]["desc"]
    unknown = shell.run("volume", "create", "-name", "a", "-bogus", "1", check=False)
    assert unknown.returncode == 2 and b"bogus" in unknown.stderr
    bad = shell.run("fs", "put", "-", "/../etc/passwd", input=b"x", check=False)
    assert bad.returncode == 22 and b"not allowed" in bad.stderr


def test_help_is_fast() -> None:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "medfabric.cli.main", "--help"], capture_output=True)
    elapsed = time.perf_counter() - started
    assert result.returncode == 0 and b"volume" in result.stdout
    assert elapsed < 0.5, f"--help took {elapsed:.2f} s"


def test_fs_round_trip(shell: Shell, tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "series1").mkdir(parents=True)
    for i in range(40):
        (source / "series1" / f"IM{i:04}.dcm").write_bytes(os.urandom(3000 + i))
    (source / "big.bin").write_bytes(os.urandom(6 * 1024 * 1024))
    shell.run("volume", "create", "-name", "v", "-path", "/v")
    shell.run("fs", "mkdir", "-p", "/v/in")
    put = shell.run("fs", "put", "-r", str(source), "/v/in")
    assert put.returncode == 0
    listing = shell.json("fs", "ls", "-R", "/v/in/src")
    assert sum(1 for item in listing["data"] if item["type"] == "file") == 41  # type: ignore[union-attr]
    again = shell.run("fs", "put", "-r", str(source), "/v/in", check=False)
    assert again.returncode == 1 and b"already exists" in again.stderr
    shell.run("fs", "put", "-r", "-f", str(source), "/v/in")
    out = tmp_path / "out"
    shell.run("fs", "get", "-r", "/v/in/src", str(out))
    for path in source.rglob("*"):
        if path.is_file():
            assert (out / path.relative_to(source)).read_bytes() == path.read_bytes()
    cat = shell.run("fs", "cat", "/v/in/src/series1/IM0001.dcm")
    assert cat.stdout == (source / "series1" / "IM0001.dcm").read_bytes()
    shell.run("fs", "mv", "/v/in/src/big.bin", "/v/big.bin")
    assert shell.json("fs", "stat", "/v/big.bin")["data"][0]["size"] == 6 * 1024 * 1024  # type: ignore[index]
    shell.run("fs", "rm", "-r", "/v/in")
    assert shell.json("fs", "ls", "/v")["total"] == 1
    fsck = shell.run("fsck")
    assert fsck.returncode == 0, fsck.stdout


def test_put_refuses_to_replace_without_force(shell: Shell) -> None:
    shell.run("volume", "create", "-name", "v", "-path", "/v")
    shell.run("fs", "put", "-", "/v/f", input=b"one")
    again = shell.run("fs", "put", "-", "/v/f", input=b"two", check=False)
    assert again.returncode == 17
    assert shell.run("fs", "cat", "/v/f").stdout == b"one"
    shell.run("fs", "put", "-f", "-", "/v/f", input=b"two")
    assert shell.run("fs", "cat", "/v/f").stdout == b"two"


def test_config_save_and_load(shell: Shell) -> None:
    shell.run("config", "save", "-values", '{"mfs.enable.audit.log":"1"}')
    loaded = shell.json("config", "load", "-keys", "mfs.enable.audit.log")
    assert loaded["data"] == [{"mfs.enable.audit.log": "1"}]
    bad = shell.run("config", "save", "-values", "{not json", check=False)
    assert bad.returncode == 22


def test_quota_and_alarms_from_the_command_line(shell: Shell) -> None:
    shell.run("volume", "create", "-name", "q", "-path", "/q", "-quota", "1M", "-advisoryquota", "512K")
    shell.run("fs", "put", "-", "/q/a", input=os.urandom(600_000))
    alarms = shell.json("alarm", "list")
    assert any(a["alarm name"] == "VOLUME_ALARM_ADVISORY_QUOTA_EXCEEDED" for a in alarms["data"])  # type: ignore[union-attr]
    over = shell.run("fs", "put", "-", "/q/b", input=os.urandom(600_000), check=False)
    assert over.returncode == 28


def test_a_catalog_that_cannot_be_reached_is_a_clear_error(tmp_path: Path) -> None:
    sh = Shell(tmp_path / "home")
    result = sh.run("init", "-catalog", "postgresql://nobody@127.0.0.1:1/none", check=False)
    assert result.returncode == 69 and b"cannot reach the catalog" in result.stderr


def test_an_unknown_fabric_home_is_a_clear_error(tmp_path: Path) -> None:
    result = Shell(tmp_path / "nothing").run("volume", "list", check=False)
    assert result.returncode == 2 and b"medfabric init" in result.stderr


def test_audit_from_the_command_line_every_process_and_coalescing(shell: Shell) -> None:
    shell.run("volume", "create", "-name", "v", "-path", "/v")
    shell.run("config", "save", "-values", '{"mfs.enable.audit.log":"1"}')
    shell.run("audit", "data", "-enabled", "true", "-volume", "v")
    shell.run("fs", "put", "-", "/v/f", input=b"DICM")
    for _ in range(3):
        shell.run("fs", "cat", "/v/f")  # three processes, each journals its record and moves it on exit
    reads = shell.json("audit", "query", "-volume", "v", "-op", "read")["data"]
    assert len(reads) == 3  # type: ignore[arg-type]
    coalesced = shell.json("audit", "data", "-enabled", "true", "-volume", "v", "-coalesce", "30")
    assert coalesced["data"][0]["coalesce"] == 30  # type: ignore[index]
    assert (
        shell.run(
            "audit", "data", "-enabled", "true", "-volume", "v", "-coalesce", "-5", check=False
        ).returncode
        == 22
    )
    assert shell.run("audit", "verify").returncode == 0
