"""Bulk import of local files: walk the paths, parse in worker processes, ingest in batches.

Parsing is Python, so it runs in a pool of processes (one per core) that read the start of each
file, parse and validate its header, and send back only the parse (never the bytes). The main
process gathers the parses into batches of a few hundred instances; two writer threads each take a
batch, read its files whole, check they are the ones parsed (size and header; the pipeline hashes
what it stores itself) and run the pipeline on it, while the workers parse ahead. Resumable by
design: the pipeline is idempotent by SOP Instance UID. It never writes to the fabric except through
``ingest``.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import multiprocessing
import os
import pickle
import queue
import signal
import stat
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from medfabric.errors import NotFound, Unavailable
from medfabric.fs.paths import local_file_uri
from medfabric.imaging.ingest.metadata import with_attributes_text
from medfabric.imaging.ingest.model import (
    NOT_A_FILE,
    NOT_FOUND,
    UNREADABLE,
    IngestItem,
    IngestOutcome,
    IngestReport,
    ParsedInstance,
    Rejection,
)
from medfabric.imaging.ingest.parse import parse_instance, parse_prefix

Ingest = Callable[[list[IngestItem]], IngestReport]
Progress = Callable[[int, int], None]  # (files done, bytes done)
# Run in a forked writer process: that process's own ingest (on a fabric it opened), and its close.
IngestFactory = Callable[[], tuple[Ingest, Callable[[], None]]]


@dataclass(frozen=True)
class ProcessIngest:
    """How batches are ingested by forked writer processes: ``open`` runs in each of them (its own
    ingest, on a fabric of its own, and how to close it); ``forking`` is held in this process while
    they are forked, so that no thread of it is half-way through a catalog call (a lock held there
    would be held forever in the child)."""

    open: IngestFactory
    forking: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext


BATCH_FILES = 256
BATCH_BYTES = 128 * 1024 * 1024  # two writers hold a batch's bytes each: 256 MB at most
JOB_FILES = 16
HEADER_READ = 64 * 1024  # what a worker reads first: the header of almost every instance
INLINE_BELOW = 48  # fewer files than this are parsed in-process: a pool costs more to start
PROCESSES_FROM = 2 * BATCH_FILES  # fewer files than this are written by threads of this process
WRITER_PROCESSES = 2  # measured on two cores (docs/design/ingest.md); the catalog has one writer
BATCHES_PER_PROCESS = 3  # queued in a writer process: one per writer thread and one waiting


@dataclass(frozen=True)
class _Parsed:
    path: str
    outcome: ParsedInstance | Rejection
    header: bytes  # the bytes that were parsed, to check the main process reads the same file
    origin: str = ""  # the file's URI (symbolic links resolved), worked out by the parsing worker


def collect_files(paths: list[Path]) -> list[Path]:
    """Every regular file under ``paths`` (recursively, sorted, hidden names skipped)."""
    found: list[Path] = []
    for root in paths:
        if not root.is_dir():
            if not root.exists():
                raise NotFound(f"{root}: no such file or directory")
            found.append(root)  # a file; or a FIFO, socket or device, which parsing reports
            continue
        for directory, names, files in os.walk(root):
            names[:] = sorted(name for name in names if not name.startswith("."))
            found.extend(Path(directory, name) for name in sorted(files) if not name.startswith("."))
    return found


def import_files(
    files: list[Path],
    ingest: Ingest,
    *,
    workers: int | None = None,
    batch_files: int | None = None,
    batch_bytes: int | None = None,
    progress: Progress | None = None,
    processes: ProcessIngest | None = None,
    processes_from: int | None = None,
) -> IngestReport:
    """Ingest ``files`` in batches; stops after a batch in which the fabric refused something.

    With ``processes`` (and enough files, parser processes allowed and ``fork`` available), the
    batches are written by ``WRITER_PROCESSES`` forked processes, each ingesting through what
    ``processes`` makes there, instead of by threads of this process: the pipeline's Python no
    longer shares one GIL."""
    started = time.perf_counter()
    batch_files = batch_files or BATCH_FILES
    batch_bytes = batch_bytes or BATCH_BYTES
    processes_from = PROCESSES_FROM if processes_from is None else processes_from
    report = IngestReport()
    order = {str(path): number for number, path in enumerate(files)}
    counted = [0, 0]  # files, bytes done
    counting = threading.Lock()  # rejections are counted here, batches by the writers' threads

    def done(result: IngestReport, size: int) -> None:
        with counting:
            counted[0] += len(result.outcomes)
            counted[1] += size
            if progress is not None:
                progress(counted[0], counted[1])

    writer: _BatchWriter | _ProcessWriters
    if processes is not None and _use_processes(len(files), workers, processes_from):
        writer = _ProcessWriters(WRITER_PROCESSES, processes, done)
        if workers is None:  # the parsers leave the writers their cores (2 cores: 1 parser is ~4 % faster)
            workers = max(1, (os.cpu_count() or 1) - WRITER_PROCESSES)
    else:
        writer = _BatchWriter(functools.partial(_read_and_ingest, ingest), done)
    batch: list[_Parsed] = []
    batch_size = 0
    try:
        for parsed in _parse_all(files, workers):
            if writer.failed.is_set():
                break
            if isinstance(parsed.outcome, Rejection):
                outcome = IngestOutcome(
                    parsed.path, "rejected", parsed.outcome.reason, parsed.outcome.message
                )
                report.outcomes.append(outcome)
                done(IngestReport([outcome]), 0)
                continue
            batch.append(parsed)
            batch_size += parsed.outcome.size
            if len(batch) >= batch_files or batch_size >= batch_bytes:
                writer.submit(batch, batch_size)
                batch, batch_size = [], 0
        if batch:
            writer.submit(batch, batch_size)
    finally:
        writer.close()
    for result in writer.reports:
        report.extend(result)
    report.outcomes.sort(key=lambda outcome: order.get(outcome.source, -1))
    if report.failed:
        report.aborted = report.failed[0].message
    report.seconds = time.perf_counter() - started
    return report


def _read_and_ingest(ingest: Ingest, batch: list[_Parsed]) -> IngestReport:
    """On a writer thread: read the batch's files (the GIL is released while reading, so two
    threads read at once and reading overlaps the other batch's fsync), then ingest them."""
    items: list[IngestItem] = []
    refused: list[IngestOutcome] = []
    for parsed in batch:
        item_or_outcome = _item(parsed)
        if isinstance(item_or_outcome, IngestOutcome):
            refused.append(item_or_outcome)
        else:
            items.append(item_or_outcome)
    result = ingest(items) if items else IngestReport()
    result.outcomes.extend(refused)
    return result


