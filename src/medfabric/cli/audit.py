"""`medfabric audit …`: turn auditing on, verify the chain, query records, export FHIR AuditEvents."""

from __future__ import annotations

import json as jsonlib
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from medfabric.cli.common import BOOL, command, emit, json_option, open_fabric, opt, print_json


@click.group("audit")
def audit() -> None:
    """The tamper-evident audit trail (HIPAA audit controls)."""


@command(audit, "cluster")
@opt("enabled", required=True, **BOOL)
@json_option
def cluster(enabled: bool, json: bool) -> None:
    """Audit management operations (volumes, ACLs, users, configuration).

    Example: medfabric audit cluster -enabled true
    """
    with open_fabric() as fabric:
        fabric.audit.cluster(enabled)
    emit(json, [{"cluster": enabled}], f"Cluster auditing {'on' if enabled else 'off'}")


@command(audit, "data")
@opt("enabled", required=True, **BOOL)
@opt("volume", required=True)
@opt("dataauditops", help="Operations to leave out (-getattr) or put back (+read), comma-separated.")
@opt(
    "coalesce",
    type=int,
    help="Minutes during which repeated reads, writes and getattrs of a file by one principal and "
    "client are recorded once (default 0: every access).",
)
@json_option
def data(enabled: bool, volume: str, dataauditops: str | None, coalesce: int | None, json: bool) -> None:
    """Audit every access to a volume's data, allowed or denied.

    Example: medfabric audit data -enabled true -volume medical_images -dataauditops -getattr
    """
    with open_fabric() as fabric:
        found = fabric.audit.data(volume, enabled, dataauditops, coalesce)
    emit(
        json,
        [
            {
                "volumename": found.name,
                "audited": found.audited,
                "dataauditops": found.audit_ops,
                "coalesce": found.audit_coalesce,
            }
        ],
        f"Data auditing of {volume} {'on' if enabled else 'off'}",
    )


@command(audit, "verify")
@json_option
def verify(json: bool) -> None:
    """Check the whole chain; exit 1 and name the first bad record on any change, deletion,
    reordering or truncation."""
    with open_fabric() as fabric:
        check = fabric.audit.verify()
    document = check.as_json()
    if json:
        print_json(
            {"status": "OK" if check.ok else "ERROR", "timestamp": _now_ms(), "total": 1, "data": [document]}
        )
    elif check.ok:
        click.echo(f"audit log verified: {document['records']} records, head seq {document['head']}")
    else:
        click.echo(
            f"audit log BROKEN at seq {document['firstBadSeq']} ({document['failure']}): "
            f"{document['reason']}",
            err=True,
        )
    sys.exit(0 if check.ok else 1)


def _now_ms() -> int:
    import time

    return time.time_ns() // 1_000_000


def _time(text: str | None) -> int | None:
    """ISO 8601 (2026-11-25, 2026-11-25T10:00:00Z) or milliseconds since the epoch → µs."""
    if text is None:
        return None
    if text.isdigit():
        return int(text) * 1000
    from medfabric.errors import InvalidInput

    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise InvalidInput(f"cannot read the time {text!r}: use ISO 8601 or milliseconds") from error
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000)


FILTERS = [
    opt("user", help="Only this principal's accesses."),
    opt("volume"),
    opt("path", help="A path, or a directory and everything below it."),
    opt("patient", help="A PatientID."),
    opt("op", dest="operation", help="An operation (read, write, delete, getattr, …)."),
    opt("outcome", type=click.Choice(["allowed", "denied"])),
    opt("from", dest="since", help="From this time (ISO 8601 or ms)."),
    opt("to", dest="until", help="Up to this time (exclusive)."),
    opt("limit", type=click.IntRange(1)),
]


F = TypeVar("F", bound=Callable[..., Any])


def _filters(function: F) -> F:
    for decorator in reversed(FILTERS):
        function = decorator(function)
    return function


@command(audit, "query")
@_filters
@json_option
def query(json: bool, since: str | None, until: str | None, **filters: object) -> None:
    """Find audit records.

    Example: medfabric audit query -patient MF0000109 -outcome denied -json
    """
    with open_fabric() as fabric:
        records = fabric.audit.query(since_us=_time(since), until_us=_time(until), **filters)  # type: ignore[arg-type]
    rows = [jsonlib.loads(record.canonical_bytes()) for record in records]
    for row in rows:
        row.pop("v", None)
        row["time"] = datetime.fromtimestamp(row["time_us"] / 1e6, UTC).isoformat()

    def text() -> None:
        for row in rows:
            click.echo(
                f"{row['seq']:>6} {row['time']} {row['principal']:<12} {row['interface']:<8} "
                f"{row['operation']:<14} {row['outcome']:<7} {row['path'] or row['volume'] or ''}"
            )

    emit(json, rows, text)


@command(audit, "export")
@opt(
    "format",
    dest="fmt",
    default="fhir",
    type=click.Choice(["fhir"]),
    help="fhir: an R4 Bundle of AuditEvents.",
)
@_filters
@opt("json", is_flag=True, hidden=True)
def export(fmt: str, json: bool, since: str | None, until: str | None, **filters: object) -> None:
    """Export records as FHIR R4 AuditEvent resources (after IHE BALP), one Bundle on stdout."""
    del fmt, json
    with open_fabric() as fabric:
        bundle = fabric.audit.export_fhir(since_us=_time(since), until_us=_time(until), **filters)
    click.echo(jsonlib.dumps(bundle, ensure_ascii=False, indent=1))
