"""Helpers shared by the replication tests: a volume's whole content, and fabric pairs."""

from __future__ import annotations

from medfabric.service.fabric import Fabric


def view(fabric: Fabric, root: str) -> dict[str, bytes | None]:
    """Every path under ``root`` (relative), with file contents; directories map to None."""
    found: dict[str, bytes | None] = {}
    for directory, dirs, files in fabric.fs.walk(root):
        relative = directory[len(root) :]
        for item in dirs:
            found[f"{relative}/{item.name}/"] = None
        for item in files:
            if item.type == "symlink":
                found[f"{relative}/{item.name}"] = b"-> " + fabric.fs.readlink(item.path).encode()
            else:
                found[f"{relative}/{item.name}"] = fabric.fs.read(item.path)
    return found


def no_errors(fabric: Fabric) -> list[object]:
    return [problem for problem in fabric.admin.fsck() if problem.severity == "error"]
