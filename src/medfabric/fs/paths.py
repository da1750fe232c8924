"""Fabric paths: absolute, '/'-separated, and never able to escape where they point.

A path is rejected rather than resolved when it holds '.', '..', an empty component, a NUL or
a component longer than POSIX allows: a request that tries to escape gets an error, not a
different file.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from medfabric.errors import InvalidInput

MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096


def split_path(path: str) -> tuple[str, ...]:
    """The components of an absolute fabric path ('/' gives ())."""
    if not isinstance(path, str) or not path:
        raise InvalidInput("a path is required")
    if "\x00" in path:
        raise InvalidInput(f"path {path!r} contains a NUL byte")
    if not path.startswith("/"):
        raise InvalidInput(f"path {path!r} must be absolute (start with '/')")
    if len(path.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        raise InvalidInput(f"path is longer than {MAX_PATH_BYTES} bytes")
    trimmed = path.rstrip("/")
    if not trimmed:
        return ()
    components = tuple(trimmed[1:].split("/"))
    for component in components:
        check_name(component, path)
    return components


def check_name(name: str, path: str | None = None) -> str:
    where = f" in {path!r}" if path is not None else ""
    if name in ("", ".", ".."):
        raise InvalidInput(f"path component {name!r}{where} is not allowed (no empty, '.' or '..')")
    if "/" in name or "\x00" in name:
        raise InvalidInput(f"name {name!r}{where} may not contain '/' or NUL")
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise InvalidInput(f"name {name[:40]!r}…{where} is longer than {MAX_NAME_BYTES} bytes")
    return name


def join_path(components: tuple[str, ...] | list[str]) -> str:
    return "/" + "/".join(components)


def normalize_path(path: str) -> str:
    return join_path(split_path(path))


def is_within(path: tuple[str, ...], prefix: tuple[str, ...]) -> bool:
    return path[: len(prefix)] == prefix


def local_file_uri(path: Path | str, resolved_dirs: dict[str, str] | None = None) -> str:
    """The URI of a file on this host (``file://host/abs/path``, symbolic links resolved): where an
    import came from. ``resolved_dirs`` caches directories already resolved, for many files of a
    few directories (a symbolic link as the file itself is still followed)."""
    if resolved_dirs is None or os.path.islink(path):
        return f"file://{socket.gethostname()}{Path(path).resolve()}"
    directory, name = os.path.split(os.path.abspath(path))
    real = resolved_dirs.get(directory)
    if real is None:
        real = resolved_dirs[directory] = f"file://{socket.gethostname()}{Path(directory).resolve()}"
    return f"{real.rstrip('/')}/{name}"
