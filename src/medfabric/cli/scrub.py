"""`medfabric scrub [-volume V] [-repair]`."""

from __future__ import annotations

import sys

import click

from medfabric.cli.common import MaprCommand, envelope, fail, json_option, open_fabric, opt, print_json


@click.command("scrub", cls=MaprCommand)
@opt("volume", help="Only this volume's packs.")
@opt("repair", is_flag=True, help="Rewrite bad replicas, add missing ones, recover blobs from mirrors.")
@json_option
def scrub(volume: str | None, repair: bool, json: bool) -> None:
    """Read every replica of every blob and verify it; exit 1 if anything is (still) wrong.

    Example: medfabric scrub -volume mri_studies -repair
    """
    from medfabric.errors import MedfabricError

    try:
        with open_fabric() as fabric:
            report = fabric.scrub.run(volume=volume, repair=repair)
    except MedfabricError as error:
        sys.exit(fail(error, json))
    unrepaired = bool(report.unrecoverable or report.under_replicated or report.busy) or (
        bool(report.problems) and not repair
    )
    if json:
        print_json(envelope([report.as_json()], status="ERROR" if unrepaired else "OK"))
    else:
        for problem in report.problems:
            where = f"pack {problem.pack_id} at location {problem.location_id}"
            click.echo(f"BAD: {where}: {problem.problem}: {problem.detail}")
        for item in report.repaired:
            click.echo(f"REPAIRED: pack {item['pack']} at location {item['location']}: {item['action']}")
        for item in report.under_replicated:
            have = f"{item['replicas']} of {item['wanted']} replicas"
            click.echo(f"UNDER-REPLICATED: pack {item['pack']} ({item['volume']}): {have}")
        for item in report.recovered:
            click.echo(f"RECOVERED: blob {item['blob'][:16]}… of {item['volume']} from a {item['from']}")
        for item in report.unrecoverable:
            click.echo(f"LOST: blob {item['blob'][:16]}… of {item['volume']}, used by:")
            for path in item["paths"]:
                click.echo(f"  {path}")
        for pack in report.busy:
            click.echo(f"BUSY: pack {pack} is being written: repair it later")
        click.echo(f"scrub: {report.summary()}")
    sys.exit(1 if unrepaired else 0)
