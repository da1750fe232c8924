"""Schedule rows in the catalog: schedules, the jobs they drive, when each rule last ran, and
which rule keeps which scheduled snapshot.

Mechanism only, inside the caller's transaction: the service decides who may change them and
what a due job does. Count retention lives here because it is bookkeeping over these rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from medfabric.catalog.schema import schedule_jobs, schedule_runs, schedule_snapshots, schedules, snapshots
from medfabric.errors import NotFound
from medfabric.replication.schedule import Rule, rules_from_json

ACTIONS = ("snapshot", "mirror", "scrub", "backup")


@dataclass(frozen=True)
class Job:
    id: int
    schedule_id: int
    action: str
    volume_id: int | None
    volume_created_at: int | None
    created_at: int


@dataclass(frozen=True)
class ScheduleRow:
    id: int
    name: str
    rules: tuple[Rule, ...]
    owner: str
    created_at: int
    modified_at: int


def _schedule(row: sa.Row[tuple[object, ...]]) -> ScheduleRow:
    m = row._mapping
    return ScheduleRow(
        int(m["id"]),
        str(m["name"]),
        tuple(rules_from_json(str(m["rules"]))),
        str(m["owner"]),
        int(m["created_at"]),
        int(m["modified_at"]),
    )


def _job(row: sa.Row[tuple[object, ...]]) -> Job:
    m = row._mapping
    volume_id, created = m["volume_id"], m["volume_created_at"]
    return Job(
        int(m["id"]),
        int(m["schedule_id"]),
        str(m["action"]),
        None if volume_id is None else int(volume_id),
        None if created is None else int(created),
        int(m["created_at"]),
    )


def find_schedule(conn: Connection, reference: str | int) -> ScheduleRow:
    """A schedule by id (``3``) or by name."""
    text = str(reference).strip()
    query = sa.select(schedules).where(
        schedules.c.id == int(text) if text.isdigit() else schedules.c.name == text
    )
    row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"no schedule {text!r}")
    return _schedule(row)


def list_schedules(conn: Connection) -> list[ScheduleRow]:
    return [_schedule(row) for row in conn.execute(sa.select(schedules).order_by(schedules.c.id))]


def insert_schedule(conn: Connection, name: str, rules_json: str, owner: str, now_ms: int) -> ScheduleRow:
    conn.execute(
        schedules.insert().values(
            name=name, rules=rules_json, owner=owner, created_at=now_ms, modified_at=now_ms
        )
    )
    return find_schedule(conn, name)


def update_schedule(conn: Connection, schedule_id: int, **values: object) -> None:
    conn.execute(schedules.update().where(schedules.c.id == schedule_id).values(**values))


def delete_schedule(conn: Connection, schedule_id: int) -> None:
    for job in jobs_of(conn, schedule_id):
        delete_job(conn, job.id)
    conn.execute(schedules.delete().where(schedules.c.id == schedule_id))


def jobs_of(conn: Connection, schedule_id: int | None = None) -> list[Job]:
    query = sa.select(schedule_jobs).order_by(schedule_jobs.c.id)
    if schedule_id is not None:
        query = query.where(schedule_jobs.c.schedule_id == schedule_id)
    return [_job(row) for row in conn.execute(query)]


def find_job(conn: Connection, action: str, volume_id: int | None) -> Job | None:
    volume_match = (
        schedule_jobs.c.volume_id.is_(None) if volume_id is None else schedule_jobs.c.volume_id == volume_id
    )
    row = conn.execute(sa.select(schedule_jobs).where(schedule_jobs.c.action == action, volume_match)).first()
    return _job(row) if row is not None else None


def attach_job(
    conn: Connection,
    schedule_id: int,
    action: str,
    volume_id: int | None,
    volume_created_at: int | None,
    now_ms: int,
) -> Job:
    """Drive ``action`` by the schedule; a volume has at most one snapshot and one mirror schedule."""
    existing = find_job(conn, action, volume_id) if volume_id is not None else None
    if existing is not None:
        if existing.schedule_id == schedule_id:
            return existing
        delete_job(conn, existing.id)
    job_id = conn.execute(
        schedule_jobs.insert()
        .values(
            schedule_id=schedule_id,
            action=action,
            volume_id=volume_id,
            volume_created_at=volume_created_at,
            created_at=now_ms,
        )
        .returning(schedule_jobs.c.id)
    ).scalar_one()
    row = conn.execute(sa.select(schedule_jobs).where(schedule_jobs.c.id == job_id)).one()
    return _job(row)


def delete_job(conn: Connection, job_id: int) -> None:
    """The job stops; snapshots it made stay, with the expiry they already have."""
    conn.execute(schedule_runs.delete().where(schedule_runs.c.job_id == job_id))
    conn.execute(schedule_snapshots.delete().where(schedule_snapshots.c.job_id == job_id))
    conn.execute(schedule_jobs.delete().where(schedule_jobs.c.id == job_id))


def last_runs(conn: Connection, job: Job) -> dict[int, int]:
    rows = conn.execute(
        sa.select(schedule_runs.c.rule, schedule_runs.c.last_run_at).where(schedule_runs.c.job_id == job.id)
    )
    return {int(rule): int(at) for rule, at in rows}


def due_rules(rules: tuple[Rule, ...], runs: dict[int, int], job: Job, now_ms: int) -> list[int]:
    """Rules with a due instant since they last ran (or since the job was attached): each once,
    however many instants passed while nothing ran."""
    due: list[int] = []
    for index, rule in enumerate(rules):
        instant = rule.last_due(now_ms)
        if instant is not None and instant > runs.get(index, job.created_at - 1):
            due.append(index)
    return due


def claim_runs(conn: Connection, job: Job, rules: list[int], runs: dict[int, int], now_ms: int) -> bool:
    """Record that the rules ran now; False if another scheduler recorded a run first."""
    for index in rules:
        if index in runs:
            changed = conn.execute(
                schedule_runs.update()
                .where(
                    schedule_runs.c.job_id == job.id,
                    schedule_runs.c.rule == index,
                    schedule_runs.c.last_run_at == runs[index],
                )
                .values(last_run_at=now_ms)
            ).rowcount
            if changed != 1:
                return False
        else:
            conn.execute(schedule_runs.insert().values(job_id=job.id, rule=index, last_run_at=now_ms))
    return True


def record_snapshot(conn: Connection, job: Job, rules: list[int], snapshot_id: int, now_ms: int) -> None:
    conn.execute(
        schedule_snapshots.insert(),
        [
            {"job_id": job.id, "rule": index, "snapshot_id": snapshot_id, "created_at": now_ms}
            for index in rules
        ],
    )


def expiry_for(rules: list[Rule], created_at: int) -> int | None:
    """A scheduled snapshot expires by time only when every rule keeping it retains by time."""
    durations = [rule.retain_ms for rule in rules]
    if not durations or any(duration is None for duration in durations):
        return None
    return created_at + max(duration for duration in durations if duration is not None)


def prune_by_count(conn: Connection, job: Job, rules: tuple[Rule, ...]) -> list[str]:
    """Drop each count rule's snapshots beyond the newest N it keeps (preserved ones stay and do
    not count); a snapshot no rule keeps any more is removed. Returns the names removed."""
    removed: list[str] = []
    conn.execute(
        schedule_snapshots.delete().where(
            schedule_snapshots.c.job_id == job.id,
            sa.or_(
                schedule_snapshots.c.rule >= len(rules),
                ~sa.exists().where(snapshots.c.id == schedule_snapshots.c.snapshot_id),
            ),
        )
    )
    for index, rule in enumerate(rules):
        keep = rule.retain_count
        if keep is None:
            continue
        members = conn.execute(
            sa.select(snapshots.c.id, snapshots.c.preserved)
            .join(schedule_snapshots, schedule_snapshots.c.snapshot_id == snapshots.c.id)
            .where(schedule_snapshots.c.job_id == job.id, schedule_snapshots.c.rule == index)
            .order_by(snapshots.c.created_at.desc(), snapshots.c.id.desc())
        ).all()
        unpreserved = [int(snapshot_id) for snapshot_id, preserved in members if not preserved]
        for snapshot_id in unpreserved[keep:]:
            conn.execute(
                schedule_snapshots.delete().where(
                    schedule_snapshots.c.job_id == job.id,
                    schedule_snapshots.c.rule == index,
                    schedule_snapshots.c.snapshot_id == snapshot_id,
                )
            )
            name = _release(conn, job, rules, snapshot_id)
            if name is not None:
                removed.append(name)
    return removed


def _release(conn: Connection, job: Job, rules: tuple[Rule, ...], snapshot_id: int) -> str | None:
    """After a rule let go of a snapshot: remove it, or let the rules still keeping it set its expiry."""
    keepers = [
        int(index)
        for (index,) in conn.execute(
            sa.select(schedule_snapshots.c.rule).where(schedule_snapshots.c.snapshot_id == snapshot_id)
        )
    ]
    row = conn.execute(sa.select(snapshots).where(snapshots.c.id == snapshot_id)).first()
    if row is None:
        return None
    if not keepers:
        conn.execute(snapshots.delete().where(snapshots.c.id == snapshot_id))
        return str(row.name)
    expiry = expiry_for([rules[index] for index in keepers if index < len(rules)], int(row.created_at))
    conn.execute(snapshots.update().where(snapshots.c.id == snapshot_id).values(expires_at=expiry))
    return None
