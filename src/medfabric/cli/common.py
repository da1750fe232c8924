"""What every command shares: MapR-style options, the JSON envelope, errors and exit codes.

Every option is declared in MapR's single-dash form (``-name``) and the POSIX form (``--name``);
``-json`` prints ``{"status", "timestamp", "total", "data", "errors"}`` with typed fields.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from medfabric.service.fabric import Fabric

F = TypeVar("F", bound=Callable[..., Any])


def opt(name: str, *extra: str, dest: str | None = None, **kwargs: Any) -> Callable[[F], F]:
    """An option accepted as ``-name`` and ``--name`` (plus any short forms given in ``extra``)."""
    return click.option(f"-{name}", f"--{name}", *extra, dest or name.replace("-", "_"), **kwargs)


json_option = opt("json", is_flag=True, help="Print one JSON object: the MapR-style envelope.")


def _to_bool(ctx: click.Context, param: click.Parameter, value: Any) -> bool | None:
    """MapR's booleans: 1/0, true/false, yes/no."""
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise click.BadParameter(f"{value!r} is not a boolean (use 1/0 or true/false)", ctx, param)


BOOL: dict[str, Any] = {"callback": _to_bool, "metavar": "1|0"}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def envelope(
    data: Sequence[Any],
    *,
    status: str = "OK",
    errors: Sequence[dict[str, Any]] = (),
    messages: Sequence[str] = (),
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "status": status,
        "timestamp": now_ms(),
        "total": len(data),
        "data": list(data),
    }
    if errors:
        document["errors"] = list(errors)
    if messages:
        document["messages"] = list(messages)
    return document


def print_json(document: Any) -> None:
    click.echo(json.dumps(document, ensure_ascii=False, default=str))


def emit(
    as_json: bool,
    data: Sequence[Any],
    text: Callable[[], None] | str | None = None,
    *,
    messages: Sequence[str] = (),
) -> None:
    """Print a command's result: the envelope with -json, else the human form."""
    if as_json:
        print_json(envelope(data, messages=messages))
        return
    for message in messages:
        click.echo(f"Warning: {message}", err=True)
    if callable(text):
        text()
    elif text:
        click.echo(text)


def print_table(rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> None:
    """Columns padded to their widest cell; never truncated (output is often piped)."""
    cells = [
        [("" if row.get(column) is None else str(row.get(column))) for column in columns] for row in rows
    ]
    widths = [
        max([len(column), *(len(line[index]) for line in cells)]) for index, column in enumerate(columns)
    ]
    click.echo("  ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True)).rstrip())
    for line in cells:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def print_fields(document: dict[str, Any]) -> None:
    width = max((len(key) for key in document), default=0)
    for key, value in document.items():
        if isinstance(value, dict):
            click.echo(f"{key}:")
            for inner, inner_value in value.items():
                click.echo(f"  {inner:<{width}}  {inner_value}")
        else:
            click.echo(f"{key:<{width}}  {'' if value is None else value}")


def fail(error: BaseException, as_json: bool) -> int:
    """Report an error the way the command's caller asked; return the exit code."""
    from medfabric.errors import MedfabricError, exit_code_for

    if isinstance(error, MedfabricError):
        code, description = exit_code_for(error), error.message
        kind = error.code
    else:
        code, description, kind = 1, f"{type(error).__name__}: {error}", "InternalError"
    if as_json:
        print_json(envelope([], status="ERROR", errors=[{"id": code, "type": kind, "desc": description}]))
    else:
        click.echo(f"ERROR ({kind}): {description}", err=True)
    return code


class MaprCommand(click.Command):
    """Rejects an unknown single-dash long option by its whole name (``-bogus``), where click
    would take it for a cluster of short flags and complain about ``-b``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        flags: set[str] = set()
        valued: set[str] = set()
        for param in self.get_params(ctx):
            if isinstance(param, click.Option):
                names = {*param.opts, *param.secondary_opts}
                (flags if param.is_flag or param.count else valued).update(names)
        expecting_value = False
        for arg in args:
            if arg == "--":
                break
            if expecting_value:
                expecting_value = False
                continue
            name = arg.split("=", 1)[0]
            if name in valued:
                expecting_value = "=" not in arg
                continue
            if name in flags or not arg.startswith("-") or arg.startswith("--") or len(arg) <= 2:
                continue
            if arg[1].isdigit():
                continue
            shorts = {flag[1] for flag in flags | valued if len(flag) == 2}
            if not set(arg[1:]) <= shorts:
                raise click.NoSuchOption(name, ctx=ctx)
        return super().parse_args(ctx, args)


def command(group: click.Group, name: str, **kwargs: Any) -> Callable[[F], F]:
    """A subcommand whose MedfabricErrors become messages (or envelopes) and exit codes."""

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args: Any, **params: Any) -> Any:
            from medfabric.errors import MedfabricError

            try:
                return function(*args, **params)
            except MedfabricError as error:
                sys.exit(fail(error, bool(params.get("json"))))

        return group.command(name, cls=MaprCommand, **kwargs)(wrapper)  # type: ignore[return-value]

    return decorate


def open_fabric() -> Fabric:
    from medfabric.service.fabric import open_fabric as open_service

    return open_service(interface="cli")
