"""The Fabric: the service object every front end talks to, and how one is opened or created.

A Fabric is a principal bound to the fabric's engines (catalog, blob store). Servers share one
set of engines among many principals (``Fabric.acting_as``); the embedded CLI opens one of each.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from medfabric import alarms as alarm_rows
from medfabric.blobstore.backend import Backend
from medfabric.blobstore.codec import CodecPolicy
from medfabric.blobstore.local import LocalBackend
from medfabric.blobstore.s3 import S3Backend, S3Settings
from medfabric.blobstore.store import BlobStore, Placement
from medfabric.catalog.engine import Catalog, open_catalog, sqlite_url
from medfabric.catalog.schema import config_values, locations, meta, nodes
from medfabric.clock import Clock, SystemClock
from medfabric.config import (
    DEFAULT_SETTINGS,
    FabricConfig,
    S3Config,
    config_path,
    default_home,
    default_user,
    load_config,
    save_config,
)
from medfabric.errors import Conflict, InvalidInput, MedfabricError, PermissionDenied
from medfabric.fs.model import Volume
from medfabric.service.access import Principal

if TYPE_CHECKING:
    from medfabric.service.imaging import DicomService
    from medfabric.service.snapshots import SnapshotService
    from medfabric.service.tables import TableService

VERSION = "0.1.0"
INTERFACES = ("cli", "api", "s3", "webhdfs", "dicomweb", "dimse", "fuse")


@dataclass(frozen=True)
class AccessEvent:
    """One access to the fabric, allowed or denied: what the audit trail records."""

    time_ms: int
    principal: str
    interface: str
    client: str
    operation: str
    outcome: str  # allowed | denied | failed
    path: str | None = None
    volume: str | None = None
    detail: str = ""
    patient_id: str | None = None
    study_uid: str | None = None
    series_uid: str | None = None
    sop_uid: str | None = None


AccessListener = Callable[[AccessEvent], None]


@dataclass
class AccessNote:
    """What an operation learns about its target while it runs, for its access record."""

    path: str | None = None
    volume: str | None = None
    detail: str = ""
    patient_id: str | None = None
    study_uid: str | None = None
    series_uid: str | None = None
    sop_uid: str | None = None


@dataclass
class Engines:
    """What every principal's Fabric shares: configuration, catalog, blob store, workers."""

    config: FabricConfig
    catalog: Catalog
    store: BlobStore
    clock: Clock
    pool: ThreadPoolExecutor
    listeners: list[AccessListener] = field(default_factory=list)
    # Called with each ingest event (medfabric.imaging) after its transaction commits.
    ingest_listeners: list[Callable[[Any], None]] = field(default_factory=list)

    def close(self) -> None:
        self.store.close()
        self.pool.shutdown(wait=True)
        self.catalog.close()


