"""The audit journal: where an access record becomes durable before the operation returns.

Appending each record to the chained log in the catalog would cost a database transaction and its
fsync per access (more than a small read costs). Instead each process appends its records to a
journal file of its own and syncs it (one ``fdatasync`` for a group of concurrent records) before
the operation returns; a background thread then moves the records into the chained log in batches
(``AuditWriter``), recording in the same catalog transaction how far into the journal it got. After a
crash, the next process to open the fabric replays what a dead process's journal holds beyond that
mark, so every record reaches the log exactly once.

File: ``<home>/audit-journal/<name>.journal``, preallocated in steps, locked (``flock``) by its
writer for as long as it lives, which is how a reader tells a live journal from an orphan. A frame
is ``length: u32 LE``, ``mac: 16 bytes``, ``payload`` (the record's fields as canonical JSON), where
``mac`` is HMAC-SHA256 with the audit key over the journal's name, the frame's offset and the
payload, truncated to 16 bytes: a frame cannot be edited, moved or taken from another journal
unnoticed. A zero length ends the journal; so does a frame that does not check (a torn write of an
operation that never returned, or tampering: ``read_frames`` reports which). Nothing here talks to
the catalog.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from medfabric.blobstore.local import fsync_directory

SUFFIX = ".journal"
FRAME_HEAD = struct.Struct("<I16s")
GROWTH = 4 * 1024 * 1024  # preallocated in steps of this much
MAX_RECORD = 1024 * 1024


@dataclass(frozen=True)
class Frame:
    offset: int
    end: int
    fields: dict[str, object]


@dataclass(frozen=True)
class ReadResult:
    frames: list[Frame]
    end: int  # where the valid frames end
    damaged: bool  # something other than zeros follows them: a torn write, or tampering


def _mac(key: bytes, name: str, offset: int, payload: bytes) -> bytes:
    message = name.encode() + struct.pack("<Q", offset) + payload
    return hmac.new(key, message, hashlib.sha256).digest()[:16]


def encode_frame(key: bytes, name: str, offset: int, fields: dict[str, object]) -> bytes:
    payload = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    if len(payload) > MAX_RECORD:
        raise ValueError("audit record too large")
    return FRAME_HEAD.pack(len(payload), _mac(key, name, offset, payload)) + payload


class Journal:
    """One process's journal: appends frames; ``sync`` makes everything appended so far durable.
    Not thread-safe by itself: the writer serialises ``append`` and ``sync``."""

    def __init__(self, directory: Path, key: bytes) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.name = uuid.uuid4().hex
        self.path = directory / f"{self.name}{SUFFIX}"
        self.key = key
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.end = 0  # where the next frame goes
            self.allocated = 0
            self._grow(GROWTH)
            fsync_directory(directory)  # the journal itself survives a crash
        except BaseException:
            os.close(self.fd)
            raise

    def _grow(self, wanted: int) -> None:
        size = max(self.allocated + GROWTH, wanted - wanted % GROWTH + GROWTH)
        with contextlib.suppress(OSError):  # not every file system preallocates; the writes extend it
            os.posix_fallocate(self.fd, 0, size)
        self.allocated = size

    def append(self, fields: dict[str, object]) -> int:
        """Write one record's frame (not yet durable); returns the offset where it ends."""
        frame = encode_frame(self.key, self.name, self.end, fields)
        end = self.end + len(frame)
        if end + FRAME_HEAD.size > self.allocated:
            self._grow(end + FRAME_HEAD.size)
        written = os.pwrite(self.fd, frame, self.end)
        if written != len(frame):
            raise OSError(f"short write to the audit journal {self.path}")
        self.end = end
        return end

    def sync(self) -> None:
        os.fdatasync(self.fd)

    def close(self, *, remove: bool) -> None:
        """Close (releasing the lock); ``remove`` deletes the file, once the log holds its records."""
        if remove:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        os.close(self.fd)


def read_frames(path: Path, key: bytes, start: int = 0) -> ReadResult:
    """The valid frames of a journal from offset ``start`` on."""
    name = path.name.removesuffix(SUFFIX)
    data = path.read_bytes()
    frames: list[Frame] = []
    offset = start
    while offset + FRAME_HEAD.size <= len(data):
        length, mac = FRAME_HEAD.unpack_from(data, offset)
        if length == 0:
            break
        payload = data[offset + FRAME_HEAD.size : offset + FRAME_HEAD.size + length]
        if len(payload) != length or not hmac.compare_digest(mac, _mac(key, name, offset, payload)):
            break
        try:
            fields = json.loads(payload)
        except ValueError:
            break
        end = offset + FRAME_HEAD.size + length
        frames.append(Frame(offset, end, fields))
        offset = end
    damaged = any(data[offset:])
    return ReadResult(frames, offset, damaged)


@contextlib.contextmanager
def orphan(path: Path) -> Iterator[bool]:
    """Holds the lock of a journal whose writer is gone (yields True), or yields False if a live
    writer (this process or another) holds it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def journals(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(directory.glob(f"*{SUFFIX}"))
