"""`medfabric user | group | role …`: the fabric's principals."""

from __future__ import annotations

import sys

import click

from medfabric.cli.common import command, emit, json_option, open_fabric, opt, print_table


def _names(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _read_password(from_stdin: bool, prompt: bool) -> str | None:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
        return password
    if prompt:
        return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))
    return None


@click.group("user")
def user() -> None:
    """Users of the fabric (MEDFABRIC_USER picks who acts in embedded mode)."""


@command(user, "add")
@click.argument("name")
@opt("groups", help="Comma-separated groups (created if new).")
@opt("roles", help="Comma-separated roles (created if new).")
@opt(
    "password-stdin",
    dest="password_stdin",
    is_flag=True,
    help="Read a password from the first line of stdin.",
)
@json_option
def add(name: str, groups: str | None, roles: str | None, password_stdin: bool, json: bool) -> None:
    """Add a user.

    Example: medfabric user add alice -groups radiology -roles radiologist
    """
    password = _read_password(password_stdin, prompt=False)
    with open_fabric() as fabric:
        info = fabric.security.user_add(
            name, member_of=_names(groups), roles=_names(roles), password=password
        )
    emit(json, [info.as_json()], f"Added user {name}")


@command(user, "modify")
@click.argument("name")
@opt("groups", help="The user's groups (replaces them).")
@opt("roles", help="The user's roles (replaces them).")
@json_option
def modify(name: str, groups: str | None, roles: str | None, json: bool) -> None:
    """Change a user's groups and roles."""
    with open_fabric() as fabric:
        info = fabric.security.user_modify(
            name,
            member_of=None if groups is None else _names(groups),
            roles=None if roles is None else _names(roles),
        )
    emit(json, [info.as_json()], f"Modified user {name}")


@command(user, "list")
@json_option
def list_users(json: bool) -> None:
    """List users with their groups and roles."""
    with open_fabric() as fabric:
        rows = [info.as_json() for info in fabric.security.user_list()]
    shown = [
        {**row, "groups": ",".join(row["groups"]), "roles": ",".join(row["roles"])}  # type: ignore[arg-type]
        for row in rows
    ]
    emit(json, rows, lambda: print_table(shown, ["name", "groups", "roles", "password", "tokens"]))


@command(user, "remove")
@click.argument("name")
@json_option
def remove(name: str, json: bool) -> None:
    """Remove a user (and their tokens)."""
    with open_fabric() as fabric:
        fabric.security.user_remove(name)
    emit(json, [], f"Removed user {name}")


@command(user, "passwd")
@click.argument("name")
@opt(
    "password-stdin",
    dest="password_stdin",
    is_flag=True,
    help="Read the password from the first line of stdin.",
)
@json_option
def passwd(name: str, password_stdin: bool, json: bool) -> None:
    """Set a user's password (stored as an argon2 hash)."""
    password = _read_password(password_stdin, prompt=True)
    assert password is not None
    with open_fabric() as fabric:
        fabric.security.passwd(name, password)
    emit(json, [], f"Password of {name} changed")


@click.group("token")
def token() -> None:
    """API tokens for the fabric's servers."""


user.add_command(token)


@command(token, "create")
@click.argument("name")
@opt("description", default="", help="What the token is for.")
@opt("expires", help="Lifetime, e.g. 90d (default: no expiry).")
@json_option
def token_create(name: str, description: str, expires: str | None, json: bool) -> None:
    """Create an API token; it is shown once (only its hash is kept)."""
    from medfabric.units import parse_duration_ms

    with open_fabric() as fabric:
        expires_at = fabric.clock.now_ms() + parse_duration_ms(expires, what="lifetime") if expires else None
        issued = fabric.security.token_create(name, description=description, expires_at=expires_at)
    emit(json, [{"user": name, "token": issued, "expires": expires_at}], issued)


def _group_family(kind: str) -> click.Group:
    @click.group(
        kind,
        help=f"{kind.capitalize()}s of users (ACEs name them as {'g' if kind == 'group' else 'r'}:NAME).",
    )
    def family() -> None:
        pass

    @command(family, "add")
    @click.argument("name")
    @json_option
    def add_group(name: str, json: bool) -> None:
        with open_fabric() as fabric:
            fabric.security.group_add(name, kind=kind)
        emit(json, [], f"Added {kind} {name}")

    @command(family, "remove")
    @click.argument("name")
    @json_option
    def remove_group(name: str, json: bool) -> None:
        with open_fabric() as fabric:
            fabric.security.group_remove(name, kind=kind)
        emit(json, [], f"Removed {kind} {name}")

    @command(family, "list")
    @json_option
    def list_groups(json: bool) -> None:
        with open_fabric() as fabric:
            rows = fabric.security.group_list(kind=kind)
        shown = [{"name": row["name"], "members": ",".join(row["members"])} for row in rows]  # type: ignore[arg-type]
        emit(json, rows, lambda: print_table(shown, ["name", "members"]))

    for verb, granted in (("grant", True), ("revoke", False)):

        def change(name: str, user_name: str, json: bool, granted: bool = granted) -> None:
            with open_fabric() as fabric:
                info = fabric.security.grant(user_name, name, kind=kind, granted=granted)
            emit(
                json,
                [info.as_json()],
                f"{'Granted' if granted else 'Revoked'} {kind} {name} "
                f"{'to' if granted else 'from'} {user_name}",
            )

        command(family, verb)(
            json_option(opt("user", dest="user_name", required=True)(click.argument("name")(change)))
        )
    return family


group = _group_family("group")
role = _group_family("role")
