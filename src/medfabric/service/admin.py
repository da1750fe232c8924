"""Operations on the fabric as a whole: settings, nodes, the dashboard, alarms, fsck and GC."""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from medfabric import alarms as alarm_rows
from medfabric.catalog.engine import insert_ignoring_duplicates
from medfabric.catalog.schema import config_values, nodes
from medfabric.config import DEFAULT_SETTINGS, validate_setting
from medfabric.errors import InvalidInput
from medfabric.fs import fsck, gc
from medfabric.fs import volumes as volume_rows
from medfabric.service.access import require_admin

if TYPE_CHECKING:
    from medfabric.service.fabric import Fabric


class AdminService:
    def __init__(self, fabric: Fabric) -> None:
        self.fabric = fabric

    # -- settings --

    def config_save(self, values: dict[str, Any] | str) -> dict[str, str]:
        fabric = self.fabric
        with fabric.access("config save"):
            require_admin(fabric.principal, "change the fabric's configuration")
            if isinstance(values, str):
                try:
                    values = json.loads(values)
                except json.JSONDecodeError as error:
                    raise InvalidInput(
                        f"-values is not valid JSON: {error.msg} at position {error.pos}"
                    ) from error
            if not isinstance(values, dict) or not values:
                raise InvalidInput('-values must be a JSON object, e.g. \'{"mfs.enable.audit.log":"1"}\'')
            checked = {
                str(key): validate_setting(
                    str(key), str(value) if not isinstance(value, bool) else str(int(value))
                )
                for key, value in values.items()
            }
            now = fabric.clock.now_ms()
            with fabric.catalog.write() as conn:
                for key, value in checked.items():
                    conn.execute(config_values.delete().where(config_values.c.key == key))
                    conn.execute(
                        config_values.insert().values(
                            key=key, value=value, modified_at=now, modified_by=fabric.principal.name
                        )
                    )
            return checked

    def config_load(self, keys: list[str] | None = None) -> dict[str, str]:
        with self.fabric.access("config load"):
            settings = self.fabric.settings()
            if keys:
                unknown = [key for key in keys if key not in settings]
                if unknown:
                    raise InvalidInput(f"unknown configuration key(s): {', '.join(unknown)}")
                return {key: settings[key] for key in keys}
            return settings

    # -- nodes and dashboard --

    def node_list(self) -> list[dict[str, Any]]:
        fabric = self.fabric
        with fabric.access("node list"):
            here = socket.gethostname()
            with fabric.catalog.write() as conn:
                insert_ignoring_duplicates(
                    conn,
                    nodes,
                    [
                        {
                            "hostname": here,
                            "services": "fileserver,catalog",
                            "version": "0.1.0",
                            "last_seen": 0,
                        }
                    ],
                )
                conn.execute(
                    nodes.update().where(nodes.c.hostname == here).values(last_seen=fabric.clock.now_ms())
                )
                rows = conn.execute(sa.select(nodes).order_by(nodes.c.hostname)).all()
            return [
                {
                    "hostname": row.hostname,
                    "svc": row.services,
                    "version": row.version,
                    "lastheartbeat": row.last_seen,
                }
                for row in rows
            ]

    def dashboard(self) -> dict[str, Any]:
        fabric = self.fabric
        with fabric.access("dashboard info"):
            with fabric.catalog.read() as conn:
                volumes = volume_rows.list_volumes(conn)
                alarms = alarm_rows.active_alarms(conn)
            directories = []
            for backend in fabric.store.backends.values():
                capacity = backend.capacity()
                directories.append(
                    {
                        "location": backend.location_id,
                        "kind": backend.kind,
                        "uri": backend.uri,
                        "totalBytes": capacity.total_bytes if capacity else None,
                        "usedBytes": capacity.used_bytes if capacity else None,
                        "freeBytes": capacity.free_bytes if capacity else None,
                    }
                )
            return {
                "cluster": {
                    "name": fabric.name,
                    "id": fabric.config.fabric_id,
                    "version": "0.1.0",
                    "nodesUsed": 1,
                    "totalNodesAllowed": None,
                },
                "volumes": {
                    "count": len(volumes),
                    "mounted": sum(v.mounted for v in volumes),
                    "logicalBytes": sum(v.logical_bytes for v in volumes),
                    "files": sum(v.file_count for v in volumes),
                },
                "utilization": {"storage": directories},
                "alarms": [alarm.as_json() for alarm in alarms],
            }

    def alarms(self, entity: str | None = None) -> list[alarm_rows.Alarm]:
        with self.fabric.access("alarm list"), self.fabric.catalog.read() as conn:
            return alarm_rows.active_alarms(conn, entity)

    def clear_alarm(self, name: str, entity: str) -> None:
        fabric = self.fabric
        with fabric.access("alarm clear"):
            require_admin(fabric.principal, "clear alarms")
            with fabric.catalog.write() as conn:
                alarm_rows.clear_alarm(conn, name, entity, fabric.clock.now_ms())

    # -- consistency and space --

    def fsck(self) -> list[fsck.Problem]:
        fabric = self.fabric
        with fabric.access("fsck"):
            require_admin(fabric.principal, "run fsck")
            return fsck.check(fabric.store)

    def gc(self, *, grace_seconds: int | None = None) -> gc.GcReport:
        fabric = self.fabric
        with fabric.access("gc"):
            require_admin(fabric.principal, "run gc")
            settings = fabric.settings()
            grace = (
                grace_seconds if grace_seconds is not None else int(settings["mfs.gc.grace.period.seconds"])
            )
            if grace < 0:
                raise InvalidInput("the grace period may not be negative")
            return gc.collect(
                fabric.store,
                now_ms=fabric.clock.now_ms(),
                grace_ms=grace * 1000,
                live_fraction=float(
                    settings.get(
                        "mfs.pack.compaction.live.fraction",
                        DEFAULT_SETTINGS["mfs.pack.compaction.live.fraction"],
                    )
                ),
            )
