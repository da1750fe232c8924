"""Mirrors of the service: create (the seed's form), start, stop, status, list, verify, and
fetching blobs back from a mirror (what scrub repairs with).

A mirror is a read-only volume that follows a source volume, here or in another fabric. This
module resolves names (``vol@fabric``, ``fabric:/path``, ``/mapr/fabric/path``) to transports
and drives ``replication.sync``; the protocol's other end is ``service.mirror_peer``.
"""

from __future__ import annotations

import builtins
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from medfabric.errors import Conflict, InvalidInput, MedfabricError, NotFound
from medfabric.fs import volumes as volume_rows
from medfabric.fs.model import Volume
from medfabric.replication import mirror_state as state
from medfabric.replication.sync import MirrorSync, SourceOpener, SyncResult
from medfabric.replication.transport import MirrorStatus, SourceSpec, TransferBlob, Transport
from medfabric.service.access import require_admin
from medfabric.service.remotes import parse_fabric_path, parse_volume_name

if TYPE_CHECKING:
    from medfabric.service.fabric import Fabric
    from medfabric.service.mirror_peer import MirrorPeer


@dataclass(frozen=True)
class VerifyReport:
    """A mirror compared, path by path and checksum by checksum, with the source snapshot it shows."""

    volume: str
    source: str
    snapshot: str
    paths: int
    files: int
    mismatches: tuple[tuple[str, str], ...]  # (path, what differs)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def as_json(self) -> dict[str, Any]:
        return {
            "volumename": self.volume,
            "source": self.source,
            "snapshot": self.snapshot,
            "paths": self.paths,
            "files": self.files,
            "consistent": self.ok,
            "mismatches": [{"path": path, "problem": problem} for path, problem in self.mismatches],
        }


