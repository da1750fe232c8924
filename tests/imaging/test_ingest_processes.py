"""Bulk import written by forked writer processes (a large import on a fabric nobody else in the
process listens to): the same results as threads, the audit trail of every instance, refusals and
broken writers reported, and writers that die with a killed import."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from medfabric.errors import QuotaExceeded, Unavailable
from medfabric.imaging.ingest import importer
from medfabric.imaging.ingest.importer import (
    Ingest,
    IngestFactory,
    ProcessIngest,
    collect_files,
    import_files,
)
from medfabric.imaging.ingest.model import IngestItem, IngestReport
from medfabric.imaging.synth import generate_ct_series_bulk
from medfabric.service.fabric import Fabric, open_fabric
from tests.conftest import make_fabric

INSTANCES = 120


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("series")
    generate_ct_series_bulk(source, instances=INSTANCES, size="small", workers=2)
    return source


@pytest.fixture
def in_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Writer processes from the first file, with small batches (several for each process)."""
    monkeypatch.setattr(importer, "PROCESSES_FROM", 0)
    monkeypatch.setattr(importer, "BATCH_FILES", 16)


def sop_uids(fabric: Fabric) -> list[str]:
    return sorted(row["sop_uid"] for row in fabric.dicom.find("instance"))


def test_writer_processes_store_what_threads_store(
    local_fabric: Fabric, series: Path, in_processes: None, tmp_path: Path
) -> None:
    local_fabric.volumes.create("ct", "/ct")
    local_fabric.admin.config_save({"mfs.enable.audit.log": "1"})
    local_fabric.audit.data("ct", True)
    assert local_fabric.runs_alone(), [thread.name for thread in threading.enumerate()]
    report = local_fabric.dicom.import_paths([series], volume="ct")
    summary = report.summary()
    assert (summary["stored"], summary["failed"]) == (INSTANCES, 0)
    threads = make_fabric(tmp_path / "threads")  # the same import, written by threads
    with threads:
        threads.volumes.create("ct", "/ct")
        threads.engines.ingest_listeners.append(lambda _event: None)  # someone listens here: threads
        assert not threads.runs_alone()
        assert threads.dicom.import_paths([series], volume="ct").summary()["stored"] == INSTANCES
        assert sop_uids(local_fabric) == sop_uids(threads)
        assert local_fabric.dicom.find("series") == threads.dicom.find("series")
    assert local_fabric.admin.fsck() == []
    again = local_fabric.dicom.import_paths([series], volume="ct").summary()
    assert (again["stored"], again["duplicates"]) == (0, INSTANCES)
    # every instance's access is in the chained audit log, recorded by the process that wrote it
    stored = {
        record.sop_instance_uid
        for record in local_fabric.audit.query(operation="dicom ingest")
        if record.outcome.value == "allowed"
    }
    assert stored >= set(sop_uids(local_fabric))
    assert local_fabric.audit.verify().ok


def test_writer_processes_on_either_catalog(fabric: Fabric, series: Path, in_processes: None) -> None:
    fabric.volumes.create("ct", "/ct")
    assert fabric.runs_alone(), [thread.name for thread in threading.enumerate()]
    summary = fabric.dicom.import_paths([series], volume="ct").summary()
    assert (summary["stored"], summary["failed"]) == (INSTANCES, 0)
    assert len(fabric.dicom.find("instance")) == INSTANCES
    assert fabric.dicom.find("series")[0]["number_of_series_related_instances"] == 50
    assert fabric.admin.fsck() == []


def test_a_process_with_threads_of_someone_else_writes_with_threads(local_fabric: Fabric) -> None:
    """A thread that is not the fabric's may hold a lock (in SQLite, in the allocator) at the
    instant of a fork, held forever in the child: then the import stays in this process."""
    assert local_fabric.runs_alone(), [thread.name for thread in threading.enumerate()]
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, name="someone-else")
    other.start()
    try:
        assert not local_fabric.runs_alone()
    finally:
        stop.set()
        other.join()
    with local_fabric.quiesced():  # the audit writer's drain waits meanwhile
        writer = local_fabric.engines.listeners[0]
        assert not writer._drain_lock.acquire(blocking=False)  # type: ignore[attr-defined]


def test_the_batches_are_written_by_other_processes(series: Path) -> None:
    pipe_read, pipe_write = os.pipe()

    def factory() -> tuple[Ingest, Callable[[], None]]:
        def ingest(items: list[IngestItem]) -> IngestReport:  # in a writer process
            os.write(pipe_write, f"{os.getpid()} {len(items)}\n".encode())
            return IngestReport()

        return ingest, lambda: None

    write_in_processes(series, factory, batch_files=8, workers=1)
    os.close(pipe_write)
    with os.fdopen(pipe_read) as lines:
        batches = [tuple(int(field) for field in line.split()) for line in lines]
    assert sum(size for _pid, size in batches) == INSTANCES
    writers = {pid for pid, _size in batches}
    assert os.getpid() not in writers and len(writers) == importer.WRITER_PROCESSES


