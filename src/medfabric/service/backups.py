"""Catalog backups into the blob store, restoring one, and rebuilding the blob index from packs.

A backup is a consistent copy of the catalog stored as an object ``catalog-backups/<UTC time>.…``
in every storage location: SQLite's ``VACUUM INTO`` (zstd-compressed, with a checksum), or
PostgreSQL's ``pg_dump -Fc``. ``restore_catalog`` works without a catalog (it needs only the config
file, which names the data directories) and must run while no process uses the fabric.
"""

from __future__ import annotations

import builtins
import os
import shutil
import sqlite3
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
import zstandard

from medfabric.blobstore.backend import Backend
from medfabric.blobstore.local import LocalBackend, fsync_directory
from medfabric.blobstore.s3 import S3Backend, S3Settings
from medfabric.catalog.engine import normalize_url
from medfabric.config import FabricConfig, load_config
from medfabric.errors import IntegrityError, InvalidInput, NotFound, Unavailable
from medfabric.fs.rebuild import RebuildReport, rebuild_index
from medfabric.service.access import require_admin

if TYPE_CHECKING:
    from medfabric.service.fabric import Fabric

PREFIX = "catalog-backups/"
SQLITE_SUFFIX = ".sqlite.zst"
PG_SUFFIX = ".pgdump"


@dataclass(frozen=True)
class CatalogBackup:
    name: str  # e.g. 20250131T020000.123Z.sqlite.zst
    size: int
    locations: tuple[str, ...]

    @property
    def created_at(self) -> int | None:
        """From the name (``20250131T020000.123Z…``); None for a name this code did not make."""
        try:
            moment = datetime.strptime(self.name[:19], "%Y%m%dT%H%M%S.%f")
        except ValueError:
            return None
        return int(moment.replace(tzinfo=UTC).timestamp() * 1000)

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "size": self.size,
            "creationtime": self.created_at,
            "locations": list(self.locations),
        }


@dataclass(frozen=True)
class RestoreResult:
    backup: str
    catalog: str
    previous: str | None  # where the catalog it replaced was kept
    index: RebuildReport | None


def _stamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y%m%dT%H%M%S.%f")[:-3] + "Z"


def list_backups(backends: builtins.list[Backend]) -> builtins.list[CatalogBackup]:
    seen: dict[str, tuple[int, builtins.list[str]]] = {}
    for backend in backends:
        for info in backend.list(PREFIX):
            name = info.name[len(PREFIX) :]
            if name.endswith((SQLITE_SUFFIX, PG_SUFFIX)):
                where = seen.setdefault(name, (info.size, []))[1]
                where.append(backend.uri)
    return [CatalogBackup(name, size, tuple(where)) for name, (size, where) in sorted(seen.items())]


class BackupService:
    def __init__(self, fabric: Fabric) -> None:
        self.fabric = fabric

    def backup(self, *, keep: int | None = None) -> CatalogBackup:
        """Store a consistent copy of the catalog in every storage location; keep the newest ``keep``."""
        fabric = self.fabric
        with fabric.access("catalog backup") as note:
            require_admin(fabric.principal, "back up the catalog")
            if keep is not None and keep < 1:
                raise InvalidInput("-keep must be at least 1")
            from medfabric.service.audit import flush_audit

            flush_audit(fabric.engines)  # the copy holds this process's journaled audit records too
            with tempfile.TemporaryDirectory(prefix="catalog-backup-", dir=fabric.config.home) as work:
                if fabric.catalog.dialect == "sqlite":
                    data, suffix = self._sqlite_copy(Path(work)), SQLITE_SUFFIX
                else:
                    data, suffix = _pg_dump(fabric.catalog.url, Path(work)), PG_SUFFIX
            # The catalog holds paths and the imaging index (patient identifiers): never store it in
            # a backend in the clear.
            data = seal_backup(fabric.config.home, data)
            name = _stamp(fabric.clock.now_ms()) + suffix
            backends = list(fabric.store.backends.values())
            for backend in backends:
                backend.put(PREFIX + name, data)
            if keep is not None:
                for old in list_backups(backends)[:-keep]:
                    for backend in backends:
                        backend.delete(PREFIX + old.name)
            note.detail = f"{name}, {len(data)} bytes in {len(backends)} locations"
            return CatalogBackup(name, len(data), tuple(backend.uri for backend in backends))

    def _sqlite_copy(self, work: Path) -> bytes:
        copy = work / "catalog.db"
        raw = self.fabric.catalog.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("VACUUM INTO ?", (str(copy),))  # a consistent snapshot, compacted
            cursor.close()
        finally:
            raw.close()
        return zstandard.ZstdCompressor(level=3, write_checksum=True).compress(copy.read_bytes())

    def list(self) -> builtins.list[CatalogBackup]:
        with self.fabric.access("catalog backup list"):
            return list_backups(list(self.fabric.store.backends.values()))

    def rebuild_index(self) -> RebuildReport:
        """The blob index from the packs alone (run on a quiet fabric)."""
        fabric = self.fabric
        with fabric.access("catalog rebuild-index") as note:
            require_admin(fabric.principal, "rebuild the blob index")
            report = rebuild_index(fabric.store, now_ms=fabric.clock.now_ms())
            note.detail = f"{report.packs} packs, {report.blobs} blobs"
            return report


