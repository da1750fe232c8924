"""De-identified copies through the fabric: no planted PHI, coherent UIDs, indexed, lineage, honest broker."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pydicom
import pytest

from medfabric.errors import PermissionDenied
from medfabric.imaging.ingest.model import IngestItem
from medfabric.imaging.synth import generate_corpus
from medfabric.service.fabric import Fabric, resolve_principal


@pytest.fixture
def clinical(local_fabric: Fabric, tmp_path: Path) -> tuple[Fabric, dict[str, object]]:
    summary = generate_corpus(tmp_path / "corpus", patients=2, seed=11)
    manifest = json.loads(summary.manifest.read_text())
    local_fabric.volumes.create("clinical", "/clinical")
    local_fabric.volumes.create("research", "/research")
    items = [IngestItem((tmp_path / "corpus" / f["path"]).read_bytes(), f["path"]) for f in manifest["files"]]
    report = local_fabric.dicom.ingest(items, volume="clinical")
    assert len(report.stored) == len(items)
    return local_fabric, manifest


def test_deidentified_copies_carry_no_planted_phi_and_keep_uids_coherent(clinical: tuple) -> None:
    fabric, manifest = clinical
    run = fabric.deid.deidentify("/clinical", "/research", profile="basic")
    counts = run.counts()
    assert counts.get("quarantined", 0) > 0  # ultrasound and secondary capture carry burned-in text
    assert all(item.reason for item in run.instances if item.status == "quarantined")
    stored = [item for item in run.instances if item.status == "stored"]
    assert len(stored) + counts["quarantined"] == len(manifest["files"])
    phi = {
        text.encode() for patient in manifest["patients"] for text in patient["phi_strings"] if len(text) >= 6
    }
    series_map: dict[str, set[str]] = defaultdict(set)
    for item in stored:
        assert item.output is not None and item.output.startswith("/research/")
        data = fabric.fs.read(item.output)
        assert [needle for needle in phi if needle in data] == []
        original = pydicom.dcmread(
            __import__("io").BytesIO(fabric.fs.read(item.source)), stop_before_pixels=True
        )
        copy = pydicom.dcmread(__import__("io").BytesIO(data), stop_before_pixels=True)
        assert copy.PatientIdentityRemoved == "YES"
        series_map[original.SeriesInstanceUID].add(copy.SeriesInstanceUID)
        assert copy.SOPInstanceUID != original.SOPInstanceUID
    assert all(len(new) == 1 for new in series_map.values())
    assert len({uid for new in series_map.values() for uid in new}) == len(series_map)
    indexed = fabric.dicom.find("instance", {"volume": "research"})
    assert len(indexed) == len(stored)
    edge = fabric.lineage.show(stored[0].output)[0]
    assert (
        edge.input == stored[0].source
        and edge.transform == "deidentify"
        and edge.params["profile"] == "basic"
    )
    assert fabric.deid.verify("/research") == []


def test_the_same_secret_gives_the_same_pseudonyms(clinical: tuple) -> None:
    fabric, _manifest = clinical
    fabric.volumes.create("again", "/again")
    first = fabric.deid.deidentify("/clinical", "/research")
    second = fabric.deid.deidentify("/clinical", "/again")
    names = {Path(item.output or "").name for item in first.instances if item.output}
    assert names == {Path(item.output or "").name for item in second.instances if item.output}


def test_only_the_honest_broker_role_reads_the_reidentification_map(clinical: tuple) -> None:
    fabric, manifest = clinical
    run = fabric.deid.deidentify("/clinical", "/research", reid_role="honest_broker")
    fabric.security.user_add("broker", roles=["honest_broker"])
    fabric.security.user_add("analyst")
    with pytest.raises(PermissionDenied):
        fabric.acting_as(resolve_principal(fabric.catalog, "analyst")).deid.reid_map(run.run_id)
    mapping = fabric.acting_as(resolve_principal(fabric.catalog, "broker")).deid.reid_map(run.run_id)
    originals = {pair[1] for pairs in mapping.values() for pair in pairs}
    assert {patient["PatientID"] for patient in manifest["patients"]} <= originals


def test_a_volume_clone_can_be_deidentified(clinical: tuple) -> None:
    fabric, _manifest = clinical
    run = fabric.deid.clone_volume("nonprod", "clinical", deidentify=True, profile="research")
    assert run is not None and run.counts().get("stored", 0) > 0
    assert fabric.volumes.info("nonprod").mount_path == "/nonprod"
    plain = fabric.deid.clone_volume("copy", "clinical")
    assert (
        plain is None and fabric.volumes.info("copy").file_count == fabric.volumes.info("clinical").file_count
    )