def nowhere(items: list[IngestItem]) -> IngestReport:
    raise AssertionError("the batches were to be written by other processes")


def write_in_processes(series: Path, factory: IngestFactory, **options: Any) -> IngestReport:
    """Import the series through writer processes that ingest with what ``factory`` makes."""
    return import_files(
        collect_files([series]), nowhere, processes=ProcessIngest(factory), processes_from=0, **options
    )


def test_a_refusal_in_a_writer_process_stops_the_import(
    local_fabric: Fabric, series: Path, in_processes: None
) -> None:
    local_fabric.volumes.create("ct", "/ct", quota="1K")
    report = local_fabric.dicom.import_paths([series], volume="ct")
    failed = report.failed
    assert failed and isinstance(failed[0].error, QuotaExceeded)  # the error crossed the pipe whole
    assert report.aborted
    assert report.summary()["stored"] == 0


def test_a_writer_process_that_cannot_start_fails_the_import(series: Path) -> None:
    def factory() -> tuple[Ingest, Callable[[], None]]:
        raise Unavailable("no catalog here")

    with pytest.raises(Unavailable, match="no catalog here"):
        write_in_processes(series, factory)


def test_a_writer_process_that_dies_fails_the_import(series: Path) -> None:
    def factory() -> tuple[Ingest, Callable[[], None]]:
        def ingest(items: list[IngestItem]) -> IngestReport:
            os._exit(3)

        return ingest, lambda: None

    with pytest.raises(Unavailable, match="writer process stopped"):
        write_in_processes(series, factory)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_writer_processes_die_with_a_killed_import(tmp_path: Path) -> None:
    source = tmp_path / "ct"
    generate_ct_series_bulk(source, instances=1200, size="small", workers=2)
    fabric = make_fabric(tmp_path / "fabric")
    with fabric:
        fabric.volumes.create("ct", "/ct")
    home = str(tmp_path / "fabric" / "home")
    command = [sys.executable, "-m", "medfabric.cli.main", "dicom", "import", str(source), "-volume", "ct"]
    env = {**os.environ, "MEDFABRIC_HOME": home, "MEDFABRIC_USER": "admin"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    with open_fabric(home, "admin") as watcher:
        while process.poll() is None and time.monotonic() < deadline:
            if watcher.dicom.find("instance"):
                break
            time.sleep(0.005)
    children = _children_of(process.pid)
    assert children, "no writer process was seen"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(_alive(pid) for pid in children)
    with open_fabric(home, "admin") as after:
        stored = len(after.dicom.find("instance"))
        time.sleep(0.5)  # nothing goes on writing behind the killed import
        assert len(after.dicom.find("instance")) == stored
        assert after.admin.fsck() == []


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_failing_progress_callback_ends_the_import_with_its_error(series: Path) -> None:
    def factory() -> tuple[Ingest, Callable[[], None]]:
        return (lambda items: IngestReport()), lambda: None

    def progress(files: int, size: int) -> None:
        if size:  # a batch's report, handed on by a thread that reads a writer process's reports
            raise RuntimeError("the terminal is gone")

    with pytest.raises(RuntimeError, match="the terminal is gone"):
        write_in_processes(series, factory, batch_files=8, progress=progress)


def test_writer_processes_on_an_encrypted_catalog_and_volume(
    tmp_path: Path, series: Path, in_processes: None
) -> None:
    """The writers open the fabric with its keys (the catalog's, the volume's) as the parent did."""
    from medfabric.service.fabric import init_fabric

    fabric = init_fabric(tmp_path / "home", datadirs=[tmp_path / "d"], user="admin", encrypt_catalog=True)
    with fabric:
        fabric.volumes.create("ct", "/ct", dare=True)
        assert fabric.runs_alone()
        summary = fabric.dicom.import_paths([series], volume="ct").summary()
        assert (summary["stored"], summary["failed"]) == (INSTANCES, 0)
        first = sorted(series.rglob("*.dcm"))[0]
        row = fabric.dicom.find("instance", {"sop_uid": _sop_uid(first)})[0]
        assert fabric.fs.read(row["path"]) == first.read_bytes()
        assert fabric.admin.fsck() == []
    raw = b"".join(path.read_bytes() for path in (tmp_path / "d").rglob("*.pack"))
    assert first.read_bytes()[-4096:] not in raw  # the pixels are not stored in the clear


def _sop_uid(path: Path) -> str:
    from medfabric.imaging.ingest.model import ParsedInstance
    from medfabric.imaging.ingest.parse import parse_instance

    parsed = parse_instance(path.read_bytes())
    assert isinstance(parsed, ParsedInstance)
    return parsed.sop_instance_uid
