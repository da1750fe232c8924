"""Volume operations of the service: create, modify, info, list, remove, mount, unmount, rename.

Options are validated here (after SEMANTICS.md), the caller's rights checked, and the changes
made through ``medfabric.fs`` in one catalog transaction each.
"""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

from medfabric import alarms as alarm_rows
from medfabric.errors import Conflict, InvalidInput, NotEmpty, NotFound
from medfabric.fs import volumes as volume_rows
from medfabric.fs.model import KIND_DIR, Volume
from medfabric.fs.namespace import VolumeWriter, load_mounts, mount_components
from medfabric.fs.paths import join_path, split_path
from medfabric.replication import mirror_state
from medfabric.security.acl import Acl, AclType
from medfabric.service.access import (
    acl_to_text,
    check_ace_text,
    inherited_aces,
    require_cluster,
    require_volume,
    volume_acl,
)
from medfabric.units import parse_size

if TYPE_CHECKING:
    from medfabric.replication.transport import SourceSpec
    from medfabric.service.fabric import Fabric

ROOT_VOLUME = "mapr.cluster.root"
VOLUME_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,109}$")
MB = 1 << 20


@dataclass(frozen=True)
class VolumeResult:
    volume: Volume
    warnings: tuple[str, ...] = field(default_factory=tuple)


def _check_name(name: str) -> str:
    if not VOLUME_NAME.match(name or ""):
        raise InvalidInput(
            f"invalid volume name {name!r}: 1–110 letters, digits, '.', '-' or '_', "
            "starting with a letter or digit"
        )
    return name


