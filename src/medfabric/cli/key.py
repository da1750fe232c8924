"""`medfabric key rotate`: a new master key; volume keys are re-wrapped, data is not rewritten."""

from __future__ import annotations

import click

from medfabric.cli.common import command, emit, json_option, open_fabric


@click.group("key")
def key() -> None:
    """The fabric's master key."""


@command(key, "rotate")
@json_option
def rotate(json: bool) -> None:
    """Make a new master key and re-wrap every volume key with it (the old key is kept in <home>/keys)."""
    with open_fabric() as fabric:
        key_id = fabric.encryption.rotate_master_key()
    emit(json, [{"masterkey": key_id}], f"New master key {key_id}; volume keys re-wrapped")