class MirrorService:
    def __init__(self, fabric: Fabric) -> None:
        self.fabric = fabric

    @functools.cached_property
    def peer(self) -> MirrorPeer:
        """This fabric's end of the mirror protocol (what transports call)."""
        from medfabric.service.mirror_peer import MirrorPeer

        return MirrorPeer(self.fabric)

    # -- naming sources --

    def resolve_source(self, source: str | SourceSpec) -> SourceSpec:
        """``vol``, ``vol@fabric`` or a path (``/mri``, ``fabric:/mri``) → where the source is."""
        if isinstance(source, SourceSpec):
            return source
        if source.startswith("/") or ":/" in source:
            fabric_name, volume = parse_fabric_path(source)
        else:
            volume, fabric_name = parse_volume_name(source)
        remotes = self.fabric.remotes
        transport = remotes.transport(fabric_name)
        try:
            ref = transport.describe_volume(volume)
        finally:
            transport.close()
        here = remotes.is_self(fabric_name)
        return SourceSpec(
            None if here else transport.location,
            None if here else fabric_name,
            ref.fabric_id,
            ref.fabric_name,
            ref.name,
            ref.id,
            ref.blob_scheme,
        )

    def _opener(self, target: Transport) -> SourceOpener:
        """How a sync driven from here reaches a mirror's source, as the mirror recorded it."""

        def open_source(spec: SourceSpec) -> Transport:
            remotes = self.fabric.remotes
            if spec.fabric_id == self.fabric.config.fabric_id:
                return remotes.transport(None)
            if spec.location is None:  # the source is in the mirror's own fabric
                return remotes.open_location(target.location, expect=spec.fabric_id)
            if spec.remote is not None:
                try:
                    registered = remotes.get(spec.remote)
                    if registered.fabric_id == spec.fabric_id:
                        return remotes.open_location(registered.location, expect=spec.fabric_id)
                except NotFound:
                    pass
            return remotes.open_location(spec.location, expect=spec.fabric_id)

        return open_source

    # -- the seed's form --

    def create(
        self, name: str, source: str, target: str, *, start: bool = True
    ) -> tuple[MirrorStatus, SyncResult | None]:
        """``mirror create -name mri_dr -source /mri_studies -target dr:/mri_studies``: a mirror
        volume ``name`` mounted at the target path, following the volume mounted at the source
        path; with ``start``, its first (full) sync runs now."""
        fabric = self.fabric
        with fabric.access("mirror create", path=source, volume=name) as note:
            require_admin(fabric.principal, "create mirrors")
            source_fabric, source_path = parse_fabric_path(source)
            target_fabric, target_path = parse_fabric_path(target)
            remotes = fabric.remotes
            origin = remotes.transport(source_fabric)
            try:
                ref = origin.describe_volume(source_path)
                if ref.mount_path != source_path.rstrip("/") and source_path != "/":
                    raise InvalidInput(f"{source_path} is inside volume {ref.name}: give its mount path")
                destination = remotes.transport(target_fabric)
                try:
                    same = destination.fabric_id == origin.fabric_id
                    spec = SourceSpec(
                        None if same else origin.location,
                        None,
                        ref.fabric_id,
                        ref.fabric_name,
                        ref.name,
                        ref.id,
                        ref.blob_scheme,
                    )
                    destination.create_mirror(name, target_path, spec)
                    note.detail = f"{ref.name}@{ref.fabric_name} → {name}@{destination.fabric_name}"
                    result = MirrorSync(destination, name, self._opener(destination)).run() if start else None
                    return destination.mirror_status(name), result
                finally:
                    destination.close()
            finally:
                origin.close()

    # -- volume mirror start | stop | status --

    def start(self, volume: str, *, full: bool = False) -> SyncResult:
        """Sync a mirror volume (``vol`` here or ``vol@fabric``) from its source now."""
        fabric = self.fabric
        with fabric.access("mirror start", volume=volume):
            require_admin(fabric.principal, "sync mirrors")
            name, fabric_name = parse_volume_name(volume)
            target = fabric.remotes.transport(fabric_name)
            try:
                return MirrorSync(target, name, self._opener(target)).run(full=full)
            finally:
                target.close()

    def stop(self, volume: str) -> MirrorStatus:
        name, fabric_name = parse_volume_name(volume)
        target = self.fabric.remotes.transport(fabric_name)
        try:
            return target.stop_sync(name)
        finally:
            target.close()

    def status(self, volume: str) -> MirrorStatus:
        name, fabric_name = parse_volume_name(volume)
        target = self.fabric.remotes.transport(fabric_name)
        try:
            return target.mirror_status(name)
        finally:
            target.close()

    def list(self) -> builtins.list[MirrorStatus]:
        """This fabric's mirror volumes."""
        fabric = self.fabric
        with fabric.access("mirror list"), fabric.catalog.read() as conn:
            found = [
                (volume, state.mirror_row(conn, volume))
                for volume in volume_rows.list_volumes(conn)
                if volume.type == "mirror"
            ]
        return [self.peer.mirror_status(volume.name) for volume, row in found if row is not None]

    def verify(self, volume: str) -> VerifyReport:
        """Compare every path of the mirror with the source snapshot it was synced from: kind,
        size, mode, owner, link target, and each file's checksum (the mirror's bytes are read and
        hashed; the source's recorded digest is used where known, else its bytes are hashed)."""
        fabric = self.fabric
        with fabric.access("mirror verify", volume=volume) as note:
            require_admin(fabric.principal, "verify mirrors")
            name, fabric_name = parse_volume_name(volume)
            target = fabric.remotes.transport(fabric_name)
            try:
                status = target.mirror_status(name)
                if status.synced_snapshot is None:
                    raise Conflict(f"mirror volume {name} has not completed a sync yet")
                source = self._opener(target)(status.source)
                try:
                    expected = source.manifest(status.source.volume, status.synced_snapshot, rehash=False)
                finally:
                    source.close()
                actual = target.manifest(name, None, rehash=True)
            finally:
                target.close()
            mismatches = _compare(expected, actual)
            note.detail = f"{len(mismatches)} mismatches in {len(expected)} paths"
            return VerifyReport(
                name,
                f"{status.source.volume}@{status.source.fabric_name}",
                status.synced_snapshot,
                len(expected),
                sum(1 for item in expected if item.kind == "file"),
                tuple(mismatches),
            )

    # -- what scrub repairs from --

    def fetch_copies(self, volume: Volume, blob_ids: builtins.list[bytes]) -> dict[bytes, TransferBlob]:
        """Good copies of blobs from any fabric that mirrors ``volume`` or that it mirrors."""
        wanted = set(blob_ids)
        found: dict[bytes, TransferBlob] = {}
        scheme = self.peer.blob_scheme(volume)
        for transport, holder in self._holders(volume):
            try:
                if transport.describe_volume(holder).blob_scheme != scheme:
                    continue
                needed = sorted(wanted - set(found))
                lacking = transport.missing_blobs(holder, needed)
                present = [blob_id for blob_id in needed if blob_id not in lacking]
                for blob in transport.read_blobs(holder, present) if present else []:
                    found[blob.blob_id] = blob
            except MedfabricError:
                continue  # an unreachable or damaged holder: try the next
            finally:
                transport.close()
            if wanted <= set(found):
                break
        return found

    def _holders(self, volume: Volume) -> builtins.list[tuple[Transport, str]]:
        fabric = self.fabric
        remotes = fabric.remotes
        holders: builtins.list[tuple[Transport, str]] = []
        with fabric.catalog.read() as conn:
            row = state.mirror_row(conn, volume)
            local = state.mirrors_of(conn, fabric.config.fabric_id, volume.id)
            names = {v.id: v.name for v in volume_rows.list_volumes(conn)}
        if row is not None:
            try:
                holders.append((self._opener(remotes.transport(None))(row.source), row.source.volume))
            except MedfabricError:
                pass
        holders.extend((remotes.transport(None), names[vid]) for vid in local if vid in names)
        for remote in remotes.list():
            try:
                transport = remotes.transport(remote.name)
            except MedfabricError:
                continue
            try:
                mirrors = transport.mirrors_of(fabric.config.fabric_id, volume.id)
            except MedfabricError:
                mirrors = []
            if not mirrors:
                transport.close()
                continue
            holders.append((transport, mirrors[0]))
            for other in mirrors[1:]:
                holders.append((remotes.transport(remote.name), other))
        return holders


def _compare(expected: builtins.list[Any], actual: builtins.list[Any]) -> builtins.list[tuple[str, str]]:
    mine = {item.path: item for item in actual}
    theirs = {item.path: item for item in expected}
    problems: builtins.list[tuple[str, str]] = []
    for path in sorted(set(mine) | set(theirs)):
        if path not in mine:
            problems.append((path, "missing from the mirror"))
        elif path not in theirs:
            problems.append((path, "not in the source snapshot"))
        else:
            a, b = theirs[path], mine[path]
            for field in ("kind", "size", "mode", "owner", "group", "target", "digest"):
                if getattr(a, field) != getattr(b, field):
                    problems.append(
                        (path, f"{field} differs: source {getattr(a, field)!r}, mirror {getattr(b, field)!r}")
                    )
                    break
    return problems
