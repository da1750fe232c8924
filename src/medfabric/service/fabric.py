"""The Fabric: the service object every front end talks to, and how one is opened or created.

A Fabric is a principal bound to the fabric's engines (catalog, blob store). Servers share one
set of engines among many principals (``Fabric.acting_as``); the embedded CLI opens one of each.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
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
from medfabric.catalog.schema import config_values, locations, memberships, meta, nodes, users
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
from medfabric.errors import (
    Conflict,
    IntegrityError,
    InvalidInput,
    MedfabricError,
    NotFound,
    PermissionDenied,
)
from medfabric.fs.model import Volume
from medfabric.security.acl import Acl, AclType
from medfabric.service.access import Principal, acl_from_text, acl_to_text

if TYPE_CHECKING:
    from medfabric.security.keys import Kms
    from medfabric.service.audit import AuditService
    from medfabric.service.backups import BackupService
    from medfabric.service.deid import DeidService
    from medfabric.service.encryption import EncryptionService, VolumeKeys
    from medfabric.service.imaging import DicomService
    from medfabric.service.lineage import LineageService
    from medfabric.service.mirrors import MirrorService
    from medfabric.service.remotes import RemoteService
    from medfabric.service.schedules import ScheduleService
    from medfabric.service.scrub import ScrubService
    from medfabric.service.security import SecurityService
    from medfabric.service.snapshots import SnapshotService
    from medfabric.service.tables import TableService

VERSION = "0.1.0"
CLUSTER_ACL_KEY = "cluster_acl"
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
    file_id: str | None = None
    audited_volume: Volume | None = None  # the volume's row, when the access is to its data
    time_us: int | None = None


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
    file_id: str | None = None
    target_volume: Volume | None = None

    def target(self, volume: Volume) -> None:
        """The access is to data in ``volume`` (its audit settings decide whether it is recorded)."""
        self.volume = volume.name
        self.target_volume = volume


@dataclass
class Engines:
    """What every principal's Fabric shares: configuration, catalog, blob store, workers."""

    config: FabricConfig
    catalog: Catalog
    store: BlobStore
    clock: Clock
    pool: ThreadPoolExecutor
    listeners: list[AccessListener] = field(default_factory=list)
    kms: Kms | None = None  # the master key's custodian (medfabric.security.keys)
    volume_keys: dict[int, VolumeKeys] = field(default_factory=dict)  # unwrapped, per volume id
    # Called with each ingest event (medfabric.imaging) after its transaction commits.
    ingest_listeners: list[Callable[[Any], None]] = field(default_factory=list)

    def close(self) -> None:
        for listener in self.listeners:  # the audit writer drains its journal into the catalog
            closing = getattr(listener, "close", None)
            if closing is not None:
                closing()
        self.store.close()
        self.pool.shutdown(wait=True)
        self.catalog.close()


