"""The `medfabric` entry point: a group whose command families load only when used.

Importing this module must stay cheap: `medfabric --help` answers in well under half a second.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

FAMILIES: dict[str, tuple[str, str]] = {
    "init": ("medfabric.cli.init", "Create a fabric (config, catalog, data directories, root volume)."),
    "volume": ("medfabric.cli.volume", "Create, change, inspect and remove volumes."),
    "fs": ("medfabric.cli.fs", "Files and directories: put, get, cat, ls, stat, mkdir, rm, mv."),
    "config": ("medfabric.cli.config", "Save and load the fabric's settings."),
    "node": ("medfabric.cli.node", "The hosts that serve the fabric."),
    "dashboard": ("medfabric.cli.dashboard", "A summary of the fabric: volumes, capacity, alarms."),
    "alarm": ("medfabric.cli.alarm", "Conditions an operator should see."),
    "fsck": ("medfabric.cli.ops", "Check catalog, blob index and packs for consistency."),
    "gc": ("medfabric.cli.ops", "Reclaim space no file or snapshot uses."),
    "dicom": ("medfabric.cli.dicom", "DICOM: import, watch a drop folder, find, de-identify."),
    "demo": ("medfabric.cli.demo", "Generate a realistic DICOM corpus, or run the whole demo."),
    "table": ("medfabric.cli.table", "JSON tables (MapR-DB JSON): create, index, insert, find."),
    "user": ("medfabric.cli.user", "Users, their groups and roles, passwords and API tokens."),
    "group": ("medfabric.cli.user", "Groups of users."),
    "role": ("medfabric.cli.user", "Roles of users."),
    "acl": ("medfabric.cli.acl", "Access control lists of the fabric and of volumes."),
    "key": ("medfabric.cli.key", "The master key that wraps the volumes' encryption keys."),
    "audit": ("medfabric.cli.audit", "The tamper-evident audit trail: enable, verify, query, export."),
    "lineage": ("medfabric.cli.lineage", "Where data came from and what was derived from it."),
    "schedule": ("medfabric.cli.schedule", "Schedules: snapshots, mirror syncs, scrubs, catalog backups."),
    "scheduler": ("medfabric.cli.scheduler", "Run what schedules say is due: run (a loop) or tick (cron)."),
    "remote": ("medfabric.cli.remote", "Other fabrics, registered by name (mirror sources and targets)."),
    "mirror": ("medfabric.cli.mirror", "Mirror volumes, here or in another fabric: create, verify, list."),
    "scrub": ("medfabric.cli.scrub", "Verify every replica of every blob; -repair mends what it can."),
    "catalog": ("medfabric.cli.catalog", "Catalog backups in the blob store, restore, blob index rebuild."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(FAMILIES)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        entry = FAMILIES.get(name)
        if entry is None:
            return None
        module = importlib.import_module(entry[0])
        found: click.Command = getattr(module, name.replace("-", "_"))
        return found

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, FAMILIES[name][1]) for name in sorted(FAMILIES)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help", "-help"]})
@click.version_option("0.1.0", "-version", "--version", prog_name="medfabric")
def cli() -> None:
    """medfabric: a data fabric for medical imaging.

    Options take MapR's single-dash form (-name x) or the POSIX form (--name x); every command
    takes -json. The fabric is $MEDFABRIC_HOME (default ~/.medfabric); MEDFABRIC_USER names the
    acting user (default: the OS user).
    """


def main(argv: list[str] | None = None) -> Any:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return cli.main(args=args, prog_name="medfabric", standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as error:
        if "-json" in args or "--json" in args:
            from medfabric.cli.common import envelope, print_json

            print_json(
                envelope(
                    [],
                    status="ERROR",
                    errors=[{"id": error.exit_code, "type": "UsageError", "desc": error.format_message()}],
                )
            )
        else:
            error.show()
        sys.exit(error.exit_code)
    except Exception as error:
        from medfabric.cli.common import fail
        from medfabric.errors import MedfabricError

        if not isinstance(error, MedfabricError) and "MEDFABRIC_DEBUG" in __import__("os").environ:
            raise
        sys.exit(fail(error, "-json" in args or "--json" in args))


if __name__ == "__main__":
    main()