def _use_processes(files: int, workers: int | None, processes_from: int) -> bool:
    cores = os.cpu_count() or 1
    return (
        files >= processes_from
        and workers != 0  # 0: the caller wants no other process
        and cores >= 2
        and "fork" in multiprocessing.get_all_start_methods()
    )


class _BatchWriter:
    """Runs ``ingest`` on batches in two threads of its own, so that one batch's reading, hashing and
    appending overlap another's fsync and commit (most of it is I/O and hashing, which release the
    GIL), and the main thread only gathers parses."""

    THREADS = 2

    def __init__(
        self, ingest: Callable[[list[_Parsed]], IngestReport], done: Callable[[IngestReport, int], None]
    ) -> None:
        self.ingest = ingest
        self.done = done
        self.reports: list[IngestReport] = []
        self.failed = threading.Event()  # the fabric refused a batch: stop reading
        self._error: BaseException | None = None
        self._queue: queue.Queue[tuple[list[_Parsed], int] | None] = queue.Queue(maxsize=1)
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, name=f"medfabric-ingest-{n}", daemon=True)
            for n in range(self.THREADS)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, batch: list[_Parsed], size: int) -> None:
        self._queue.put((batch, size))

    def close(self) -> None:
        """Wait for the batches queued; re-raise what went wrong in the thread."""
        for _thread in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while (work := self._queue.get()) is not None:
            if self.failed.is_set():
                continue
            batch, size = work
            try:
                result = self.ingest(batch)
            except BaseException as error:  # noqa: BLE001 - handed to the caller by close()
                self._error = error
                self.failed.set()
                continue
            with self._lock:
                self.reports.append(result)
                self.done(result, size)
            if result.failed:
                self.failed.set()


