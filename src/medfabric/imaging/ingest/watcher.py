"""A watched drop folder: imaging equipment writes files into a directory, ingest takes them in.

A file is taken once it is complete: its size and mtime are the same on two polls in a row (names
that tools use while writing — starting with '.', ending in .part/.tmp/.partial — are skipped). It is
ingested first and only then deleted (or moved to the archive), so a crash at any point loses
nothing, and the duplicate a crash can cause is absorbed by ingest's idempotency. Rejected files go
to ``.rejected/`` beside a ``.reason`` note; a truncated file younger than ``settle`` seconds is left
for later (a writer may still be at it). Never writes to the fabric except through ``ingest``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from medfabric.imaging.ingest.importer import Ingest, import_files
from medfabric.imaging.ingest.model import TRUNCATED, IngestOutcome, IngestReport

REJECTED_DIR = ".rejected"
TEMPORARY_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload")
Signature = tuple[int, int]  # (size, mtime_ns)


class DropFolder:
    """The state of one watched directory between polls."""

    def __init__(
        self,
        directory: Path,
        ingest: Ingest,
        *,
        archive: Path | None = None,
        settle: float = 30.0,
        workers: int | None = 0,
    ) -> None:
        if not directory.is_dir():
            from medfabric.errors import NotFound

            raise NotFound(f"{directory}: no such directory to watch")
        self.directory = directory
        self.ingest = ingest
        self.archive = archive
        self.settle = settle
        self.workers = workers
        self._last: dict[Path, Signature] = {}

    def scan(self) -> dict[Path, Signature]:
        """Every candidate file now, with its size and mtime."""
        found: dict[Path, Signature] = {}
        for directory, names, files in os.walk(self.directory):
            names[:] = [name for name in names if not name.startswith(".")]
            for name in files:
                if name.startswith(".") or name.endswith(TEMPORARY_SUFFIXES):
                    continue
                path = Path(directory, name)
                with contextlib.suppress(FileNotFoundError):
                    info = path.stat()
                    found[path] = (info.st_size, info.st_mtime_ns)
        return found

    def poll(self) -> IngestReport:
        """Ingest the files that have not changed since the previous poll, then clear them away."""
        current = self.scan()
        ready = sorted(path for path, signature in current.items() if self._last.get(path) == signature)
        self._last = {path: signature for path, signature in current.items() if path not in ready}
        if not ready:
            return IngestReport()
        report = import_files(ready, self.ingest, workers=self.workers)
        self._clear(report, {path: current[path] for path in ready})
        return report

    def _clear(self, report: IngestReport, signatures: dict[Path, Signature]) -> None:
        """Delete or archive what was stored; set aside what was rejected (unless it may grow)."""
        now_ns = time.time_ns()
        for outcome in report.outcomes:
            path = Path(outcome.source)
            if outcome.status in ("stored", "duplicate"):
                self._retire(path)
            elif outcome.status == "rejected":
                signature = signatures.get(path)
                young = signature is not None and now_ns - signature[1] < self.settle * 1e9
                if outcome.reason == TRUNCATED and young:
                    continue  # perhaps still being written: look again when it changes or ages
                self._set_aside(path, outcome)
            # failed: the fabric refused (quota, rights…); the file stays and is tried again
        self._prune()

    def _retire(self, path: Path) -> None:
        if self.archive is None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return
        _move(path, self.archive / path.relative_to(self.directory))

    def _set_aside(self, path: Path, outcome: IngestOutcome) -> None:
        target = self.directory / REJECTED_DIR / path.relative_to(self.directory)
        moved = _move(path, target)
        if moved is not None:
            moved.with_name(moved.name + ".reason").write_text(f"{outcome.reason}: {outcome.message}\n")

    def _prune(self) -> None:
        """Remove empty subdirectories the equipment left (never the drop folder itself)."""
        for directory, names, files in os.walk(self.directory, topdown=False):
            path = Path(directory)
            if path == self.directory or REJECTED_DIR in path.relative_to(self.directory).parts:
                continue
            if not names and not files:
                with contextlib.suppress(OSError):
                    path.rmdir()


def _move(source: Path, target: Path) -> Path | None:
    """Move ``source`` to ``target`` (a fresh name if one is there already); None if it is gone."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target = target.with_name(f"{target.name}.{time.time_ns()}")
    try:
        return Path(shutil.move(str(source), str(target)))
    except FileNotFoundError:
        return None


def watch(
    folder: DropFolder,
    *,
    interval: float = 1.0,
    once: bool = False,
    stop: threading.Event | None = None,
    on_report: Callable[[IngestReport], None] | None = None,
) -> IngestReport:
    """Poll until ``stop`` is set (or, with ``once``, twice: what is complete now, then exit)."""
    total = IngestReport()
    started = time.perf_counter()
    stop = stop or threading.Event()
    polls = 0
    while True:
        report = folder.poll()
        polls += 1
        if report.outcomes:
            total.extend(report)
            if on_report is not None:
                on_report(report)
            if report.failed and once:
                total.aborted = report.failed[0].message
                break
        if once and polls >= 2:
            break
        if stop.wait(interval):
            break
    total.seconds = time.perf_counter() - started
    return total
