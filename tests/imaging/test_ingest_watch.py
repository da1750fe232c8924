"""The watched drop folder: only complete files are taken, nothing is lost or stored twice across
restarts, rejected files are set aside with their reason, and a live watcher picks up new files."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from medfabric.imaging.ingest.model import IngestItem
from medfabric.service.fabric import Fabric
from tests.imaging.test_ingest_helpers import instance_rows, make_instance, seed_volumes


def drop(folder: Path, name: str, data: bytes, *, age: float = 0.0) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if age:
        past = time.time() - age
        os.utime(path, (past, past))
    return path


def test_once_ingests_what_is_complete_and_clears_the_folder(local_fabric: Fabric, tmp_path: Path) -> None:
    seed_volumes(local_fabric)
    inbox = tmp_path / "inbox"
    drop(inbox, "CT01/a.dcm", make_instance(sop_uid="1.2.1"))
    drop(inbox, "b.dcm", make_instance(sop_uid="1.2.2", instance_number=2))
    drop(inbox, "letter.pdf", b"%PDF-1.4 not an image")
    drop(inbox, ".partial-upload", make_instance(sop_uid="1.2.3"))
    drop(inbox, "c.dcm.part", make_instance(sop_uid="1.2.4"))
    report = local_fabric.dicom.watch(inbox, once=True, interval=0.05)
    assert sorted(o.status for o in report.outcomes) == ["rejected", "stored", "stored"]
    assert sorted(row["sop_uid"] for row in instance_rows(local_fabric)) == ["1.2.1", "1.2.2"]
    assert sorted(p.relative_to(inbox).as_posix() for p in inbox.rglob("*") if p.is_file()) == [
        ".partial-upload",
        ".rejected/letter.pdf",
        ".rejected/letter.pdf.reason",
        "c.dcm.part",
    ]
    assert (inbox / ".rejected/letter.pdf.reason").read_text().startswith("not_dicom: ")
    assert not (inbox / "CT01").exists()  # the empty folder the equipment left is removed


def test_archive_keeps_the_ingested_files(local_fabric: Fabric, tmp_path: Path) -> None:
    seed_volumes(local_fabric)
    inbox, archive = tmp_path / "inbox", tmp_path / "archive"
    drop(inbox, "CT01/a.dcm", make_instance(sop_uid="1.2.1"))
    local_fabric.dicom.watch(inbox, once=True, interval=0.05, archive=archive)
    assert (archive / "CT01/a.dcm").read_bytes() == make_instance(sop_uid="1.2.1")
    assert not list(inbox.rglob("*.dcm"))


def test_a_file_still_being_written_is_left_until_it_is_complete(
    local_fabric: Fabric, tmp_path: Path
) -> None:
    seed_volumes(local_fabric)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    data = make_instance(sop_uid="1.2.7")
    folder = local_fabric.dicom.drop_folder(inbox)
    growing = drop(inbox, "a.dcm", data[:100])
    assert not folder.poll().outcomes  # first sight
    with growing.open("ab") as handle:
        handle.write(data[100:300])
    assert not folder.poll().outcomes  # it changed since
    with growing.open("ab") as handle:
        handle.write(data[300 : len(data) - 8])  # the writer pauses inside Pixel Data
    assert not folder.poll().outcomes
    report = folder.poll()  # stable now, but truncated and young: the writer may come back
    assert [o.reason for o in report.outcomes] == ["truncated"] and growing.exists()
    with growing.open("ab") as handle:
        handle.write(data[len(data) - 8 :])
    folder.poll()
    assert [o.status for o in folder.poll().outcomes] == ["stored"]
    assert not growing.exists() and instance_rows(local_fabric, {"sop_uid": "1.2.7"})


def test_an_old_truncated_file_is_set_aside(local_fabric: Fabric, tmp_path: Path) -> None:
    seed_volumes(local_fabric)
    inbox = tmp_path / "inbox"
    data = make_instance()
    drop(inbox, "cut.dcm", data[:-8], age=3600)
    report = local_fabric.dicom.watch(inbox, once=True, interval=0.05)
    assert [o.reason for o in report.outcomes] == ["truncated"]
    assert (inbox / ".rejected/cut.dcm").exists()


def test_a_restart_after_a_crash_stores_nothing_twice(local_fabric: Fabric, tmp_path: Path) -> None:
    seed_volumes(local_fabric)
    inbox = tmp_path / "inbox"
    blobs = [make_instance(sop_uid=f"1.2.{n}", instance_number=n) for n in range(1, 4)]
    paths = [drop(inbox, f"{n}.dcm", blob) for n, blob in enumerate(blobs)]
    # The watcher died after storing the first two and before deleting them:
    local_fabric.dicom.ingest(
        [IngestItem(blob, str(path)) for blob, path in zip(blobs[:2], paths[:2], strict=True)]
    )
    report = local_fabric.dicom.watch(inbox, once=True, interval=0.05)
    assert sorted(o.status for o in report.outcomes) == ["duplicate", "duplicate", "stored"]
    assert len(instance_rows(local_fabric)) == 3 and not list(inbox.glob("*.dcm"))


def test_a_live_watcher_takes_files_as_they_arrive(local_fabric: Fabric, tmp_path: Path) -> None:
    seed_volumes(local_fabric)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    stop = threading.Event()
    watcher = threading.Thread(
        target=local_fabric.dicom.watch, args=(inbox,), kwargs={"interval": 0.05, "stop": stop}
    )
    watcher.start()
    try:
        for n in range(1, 4):
            data = make_instance(sop_uid=f"1.3.{n}", instance_number=n)
            with (inbox / f"{n}.dcm").open("wb") as handle:  # written in two steps, as a scanner would
                handle.write(data[:200])
                handle.flush()
                time.sleep(0.12)
                handle.write(data[200:])
        deadline = time.monotonic() + 20
        while len(instance_rows(local_fabric)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        watcher.join(timeout=20)
    assert not watcher.is_alive()
    assert sorted(row["sop_uid"] for row in instance_rows(local_fabric)) == ["1.3.1", "1.3.2", "1.3.3"]
    assert not list(inbox.glob("*.dcm"))
    assert not (inbox / ".rejected").exists()  # no half-written file was ever taken