class _ProcessWriters:
    """Hands batches to writer processes, forked here, each running a ``_BatchWriter`` of its own on
    a fabric it opens itself (``IngestFactory``); the same interface as ``_BatchWriter``.

    Forked, not spawned: a spawned process re-runs an unguarded ``__main__`` (a user's script) and
    imports everything again. The child uses nothing of the parent's fabric (its connections, blob
    writers and audit journal are its own) and leaves with ``os._exit``. On Linux it dies with its
    parent; elsewhere a parent that dies closes the pipes and its children finish the batches they
    hold, then stop. Each batch is committed whole or not at all, so a resumed import finds every
    one either stored or not."""

    def __init__(self, count: int, how: ProcessIngest, done: Callable[[IngestReport, int], None]) -> None:
        self.done = done
        self.reports: list[IngestReport] = []
        self.failed = threading.Event()
        self._error: BaseException | None = None
        self._changed = threading.Condition()
        self._closing = False
        context = multiprocessing.get_context("fork")
        self._children: list[_Child] = []
        with how.forking(), warnings.catch_warnings(), _frozen_heap():
            warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)  # (3.12+)
            for number in range(count):
                here, there = context.Pipe()
                process = context.Process(
                    target=_writer_process,
                    args=(os.getpid(), there, how.open),
                    name=f"medfabric-writer-{number}",
                )
                process.start()
                there.close()
                self._children.append(_Child(process, here))
        self._receivers = [
            threading.Thread(
                target=self._receive, args=(child,), name="medfabric-writer-reports", daemon=True
            )
            for child in self._children
        ]
        for thread in self._receivers:
            thread.start()

    def submit(self, batch: list[_Parsed], size: int) -> None:
        with self._changed:
            while not self.failed.is_set() and all(
                child.outstanding >= BATCHES_PER_PROCESS for child in self._children
            ):
                self._changed.wait()
            if self.failed.is_set():
                return
            child = min(self._children, key=lambda candidate: candidate.outstanding)
            child.outstanding += 1
        try:
            child.connection.send((batch, size))
        except OSError as error:  # it died: its reader reports it
            self._fail(Unavailable(f"an ingest writer process stopped: {error}"))

    def close(self) -> None:
        with self._changed:
            self._closing = True
        for child in self._children:
            with contextlib.suppress(OSError):
                child.connection.send(None)
        for thread in self._receivers:
            thread.join()
        for child in self._children:
            child.process.join()
            child.connection.close()
        if self._error is not None:
            raise self._error

    def _receive(self, child: _Child) -> None:
        while True:
            try:
                message = child.connection.recv()
            except (EOFError, OSError):
                with self._changed:  # (after a refusal, what it held was skipped, not lost)
                    lost = not self._closing or (child.outstanding > 0 and not self.failed.is_set())
                if lost:
                    self._fail(
                        Unavailable(f"an ingest writer process stopped (exit code {_exit_code(child)})")
                    )
                return
            except Exception as error:  # noqa: BLE001 - a report that does not unpickle; read on
                self._fail(Unavailable(f"an ingest writer process sent an unreadable report: {error}"))
                continue
            if message[0] == "error":
                self._fail(message[1])
                continue
            _kind, result, size = message
            try:
                with self._changed:
                    child.outstanding -= 1
                    self.reports.append(result)
                    if result.failed:
                        self.failed.set()
                    self._changed.notify_all()
                    self.done(result, size)
            except Exception as error:  # noqa: BLE001 - the caller's progress callback: reported by close
                self._fail(error)

    def _fail(self, error: BaseException) -> None:
        with self._changed:
            if self._error is None:
                self._error = error
            self.failed.set()
            self._changed.notify_all()


