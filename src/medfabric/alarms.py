"""Alarms: conditions an operator must see (advisory quota passed, replicas lost, corruption).

An alarm is raised once per (name, entity) until cleared; raising it again is a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from medfabric.catalog.engine import insert_ignoring_duplicates
from medfabric.catalog.schema import alarms

ADVISORY_QUOTA_EXCEEDED = "VOLUME_ALARM_ADVISORY_QUOTA_EXCEEDED"
QUOTA_EXCEEDED = "VOLUME_ALARM_QUOTA_EXCEEDED"
DATA_UNDER_REPLICATED = "VOLUME_ALARM_DATA_UNDER_REPLICATED"
REPLICATION_CAPPED = "VOLUME_ALARM_REPLICATION_CAPPED"
BLOB_CORRUPTION = "NODE_ALARM_BLOB_CORRUPTION"
AUDIT_JOURNAL = "CLUSTER_ALARM_AUDIT_JOURNAL"


@dataclass(frozen=True)
class Alarm:
    name: str
    entity: str
    description: str
    raised_at: int

    def as_json(self) -> dict[str, object]:
        return {
            "alarm name": self.name,
            "entity": self.entity,
            "description": self.description,
            "alarm state": 1,
            "alarm statechange time": self.raised_at,
        }


def raise_alarm(conn: Connection, name: str, entity: str, description: str, now_ms: int) -> None:
    existing = conn.execute(
        sa.select(alarms.c.id).where(
            alarms.c.name == name, alarms.c.entity == entity, alarms.c.cleared_at.is_(None)
        )
    ).first()
    if existing is None:
        insert_ignoring_duplicates(
            conn,
            alarms,
            [
                {
                    "name": name,
                    "entity": entity,
                    "description": description,
                    "raised_at": now_ms,
                    "cleared_at": None,
                }
            ],
        )


def clear_alarm(conn: Connection, name: str, entity: str, now_ms: int) -> None:
    conn.execute(
        alarms.update()
        .where(alarms.c.name == name, alarms.c.entity == entity, alarms.c.cleared_at.is_(None))
        .values(cleared_at=now_ms)
    )


def active_alarms(conn: Connection, entity: str | None = None) -> list[Alarm]:
    query = (
        sa.select(alarms.c.name, alarms.c.entity, alarms.c.description, alarms.c.raised_at)
        .where(alarms.c.cleared_at.is_(None))
        .order_by(alarms.c.raised_at, alarms.c.id)
    )
    if entity is not None:
        query = query.where(alarms.c.entity == entity)
    return [Alarm(*row) for row in conn.execute(query)]