def _pg_dump(url: str, work: Path) -> bytes:
    program = shutil.which("pg_dump")
    if program is None:
        raise Unavailable(
            "pg_dump is not installed: install the PostgreSQL client, or back the catalog up with "
            "the database's own tools (pg_dump, or base backups with WAL archiving)"
        )
    target = work / "catalog.pgdump"
    plain = normalize_url(url).replace("postgresql+psycopg://", "postgresql://", 1)
    done = subprocess.run(
        [program, "--format=custom", "--no-owner", "--file", str(target), plain],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
        raise Unavailable(f"pg_dump failed: {reason}")
    return target.read_bytes()


def offline_backends(config: FabricConfig) -> builtins.list[Backend]:
    """The storage locations the config file names, without a catalog (ids are only local)."""
    if config.backend == "s3":
        if config.s3 is None:
            raise InvalidInput("storage.backend is s3 but [storage.s3] is missing")
        s3 = config.s3
        return [
            S3Backend(
                0, S3Settings(s3.endpoint, s3.bucket, s3.prefix, s3.access_key, s3.secret_key, s3.region)
            )
        ]
    return [
        LocalBackend(number, Path(path)) for number, path in enumerate(config.datadirs) if Path(path).is_dir()
    ]


def restore_catalog(home: Path, backup: str | None = None, *, user: str | None = None) -> RestoreResult:
    """Bring back a catalog backup (the newest unless named), then rebuild the blob index from the
    packs so it matches what the data directories hold now. No process may use the fabric meanwhile.
    The catalog it replaces, if any, is kept next to it."""
    config = load_config(home)
    backends = offline_backends(config)
    try:
        available = list_backups(backends)
        if not available:
            raise NotFound(f"no catalog backup in {', '.join(b.uri for b in backends) or 'any location'}")
        chosen = available[-1] if backup is None else next((b for b in available if b.name == backup), None)
        if chosen is None:
            raise NotFound(f"no catalog backup {backup!r} (have: {', '.join(b.name for b in available)})")
        data = _fetch(backends, chosen, home)
    finally:
        for backend in backends:
            backend.close()
    url = normalize_url(config.catalog_url)
    if chosen.name.endswith(SQLITE_SUFFIX):
        if not url.startswith("sqlite"):
            raise InvalidInput(
                f"{chosen.name} is a SQLite catalog but this fabric's catalog is {url.split(':')[0]}"
            )
        previous = _restore_sqlite(config, Path(sa.engine.make_url(url).database or ""), data)
    else:
        if url.startswith("sqlite"):
            raise InvalidInput(f"{chosen.name} is a PostgreSQL dump but this fabric's catalog is SQLite")
        _pg_restore(url, data, Path(config.home))
        previous = None
    from medfabric.service.fabric import open_fabric

    with open_fabric(home, user) as fabric:
        report = fabric.backups.rebuild_index()
    return RestoreResult(chosen.name, config.catalog_url, previous, report)


BACKUP_MAGIC = b"MFBACKUP1\x00"


def seal_backup(home: Path, data: bytes) -> bytes:
    """AES-256-GCM with a fresh key per backup, that key wrapped by the master key (KMS)."""
    import os as _os
    import struct

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from medfabric.security.keys import LocalKms

    kms = LocalKms(home / "keys")
    key = _os.urandom(32)
    key_id, wrapped = kms.wrap(key, context=b"medfabric catalog backup")
    nonce = _os.urandom(12)
    head = BACKUP_MAGIC + struct.pack("<H", len(key_id)) + key_id.encode() + struct.pack("<H", len(wrapped))
    return head + wrapped + nonce + AESGCM(key).encrypt(nonce, data, BACKUP_MAGIC)


def open_backup(home: Path, stored: bytes) -> bytes:
    import struct

    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from medfabric.security.keys import LocalKms

    if not stored.startswith(BACKUP_MAGIC):
        return stored  # written before backups were sealed
    offset = len(BACKUP_MAGIC)
    (id_length,) = struct.unpack_from("<H", stored, offset)
    key_id = stored[offset + 2 : offset + 2 + id_length].decode()
    offset += 2 + id_length
    (wrapped_length,) = struct.unpack_from("<H", stored, offset)
    wrapped = stored[offset + 2 : offset + 2 + wrapped_length]
    offset += 2 + wrapped_length
    key = LocalKms(home / "keys").unwrap(key_id, wrapped, context=b"medfabric catalog backup")
    try:
        return AESGCM(key).decrypt(stored[offset : offset + 12], stored[offset + 12 :], BACKUP_MAGIC)
    except InvalidTag as error:
        raise IntegrityError("catalog backup failed authentication") from error


def _fetch(backends: builtins.list[Backend], chosen: CatalogBackup, home: Path) -> bytes:
    failures: builtins.list[str] = []
    for backend in backends:
        try:
            stored = open_backup(home, backend.read(PREFIX + chosen.name, 0, chosen.size))
            if chosen.name.endswith(SQLITE_SUFFIX):
                return zstandard.ZstdDecompressor().decompress(stored)  # checks the frame checksum
            return stored
        except (OSError, zstandard.ZstdError) as error:
            failures.append(f"{backend.uri}: {error}")
    raise IntegrityError(f"no intact copy of catalog backup {chosen.name}: {'; '.join(failures)}")


def _restore_sqlite(config: FabricConfig, path: Path, data: bytes) -> str | None:
    incoming = path.with_name(path.name + ".restoring")
    incoming.write_bytes(data)
    with sqlite3.connect(incoming) as check:
        row = check.execute("SELECT value FROM meta WHERE key = 'fabric_id'").fetchone()
    if row is None or row[0] != config.fabric_id:
        incoming.unlink()
        raise IntegrityError(f"the backup is another fabric's catalog (fabric id {row[0] if row else '?'})")
    with open(incoming, "rb+") as handle:
        os.fsync(handle.fileno())
    previous = None
    if path.exists():
        previous = str(
            path.with_name(f"{path.name}.before-restore.{_stamp(int(datetime.now(UTC).timestamp() * 1000))}")
        )
        for suffix in ("", "-wal", "-shm"):
            if Path(str(path) + suffix).exists():
                os.replace(str(path) + suffix, previous + suffix)
    for suffix in ("-wal", "-shm"):  # a stale write-ahead log would be replayed into the restored file
        Path(str(path) + suffix).unlink(missing_ok=True)
    os.replace(incoming, path)
    fsync_directory(path.parent)
    return previous


def _pg_restore(url: str, data: bytes, work_dir: Path) -> None:
    program = shutil.which("pg_restore")
    if program is None:
        raise Unavailable("pg_restore is not installed: install the PostgreSQL client")
    plain = url.replace("postgresql+psycopg://", "postgresql://", 1)
    with tempfile.NamedTemporaryFile(dir=work_dir, suffix=".pgdump") as dump:
        dump.write(data)
        dump.flush()
        done = subprocess.run(
            [
                program,
                "--clean",
                "--if-exists",
                "--no-owner",
                "--single-transaction",
                "--dbname",
                plain,
                dump.name,
            ],
            capture_output=True,
            text=True,
        )
    if done.returncode != 0:
        raise Unavailable(f"pg_restore failed: {done.stderr.strip()[-500:]}")
