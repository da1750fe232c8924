"""Schedules of the service: create, list, modify, remove, attach; and running what is due.

A schedule is a named list of rules; jobs attach it to an action (a volume's snapshots, a mirror's
syncs, a scrub, a catalog backup). ``run_due`` is one pass of the scheduler: each due job runs
once, however many of its instants passed while nothing ran. It never runs a job twice for the
same instant, even with two schedulers at once (the run is claimed in the catalog first).
"""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from medfabric.catalog.schema import volumes
from medfabric.errors import Conflict, InvalidInput, MedfabricError
from medfabric.fs import snapshots as snapshot_rows
from medfabric.fs import volumes as volume_rows
from medfabric.fs.model import Volume
from medfabric.fs.namespace import load_mounts
from medfabric.fs.paths import split_path
from medfabric.replication import jobs as job_rows
from medfabric.replication.jobs import ACTIONS, Job, ScheduleRow
from medfabric.replication.schedule import (
    Rule,
    format_timestamp,
    parse_schedule_json,
    rules_to_json,
    shorthand_rules,
)
from medfabric.service.access import require_admin

if TYPE_CHECKING:
    from medfabric.service.fabric import Fabric

SCHEDULE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,199}$")


@dataclass(frozen=True)
class Schedule:
    id: int
    name: str
    rules: tuple[Rule, ...]
    owner: str
    created_at: int
    modified_at: int
    jobs: tuple[dict[str, Any], ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "rules": [rule.as_json() for rule in self.rules],
            "owner": self.owner,
            "creationtime": self.created_at,
            "modificationtime": self.modified_at,
            "attached": list(self.jobs),
        }


@dataclass(frozen=True)
class JobOutcome:
    """What one due job did during a scheduler pass."""

    schedule: str
    action: str
    volume: str | None
    rules: tuple[str, ...]  # frequencies of the rules that were due
    result: str
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "schedule": self.schedule,
            "action": self.action,
            "volume": self.volume,
            "rules": list(self.rules),
            "result": self.result,
            "error": self.error,
        }


@dataclass(frozen=True)
class RuleSpec:
    """Rules as the caller gave them: MapR's JSON (``-schedule``) or the seed's shorthand."""

    json: str | None = None
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    retain: str | None = None
    time: int = 0

    @property
    def given(self) -> bool:
        return self.json is not None or any((self.hourly, self.daily, self.weekly, self.monthly))