@contextlib.contextmanager
def _frozen_heap() -> Iterator[None]:
    """Around a fork: what the parent holds is left out of the child's garbage collections, so a
    collection there never finalizes an object of the parent's (a database connection that would
    close a socket the parent still uses), and the pages stay shared (Python's gc.freeze advice)."""
    enabled = gc.isenabled()
    gc.disable()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        if enabled:
            gc.enable()


@dataclass
class _Child:
    process: multiprocessing.process.BaseProcess
    connection: Connection
    outstanding: int = 0  # batches sent and not reported


def _exit_code(child: _Child) -> int | None:
    child.process.join(timeout=5)
    return child.process.exitcode


def _writer_process(parent: int, connection: Connection, factory: IngestFactory) -> None:
    """A writer process's life: open its own ingest, write the batches it is sent (two at once, as
    the threads of one process do) and send back each batch's report, until told to stop.

    It dies with its parent (Linux), as the threads it stands in for would: a killed import stops
    writing at once, and a resumed one is not raced by the writers of the last. It ignores Ctrl-C,
    which the whole terminal's process group gets: its parent decides, and lets it finish the
    batches it holds."""
    _die_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.enable()  # (forked with it off: see _frozen_heap; what the parent held stays frozen here)
    try:
        ingest, close = factory()
    except BaseException as error:  # noqa: BLE001 - reported to the parent
        _send_error(connection, error)
        return
    sending = threading.Lock()

    def report(result: IngestReport, size: int) -> None:
        with sending:
            connection.send(("done", result, size))

    writer = _BatchWriter(functools.partial(_read_and_ingest, ingest), report)
    try:
        while True:  # after a refusal the writer skips what it is sent, until the parent says stop
            try:
                work = connection.recv()
            except (EOFError, OSError):  # the parent is gone: finish what was sent
                break
            if work is None:
                break
            writer.submit(*work)
        writer.close()
    except BaseException as error:  # noqa: BLE001 - reported to the parent
        with sending:
            _send_error(connection, error)
    finally:
        close()
        connection.close()


def _send_error(connection: Connection, error: BaseException) -> None:
    with contextlib.suppress(OSError):
        try:
            connection.send(("error", error))
        except (pickle.PicklingError, TypeError, AttributeError):  # an error that does not pickle
            connection.send(("error", Unavailable(f"ingest writer process: {type(error).__name__}: {error}")))


def _die_with(parent: int) -> None:
    """Ask Linux to kill this process when its parent dies (PR_SET_PDEATHSIG); elsewhere a writer
    process notices its parent is gone when its pipe closes, and stops after the batches it holds."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before that took effect
        os._exit(1)


def _item(parsed: _Parsed) -> IngestItem | IngestOutcome:
    """The item to ingest (bytes read here), or the outcome of a file that cannot be read now."""
    assert isinstance(parsed.outcome, ParsedInstance)
    outcome = parsed.outcome
    try:
        data = read_file(parsed.path, outcome.size)
    except NotARegularFile as error:  # replaced since it was parsed
        return IngestOutcome(parsed.path, "rejected", NOT_A_FILE, str(error))
    except OSError as error:
        return IngestOutcome(parsed.path, "rejected", NOT_FOUND, f"cannot be read: {error.strerror}")
    if len(data) != outcome.size or not data.startswith(parsed.header):
        # it changed since it was parsed: the pipeline parses again
        return IngestItem(data, parsed.path, origin=parsed.origin)
    return IngestItem(data, parsed.path, outcome, origin=parsed.origin)


def read_file(path: str, expected: int) -> bytes:
    """The whole file, read with as few system calls as can be: it is most likely ``expected``
    bytes long, so one read of one byte more both takes it and shows it ends there. Each call lets
    go of the GIL and must win it back, which on a busy writer thread costs more than the call."""
    fd = open_regular(path)
    try:
        data = os.read(fd, expected + 1)
        if len(data) == expected:
            return data
        parts = [data]  # it grew or shrank since it was parsed (or the read was cut short): all of it
        while chunk := os.read(fd, 1 << 20):
            parts.append(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


class NotARegularFile(OSError):
    """A FIFO, socket or device where a file was expected."""


def open_regular(path: str) -> int:
    """A descriptor to read ``path``, which must be a regular file (symbolic links followed).
    Opened without blocking and checked before anything is read: opening a FIFO for reading waits
    for a writer, and reading a device may never end, either of which would hang the import."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
        raise NotARegularFile(f"not a regular file: {kind}")
    return fd


