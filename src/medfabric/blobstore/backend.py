"""The backend interface: a flat space of named objects, and nothing more.

At this layer we deal in plain primitives: names (``packs/7/ab/<id>.pack``) and bytes.
Promises: ``put`` and ``AppendHandle.sync`` return only once the bytes are durable (fsync'd
file and directory, or stored by the object store); ``read`` returns exactly the bytes asked for
or raises; objects never change once written except by appending to an appendable one.
Not promised: any checksum (the pack layer verifies), any ordering between objects.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class ObjectInfo:
    name: str
    size: int


@dataclass(frozen=True)
class Capacity:
    total_bytes: int
    used_bytes: int
    free_bytes: int


class BackendError(OSError):
    """A backend could not complete an operation (missing object, I/O error, network)."""


class AppendHandle(abc.ABC):
    """An object being appended to by one writer (appendable backends only)."""

    @abc.abstractmethod
    def write(self, *parts: bytes | memoryview) -> int:
        """Append the parts, in order; returns the offset the first starts at. Not durable until sync()."""

    @abc.abstractmethod
    def sync(self) -> None:
        """Make everything written so far durable."""

    @property
    @abc.abstractmethod
    def size(self) -> int: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    def release_cache(self) -> None:  # noqa: B027 - optional: most backends hold no cache to release
        """The object is complete and durable: let the operating system drop its cached pages."""


class Backend(abc.ABC):
    """One storage location: a data directory, or a bucket of an S3-compatible store."""

    location_id: int
    kind: str
    uri: str
    supports_append: bool = False

    @abc.abstractmethod
    def put(self, name: str, data: bytes) -> None:
        """Store a whole object durably (replacing nothing: names are never reused)."""

    def open_append(self, name: str, *, truncate_to: int | None = None) -> AppendHandle:
        """Open (creating if absent) an object for appending; cut it to ``truncate_to`` first."""
        raise BackendError(f"{self.kind} objects are immutable: no appends")

    @abc.abstractmethod
    def read(self, name: str, offset: int, length: int) -> bytes: ...

    @abc.abstractmethod
    def delete(self, name: str) -> None:
        """Remove an object; removing an absent object is not an error."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    @abc.abstractmethod
    def stat(self, name: str) -> ObjectInfo | None: ...

    @abc.abstractmethod
    def capacity(self) -> Capacity | None:
        """Total/used/free bytes where the backend can tell; None where it cannot."""

    def close(self) -> None:  # noqa: B027 - optional: most backends hold nothing to release
        """Release connections and handles."""