class Fabric:
    """The medfabric service for one principal. Every operation of every interface goes here."""

    def __init__(
        self,
        engines: Engines,
        principal: Principal,
        *,
        interface: str = "api",
        client: str = "local",
        owns_engines: bool = True,
    ) -> None:
        if interface not in INTERFACES:
            raise InvalidInput(f"unknown interface {interface!r}")
        self.engines = engines
        self.principal = principal
        self.interface = interface
        self.client = client
        self._owns_engines = owns_engines
        from medfabric.service.admin import AdminService
        from medfabric.service.files import FileService
        from medfabric.service.volumes import VolumeService

        self.volumes = VolumeService(self)
        self.fs = FileService(self)
        self.admin = AdminService(self)
        engines.store.on_bad_replica = self._on_bad_replica

    # -- services that load on first use --

    @functools.cached_property
    def dicom(self) -> DicomService:
        """DICOM ingest, the imaging index, de-identification."""
        from medfabric.service.imaging import DicomService

        return DicomService(self)

    @functools.cached_property
    def snapshots(self) -> SnapshotService:
        """Volume snapshots: create, list, remove, preserve, restore."""
        from medfabric.service.snapshots import SnapshotService

        return SnapshotService(self)

    @functools.cached_property
    def tables(self) -> TableService:
        """JSON tables (MapR-DB JSON) in the namespace."""
        from medfabric.service.tables import TableService

        return TableService(self)

    # -- engines --

    @property
    def config(self) -> FabricConfig:
        return self.engines.config

    @property
    def catalog(self) -> Catalog:
        return self.engines.catalog

    @property
    def store(self) -> BlobStore:
        return self.engines.store

    @property
    def clock(self) -> Clock:
        return self.engines.clock

    @property
    def pool(self) -> ThreadPoolExecutor:
        return self.engines.pool

    @property
    def name(self) -> str:
        return self.config.name

    def acting_as(
        self, principal: Principal, *, interface: str | None = None, client: str | None = None
    ) -> Fabric:
        """Another principal on the same engines (what a server does per request)."""
        return Fabric(
            self.engines,
            principal,
            interface=interface or self.interface,
            client=client or self.client,
            owns_engines=False,
        )

    def close(self) -> None:
        if self._owns_engines:
            self.engines.close()

    def __enter__(self) -> Fabric:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- settings --

    def settings(self) -> dict[str, str]:
        with self.catalog.read() as conn:
            saved = {
                str(k): str(v) for k, v in conn.execute(sa.select(config_values.c.key, config_values.c.value))
            }
        return {**DEFAULT_SETTINGS, **saved}

    def setting(self, key: str) -> str:
        return self.settings().get(key, "")

    def placement(self, volume: Volume) -> Placement:
        packing = self.setting("mfs.enable.small.file.optimization") != "0"
        return Placement(volume.replication, volume.min_replication, packing)

    def codec_policy(self, volume: Volume) -> CodecPolicy:
        return CodecPolicy(compression=volume.compression)

    # -- auditing hook --

    def add_access_listener(self, listener: AccessListener) -> None:
        self.engines.listeners.append(listener)

    @contextlib.contextmanager
    def access(
        self, operation: str, path: str | None = None, volume: str | None = None
    ) -> Iterator[AccessNote]:
        """Report the operation to the access listeners, with its outcome, whatever happens."""
        note = AccessNote(path, volume)
        outcome = "allowed"
        try:
            yield note
        except PermissionDenied as error:
            outcome, note.detail = "denied", error.message
            raise
        except MedfabricError as error:
            outcome, note.detail = "failed", f"{error.code}: {error.message}"
            raise
        finally:
            if self.engines.listeners:
                event = AccessEvent(
                    self.clock.now_ms(),
                    self.principal.name,
                    self.interface,
                    self.client,
                    operation,
                    outcome,
                    note.path,
                    note.volume,
                    note.detail,
                    note.patient_id,
                    note.study_uid,
                    note.series_uid,
                    note.sop_uid,
                )
                for listener in self.engines.listeners:
                    listener(event)

    def _on_bad_replica(self, pack_id: str, location_id: int, reason: str) -> None:
        with contextlib.suppress(Exception), self.catalog.write() as conn:
            alarm_rows.raise_alarm(
                conn,
                alarm_rows.BLOB_CORRUPTION,
                f"pack {pack_id}@location {location_id}",
                reason,
                self.clock.now_ms(),
            )


# -- opening and creating fabrics ---------------------------------------------------------------


def _backends(config: FabricConfig, catalog: Catalog, *, create: bool) -> list[Backend]:
    with catalog.write() as conn:
        known = {
            str(uri): int(location_id)
            for location_id, uri in conn.execute(sa.select(locations.c.id, locations.c.uri))
        }
        wanted: list[tuple[str, str]] = []
        if config.backend == "s3":
            if config.s3 is None:
                raise InvalidInput(
                    f"{config_path(config.home)}: storage.backend is s3 but [storage.s3] is missing"
                )
            wanted.append(("s3", f"s3://{config.s3.bucket}/{config.s3.prefix}"))
        else:
            wanted.extend(("local", str(path)) for path in config.datadirs)
        next_id = max(known.values(), default=-1) + 1
        for kind, uri in wanted:
            if uri not in known:
                conn.execute(
                    locations.insert().values(
                        id=next_id, kind=kind, uri=uri, host=socket.gethostname(), state="online"
                    )
                )
                known[uri] = next_id
                next_id += 1
    result: list[Backend] = []
    for kind, uri in wanted:
        if kind == "s3" and config.s3 is not None:
            s3 = config.s3
            backend = S3Backend(
                known[uri],
                S3Settings(s3.endpoint, s3.bucket, s3.prefix, s3.access_key, s3.secret_key, s3.region),
            )
            if create:
                backend.ensure_bucket()
            result.append(backend)
        else:
            path = Path(uri)
            if create:
                path.mkdir(parents=True, exist_ok=True)
            elif not path.is_dir():
                raise InvalidInput(f"data directory {path} is missing")
            result.append(LocalBackend(known[uri], path))
    return result


