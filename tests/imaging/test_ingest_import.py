"""Bulk import: the report, worker processes, and resuming after the importer is killed mid-way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medfabric.imaging.ingest.importer import _item, collect_files, import_files, parse_files, read_file
from medfabric.imaging.ingest.model import IngestItem, IngestReport
from medfabric.imaging.synth import generate_corpus, generate_ct_series_bulk, write_bad_files
from medfabric.service.fabric import Fabric, open_fabric
from tests.conftest import make_fabric
from tests.imaging.test_ingest_helpers import seed_volumes


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("import")
    generate_corpus(root / "corpus", patients=3, seed=5, size="small")
    write_bad_files(root / "bad")
    return root


def manifest_uids(root: Path) -> set[str]:
    manifest = json.loads((root / "corpus.json").read_text())
    return {entry["SOPInstanceUID"] for entry in manifest["files"]}


def test_import_reports_stored_duplicates_and_rejections(local_fabric: Fabric, corpus: Path) -> None:
    seed_volumes(local_fabric)
    progress: list[tuple[int, int]] = []
    report = local_fabric.dicom.import_paths(
        [corpus / "corpus", corpus / "bad"], workers=2, progress=lambda n, b: progress.append((n, b))
    )
    expected = manifest_uids(corpus / "corpus")
    summary = report.summary()
    assert (summary["stored"], summary["duplicates"], summary["failed"]) == (len(expected), 0, 0)
    reasons = {Path(r["source"]).name: r["reason"] for r in summary["rejections"]}
    assert reasons == {**write_bad_files(corpus / "bad"), "corpus.json": "not_dicom"}
    assert progress[-1][0] == summary["files"]
    assert {row["sop_uid"] for row in local_fabric.dicom.find("instance")} == expected
    again = local_fabric.dicom.import_paths([corpus / "corpus"], workers=0)
    assert (again.summary()["stored"], again.summary()["duplicates"]) == (0, len(expected))


def test_a_file_changed_after_parsing_is_parsed_again(tmp_path: Path) -> None:
    generate_corpus(tmp_path, patients=1, seed=2, size="small")
    first, second = [path for path in collect_files([tmp_path]) if path.suffix == ".dcm"][:2]
    parses = parse_files([str(first), str(second)])
    second.write_bytes(first.read_bytes())  # replaced between the worker's parse and the main read
    unchanged, changed = _item(parses[0]), _item(parses[1])
    assert isinstance(unchanged, IngestItem) and unchanged.parsed is not None
    assert isinstance(changed, IngestItem) and changed.parsed is None  # the pipeline parses what it got
    offered: list[IngestItem] = []

    def ingest(items: list[IngestItem]) -> IngestReport:
        offered.extend(items)
        return IngestReport()

    files = collect_files([tmp_path])
    import_files(files, ingest, workers=2, batch_files=7)  # several batches, written by the writer thread
    assert len(offered) == len(files) - 1  # corpus.json was rejected before ingest


def test_read_file_takes_the_whole_file_whatever_its_size_became(tmp_path: Path) -> None:
    path = tmp_path / "f"
    data = os.urandom(300_000)
    path.write_bytes(data)
    assert read_file(str(path), len(data)) == data  # as parsed: one read
    assert read_file(str(path), 1000) == data  # it grew since: all of it, not the size parsed
    assert read_file(str(path), 5_000_000) == data  # it shrank
    path.write_bytes(b"")
    assert read_file(str(path), 10) == b""
    with pytest.raises(FileNotFoundError):
        read_file(str(tmp_path / "gone"), 10)


def test_the_origin_is_the_resolved_path_of_the_file(tmp_path: Path) -> None:
    generate_corpus(tmp_path / "real", patients=1, seed=3, size="small")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    first = next(path for path in collect_files([tmp_path / "link"]) if path.suffix == ".dcm")
    (parsed,) = parse_files([str(first)])
    assert parsed.origin.startswith("file://") and parsed.origin.endswith(
        str((tmp_path / "real").resolve() / first.relative_to(tmp_path / "link"))
    )


@pytest.mark.parametrize("workers", [0, 2])
def test_fifos_devices_and_dangling_links_are_rejected_without_blocking(tmp_path: Path, workers: int) -> None:
    """Opening a FIFO for reading waits for a writer and a device may never end: the import must
    report them and go on (with a pool of workers too, which takes 48 files or more)."""
    generate_ct_series_bulk(tmp_path / "in", instances=48, size="small", workers=1)
    os.mkfifo(tmp_path / "in" / "pipe.dcm")
    (tmp_path / "in" / "zero.dcm").symlink_to("/dev/zero")
    (tmp_path / "in" / "dangling.dcm").symlink_to(tmp_path / "nowhere")
    offered: list[IngestItem] = []

    def ingest(items: list[IngestItem]) -> IngestReport:
        offered.extend(items)
        return IngestReport()

    report = import_files(collect_files([tmp_path / "in"]), ingest, workers=workers)
    reasons = {Path(outcome.source).name: outcome.reason for outcome in report.outcomes}
    assert reasons["pipe.dcm"] == reasons["zero.dcm"] == "not_a_file"
    assert reasons["dangling.dcm"] == "not_found"
    instances = [path for path in collect_files([tmp_path / "in"]) if path.suffix == ".dcm"]
    assert len(offered) == len(instances) - 3
    # named on the command line, a FIFO is reported too (not "no such file")
    alone = import_files(collect_files([tmp_path / "in" / "pipe.dcm"]), ingest, workers=workers)
    assert [outcome.reason for outcome in alone.outcomes] == ["not_a_file"]


@pytest.mark.slow
def test_an_import_killed_midway_resumes_without_duplicates_or_losses(tmp_path: Path) -> None:
    source = tmp_path / "ct"
    total = 2400  # a dozen batches: enough to catch the import between two of them
    generate_ct_series_bulk(source, instances=total, size="small", workers=2)
    fabric = make_fabric(tmp_path / "fabric")
    with fabric:
        fabric.volumes.create("ct", "/ct")
    home = str(tmp_path / "fabric" / "home")
    command = [
        sys.executable,
        "-m",
        "medfabric.cli.main",
        "dicom",
        "import",
        str(source),
        "-volume",
        "ct",
        "-json",
    ]
    env = {**os.environ, "MEDFABRIC_HOME": home, "MEDFABRIC_USER": "admin"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stored = 0
    deadline = time.monotonic() + 60
    with open_fabric(home, "admin") as watcher:
        while process.poll() is None and time.monotonic() < deadline:
            stored = len(watcher.dicom.find("instance"))
            if stored:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
    process.wait(timeout=30)
    assert 0 < stored < total, "the import was not caught mid-way"
    finished = subprocess.run(command, env=env, capture_output=True, timeout=120, check=True)
    summary = json.loads(finished.stdout)["data"][0]
    assert summary["stored"] + summary["duplicates"] == total
    assert summary["duplicates"] >= stored
    with open_fabric(home, "admin") as after:
        rows = after.dicom.find("instance")
        assert sorted(row["sop_uid"] for row in rows) == sorted(manifest_uids(source))
        assert after.volumes.info("ct").file_count == total
        assert after.dicom.find("series")[0]["number_of_series_related_instances"] == 50
        assert after.admin.fsck() == []