# Threads of a fabric's engines, idle between the calls given them (pool workers) or stopped by
# ``Fabric.quiesced`` (the audit writer's).
OWN_THREADS = ("medfabric-audit", "medfabric-cpu", "medfabric-io")


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
    def audit(self) -> AuditService:
        """The audit trail: what is recorded, verification, queries, FHIR export."""
        from medfabric.service.audit import AuditService

        return AuditService(self)

    @functools.cached_property
    def lineage(self) -> LineageService:
        """Where data came from: imports, and inputs/transform/params of derived data."""
        from medfabric.service.lineage import LineageService

        return LineageService(self)

    @functools.cached_property
    def deid(self) -> DeidService:
        """De-identified copies (PS3.15 Annex E), their verification and re-identification maps."""
        from medfabric.service.deid import DeidService

        return DeidService(self)

    @functools.cached_property
    def encryption(self) -> EncryptionService:
        """Encryption at rest: volume keys, re-encryption, master key rotation."""
        from medfabric.service.encryption import EncryptionService

        return EncryptionService(self)

    @functools.cached_property
    def security(self) -> SecurityService:
        """Users, groups, roles, tokens, ACLs and file ACEs."""
        from medfabric.service.security import SecurityService

        return SecurityService(self)

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

    @functools.cached_property
    def schedules(self) -> ScheduleService:
        """Schedules of snapshots, mirror syncs, scrubs and catalog backups; what the scheduler runs."""
        from medfabric.service.schedules import ScheduleService

        return ScheduleService(self)

    @functools.cached_property
    def remotes(self) -> RemoteService:
        """Other fabrics, registered by name (mirror sources and targets)."""
        from medfabric.service.remotes import RemoteService

        return RemoteService(self)

    @functools.cached_property
    def mirrors(self) -> MirrorService:
        """Mirror volumes: create, sync, stop, status, verify."""
        from medfabric.service.mirrors import MirrorService

        return MirrorService(self)

    @functools.cached_property
    def scrub(self) -> ScrubService:
        """Read and verify every replica of every blob; repair from replicas or mirrors."""
        from medfabric.service.scrub import ScrubService

        return ScrubService(self)

    @functools.cached_property
    def backups(self) -> BackupService:
        """Catalog backups into the blob store, and the blob index rebuilt from packs."""
        from medfabric.service.backups import BackupService

        return BackupService(self)

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

    def reopened(self) -> Fabric:
        """The same fabric and principal on engines of its own (catalog connections, blob writers, an
        audit journal): what a forked process uses, never its parent's."""
        engines = _open_engines(self.engines.config, self.engines.clock)
        engines.kms = self.engines.kms
        return Fabric(engines, self.principal, interface=self.interface, client=self.client)

    def runs_alone(self) -> bool:
        """Whether work may be handed to a process forked from this one and opened with
        ``reopened``: the only listeners are the fabric's own (the audit writer), so nobody here
        misses an access or ingest event; the clock is the system's; and no thread runs here but
        the fabric's own (the audit writer's, idle pool workers), so a fork copies no lock that a
        thread of someone else's held half-way through a call (``quiesced`` stops the audit writer)."""
        from medfabric.service.audit import AuditWriter

        engines = self.engines
        current = threading.current_thread()
        return (
            not engines.ingest_listeners
            and all(isinstance(listener, AuditWriter) for listener in engines.listeners)
            and isinstance(engines.clock, SystemClock)
            and all(
                thread is current or thread.name.startswith(OWN_THREADS) for thread in threading.enumerate()
            )
        )

    @contextlib.contextmanager
    def quiesced(self) -> Iterator[None]:
        """No audit record is moved into the log meanwhile (to fork: see ``runs_alone``)."""
        with contextlib.ExitStack() as stack:
            for listener in self.engines.listeners:
                held = getattr(listener, "held", None)
                if held is not None:
                    stack.enter_context(held())
            yield

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

    def cluster_acl(self) -> Acl:
        """The fabric's own ACL (login, cv, a, fc …), as `acl show -type cluster` prints it."""
        with self.catalog.read() as conn:
            text = conn.execute(sa.select(meta.c.value).where(meta.c.key == CLUSTER_ACL_KEY)).scalar()
        return acl_from_text(AclType.CLUSTER, str(text or ""))

    def setting(self, key: str) -> str:
        return self.settings().get(key, "")

    def placement(self, volume: Volume) -> Placement:
        packing = self.setting("mfs.enable.small.file.optimization") != "0"
        return Placement(volume.replication, volume.min_replication, packing)

    def codec_policy(self, volume: Volume) -> CodecPolicy:
        if volume.encryption == "off":
            return CodecPolicy(compression=volume.compression)
        from medfabric.service.encryption import codec_policy

        return codec_policy(self.engines, volume)

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
                event = self._event(operation, outcome, note)
                for listener in self.engines.listeners:
                    listener(event)

    def record_accesses(self, operation: str, accesses: Sequence[tuple[AccessNote, str]]) -> None:
        """Report many accesses of one larger operation (the instances of an ingest batch), each
        ``(note, outcome)`` with outcome "allowed", "denied" or "failed", in one go: a listener with
        ``record_many`` (the audit writer) records them in one transaction."""
        listeners = self.engines.listeners
        if not listeners or not accesses:
            return
        events = [self._event(operation, outcome, note) for note, outcome in accesses]
        for listener in listeners:
            many = getattr(listener, "record_many", None)
            if many is not None:
                many(events)
                continue
            for event in events:
                listener(event)

    def _event(self, operation: str, outcome: str, note: AccessNote) -> AccessEvent:
        return AccessEvent(
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
            note.file_id,
            note.target_volume,
            self.clock.now_ns() // 1000,
        )

    @staticmethod
    def data_note(path: str, volume: Volume, **identifiers: str | None) -> AccessNote:
        """The note of one access to data in ``volume`` inside a larger operation (a file of a
        batch), for ``record_accesses``."""
        note = AccessNote(path)
        note.target(volume)
        for name, value in identifiers.items():
            setattr(note, name, value)
        return note

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


