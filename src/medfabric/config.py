"""The fabric's home directory and its config file (TOML), and the cluster settings' defaults.

The config file says where the catalog and the data live; everything else is in the catalog,
shared by every process that opens the fabric. This module reads and writes files only.
"""

from __future__ import annotations

import getpass
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from medfabric.errors import InvalidInput, NotFound

CONFIG_FILE = "medfabric.toml"

# Cluster-wide settings (`config save`/`config load`) and their defaults, after MapR's names.
DEFAULT_SETTINGS: dict[str, str] = {
    "mfs.enable.small.file.optimization": "1",
    "mfs.enable.audit.log": "0",
    "mfs.audit.durability": "commit",
    "mfs.volume.default.replication": "3",
    "mfs.volume.default.minreplication": "2",
    # Pixel data is mostly incompressible or already compressed (JPEG 2000, JPEG-LS): compressing it
    # costs more time than it saves space. Turn zstd on per volume where it pays (reports, raw data).
    "mfs.volume.default.compression": "off",
    "mfs.gc.grace.period.seconds": "3600",
    "mfs.pack.compaction.live.fraction": "0.5",
}
BOOLEAN_SETTINGS = {"mfs.enable.small.file.optimization", "mfs.enable.audit.log"}


def default_home() -> Path:
    env = os.environ.get("MEDFABRIC_HOME")
    return Path(env).expanduser() if env else Path.home() / ".medfabric"


def default_user() -> str:
    env = os.environ.get("MEDFABRIC_USER")
    if env is not None:
        if not env.strip():
            raise InvalidInput("MEDFABRIC_USER is set but empty")
        return env.strip()
    return getpass.getuser()


@dataclass(frozen=True)
class S3Config:
    endpoint: str | None
    bucket: str
    prefix: str = ""
    access_key: str | None = None
    secret_key: str | None = None
    region: str = "us-east-1"


@dataclass(frozen=True)
class FabricConfig:
    home: Path
    name: str
    fabric_id: str
    catalog_url: str
    backend: str = "local"  # local | s3
    datadirs: tuple[Path, ...] = ()
    s3: S3Config | None = None
    catalog_encrypted: bool = False  # SQLCipher, keyed by <home>/keys/catalog.key
    extra: dict[str, Any] = field(default_factory=dict)

    def to_toml(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "fabric": {"name": self.name, "id": self.fabric_id},
            "catalog": {"url": self.catalog_url, "encrypted": self.catalog_encrypted},
            "storage": {"backend": self.backend, "datadirs": [str(path) for path in self.datadirs]},
        }
        if self.s3 is not None:
            s3 = {key: value for key, value in vars(self.s3).items() if value is not None}
            document["storage"]["s3"] = s3
        document.update(self.extra)
        return document


def config_path(home: Path) -> Path:
    return home / CONFIG_FILE


def load_config(home: Path) -> FabricConfig:
    path = config_path(home)
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError as error:
        raise NotFound(f"no fabric at {home} (run `medfabric init`, or set MEDFABRIC_HOME)") from error
    except tomllib.TOMLDecodeError as error:
        raise InvalidInput(f"{path}: {error}") from error
    try:
        fabric = document["fabric"]
        storage = document.get("storage", {})
        s3 = storage.get("s3")
        return FabricConfig(
            home=home,
            name=str(fabric["name"]),
            fabric_id=str(fabric["id"]),
            catalog_url=str(document["catalog"]["url"]),
            catalog_encrypted=bool(document["catalog"].get("encrypted", False)),
            backend=str(storage.get("backend", "local")),
            datadirs=tuple(Path(p) for p in storage.get("datadirs", [])),
            s3=S3Config(**s3) if s3 else None,
            extra={
                key: value for key, value in document.items() if key not in ("fabric", "catalog", "storage")
            },
        )
    except (KeyError, TypeError) as error:
        raise InvalidInput(f"{path}: missing or malformed setting {error}") from error


def save_config(config: FabricConfig) -> None:
    path = config_path(config.home)
    temporary = path.with_suffix(".tmp")
    with temporary.open("wb") as handle:
        tomli_w.dump(config.to_toml(), handle)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)


def validate_setting(key: str, value: str) -> str:
    if not key or any(not (c.isalnum() or c in "._-") for c in key):
        raise InvalidInput(f"invalid configuration key {key!r}")
    if key in BOOLEAN_SETTINGS and value not in ("0", "1"):
        raise InvalidInput(f'{key} takes "0" or "1", not {value!r}')
    if key in ("mfs.volume.default.replication", "mfs.volume.default.minreplication") and (
        not value.isdigit() or not 1 <= int(value) <= 6
    ):
        raise InvalidInput(f"{key} takes a number from 1 to 6, not {value!r}")
    if key == "mfs.audit.durability" and value not in ("commit", "process"):
        raise InvalidInput(f"{key} takes commit or process, not {value!r}")
    if key == "mfs.volume.default.compression" and value not in ("off", "zstd"):
        raise InvalidInput(f"{key} takes off or zstd, not {value!r}")
    return value