class VolumeService:
    def __init__(self, fabric: Fabric) -> None:
        self.fabric = fabric

    # -- queries --

    def info(self, name: str) -> Volume:
        with self.fabric.access("volume info", volume=name), self.fabric.catalog.read() as conn:
            return volume_rows.get_volume(conn, name)

    def list(self) -> builtins.list[Volume]:
        with self.fabric.access("volume list"), self.fabric.catalog.read() as conn:
            return volume_rows.list_volumes(conn)

    def usage(self, name: str) -> dict[str, int]:
        with self.fabric.access("volume info", volume=name), self.fabric.catalog.read() as conn:
            volume = volume_rows.get_volume(conn, name)
            return volume_rows.stored_usage(conn, volume.id)

    def describe(self, volume: Volume, usage: dict[str, int] | None = None) -> dict[str, Any]:
        """A volume as `volume info` and `volume list` print it (MapR's names; sizes in MB as MapR)."""
        with self.fabric.catalog.read() as conn:
            parent = (
                volume_rows.get_volume_by_id(conn, volume.parent_id).name
                if volume.parent_id is not None
                else None
            )
        document: dict[str, Any] = {
            "volumename": volume.name,
            "volumeid": volume.id,
            "mountdir": volume.mount_path,
            "mounted": volume.mounted,
            "parentvolume": parent,
            "volumetype": volume.type,
            "numreplicas": volume.replication,
            "minreplicas": volume.min_replication,
            "quota": volume.quota // MB,
            "advisoryquota": volume.advisory_quota // MB,
            "quotaBytes": volume.quota,
            "advisoryquotaBytes": volume.advisory_quota,
            "readonly": volume.readonly,
            "compression": volume.compression,
            "creator": volume.owner,
            "creationTime": volume.created_at,
            "modificationTime": volume.modified_at,
            "logicalUsed": volume.logical_bytes // MB,
            "logicalBytes": volume.logical_bytes,
            "numFiles": volume.file_count,
            "readAce": volume.read_ace if volume.read_ace is not None else f"u:{volume.owner}",
            "writeAce": volume.write_ace if volume.write_ace is not None else f"u:{volume.owner}",
            "acl": [{"principal": who, "codes": list(codes)} for who, codes in volume_acl(volume).rows()],
            "audited": volume.audited,
            "dataauditops": volume.audit_ops,
            "auditCoalesce": volume.audit_coalesce,
            "encryption": volume.encryption,
            "numDirectories": volume.dir_count,
            "version": volume.version,
        }
        if usage is not None:
            document.update(
                used=usage["storedBytes"] // MB, totalused=usage["replicatedBytes"] // MB, usage=usage
            )
        return document

    # -- creation --

    def create_root(self) -> Volume:
        fabric = self.fabric
        with fabric.catalog.write() as conn:
            return volume_rows.insert_volume(
                conn,
                name=ROOT_VOLUME,
                mount_path="/",
                parent_id=None,
                volume_type="rw",
                replication=min(3, fabric.store.max_replication()),
                min_replication=min(2, fabric.store.max_replication()),
                quota=0,
                advisory_quota=0,
                readonly=False,
                compression="zstd",
                owner=fabric.principal.name,
                now_ns=fabric.clock.now_ns(),
                read_ace="p",
                acl=acl_to_text(Acl.parse(AclType.VOLUME, user=f"{fabric.principal.name}:fc")),
            )

    def create(
        self,
        name: str,
        path: str | None = None,
        *,
        parent_volume: str | None = None,
        replication: int | None = None,
        min_replication: int | None = None,
        quota: str | int | None = None,
        advisory_quota: str | int | None = None,
        readonly: bool = False,
        createparent: bool = True,
        volume_type: str = "rw",
        compression: str | None = None,
        read_ace: str | None = None,
        write_ace: str | None = None,
        dare: bool | None = None,
        source: str | SourceSpec | None = None,
    ) -> VolumeResult:
        """``source`` (``vol@fabric``, with ``volume_type="mirror"``): the volume a mirror follows."""
        fabric = self.fabric
        with fabric.access("volume create", path=path, volume=name):
            require_cluster(fabric.principal, fabric.cluster_acl(), "cv", "create volumes")
            _check_name(name)
            if volume_type not in ("rw", "mirror"):
                raise InvalidInput(f"volume type must be rw or mirror, not {volume_type!r}")
            if source is not None and volume_type != "mirror":
                raise InvalidInput("-source makes sense only with -type mirror")
            mirror_source = fabric.mirrors.resolve_source(source) if source is not None else None
            mount_path = join_path(split_path(path)) if path is not None else None
            settings = fabric.settings()
            warnings: builtins.list[str] = []
            with fabric.catalog.write() as conn:
                parent = volume_rows.get_volume(conn, parent_volume) if parent_volume else None
                if replication is None:
                    replication = (
                        parent.replication if parent else int(settings["mfs.volume.default.replication"])
                    )
                if min_replication is None:
                    default_min = (
                        parent.min_replication
                        if parent
                        else int(settings["mfs.volume.default.minreplication"])
                    )
                    min_replication = min(default_min, replication)
                replication, min_replication = self._replication(replication, min_replication, warnings)
                quota_bytes = parse_size(quota if quota is not None else 0, what="quota")
                advisory_bytes = parse_size(
                    advisory_quota if advisory_quota is not None else 0, what="advisory quota"
                )
                _check_quotas(quota_bytes, advisory_bytes)
                codec = compression or (
                    parent.compression if parent else settings["mfs.volume.default.compression"]
                )
                if codec not in ("off", "zstd"):
                    raise InvalidInput(f"compression must be off or zstd, not {codec!r}")
                if volume_rows.volume_exists(conn, name):
                    raise Conflict(f"volume {name!r} already exists")
                if mount_path is not None:
                    self._prepare_mount_point(conn, mount_path, createparent, parent)
                volume = volume_rows.insert_volume(
                    conn,
                    name=name,
                    mount_path=mount_path,
                    parent_id=parent.id if parent else None,
                    volume_type=volume_type,
                    replication=replication,
                    min_replication=min_replication,
                    quota=quota_bytes,
                    advisory_quota=advisory_bytes,
                    readonly=readonly or volume_type == "mirror",
                    compression=codec,
                    owner=fabric.principal.name,
                    now_ns=fabric.clock.now_ns(),
                    **self._inherited(parent, read_ace, write_ace),
                )
                if mirror_source is not None:
                    mirror_state.record_source(conn, volume, mirror_source)
                encrypted = dare if dare is not None else bool(parent and parent.encryption != "off")
                if encrypted:
                    from medfabric.service.encryption import create_keys, kms_of

                    create_keys(conn, kms_of(fabric.engines), volume.id, fabric.clock.now_ms())
                    volume_rows.update_volume(conn, volume.id, encryption="on")
                    volume = volume_rows.get_volume_by_id(conn, volume.id)
                if warnings:
                    alarm_rows.raise_alarm(
                        conn,
                        alarm_rows.REPLICATION_CAPPED,
                        f"volume {name}",
                        "; ".join(warnings),
                        fabric.clock.now_ms(),
                    )
            return VolumeResult(volume, tuple(warnings))

    def _inherited(
        self, parent: Volume | None, read_ace: str | None, write_ace: str | None
    ) -> dict[str, Any]:
        """A new volume's ACL (its creator: fc) and what it takes from its parent volume."""
        creator = self.fabric.principal.name
        attributes: dict[str, Any] = {"acl": acl_to_text(Acl.parse(AclType.VOLUME, user=f"{creator}:fc"))}
        if parent is not None:
            attributes.update(
                read_ace=parent.read_ace or f"u:{parent.owner}",
                write_ace=parent.write_ace or f"u:{parent.owner}",
                audited=parent.audited,
                audit_ops=parent.audit_ops,
                audit_coalesce=parent.audit_coalesce,
            )
            parent_acl = volume_acl(parent)
            if parent_acl.rows():
                attributes["acl"] = acl_to_text(parent_acl.edit(user=f"{creator}:fc"))
        if read_ace is not None:
            attributes["read_ace"] = check_ace_text(read_ace, "readAce")
        if write_ace is not None:
            attributes["write_ace"] = check_ace_text(write_ace, "writeAce")
        return attributes

    def _replication(
        self, replication: int, min_replication: int, warnings: builtins.list[str]
    ) -> tuple[int, int]:
        if not 1 <= replication <= 6:
            raise InvalidInput(f"replication must be from 1 to 6, not {replication}")
        if not 1 <= min_replication <= replication:
            raise InvalidInput(
                f"minreplication must be from 1 to the replication ({replication}), not {min_replication}"
            )
        available = self.fabric.store.max_replication()
        if replication > available:
            warnings.append(
                f"replication {replication} capped to {available}: the fabric has "
                f"{available} storage location(s)"
                + (" and the object store keeps its own copies" if not self.fabric.store.appendable else "")
            )
            replication = available
            min_replication = min(min_replication, available)
        return replication, min_replication

    def _prepare_mount_point(
        self, conn: Connection, mount_path: str, createparent: bool, parent: Volume | None
    ) -> None:
        components = split_path(mount_path)
        if not components:
            raise Conflict("/ is the root volume's mount point")
        mounts = load_mounts(conn)
        if components in mounts.by_path:
            raise Conflict(f"volume {mounts.by_path[components].name} is already mounted at {mount_path}")
        enclosing, inside = mounts.resolve(components)
        if parent is not None and enclosing.id != parent.id:
            raise InvalidInput(
                f"{mount_path} is not inside the parent volume {parent.name} (it lies in {enclosing.name})"
            )
        writer = VolumeWriter(conn, enclosing.id, self.fabric.clock.now_ns())
        directory = writer.get(enclosing.root_ino)
        assert directory is not None
        for index, name in enumerate(inside[:-1]):
            child = writer.lookup(directory.ino, name)
            if child is None:
                if not createparent:
                    raise NotFound(
                        f"{join_path(components[: len(components) - len(inside) + index + 1])} "
                        "does not exist (use -createparent 1)"
                    )
                child = writer.create(
                    parent_ino=directory.ino,
                    name=name,
                    kind=KIND_DIR,
                    mode=0o755,
                    owner=self.fabric.principal.name,
                    grp=directory.grp,
                    aces=inherited_aces(directory, is_directory=True),
                )
            elif child.kind != KIND_DIR:
                raise Conflict(
                    f"{join_path(components[: len(components) - len(inside) + index + 1])} is not a directory"
                )
            directory = child
        if writer.lookup(directory.ino, inside[-1]) is not None:
            raise Conflict(f"{mount_path} already exists in volume {enclosing.name}")
        writer.finish()

    # -- changes --

    def modify(
        self,
        name: str,
        *,
        replication: int | None = None,
        min_replication: int | None = None,
        quota: str | int | None = None,
        advisory_quota: str | int | None = None,
        readonly: bool | None = None,
        compression: str | None = None,
        volume_type: str | None = None,
        read_ace: str | None = None,
        write_ace: str | None = None,
        source: str | SourceSpec | None = None,
        schedule: str | None = None,
        mirror_schedule: str | None = None,
    ) -> VolumeResult:
        """``source`` makes the (mirror) volume follow another (failback); ``schedule`` and
        ``mirror_schedule`` attach a schedule by id or name ("0" detaches)."""
        fabric = self.fabric
        with fabric.access("volume modify", volume=name):
            warnings: builtins.list[str] = []
            mirror_source = fabric.mirrors.resolve_source(source) if source is not None else None
            with fabric.catalog.write() as conn:
                volume = volume_rows.get_volume(conn, name)
                require_volume(fabric.principal, volume, "m", "modify")
                values: dict[str, Any] = {}
                if replication is not None or min_replication is not None:
                    new_replication = replication if replication is not None else volume.replication
                    new_min = (
                        min_replication
                        if min_replication is not None
                        else min(volume.min_replication, new_replication)
                    )
                    values["replication"], values["min_replication"] = self._replication(
                        new_replication, new_min, warnings
                    )
                quota_bytes = parse_size(quota, what="quota") if quota is not None else volume.quota
                advisory_bytes = (
                    parse_size(advisory_quota, what="advisory quota")
                    if advisory_quota is not None
                    else volume.advisory_quota
                )
                _check_quotas(quota_bytes, advisory_bytes)
                values.update(quota=quota_bytes, advisory_quota=advisory_bytes)
                if readonly is not None:
                    values["readonly"] = readonly
                if compression is not None:
                    if compression not in ("off", "zstd"):
                        raise InvalidInput(f"compression must be off or zstd, not {compression!r}")
                    values["compression"] = compression
                if read_ace is not None:
                    values["read_ace"] = check_ace_text(read_ace, "readAce")
                if write_ace is not None:
                    values["write_ace"] = check_ace_text(write_ace, "writeAce")
                if volume_type is not None:
                    if volume_type not in ("rw", "mirror"):
                        raise InvalidInput(f"volume type must be rw or mirror, not {volume_type!r}")
                    values["type"] = volume_type
                    if volume_type == "rw" and volume.type == "mirror" and readonly is None:
                        values["readonly"] = False
                    if volume_type == "rw" and volume.type == "mirror":
                        mirror_state.forget_synced_state(conn, volume.id)  # promoted: it will diverge
                if mirror_source is not None:
                    if values.get("type", volume.type) != "mirror":
                        raise InvalidInput("-source makes sense only for a mirror volume (add -type mirror)")
                    mirror_state.record_source(conn, volume, mirror_source)
                values["modified_at"] = fabric.clock.now_ms()
                volume_rows.update_volume(conn, volume.id, **values)
                updated = volume_rows.get_volume_by_id(conn, volume.id)
                self._refresh_quota_alarms(conn, updated)
            for action, reference in (("snapshot", schedule), ("mirror", mirror_schedule)):
                if reference is not None and reference.strip() in ("", "0", "none"):
                    fabric.schedules.detach(action, updated.name)
                elif reference is not None:
                    fabric.schedules.attach(reference, action, volume=updated.name)
            return VolumeResult(updated, tuple(warnings))

    def _refresh_quota_alarms(self, conn: Connection, volume: Volume) -> None:
        now = self.fabric.clock.now_ms()
        entity = f"volume {volume.name}"
        if volume.advisory_quota and volume.logical_bytes > volume.advisory_quota:
            alarm_rows.raise_alarm(
                conn,
                alarm_rows.ADVISORY_QUOTA_EXCEEDED,
                entity,
                f"{volume.logical_bytes} bytes used, advisory quota {volume.advisory_quota}",
                now,
            )
        else:
            alarm_rows.clear_alarm(conn, alarm_rows.ADVISORY_QUOTA_EXCEEDED, entity, now)

    def remove(self, name: str, *, force: bool = False) -> None:
        fabric = self.fabric
        with fabric.access("volume remove", volume=name):
            with fabric.catalog.write() as conn:
                volume = volume_rows.get_volume(conn, name)
                require_volume(fabric.principal, volume, "d", "remove")
                if volume.name == ROOT_VOLUME:
                    raise Conflict("the root volume cannot be removed")
                self._refuse_if_nested(conn, volume, "remove")
                volume_rows.delete_volume(conn, volume, fabric.clock.now_ms())
            fabric.store.writer(volume.id, fabric.placement(volume)).release()

    def _refuse_if_nested(self, conn: Connection, volume: Volume, action: str) -> None:
        if not volume.mounted or volume.mount_path is None:
            return
        nested = load_mounts(conn).mounted_below(mount_components(volume.mount_path))
        if nested:
            names = ", ".join(sorted(v.name for v in nested))
            raise NotEmpty(
                f"cannot {action} volume {volume.name}: volumes are mounted inside it ({names}); "
                "unmount or remove them first"
            )

    def mount(self, name: str, path: str | None = None, *, createparent: bool = True) -> Volume:
        fabric = self.fabric
        with fabric.access("volume mount", path=path, volume=name), fabric.catalog.write() as conn:
            volume = volume_rows.get_volume(conn, name)
            require_volume(fabric.principal, volume, "m", "mount")
            if volume.mounted:
                raise Conflict(f"volume {name} is already mounted at {volume.mount_path}")
            target = path if path is not None else volume.mount_path
            if target is None:
                raise InvalidInput(f"volume {name} has no mount path: give -path")
            mount_path = join_path(split_path(target))
            parent = (
                volume_rows.get_volume_by_id(conn, volume.parent_id) if volume.parent_id is not None else None
            )
            self._prepare_mount_point(conn, mount_path, createparent, parent)
            volume_rows.update_volume(conn, volume.id, mount_path=mount_path, mounted=True)
            return volume_rows.get_volume_by_id(conn, volume.id)

    def unmount(self, name: str) -> Volume:
        fabric = self.fabric
        with fabric.access("volume unmount", volume=name), fabric.catalog.write() as conn:
            volume = volume_rows.get_volume(conn, name)
            require_volume(fabric.principal, volume, "m", "unmount")
            if volume.name == ROOT_VOLUME:
                raise Conflict("the root volume cannot be unmounted")
            if not volume.mounted:
                raise Conflict(f"volume {name} is not mounted")
            self._refuse_if_nested(conn, volume, "unmount")
            volume_rows.update_volume(conn, volume.id, mounted=False)
            return volume_rows.get_volume_by_id(conn, volume.id)

    def rename(self, name: str, new_name: str) -> Volume:
        fabric = self.fabric
        with fabric.access("volume rename", volume=name):
            _check_name(new_name)
            with fabric.catalog.write() as conn:
                volume = volume_rows.get_volume(conn, name)
                require_volume(fabric.principal, volume, "m", "rename")
                if volume.name == ROOT_VOLUME:
                    raise Conflict("the root volume cannot be renamed")
                if volume_rows.volume_exists(conn, new_name):
                    raise Conflict(f"volume {new_name!r} already exists")
                volume_rows.update_volume(conn, volume.id, name=new_name, modified_at=fabric.clock.now_ms())
                return volume_rows.get_volume_by_id(conn, volume.id)


def _check_quotas(quota: int, advisory: int) -> None:
    if quota and advisory and advisory > quota:
        raise InvalidInput(f"the advisory quota ({advisory} bytes) must not exceed the quota ({quota} bytes)")