LOCATION_MARKER = "MEDFABRIC-LOCATION"
AUDIT_KEY = "keys/audit.key"


CATALOG_KEY = "keys/catalog.key"


def create_fabric_secrets(home: Path, *, catalog_key: bool = False) -> None:
    """The master key (wraps volume keys), the audit chain's key and, for an encrypted catalog, its
    key: 0600 files in <home>/keys. Back them up apart from the data."""
    from medfabric.security.keys import KEY_SIZE, LocalKms, write_secret

    LocalKms.create(home / "keys")
    for name, wanted in ((AUDIT_KEY, True), (CATALOG_KEY, catalog_key)):
        if wanted and not (home / name).exists():
            write_secret(home / name, os.urandom(KEY_SIZE))


def catalog_key(config: FabricConfig) -> bytes | None:
    if not config.catalog_encrypted:
        return None
    from medfabric.security.keys import read_secret

    return read_secret(config.home / CATALOG_KEY, "catalog key")


def _read_marker(path: Path, fabric_id: str) -> int | None:
    """The location id a data directory was given, from the marker file written into it."""
    marker = path / LOCATION_MARKER
    try:
        document = json.loads(marker.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise IntegrityError(f"{marker} is unreadable: {error}") from error
    if document.get("fabric") != fabric_id:
        raise InvalidInput(f"data directory {path} belongs to another fabric ({document.get('fabric')})")
    return int(document["location"])


def _write_marker(path: Path, fabric_id: str, location_id: int) -> None:
    marker = path / LOCATION_MARKER
    marker.write_text(json.dumps({"fabric": fabric_id, "location": location_id}) + "\n")


def _backends(config: FabricConfig, catalog: Catalog, *, create: bool) -> list[Backend]:
    """The configured storage locations, each known to the catalog by a stable id.

    A data directory carries its id in a marker file, so the fabric keeps finding its packs when
    the directory is moved or mounted elsewhere; an S3 location is known by its bucket and prefix.
    """
    if config.backend == "s3":
        if config.s3 is None:
            raise InvalidInput(
                f"{config_path(config.home)}: storage.backend is s3 but [storage.s3] is missing"
            )
        wanted: list[tuple[str, str]] = [("s3", f"s3://{config.s3.bucket}/{config.s3.prefix}")]
    else:
        wanted = [("local", str(path)) for path in config.datadirs]
    ids: dict[str, int] = {}
    with catalog.write() as conn:
        known = {
            str(uri): int(location_id)
            for location_id, uri in conn.execute(sa.select(locations.c.id, locations.c.uri))
        }
        next_id = max(known.values(), default=-1) + 1
        for kind, uri in wanted:
            location_id: int | None = None
            if kind == "local":
                path = Path(uri)
                if create:
                    path.mkdir(parents=True, exist_ok=True)
                elif not path.is_dir():
                    raise InvalidInput(f"data directory {path} is missing")
                location_id = _read_marker(path, config.fabric_id)
            if location_id is None:
                location_id = known.get(uri)
            if location_id is None:
                location_id = next_id
                next_id += 1
                conn.execute(
                    locations.insert().values(
                        id=location_id, kind=kind, uri=uri, host=socket.gethostname(), state="online"
                    )
                )
            elif known.get(uri) != location_id:
                conn.execute(locations.update().where(locations.c.id == location_id).values(uri=uri))
            if kind == "local" and _read_marker(Path(uri), config.fabric_id) is None:
                _write_marker(Path(uri), config.fabric_id, location_id)
            ids[uri] = location_id
    result: list[Backend] = []
    for kind, uri in wanted:
        if kind == "s3" and config.s3 is not None:
            s3 = config.s3
            backend = S3Backend(
                ids[uri],
                S3Settings(s3.endpoint, s3.bucket, s3.prefix, s3.access_key, s3.secret_key, s3.region),
            )
            if create:
                backend.ensure_bucket()
            result.append(backend)
        else:
            result.append(LocalBackend(ids[uri], Path(uri)))
    return result


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def resolve_principal(catalog: Catalog, user: str) -> Principal:
    """A registered user with their groups and roles; admin when they hold fc on the fabric's ACL."""
    with catalog.read() as conn:
        if conn.execute(sa.select(users.c.name).where(users.c.name == user)).first() is None:
            raise NotFound(
                f"unknown user {user!r}: an administrator adds it with `medfabric user add {user}` "
                "(MEDFABRIC_USER names the acting user)"
            )
        rows = conn.execute(
            sa.select(memberships.c.kind, memberships.c.group_name).where(memberships.c.user_name == user)
        ).all()
        text = conn.execute(sa.select(meta.c.value).where(meta.c.key == CLUSTER_ACL_KEY)).scalar()
    groups = frozenset(str(name) for kind, name in rows if kind == "group")
    roles = frozenset(str(name) for kind, name in rows if kind == "role")
    principal = Principal(user, groups, roles)
    admin = acl_from_text(AclType.CLUSTER, str(text or "")).permits(principal, "fc")
    return Principal(user, groups, roles, admin=admin)


def open_fabric(
    home: Path | str | None = None,
    user: str | None = None,
    *,
    clock: Clock | None = None,
    interface: str = "api",
) -> Fabric:
    """Open an existing fabric (``$MEDFABRIC_HOME`` or ``~/.medfabric`` by default)."""
    config = load_config(Path(home).expanduser() if home is not None else default_home())
    engines = _open_engines(config, clock or SystemClock())
    try:
        return Fabric(
            engines, resolve_principal(engines.catalog, user or default_user()), interface=interface
        )
    except BaseException:
        engines.close()
        raise


def _open_engines(config: FabricConfig, clock: Clock) -> Engines:
    catalog = open_catalog(config.catalog_url, key=catalog_key(config))
    try:
        store = BlobStore(catalog, _backends(config, catalog, create=False), clock=clock)
        engines = Engines(
            config,
            catalog,
            store,
            clock,
            ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="medfabric-cpu"),
        )
        from medfabric.service.audit import AuditWriter

        engines.listeners.append(AuditWriter(engines))
        return engines
    except BaseException:
        catalog.close()
        raise


def init_fabric(
    home: Path | str | None = None,
    *,
    name: str | None = None,
    datadirs: list[Path] | None = None,
    catalog_url: str | None = None,
    encrypt_catalog: bool = False,
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
        catalog_encrypted=encrypt_catalog,
    )
    create_fabric_secrets(config.home, catalog_key=encrypt_catalog)
    catalog = open_catalog(config.catalog_url, create=True, key=catalog_key(config))
    try:
        with catalog.write() as conn:
            if conn.execute(sa.select(meta.c.value).where(meta.c.key == "fabric_id")).first() is not None:
                raise Conflict(f"the catalog at {catalog.safe_url} already belongs to a fabric")
            conn.execute(
                meta.insert(),
                [
                    {"key": "fabric_id", "value": config.fabric_id},
                    {"key": "fabric_name", "value": fabric_name},
                    {
                        "key": CLUSTER_ACL_KEY,
                        "value": acl_to_text(Acl.parse(AclType.CLUSTER, user=f"{creator}:fc")),
                    },
                ],
            )
            conn.execute(
                users.insert().values(
                    name=creator, password_hash=None, created_at=now_ms(), created_by=creator
                )
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
