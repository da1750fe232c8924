"""`medfabric fs …`: put, get, cat, ls, stat, mkdir, rm, mv between local files and the fabric."""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import click

from medfabric.cli.common import command, emit, json_option, open_fabric, opt, print_fields

if TYPE_CHECKING:
    from medfabric.fs.model import FileStat
    from medfabric.service.fabric import Fabric

BATCH_BYTES = 32 * 1024 * 1024
BATCH_FILES = 1024
LARGE_FILE = 4 * 1024 * 1024


@click.group("fs")
def fs() -> None:
    """Files and directories in the fabric's namespace."""


def _join(base: str, name: str) -> str:
    return base.rstrip("/") + "/" + name


def _is_dir(fabric: Fabric, path: str) -> bool:
    from medfabric.errors import NotFound

    try:
        return fabric.fs.stat(path).type == "directory"
    except NotFound:
        return False


@command(fs, "put")
@click.option("-r", "-R", "--recursive", "recursive", is_flag=True, help="Copy a directory tree.")
@click.option("-f", "--force", "force", is_flag=True, help="Replace files that exist.")
@click.argument("source")
@click.argument("destination")
@json_option
def put(recursive: bool, force: bool, source: str, destination: str, json: bool) -> None:
    """Copy a local file (or '-' for standard input), or with -r a directory, into the fabric.

    Example: medfabric fs put -r ./exports /mri_studies/incoming
    """
    with open_fabric() as fabric:
        if source == "-":
            stat = fabric.fs.write(destination, sys.stdin.buffer, overwrite=force)
            emit(json, [stat.as_json()], f"Stored {stat.size} bytes at {stat.path}")
            return
        local = Path(source)
        if local.is_dir():
            if not recursive:
                raise click.UsageError(f"{source} is a directory (use -r)")
            target = _join(destination, local.name) if _is_dir(fabric, destination) else destination
            written, errors = _put_tree(fabric, local, target, force=force, show_progress=not json)
            document = {"source": str(local), "destination": target, "files": written, "errors": errors}
            emit(
                json,
                [document],
                f"Stored {written} files under {target}" + (f"; {len(errors)} failed" if errors else ""),
            )
            for path, reason in errors.items():
                click.echo(f"ERROR: {path}: {reason}", err=True)
            if errors:
                sys.exit(1)
            return
        if not local.exists():
            raise click.UsageError(f"{source}: no such file")
        target = _join(destination, local.name) if _is_dir(fabric, destination) else destination
        from medfabric.service.lineage import file_source

        info = local.stat()
        with local.open("rb") as handle:
            stat = fabric.fs.write(
                target,
                handle,
                overwrite=force,
                mode=info.st_mode & 0o777,
                mtime_ns=info.st_mtime_ns,
                source=file_source(local),
            )
        emit(json, [stat.as_json()], f"Stored {stat.size} bytes at {stat.path}")


