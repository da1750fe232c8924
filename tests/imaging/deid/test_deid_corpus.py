"""End to end on the synthetic corpus: every planted PHI string of every patient is gone from every byte."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from medfabric.imaging.deid import BASIC, RESEARCH, Deidentifier, Profile, verify_path
from medfabric.imaging.synth import generate_corpus

from .conftest import SECRET, Deidentify
from .planted import PlantedFile

QUARANTINED_CLASSES = {"1.2.840.10008.5.1.4.1.1.6.1", "1.2.840.10008.5.1.4.1.1.7"}  # US, Secondary Capture


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("synth")
    summary = generate_corpus(root, patients=3, seed=7, size="small")
    return root, json.loads(summary.manifest.read_text("utf-8"))


def _run(profile: Profile, root: Path, manifest: dict[str, Any], out: Path) -> dict[str, str | None]:
    engine = Deidentifier(profile, SECRET)
    return {
        f["path"]: engine.deidentify_file(root / f["path"], out / f["path"]).quarantined
        for f in manifest["files"]
    }


def _source_phi(
    manifest: dict[str, Any], record: dict[str, Any], *, drop: set[str] = frozenset()
) -> list[str]:
    patient = next(p for p in manifest["patients"] if p["PatientID"] == record["PatientID"])
    values = [v for category, vs in patient["phi"].items() if category not in drop for v in vs]
    return [*values, record["SOPInstanceUID"], record["SeriesInstanceUID"], record["StudyInstanceUID"]]


@pytest.mark.parametrize(
    ("profile", "retained"),
    [(BASIC, set()), (RESEARCH, {"StationName", "DeviceSerialNumber"})],  # research keeps device identity
    ids=["basic", "research"],
)
def test_corpus_leaves_no_planted_phi_and_no_findings(
    profile: Profile, retained: set[str], corpus: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    root, manifest = corpus
    quarantined = _run(profile, root, manifest, tmp_path)
    written = 0
    for record in manifest["files"]:
        target = tmp_path / record["path"]
        if record["SOPClassUID"] in QUARANTINED_CLASSES:
            assert quarantined[record["path"]] and not target.exists()
            continue
        if quarantined[record["path"]]:  # flagged Burned In Annotation YES by the generator
            continue
        written += 1
        assert verify_path(target, profile, _source_phi(manifest, record, drop=retained)) == []
    assert written >= len(manifest["files"]) // 2


def _dciodvfy_errors(path: Path) -> set[str]:
    result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
    lines = (result.stdout + result.stderr).splitlines()
    # an error names an attribute and a reason; values differ between input and output, so drop them
    return {
        line.split(" = <")[0].split(" - (")[0] + line.split(")")[-1]
        for line in lines
        if line.startswith("Error")
    }


def test_deidentified_ct_and_mr_add_no_dciodvfy_errors(
    corpus: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    root, manifest = corpus
    engine = Deidentifier(BASIC, SECRET)
    checked = set()
    for record in manifest["files"]:
        if record["Modality"] not in ("CT", "MR") or record["Modality"] in checked:
            continue
        source, target = root / record["path"], tmp_path / record["path"]
        engine.deidentify_file(source, target)
        new = _dciodvfy_errors(target) - _dciodvfy_errors(source)
        assert new == set(), f"{record['path']}: {sorted(new)}"
        checked.add(record["Modality"])
    assert checked == {"CT", "MR"}


def test_planted_ct_and_mr_add_no_dciodvfy_errors(
    planted: list[PlantedFile], deidentify_planted: Deidentify
) -> None:
    outputs = deidentify_planted(BASIC)
    for item in planted[:: len(planted) // 4]:
        new = _dciodvfy_errors(outputs[item.path][1]) - _dciodvfy_errors(item.path)
        assert new == set(), f"{item.path}: {sorted(new)}"
