"""`medfabric config save | load`: the fabric's settings, after MapR's names."""

from __future__ import annotations

import click

from medfabric.cli.common import command, emit, json_option, open_fabric, opt, print_fields


@click.group("config")
def config() -> None:
    """Fabric-wide settings (shared by every process on the catalog)."""


@command(config, "save")
@opt("values", required=True, help="A JSON object of settings.")
@json_option
def save(values: str, json: bool) -> None:
    """Save settings.

    Example: medfabric config save -values '{"mfs.enable.small.file.optimization":"1"}'
    """
    with open_fabric() as fabric:
        saved = fabric.admin.config_save(values)
    emit(json, [saved], lambda: print_fields(saved))


@command(config, "load")
@opt("keys", help="Comma-separated keys (default: all).")
@json_option
def load(keys: str | None, json: bool) -> None:
    """Show settings.

    Example: medfabric config load -keys mfs.enable.audit.log
    """
    with open_fabric() as fabric:
        settings = fabric.admin.config_load([k.strip() for k in keys.split(",")] if keys else None)
    emit(json, [settings], lambda: print_fields(settings))
