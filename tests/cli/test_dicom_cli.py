"""`medfabric dicom …` and `medfabric demo` as a user types them: options, -json envelopes, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from medfabric.imaging.synth import generate_corpus, write_bad_files
from tests.conftest import make_fabric
from tests.imaging.test_ingest_helpers import make_instance, seed_volumes

MEDFABRIC = [sys.executable, "-m", "medfabric.cli.main"]


class Shell:
    def __init__(self, home: Path) -> None:
        self.env = {**os.environ, "MEDFABRIC_HOME": str(home), "MEDFABRIC_USER": "admin"}

    def run(self, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*MEDFABRIC, *args], env=self.env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == code, (
            f"medfabric {' '.join(args)} exited {result.returncode}: {result.stderr}"
        )
        return result

    def json(self, *args: str, code: int = 0) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.run(*args, "-json", code=code).stdout)
        return document


@pytest.fixture
def shell(tmp_path: Path) -> Shell:
    with make_fabric(tmp_path) as fabric:
        seed_volumes(fabric, routes=False)
    return Shell(tmp_path / "home")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli-corpus")
    generate_corpus(root / "corpus", patients=2, seed=1, size="small")
    write_bad_files(root / "bad")
    return root


def test_import_reports_in_json_and_exits_zero_despite_rejections(shell: Shell, corpus: Path) -> None:
    document = shell.json(
        "dicom", "import", str(corpus / "corpus"), str(corpus / "bad"), "-volume", "mri_studies"
    )
    assert document["status"] == "OK" and document["total"] == 1
    report = document["data"][0]
    files = len(json.loads((corpus / "corpus/corpus.json").read_text())["files"])
    assert (report["stored"], report["duplicates"], report["failed"]) == (files, 0, 0)
    assert {Path(r["source"]).name: r["reason"] for r in report["rejections"]} == {
        "corpus.json": "not_dicom",
        "empty.dcm": "empty",
        "not_dicom.dcm": "not_dicom",
        "truncated.dcm": "truncated",
        "no_sop_instance_uid.dcm": "missing_sop_instance_uid",
    }
    text = shell.run("dicom", "import", str(corpus / "corpus"), "--volume", "mri_studies").stdout
    assert f"0 stored (0.0 MB), {files} duplicates, 1 rejected, 0 failed" in text
    assert "REJECTED" in text and "corpus.json: not_dicom" in text
    strict = shell.json("dicom", "import", str(corpus / "bad"), "-volume", "mri_studies", "-strict", code=22)
    assert strict["status"] == "ERROR" and len(strict["errors"]) == 4


def test_import_failures_have_their_exit_codes(shell: Shell, corpus: Path) -> None:
    unknown = shell.json("dicom", "import", str(corpus / "bad"), "-volume", "nowhere", code=2)
    assert unknown["status"] == "ERROR" and unknown["errors"][0]["type"] == "NotFound"
    shell.run("dicom", "import", str(corpus / "bad"), code=22)  # no -volume, no routes, no default
    shell.run("dicom", "import", str(corpus / "missing"), "-volume", "mri_studies", code=2)
    shell.run("volume", "modify", "-name", "mri_studies", "-quota", "1K")
    quota = shell.json("dicom", "import", str(corpus / "corpus"), "-volume", "mri_studies", code=28)
    assert quota["status"] == "ERROR" and quota["data"][0]["aborted"]


def test_routes_then_import_then_find(shell: Shell, corpus: Path) -> None:
    rules = json.dumps(
        [{"volume": "mri_2024", "modality": "MR", "study_date": {"$gte": "20240101", "$lt": "20250101"}}]
    )
    configured = shell.json("dicom", "routes", "-set", rules, "-default", "medical_images", "-policy", "keep")
    assert configured["data"][0]["defaultVolume"] == "medical_images"
    assert configured["data"][0]["duplicatePolicy"] == "keep"
    assert "routes:" in shell.run("dicom", "routes").stdout
    shell.run("dicom", "routes", "-set", '[{"modality": "MR"}]', code=22)
    shell.run("dicom", "import", str(corpus / "corpus"))
    studies = shell.json(
        "dicom", "find", "-level", "study", "-c", '{"modality": "MR", "study_date": {"$gt": "20240101"}}'
    )
    assert studies["total"] >= 1
    assert all("MR" in row["modalities_in_study"] for row in studies["data"])
    instances = shell.json(
        "dicom", "find", "-level", "instance", "-c", '{"volume": "mri_2024"}', "-columns", "path,modality"
    )
    assert instances["total"] > 0 and set(instances["data"][0]) == {"path", "modality"}
    assert all(row["path"].startswith("/medical_images/mri/2024/") for row in instances["data"])
    table = shell.run("dicom", "find", "-level", "series", "-limit", "2").stdout.splitlines()
    assert table[0].split()[:3] == ["patient_id", "study_date", "modality"] and len(table) == 3
    bad = shell.json("dicom", "find", "-c", '{"modality": ', code=22)
    assert bad["status"] == "ERROR" and bad["errors"][0]["type"] == "InvalidInput"


def test_watch_once_and_reindex(shell: Shell, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.dcm").write_bytes(make_instance(sop_uid="1.2.3.4"))
    watched = shell.json("dicom", "watch", str(inbox), "-once", "-interval", "0.05", "-volume", "mri_studies")
    assert watched["data"][0]["stored"] == 1 and not (inbox / "a.dcm").exists()
    reindexed = shell.json("dicom", "reindex", "-volume", "mri_studies")
    assert reindexed["data"] == [
        {"volume": "mri_studies", "removed": 0, "moved": 0, "added": 0, "skipped": 0}
    ]


def test_demo_generate_and_the_whole_demo(tmp_path: Path) -> None:
    shell = Shell(tmp_path / "demo-fabric")
    generated = shell.json("demo", "generate", str(tmp_path / "out"), "-patients", "1", "-bad")
    assert generated["data"][0]["files"] > 0 and (tmp_path / "out/corpus.json").exists()
    result = shell.run("demo", "-workdir", str(tmp_path / "work"), "-patients", "2", "-size", "small")
    assert "The seed's query" in result.stdout and "instances/s" in result.stdout
    rerun = shell.json("demo", "-workdir", str(tmp_path / "work"), "-patients", "2", "-size", "small")
    summary = rerun["data"][0]
    assert summary["seedQuery"]["count"] > 0
    assert summary["import"]["stored"] == 0 and summary["import"]["duplicates"] > 0  # idempotent re-run
    volumes = {row["volume"] for row in summary["volumes"]}
    assert "mri_2024" in volumes and volumes <= {"mri_studies", "medical_images", "mri_2024", "ct_2024"}
