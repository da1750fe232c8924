"""`medfabric fsck` and `medfabric gc`."""

from __future__ import annotations

import sys

import click

from medfabric.cli.common import (
    MaprCommand,
    emit,
    envelope,
    fail,
    json_option,
    open_fabric,
    opt,
    print_fields,
    print_json,
)


@click.command("fsck", cls=MaprCommand)
@json_option
def fsck(json: bool) -> None:
    """Check catalog, blob index and packs; exit 1 if anything is inconsistent.

    Example: medfabric fsck -json
    """
    from medfabric.errors import MedfabricError

    try:
        with open_fabric() as fabric:
            problems = fabric.admin.fsck()
    except MedfabricError as error:
        sys.exit(fail(error, json))
    errors = [problem for problem in problems if problem.severity == "error"]
    if json:
        print_json(envelope([problem.as_json() for problem in problems], status="ERROR" if errors else "OK"))
    else:
        for problem in problems:
            click.echo(f"{problem.severity.upper()}: {problem.kind}: {problem.subject}: {problem.detail}")
        click.echo(f"fsck: {len(errors)} error(s), {len(problems) - len(errors)} warning(s)")
    sys.exit(1 if errors else 0)


@click.command("gc", cls=MaprCommand)
@opt("grace", type=click.IntRange(0), help="Grace period in seconds (default mfs.gc.grace.period.seconds).")
@json_option
def gc(grace: int | None, json: bool) -> None:
    """Reclaim blobs and packs no file or snapshot reaches; compact packs that are mostly dead."""
    from medfabric.errors import MedfabricError

    try:
        with open_fabric() as fabric:
            report = fabric.admin.gc(grace_seconds=grace).as_json()
    except MedfabricError as error:
        sys.exit(fail(error, json))
    emit(json, [report], lambda: print_fields(report))