def _principal(catalog: Catalog, user: str) -> Principal:
    with catalog.read() as conn:
        admins = conn.execute(sa.select(meta.c.value).where(meta.c.key == "admins")).scalar() or ""
    return Principal(user, admin=user in admins.split(","))


def open_fabric(
    home: Path | str | None = None,
    user: str | None = None,
    *,
    clock: Clock | None = None,
    interface: str = "api",
) -> Fabric:
    """Open an existing fabric (``$MEDFABRIC_HOME`` or ``~/.medfabric`` by default)."""
    config = load_config(Path(home).expanduser() if home is not None else default_home())
    catalog = open_catalog(config.catalog_url)
    try:
        clock = clock or SystemClock()
        store = BlobStore(catalog, _backends(config, catalog, create=False), clock=clock)
        engines = Engines(
            config,
            catalog,
            store,
            clock,
            ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="medfabric-cpu"),
        )
        return Fabric(engines, _principal(catalog, user or default_user()), interface=interface)
    except BaseException:
        catalog.close()
        raise


def init_fabric(
    home: Path | str | None = None,
    *,
    name: str | None = None,
    datadirs: list[Path] | None = None,
    catalog_url: str | None = None,
    s3: S3Config | None = None,
    user: str | None = None,
    clock: Clock | None = None,
    interface: str = "api",
) -> Fabric:
    """Create a fabric: config file, catalog, data directories, the root volume. Returns it open."""
    home_path = Path(home).expanduser() if home is not None else default_home()
    if config_path(home_path).exists():
        raise Conflict(f"a fabric already exists at {home_path}")
    home_path.mkdir(parents=True, exist_ok=True)
    creator = user or default_user()
    fabric_name = name or "my.fabric"
    if not fabric_name or any(not (c.isalnum() or c in ".-_") for c in fabric_name):
        raise InvalidInput(f"invalid fabric name {fabric_name!r}: letters, digits, '.', '-', '_'")
    dirs = tuple(Path(d).expanduser().resolve() for d in (datadirs or [home_path / "data"]))
    if len(set(dirs)) != len(dirs):
        raise InvalidInput("the same data directory is named twice")
    config = FabricConfig(
        home=home_path.resolve(),
        name=fabric_name,
        fabric_id=str(uuid.uuid4()),
        catalog_url=catalog_url or sqlite_url(home_path.resolve() / "catalog.db"),
        backend="s3" if s3 is not None else "local",
        datadirs=() if s3 else dirs,
        s3=s3,
    )
    catalog = open_catalog(config.catalog_url, create=True)
    try:
        with catalog.write() as conn:
            if conn.execute(sa.select(meta.c.value).where(meta.c.key == "fabric_id")).first() is not None:
                raise Conflict(f"the catalog at {catalog.safe_url} already belongs to a fabric")
            conn.execute(
                meta.insert(),
                [
                    {"key": "fabric_id", "value": config.fabric_id},
                    {"key": "fabric_name", "value": fabric_name},
                    {"key": "admins", "value": creator},
                ],
            )
        _backends(config, catalog, create=True)
    finally:
        catalog.close()
    save_config(config)
    fabric = open_fabric(home_path, creator, clock=clock, interface=interface)
    try:
        fabric.volumes.create_root()
        with fabric.catalog.write() as conn:
            conn.execute(
                nodes.insert().values(
                    hostname=socket.gethostname(),
                    services="fileserver,catalog",
                    version=VERSION,
                    last_seen=fabric.clock.now_ms(),
                )
            )
    except BaseException:
        fabric.close()
        raise
    return fabric
