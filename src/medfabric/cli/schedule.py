"""`medfabric schedule …`: create, list, info, modify, remove."""

from __future__ import annotations

from typing import Any

import click

from medfabric.cli.common import command, emit, json_option, open_fabric, opt, print_fields, print_table

ACTIONS = click.Choice(["snapshot", "mirror", "scrub", "backup"])


@click.group("schedule")
def schedule() -> None:
    """Schedules: when snapshots are taken (and mirrors synced, scrubs and catalog backups run)."""


def _rules(
    schedule_json: str | None,
    hourly: int,
    daily: int,
    weekly: int,
    monthly: int,
    retain: str | None,
    time: int,
) -> Any:
    from medfabric.service.schedules import RuleSpec

    return RuleSpec(schedule_json, hourly, daily, weekly, monthly, retain, time)


def _row(found: Any) -> dict[str, Any]:
    document: dict[str, Any] = found.as_json()
    return document


def _rules_text(document: dict[str, Any]) -> str:
    return "; ".join(",".join(f"{key}={value}" for key, value in rule.items()) for rule in document["rules"])


def _attached_text(document: dict[str, Any]) -> str:
    return ", ".join(
        f"{item['action']}:{item['volume']}" if item["volume"] else item["action"]
        for item in document["attached"]
    )


RULE_OPTIONS = [
    opt(
        "schedule",
        dest="schedule_json",
        help='MapR\'s JSON form, e.g. \'{"rules":[{"frequency":"daily","retain":"7d","time":2}]}\'.',
    ),
    opt("hourly", type=click.IntRange(0), default=0, help="A snapshot every N hours (0: none)."),
    opt("daily", type=click.IntRange(0), default=0, help="A snapshot every N days (0: none)."),
    opt("weekly", type=click.IntRange(0), default=0, help="A snapshot every N weeks, on Sundays (0: none)."),
    opt(
        "monthly", type=click.IntRange(0), default=0, help="A snapshot every N months, on the 1st (0: none)."
    ),
    opt("retain", help="Keep N snapshots per rule (7), or each for a time (7d, 12h, 1y)."),
    opt(
        "time",
        type=click.IntRange(0, 23),
        default=0,
        help="Hour of day (UTC) of daily, weekly, monthly rules.",
    ),
]


def rule_options(function: Any) -> Any:
    for decorate in reversed(RULE_OPTIONS):
        function = decorate(function)
    return function


@command(schedule, "create")
@opt("name", help="The schedule's name (or give it in -schedule's JSON).")
@rule_options
@opt("path", help="Attach to the volume mounted here, e.g. /mri_studies.")
@opt("volume", help="Attach to this volume.")
@opt("action", type=ACTIONS, default="snapshot", help="What it drives (default: snapshots).")
@json_option
def create(
    name: str | None,
    schedule_json: str | None,
    hourly: int,
    daily: int,
    weekly: int,
    monthly: int,
    retain: str | None,
    time: int,
    path: str | None,
    volume: str | None,
    action: str,
    json: bool,
) -> None:
    """Create a schedule (and attach it to a volume).

    Example: medfabric schedule create -name daily_mri_snapshot -path /mri_studies -daily 1 -retain 7

    Example: medfabric schedule create -volume mri_studies
    -schedule '{"name":"nightly","rules":[{"frequency":"daily","retain":"7d","time":2}]}'
    """
    with open_fabric() as fabric:
        made = fabric.schedules.create(
            name,
            _rules(schedule_json, hourly, daily, weekly, monthly, retain, time),
            path=path,
            volume=volume,
            action=action,
        )
    document = _row(made)
    emit(json, [document], f"Created schedule {made.name} (id {made.id})")


@command(schedule, "list")
@json_option
def list_schedules(json: bool) -> None:
    """List schedules with their rules and what they drive."""
    with open_fabric() as fabric:
        rows = [_row(found) for found in fabric.schedules.list()]
    table = [{**row, "rules": _rules_text(row), "attached": _attached_text(row)} for row in rows]
    emit(json, rows, lambda: print_table(table, ["id", "name", "rules", "attached"]))


@command(schedule, "info")
@opt("id", dest="schedule_id", required=True, help="The schedule's id or name.")
@json_option
def info(schedule_id: str, json: bool) -> None:
    """Show one schedule."""
    with open_fabric() as fabric:
        document = _row(fabric.schedules.get(schedule_id))
    shown = {**document, "rules": _rules_text(document), "attached": _attached_text(document)}
    emit(json, [document], lambda: print_fields(shown))


@command(schedule, "modify")
@opt("id", dest="schedule_id", required=True, help="The schedule's id or name.")
@opt("name", help="A new name.")
@rule_options
@opt("path", help="Also attach to the volume mounted here.")
@opt("volume", help="Also attach to this volume.")
@opt("action", type=ACTIONS, help="What the new attachment drives (default: snapshots).")
@json_option
def modify(
    schedule_id: str,
    name: str | None,
    schedule_json: str | None,
    hourly: int,
    daily: int,
    weekly: int,
    monthly: int,
    retain: str | None,
    time: int,
    path: str | None,
    volume: str | None,
    action: str | None,
    json: bool,
) -> None:
    """Rename a schedule, replace its rules, or attach it to one more target.

    Example: medfabric schedule modify -id daily_mri_snapshot -daily 1 -retain 14d
    """
    with open_fabric() as fabric:
        changed = fabric.schedules.modify(
            schedule_id,
            name=name,
            spec=_rules(schedule_json, hourly, daily, weekly, monthly, retain, time),
            path=path,
            volume=volume,
            action=action,
        )
    emit(json, [_row(changed)], f"Modified schedule {changed.name}")


@command(schedule, "remove")
@opt("id", dest="schedule_id", required=True, help="The schedule's id or name.")
@json_option
def remove(schedule_id: str, json: bool) -> None:
    """Remove a schedule (the snapshots it made stay, with their expiry)."""
    with open_fabric() as fabric:
        fabric.schedules.remove(schedule_id)
    emit(json, [], f"Removed schedule {schedule_id}")
