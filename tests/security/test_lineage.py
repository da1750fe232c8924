"""Lineage: every imported file names its source; derived data names inputs, transform and params."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from medfabric.errors import InvalidInput
from medfabric.service.fabric import Fabric
from medfabric.service.writes import NewFile


def test_imports_record_their_source_and_derivations_chain(fabric: Fabric) -> None:
    fabric.volumes.create("raw", "/raw")
    fabric.volumes.create("research", "/research")
    fabric.fs.write("/raw/a.dcm", b"a", source="file://scanner1/export/a.dcm")
    fabric.fs.write_many([NewFile("/raw/b.dcm", b"b", source="dicom://CT01@10.0.0.7")])
    fabric.fs.write("/research/a.dcm", b"A")
    fabric.lineage.record(["/research/a.dcm"], ["/raw/a.dcm"], "deidentify", {"profile": "basic"})
    fabric.fs.rename("/research/a.dcm", "/research/anon.dcm")
    upstream = fabric.lineage.show("/research/anon.dcm")
    assert [(e.input, e.transform) for e in upstream] == [
        ("/raw/a.dcm", "deidentify"),
        ("file://scanner1/export/a.dcm", "import"),
    ]
    assert upstream[0].params == {"profile": "basic"}
    downstream = fabric.lineage.show("/raw/a.dcm", direction="downstream")
    assert [e.output for e in downstream] == ["/research/a.dcm"]
    assert fabric.lineage.show("/raw/b.dcm")[0].input == "dicom://CT01@10.0.0.7"
    with pytest.raises(InvalidInput):
        fabric.lineage.record([], ["/raw/a.dcm"], "x")


def test_fs_put_records_the_host_and_path(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "MEDFABRIC_HOME": str(tmp_path / "home"), "MEDFABRIC_USER": "admin"}

    def run(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "medfabric.cli.main", *args],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    run("init", "-datadir", str(tmp_path / "d"))
    run("volume", "create", "-name", "v", "-path", "/v")
    source = tmp_path / "scan.dcm"
    source.write_bytes(b"DICM")
    run("fs", "put", str(source), "/v/scan.dcm")
    assert f"{source}" in run("lineage", "show", "/v/scan.dcm")