def _put_tree(
    fabric: Fabric, root: Path, target: str, *, force: bool, show_progress: bool
) -> tuple[int, dict[str, str]]:
    """Walk a local tree; small files go in batches (one durable step each), large ones streamed."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TransferSpeedColumn

    from medfabric.errors import MedfabricError
    from medfabric.service.lineage import file_source
    from medfabric.service.writes import NewFile

    files: list[tuple[Path, str, os.stat_result]] = []
    directories: list[str] = [target]
    for dirpath, dirnames, filenames in os.walk(root):
        relative = Path(dirpath).relative_to(root).as_posix()
        base = target if relative == "." else _join(target, relative)
        directories.extend(_join(base, name) for name in sorted(dirnames))
        for name in sorted(filenames):
            path = Path(dirpath, name)
            info = path.lstat()
            if path.is_file() and not path.is_symlink():
                files.append((path, _join(base, name), info))
    total = sum(info.st_size for _p, _t, info in files)
    errors: dict[str, str] = {}
    written = 0
    for directory in directories:
        try:
            fabric.fs.mkdir(directory, parents=True)
        except MedfabricError as error:
            errors[directory] = error.message
    with (
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TransferSpeedColumn(),
            disable=not show_progress,
            transient=False,
        ) as progress,
        ThreadPoolExecutor(max_workers=4) as readers,
    ):
        task = progress.add_task("put", total=len(files))
        batch: list[tuple[Path, str, os.stat_result]] = []
        batch_bytes = 0

        def flush() -> None:
            nonlocal written, batch, batch_bytes
            if not batch:
                return
            bodies = list(readers.map(lambda item: item[0].read_bytes(), batch))
            items = [
                NewFile(dest, body, info.st_mode & 0o777, info.st_mtime_ns, source=file_source(path))
                for (path, dest, info), body in zip(batch, bodies, strict=True)
            ]
            try:
                result = fabric.fs.write_many(items, overwrite=force, parents=True)
                written += len(result.written)
                errors.update({path: error.message for path, error in result.errors.items()})
            except MedfabricError as error:
                errors.update({dest: error.message for _p, dest, _i in batch})
            progress.advance(task, len(batch))
            batch, batch_bytes = [], 0

        for path, dest, info in files:
            if info.st_size > LARGE_FILE:
                try:
                    with path.open("rb") as handle:
                        fabric.fs.write(
                            dest,
                            handle,
                            overwrite=force,
                            parents=True,
                            mode=info.st_mode & 0o777,
                            mtime_ns=info.st_mtime_ns,
                            source=file_source(path),
                        )
                    written += 1
                except MedfabricError as error:
                    errors[dest] = error.message
                progress.advance(task)
                continue
            batch.append((path, dest, info))
            batch_bytes += info.st_size
            if batch_bytes >= BATCH_BYTES or len(batch) >= BATCH_FILES:
                flush()
        flush()
    del total
    return written, errors


@command(fs, "get")
@click.option("-r", "-R", "--recursive", "recursive", is_flag=True, help="Copy a directory tree.")
@click.argument("source")
@click.argument("destination")
@json_option
def get(recursive: bool, source: str, destination: str, json: bool) -> None:
    """Copy a file (or with -r a directory) from the fabric to local disk ('-' for standard output).

    Example: medfabric fs get -r /mri_studies/p001 ./p001
    """
    with open_fabric() as fabric:
        info = fabric.fs.stat(source)
        if destination == "-":
            _copy_out(fabric, source, sys.stdout.buffer)
            return
        local = Path(destination)
        if info.type == "directory":
            if not recursive:
                raise click.UsageError(f"{source} is a directory (use -r)")
            target = local / info.name if local.is_dir() else local
            count = 0
            for dirpath, subdirs, others in fabric.fs.walk(source):
                relative = dirpath[len(source.rstrip("/")) :].lstrip("/")
                folder = target / relative if relative else target
                folder.mkdir(parents=True, exist_ok=True)
                for sub in subdirs:
                    (folder / sub.name).mkdir(exist_ok=True)
                for item in others:
                    if item.type == "file":
                        _fetch(fabric, item, folder / item.name)
                        count += 1
            emit(
                json,
                [{"source": source, "destination": str(target), "files": count}],
                f"Fetched {count} files into {target}",
            )
            return
        target = local / info.name if local.is_dir() else local
        _fetch(fabric, info, target)
        emit(
            json,
            [{"source": source, "destination": str(target), "size": info.size}],
            f"Fetched {info.size} bytes into {target}",
        )


def _fetch(fabric: Fabric, info: FileStat, target: Path) -> None:
    with target.open("wb") as handle:
        _copy_out(fabric, info.path, handle)
    os.chmod(target, info.mode & 0o777)
    os.utime(target, ns=(info.atime_ns, info.mtime_ns))


def _copy_out(fabric: Fabric, path: str, handle: BinaryIO) -> None:
    write = handle.write
    with fabric.fs.open(path) as reader:
        while True:
            piece = reader.read(4 * 1024 * 1024)
            if not piece:
                break
            write(piece)


@command(fs, "cat")
@click.argument("paths", nargs=-1, required=True)
def cat(paths: tuple[str, ...]) -> None:
    """Print files to standard output."""
    with open_fabric() as fabric:
        for path in paths:
            _copy_out(fabric, path, sys.stdout.buffer)
    sys.stdout.buffer.flush()


def _ls_line(info: FileStat) -> str:
    import time

    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.mtime_ns / 1e9))
    return f"{info.permissions} {info.owner:<10} {info.group:<10} {info.size:>12} {when} {info.path}"


@command(fs, "ls")
@click.option("-R", "--recursive", "recursive", is_flag=True, help="List subdirectories too.")
@click.argument("path", default="/")
@json_option
def ls(recursive: bool, path: str, json: bool) -> None:
    """List a directory (or show one file).

    Example: medfabric fs ls -R /mri_studies
    """
    with open_fabric() as fabric:
        info = fabric.fs.stat(path)
        if info.type != "directory":
            listing = [info]
        elif recursive:
            listing = [
                item
                for _dir, dirs, others in fabric.fs.walk(path)
                for item in sorted([*dirs, *others], key=lambda entry: entry.name)
            ]
            listing.sort(key=lambda entry: entry.path)
        else:
            listing = fabric.fs.listdir(path)

    def text() -> None:
        for item in listing:
            click.echo(_ls_line(item))

    emit(json, [item.as_json() for item in listing], text)


@command(fs, "stat")
@click.argument("path")
@json_option
def stat(path: str, json: bool) -> None:
    """Show a path's type, mode, owner, size, times, inode and volume."""
    with open_fabric() as fabric:
        info = fabric.fs.stat(path)
    emit(json, [info.as_json()], lambda: print_fields(info.as_json()))


