"""`medfabric acl edit | set | show`: MapR's ACLs on the fabric and on volumes."""

from __future__ import annotations

import click

from medfabric.cli.common import command, emit, json_option, open_fabric, opt


@click.group("acl")
def acl() -> None:
    """Access control lists: who may administer the fabric or a volume, and read or write its data."""


def _rows(found: object) -> list[dict[str, object]]:
    from medfabric.security.acl import Acl

    assert isinstance(found, Acl)
    return [{"principal": who, "codes": list(codes)} for who, codes in found.rows()]


def _change(
    acl_type: str, name: str | None, user: str | None, group: str | None, json: bool, replace: bool
) -> None:
    with open_fabric() as fabric:
        updated = fabric.security.acl_change(acl_type, volume=name, user=user, group=group, replace=replace)
    emit(json, _rows(updated), updated.format())


@command(acl, "edit")
@opt("type", dest="acl_type", required=True, type=click.Choice(["cluster", "volume"]))
@opt("name", help="The volume (with -type volume).")
@opt("user", help='Users and codes, e.g. "radiologist:fc,data_scientist:r".')
@opt("group", help='Groups and codes, e.g. "radiology:r".')
@json_option
def edit(acl_type: str, name: str | None, user: str | None, group: str | None, json: bool) -> None:
    """Add codes to an ACL.

    Example: medfabric acl edit -type volume -name mri_studies -user radiologist:fc,data_scientist:r
    """
    _change(acl_type, name, user, group, json, replace=False)


@command(acl, "set")
@opt("type", dest="acl_type", required=True, type=click.Choice(["cluster", "volume"]))
@opt("name")
@opt("user")
@opt("group")
@json_option
def set_acl(acl_type: str, name: str | None, user: str | None, group: str | None, json: bool) -> None:
    """Replace an ACL with exactly the codes given."""
    _change(acl_type, name, user, group, json, replace=True)


@command(acl, "show")
@opt("type", dest="acl_type", required=True, type=click.Choice(["cluster", "volume"]))
@opt("name")
@json_option
def show(acl_type: str, name: str | None, json: bool) -> None:
    """Print an ACL."""
    with open_fabric() as fabric:
        found = fabric.security.acl_show(acl_type, name)
    emit(json, _rows(found), found.format())