class ScheduleService:
    def __init__(self, fabric: Fabric) -> None:
        self.fabric = fabric

    # -- defining schedules --

    def create(
        self,
        name: str | None,
        spec: RuleSpec,
        *,
        path: str | None = None,
        volume: str | None = None,
        action: str = "snapshot",
    ) -> Schedule:
        """A schedule, attached to ``-path``/``-volume`` (or to a scrub/backup action) if given."""
        fabric = self.fabric
        with fabric.access("schedule create", path=path, volume=volume) as note:
            require_admin(fabric.principal, "create schedules")
            now = fabric.clock.now_ms()
            json_name, rules = self._rules(spec, now)
            name = _check_name(name or json_name or "")
            with fabric.catalog.write() as conn:
                if any(row.name == name for row in job_rows.list_schedules(conn)):
                    raise Conflict(f"schedule {name!r} already exists")
                row = job_rows.insert_schedule(conn, name, rules_to_json(rules), fabric.principal.name, now)
                if volume is not None or path is not None or action != "snapshot":
                    self._attach(conn, row, action, volume, path, now)
                note.detail = f"schedule {name} ({len(rules)} rules)"
                return self._describe(conn, row)

    def _rules(self, spec: RuleSpec, now: int) -> tuple[str | None, list[Rule]]:
        if spec.json is not None:
            if any((spec.hourly, spec.daily, spec.weekly, spec.monthly)):
                raise InvalidInput("give either -schedule (JSON rules) or -hourly/-daily/…, not both")
            return parse_schedule_json(spec.json, now_ms=now)
        return None, shorthand_rules(
            hourly=spec.hourly,
            daily=spec.daily,
            weekly=spec.weekly,
            monthly=spec.monthly,
            retain=spec.retain,
            time=spec.time,
        )

    def list(self) -> builtins.list[Schedule]:
        with self.fabric.access("schedule list"), self.fabric.catalog.read() as conn:
            return [self._describe(conn, row) for row in job_rows.list_schedules(conn)]

    def get(self, reference: str | int) -> Schedule:
        with self.fabric.access("schedule info"), self.fabric.catalog.read() as conn:
            return self._describe(conn, job_rows.find_schedule(conn, reference))

    def modify(
        self,
        reference: str | int,
        *,
        name: str | None = None,
        spec: RuleSpec | None = None,
        path: str | None = None,
        volume: str | None = None,
        action: str | None = None,
    ) -> Schedule:
        """Rename, replace the rules, or attach to one more target. Changed rules start afresh:
        snapshots made under rules that no longer exist keep the expiry they have."""
        fabric = self.fabric
        with fabric.access("schedule modify", path=path, volume=volume):
            require_admin(fabric.principal, "modify schedules")
            now = fabric.clock.now_ms()
            with fabric.catalog.write() as conn:
                row = job_rows.find_schedule(conn, reference)
                values: dict[str, object] = {"modified_at": now}
                if name is not None and name != row.name:
                    values["name"] = _check_name(name)
                    if any(other.name == name for other in job_rows.list_schedules(conn)):
                        raise Conflict(f"schedule {name!r} already exists")
                if spec is not None and spec.given:
                    values["rules"] = rules_to_json(self._rules(spec, now)[1])
                job_rows.update_schedule(conn, row.id, **values)
                row = job_rows.find_schedule(conn, row.id)
                if "rules" in values:
                    for job in job_rows.jobs_of(conn, row.id):
                        job_rows.prune_by_count(conn, job, row.rules)
                if volume is not None or path is not None or action is not None:
                    self._attach(conn, row, action or "snapshot", volume, path, now)
                return self._describe(conn, row)

    def remove(self, reference: str | int) -> None:
        fabric = self.fabric
        with fabric.access("schedule remove") as note:
            require_admin(fabric.principal, "remove schedules")
            with fabric.catalog.write() as conn:
                row = job_rows.find_schedule(conn, reference)
                job_rows.delete_schedule(conn, row.id)
                note.detail = f"schedule {row.name}"

    def attach(
        self,
        reference: str | int,
        action: str = "snapshot",
        *,
        volume: str | None = None,
        path: str | None = None,
    ) -> Schedule:
        """Drive ``action`` by the schedule (``volume modify -schedule``/``-mirrorschedule``)."""
        return self.modify(reference, volume=volume, path=path, action=action)

    def detach(self, action: str, volume: str) -> None:
        """The volume's ``action`` (snapshot or mirror) is no longer scheduled."""
        fabric = self.fabric
        with fabric.access("schedule detach", volume=volume):
            require_admin(fabric.principal, "modify schedules")
            with fabric.catalog.write() as conn:
                found = volume_rows.get_volume(conn, volume)
                job = job_rows.find_job(conn, action, found.id)
                if job is not None:
                    job_rows.delete_job(conn, job.id)

    def _attach(
        self,
        conn: Connection,
        row: ScheduleRow,
        action: str,
        volume: str | None,
        path: str | None,
        now: int,
    ) -> Job:
        if action not in ACTIONS:
            raise InvalidInput(f"a schedule drives one of {', '.join(ACTIONS)}, not {action!r}")
        target = _target_volume(conn, volume, path)
        if action in ("snapshot", "mirror") and target is None:
            raise InvalidInput(f"a {action} schedule needs -path or -volume")
        if action == "backup" and target is not None:
            raise InvalidInput("a catalog backup covers the whole fabric: give no -path or -volume")
        if action == "mirror" and target is not None and target.type != "mirror":
            raise InvalidInput(f"volume {target.name} is not a mirror volume: it has no syncs to schedule")
        return job_rows.attach_job(
            conn,
            row.id,
            action,
            target.id if target else None,
            target.created_at if target else None,
            now,
        )

    def _describe(self, conn: Connection, row: ScheduleRow) -> Schedule:
        names = {int(i): str(n) for i, n in conn.execute(sa.select(volumes.c.id, volumes.c.name))}
        jobs = tuple(
            {"action": job.action, "volume": names.get(job.volume_id) if job.volume_id is not None else None}
            for job in job_rows.jobs_of(conn, row.id)
        )
        return Schedule(row.id, row.name, row.rules, row.owner, row.created_at, row.modified_at, jobs)

    # -- running what is due --

    def run_due(self) -> builtins.list[JobOutcome]:
        """One scheduler pass: run every due job once, then expire snapshots past their retention."""
        fabric = self.fabric
        outcomes: builtins.list[JobOutcome] = []
        with fabric.access("scheduler tick") as note:
            require_admin(fabric.principal, "run scheduled jobs")
            now = fabric.clock.now_ms()
            with fabric.catalog.read() as conn:
                schedules = {row.id: row for row in job_rows.list_schedules(conn)}
                pending = job_rows.jobs_of(conn)
            for job in pending:
                schedule = schedules.get(job.schedule_id)
                if schedule is not None:
                    outcome = self._run_job(schedule, job, now)
                    if outcome is not None:
                        outcomes.append(outcome)
            expired = fabric.snapshots.expire()
            note.detail = f"{len(outcomes)} jobs ran, {len(expired)} snapshots expired"
        return outcomes

    def _run_job(self, schedule: ScheduleRow, job: Job, now: int) -> JobOutcome | None:
        fabric = self.fabric
        try:
            with fabric.catalog.write() as conn:
                volume = _job_volume(conn, job)
                if job.volume_id is not None and volume is None:
                    job_rows.delete_job(conn, job.id)  # its volume is gone
                    return None
                runs = job_rows.last_runs(conn, job)
                due = job_rows.due_rules(schedule.rules, runs, job, now)
                if not due:
                    return None
                if not job_rows.claim_runs(conn, job, due, runs, now):
                    raise _AlreadyRan
                if job.action == "snapshot":
                    assert volume is not None
                    return self._snapshot(conn, schedule, job, volume, due, now)
        except (_AlreadyRan, sa.exc.IntegrityError):
            return None  # another scheduler ran it for this instant
        # Long actions run after the claim has committed; a failure is reported, and the rule
        # tries again at its next instant.
        frequencies = tuple(schedule.rules[index].frequency for index in due)
        volume_name = volume.name if volume is not None else None
        try:
            result = self._long_action(schedule, job, volume_name, due)
        except MedfabricError as error:
            return JobOutcome(schedule.name, job.action, volume_name, frequencies, "failed", error.message)
        return JobOutcome(schedule.name, job.action, volume_name, frequencies, result)

    def _snapshot(
        self,
        conn: Connection,
        schedule: ScheduleRow,
        job: Job,
        volume: Volume,
        due: builtins.list[int],
        now: int,
    ) -> JobOutcome:
        """Take the snapshot, record which rules keep it, prune by count (in the claim's transaction)."""
        frequencies = tuple(schedule.rules[index].frequency for index in due)
        name = f"{schedule.name}.{format_timestamp(now)}"
        if snapshot_rows.find_snapshot(conn, volume.id, name) is not None:
            return JobOutcome(schedule.name, "snapshot", volume.name, frequencies, f"{name} exists")
        expires = job_rows.expiry_for([schedule.rules[index] for index in due], now)
        snapshot = snapshot_rows.create_snapshot(
            conn, volume.id, name, owner=self.fabric.principal.name, now_ms=now, expires_at=expires
        )
        job_rows.record_snapshot(conn, job, due, snapshot.id, now)
        removed = job_rows.prune_by_count(conn, job, schedule.rules)
        result = f"created {name}" + (f"; removed {', '.join(removed)}" if removed else "")
        return JobOutcome(schedule.name, "snapshot", volume.name, frequencies, result)

    def _long_action(
        self, schedule: ScheduleRow, job: Job, volume: str | None, due: builtins.list[int]
    ) -> str:
        fabric = self.fabric
        if job.action == "mirror":
            assert volume is not None
            synced = fabric.mirrors.start(volume)
            return f"synced {synced.snapshot} ({synced.blobs_sent} blobs, {synced.bytes_sent} bytes sent)"
        if job.action == "scrub":
            report = fabric.scrub.run(volume=volume, repair=True)
            return report.summary()
        keep = [schedule.rules[index].retain_count for index in due]
        counts = [count for count in keep if count is not None]
        backup = fabric.backups.backup(keep=max(counts) if counts else None)
        return f"catalog backup {backup.name}"


class _AlreadyRan(Exception):
    """Another scheduler claimed this run first."""


def _check_name(name: str) -> str:
    if not SCHEDULE_NAME.match(name):
        raise InvalidInput(
            f"invalid schedule name {name!r}: letters, digits, '_' and '-' (up to 200), "
            "starting with a letter, digit or '_'"
        )
    return name


def _target_volume(conn: Connection, volume: str | None, path: str | None) -> Volume | None:
    if volume is not None and path is not None:
        raise InvalidInput("give -path or -volume, not both")
    if volume is not None:
        return volume_rows.get_volume(conn, volume)
    if path is None:
        return None
    components = split_path(path)
    mounted = load_mounts(conn).by_path.get(components)
    if mounted is None:
        raise InvalidInput(f"no volume is mounted at {path} (give the volume's mount path or -volume)")
    return mounted


def _job_volume(conn: Connection, job: Job) -> Volume | None:
    if job.volume_id is None:
        return None
    row = conn.execute(sa.select(volumes).where(volumes.c.id == job.volume_id)).first()
    if row is None:
        return None
    found = Volume.from_row(row)
    return found if found.created_at == job.volume_created_at else None