def _parse_all(files: list[Path], workers: int | None) -> Iterator[_Parsed]:
    """Parses in file order; in a process pool when there are enough files to pay for one."""
    names = [str(path) for path in files]
    count = workers if workers is not None else (os.cpu_count() or 1)
    if count <= 0 or len(names) < INLINE_BELOW:
        for name in names:
            with warnings.catch_warnings():  # as the parsers do: the reasons are in the report
                warnings.simplefilter("ignore")
                parsed = parse_files([name])
            yield from parsed
        return
    jobs = [names[start : start + JOB_FILES] for start in range(0, len(names), JOB_FILES)]
    window = max(4, BATCH_FILES // JOB_FILES + 2 * count)  # enough to keep parsing during a batch write
    # fork, not spawn/forkserver: those re-run an unguarded __main__ (a user's script) in every worker.
    # The workers only run parse_files, which takes no lock a parent thread could hold.
    context = multiprocessing.get_context(
        "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    )
    with (
        warnings.catch_warnings(),
        ProcessPoolExecutor(
            max_workers=count, mp_context=context, initializer=_start_parser, initargs=(os.getpid(),)
        ) as pool,
    ):
        warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
        queued: deque[Future[list[_Parsed]]] = deque()
        next_job = 0
        try:
            while next_job < len(jobs) or queued:
                while next_job < len(jobs) and len(queued) < window:
                    queued.append(pool.submit(parse_files, jobs[next_job]))
                    next_job += 1
                yield from queued.popleft().result()
        finally:
            for future in queued:
                future.cancel()


def _start_parser(parent: int) -> None:
    """Parser start-up: die with the parent (an orphan would wait forever to hand back a parse, since
    it holds both ends of the pipe); pydicom's warnings about odd values are noise on a progress
    bar."""
    _die_with(parent)
    warnings.simplefilter("ignore")
    logging.getLogger("pydicom").setLevel(logging.ERROR)


def parse_files(paths: list[str]) -> list[_Parsed]:
    """A worker's job: read the start of each file (all of it when the header needs it), parse and
    validate it; return the parses, not the bytes."""
    results: list[_Parsed] = []
    resolved_dirs: dict[str, str] = {}  # a job's files share a few directories
    for path in paths:
        try:
            with open(open_regular(path), "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                data = handle.read(HEADER_READ)
                outcome = parse_prefix(data, size)
                if outcome is None:
                    data += handle.read()
                    outcome = parse_instance(data)
        except FileNotFoundError:
            gone = "the file vanished before it was read"
            if os.path.islink(path):
                gone = "a symbolic link to nothing"
            results.append(_Parsed(path, Rejection(NOT_FOUND, gone), b""))
            continue
        except NotARegularFile as error:
            results.append(_Parsed(path, Rejection(NOT_A_FILE, str(error)), b""))
            continue
        except OSError as error:
            results.append(_Parsed(path, Rejection(UNREADABLE, f"cannot be read: {error.strerror}"), b""))
            continue
        header = b""
        origin = ""
        if isinstance(outcome, ParsedInstance):
            # (the digest is the main process's to compute, always, from the bytes it stores)
            header = data[: outcome.header_length]
            outcome = with_attributes_text(outcome)
            origin = local_file_uri(path, resolved_dirs)
        results.append(_Parsed(path, outcome, header, origin))
    return results