@command(fs, "mkdir")
@click.option("-p", "--parents", "parents", is_flag=True, help="Create parents; no error if it exists.")
@click.argument("path")
@json_option
def mkdir(parents: bool, path: str, json: bool) -> None:
    """Create a directory."""
    with open_fabric() as fabric:
        info = fabric.fs.mkdir(path, parents=parents)
    emit(json, [info.as_json()], None)


@command(fs, "rm")
@click.option(
    "-r", "-R", "--recursive", "recursive", is_flag=True, help="Remove directories and their contents."
)
@click.option("-f", "--force", "force", is_flag=True, help="No error if the path does not exist.")
@click.argument("paths", nargs=-1, required=True)
@json_option
def rm(recursive: bool, force: bool, paths: tuple[str, ...], json: bool) -> None:
    """Remove files or directories."""
    from medfabric.errors import NotFound

    removed = 0
    with open_fabric() as fabric:
        for path in paths:
            try:
                removed += fabric.fs.remove(path, recursive=recursive)
            except NotFound:
                if not force:
                    raise
    emit(json, [{"removed": removed}], None)


@command(fs, "mv")
@click.argument("source")
@click.argument("destination")
@json_option
def mv(source: str, destination: str, json: bool) -> None:
    """Move or rename (into DESTINATION if it is a directory)."""
    with open_fabric() as fabric:
        target = destination
        if _is_dir(fabric, destination):
            target = _join(destination, source.rstrip("/").rsplit("/", 1)[-1])
        info = fabric.fs.rename(source, target)
    emit(json, [info.as_json()], None)


ACE_KINDS = ("readfile", "writefile", "executefile", "readdir", "addchild", "deletechild", "lookupdir")


@command(fs, "setace")
@click.option(
    "-R", "--recursive", "recursive", is_flag=True, help="Apply to everything below a directory too."
)
@opt("readfile", help="Who may read a file, e.g. 'g:radiology | r:research'.")
@opt("writefile", help="Who may write a file.")
@opt("executefile", help="Who may execute a file.")
@opt("readdir", help="Who may list a directory.")
@opt("addchild", help="Who may create entries in a directory.")
@opt("deletechild", help="Who may delete entries of a directory.")
@opt("lookupdir", help="Who may look names up in (traverse) a directory.")
@click.argument("path")
@json_option
def setace(recursive: bool, path: str, json: bool, **kinds: str | None) -> None:
    """Set file or directory ACEs (kinds not given keep their value); new children inherit them.

    Example: medfabric fs setace -readfile "g:radiology | r:research" -R /mri_studies/cohort1
    """
    given = {kind: text for kind, text in kinds.items() if text is not None}
    if not given:
        raise click.UsageError("give at least one of " + ", ".join(f"-{kind}" for kind in ACE_KINDS))
    with open_fabric() as fabric:
        fabric.security.setace(path, given, recursive=recursive)
        aces = fabric.security.getace(path)
    emit(json, [{"path": path, **aces}], lambda: print_fields(aces))


@command(fs, "getace")
@click.argument("path")
@json_option
def getace(path: str, json: bool) -> None:
    """Show a path's ACEs (where none is set, mode bits decide)."""
    with open_fabric() as fabric:
        aces = fabric.security.getace(path)
    emit(json, [{"path": path, **aces}], lambda: print_fields(aces) if aces else click.echo("(no ACEs)"))


@command(fs, "delace")
@click.option("-R", "--recursive", "recursive", is_flag=True)
@click.argument("path")
@json_option
def delace(recursive: bool, path: str, json: bool) -> None:
    """Remove every ACE of a path (mode bits decide again)."""
    with open_fabric() as fabric:
        fabric.security.setace(path, recursive=recursive, remove=True)
    emit(json, [], f"Removed the ACEs of {path}")
