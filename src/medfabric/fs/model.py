"""Values that cross layers: volumes, namespace entries and the stat of a path.

Frozen dataclasses built from catalog rows; nothing here touches the database itself.
"""

from __future__ import annotations

import stat as statmod
from dataclasses import dataclass
from typing import Any

KIND_DIR = "d"
KIND_FILE = "f"
KIND_SYMLINK = "l"
KIND_TABLE = "t"  # a JSON table (MapR-DB JSON): its documents live in the catalog, not in blobs

KIND_NAMES = {KIND_DIR: "directory", KIND_FILE: "file", KIND_SYMLINK: "symlink", KIND_TABLE: "table"}
KIND_TYPE_BITS = {
    KIND_DIR: statmod.S_IFDIR,
    KIND_FILE: statmod.S_IFREG,
    KIND_SYMLINK: statmod.S_IFLNK,
    KIND_TABLE: statmod.S_IFREG,
}


@dataclass(frozen=True)
class Volume:
    id: int
    name: str
    mount_path: str | None
    mounted: bool
    parent_id: int | None
    type: str
    root_ino: int
    version: int
    next_ino: int
    replication: int
    min_replication: int
    quota: int
    advisory_quota: int
    readonly: bool
    compression: str
    owner: str
    created_at: int
    modified_at: int
    logical_bytes: int
    file_count: int
    dir_count: int
    acl: str = ""  # the volume's ACL, as `acl show` prints it (users and groups with codes)
    read_ace: str | None = None  # volume ACEs; None means the default (creator and admins)
    write_ace: str | None = None
    audited: bool = False
    audit_ops: str = ""
    audit_coalesce: int = 0  # minutes during which repeated reads, writes, getattrs are recorded once
    encryption: str = "off"  # off | on | encrypting

    @classmethod
    def from_row(cls, row: Any) -> Volume:
        m = row._mapping
        return cls(**{name: m[name] for name in cls.__dataclass_fields__})

    @property
    def writable(self) -> bool:
        return not self.readonly and self.type == "rw"


@dataclass(frozen=True)
class Entry:
    volume_id: int
    parent_ino: int
    name: str
    ino: int
    kind: str
    mode: int
    owner: str
    grp: str
    size: int
    mtime_ns: int
    ctime_ns: int
    atime_ns: int
    content_id: int | None
    target: str | None
    born: int
    died: int | None
    aces: str | None = None  # JSON of the entry's file/directory ACEs (security.ace.FileAces)

    @classmethod
    def from_row(cls, row: Any) -> Entry:
        m = row._mapping
        return cls(**{name: m[name] for name in cls.__dataclass_fields__})

    @property
    def is_dir(self) -> bool:
        return self.kind == KIND_DIR

    @property
    def is_file(self) -> bool:
        return self.kind == KIND_FILE

    @property
    def st_mode(self) -> int:
        return KIND_TYPE_BITS[self.kind] | self.mode


@dataclass(frozen=True)
class FileStat:
    """What `fs stat` and `fs ls` report for one path."""

    path: str
    name: str
    type: str  # directory | file | symlink
    mode: int  # st_mode: type and permission bits
    size: int
    owner: str
    group: str
    mtime_ns: int
    ctime_ns: int
    atime_ns: int
    ino: int
    volume: str
    nlink: int
    target: str | None = None
    is_mount_point: bool = False

    @property
    def permissions(self) -> str:
        return statmod.filemode(self.mode)

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "name": self.name,
            "type": self.type,
            "mode": f"{self.mode & 0o7777:04o}",
            "permissions": self.permissions,
            "size": self.size,
            "owner": self.owner,
            "group": self.group,
            "mtime": self.mtime_ns // 1_000_000,
            "ctime": self.ctime_ns // 1_000_000,
            "atime": self.atime_ns // 1_000_000,
            "ino": self.ino,
            "volume": self.volume,
            "nlink": self.nlink,
            "target": self.target,
            "mountpoint": self.is_mount_point,
        }
