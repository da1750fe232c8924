"""`medfabric dicom …`: import, watch a drop folder, find in the imaging index, routing settings, reindex.

Each command parses its options, calls ``fabric.dicom`` and formats the result. De-identification
commands join this group in their own section below.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

import click

from medfabric.cli.common import command, emit, json_option, open_fabric, opt, print_fields, print_table

if TYPE_CHECKING:
    from medfabric.imaging.ingest.model import IngestReport
    from medfabric.service.fabric import Fabric


@click.group("dicom")
def dicom() -> None:
    """DICOM: import files, watch a drop folder, query the imaging index, route instances to volumes."""


# -- ingest ----------------------------------------------------------------------------------------


def _print_report(report: IngestReport, verb: str) -> None:
    summary = report.summary()
    rate = f", {summary['filesPerSecond']:g} files/s" if summary["filesPerSecond"] else ""
    click.echo(
        f"{verb} {summary['files']} files in {summary['seconds']:.2f} s{rate}: {summary['stored']} stored "
        f"({summary['storedBytes'] / 1e6:.1f} MB), {summary['duplicates']} duplicates, "
        f"{summary['rejected']} rejected, {summary['failed']} failed"
    )
    for outcome in report.outcomes:
        if outcome.status in ("rejected", "failed"):
            click.echo(f"  {outcome.status.upper()} {outcome.source}: {outcome.reason}: {outcome.message}")
    if report.aborted:
        click.echo(f"Stopped early: {report.aborted}", err=True)


def _exit_code(report: IngestReport, strict: bool) -> int:
    """0 unless the fabric refused something (that error's code), or -strict and a file was rejected."""
    if report.failed:
        error = report.failed[0].error
        return error.exit_code if error is not None else 1
    if strict and report.rejected:
        return 22
    return 0


@command(dicom, "import")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@opt("volume", help="Put every instance in this volume (bypasses the routing rules).")
@opt(
    "policy",
    type=click.Choice(["reject", "keep"]),
    help="A different object under a stored UID: reject or keep both.",
)
@opt(
    "workers",
    type=click.IntRange(0, 64),
    help="Parser processes (default: one per core the writers leave; 0: parse and write in this process).",
)
@opt("strict", is_flag=True, help="Exit 22 when any file was rejected (default: 0, rejections are reported).")
@json_option
def import_(
    paths: tuple[str, ...],
    volume: str | None,
    policy: str | None,
    workers: int | None,
    strict: bool,
    json: bool,
) -> None:
    """Import DICOM files and directories (recursively) into the fabric.

    Each instance lands at <volume mount>/<PatientID>/<StudyDate>/<Modality>/<SeriesInstanceUID>/
    <SOPInstanceUID>.dcm, in the volume the routing rules choose (`medfabric dicom routes`).
    Re-running an import stores nothing twice: an interrupted import is resumed by running it again.

    Example: medfabric dicom import /mnt/cd/DICOM ./exports -volume mri_studies
    """
    with open_fabric() as fabric:
        if json:  # no bar: nothing of rich is loaded (its import is a noticeable part of a short run)
            report = fabric.dicom.import_paths(paths, volume=volume, policy=policy, workers=workers)
        else:
            report = _import_with_bar(fabric, paths, volume, policy, workers)
    code = _exit_code(report, strict)
    if json:
        from medfabric.cli.common import envelope, print_json

        status = "OK" if code == 0 else "ERROR"
        refused = report.failed + (report.rejected if strict else [])
        errors = [{"id": code, "type": o.reason, "desc": f"{o.source}: {o.message}"} for o in refused]
        print_json(envelope([report.summary()], status=status, errors=errors))
    else:
        _print_report(report, "Imported")
    sys.exit(code)


def _import_with_bar(
    fabric: Fabric, paths: tuple[str, ...], volume: str | None, policy: str | None, workers: int | None
) -> IngestReport:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("import"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
        # Redrawn as batches complete, not by a thread of its own: a thread that is not the fabric's
        # would keep the import from forking its writer processes (Fabric.runs_alone).
        auto_refresh=False,
    )
    task = bar.add_task("import", total=None, rate="")
    with bar:
        return fabric.dicom.import_paths(
            paths,
            volume=volume,
            policy=policy,
            workers=workers,
            on_start=lambda total: bar.update(task, total=total, refresh=True),
            progress=lambda files, size: bar.update(
                task,
                completed=files,
                rate=f"{size / 1e6 / max(bar.tasks[0].elapsed or 1e-9, 1e-9):.0f} MB/s",
                refresh=True,
            ),
        )


@command(dicom, "watch")
@click.argument("directory", type=click.Path(file_okay=False))
@opt("volume", help="Put every instance in this volume (bypasses the routing rules).")
@opt("archive", type=click.Path(file_okay=False), help="Move ingested files here instead of deleting them.")
@opt("once", is_flag=True, help="Ingest what is complete now, then exit.")
@opt(
    "interval", type=click.FloatRange(min=0.01), default=1.0, show_default=True, help="Seconds between polls."
)
@json_option
def watch(
    directory: str, volume: str | None, archive: str | None, once: bool, interval: float, json: bool
) -> None:
    """Ingest files that imaging equipment drops into DIRECTORY, once each is complete.

    A file is complete when its size and modification time are unchanged over one polling interval.
    It is removed (or moved to -archive) only after it is stored; rejected files go to
    DIRECTORY/.rejected/ with a .reason note. Stops on Ctrl-C or SIGTERM.

    Example: medfabric dicom watch /srv/dropbox -archive /srv/dropbox-done
    """
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def show(report: IngestReport) -> None:
        if not json:
            _print_report(report, "Ingested")

    with open_fabric() as fabric:
        try:
            report = fabric.dicom.watch(
                directory,
                volume=volume,
                archive=archive,
                once=once,
                interval=interval,
                stop=stop,
                on_report=show,
            )
        except KeyboardInterrupt:
            click.echo("Stopped.", err=True)
            return
    code = _exit_code(report, False)
    if json:
        from medfabric.cli.common import envelope, print_json

        print_json(envelope([report.summary()], status="OK" if code == 0 else "ERROR"))
    sys.exit(code)


# -- the imaging index -----------------------------------------------------------------------------

TEXT_COLUMNS = {
    "patient": [
        "patient_id",
        "patient_name",
        "patient_birth_date",
        "patient_sex",
        "number_of_patient_related_studies",
    ],
    "study": [
        "patient_id",
        "study_date",
        "modalities_in_study",
        "number_of_study_related_series",
        "number_of_study_related_instances",
        "study_description",
        "study_uid",
    ],
    "series": [
        "patient_id",
        "study_date",
        "modality",
        "series_number",
        "number_of_series_related_instances",
        "series_description",
        "series_uid",
    ],
    "instance": ["volume", "modality", "instance_number", "size", "path"],
}


@command(dicom, "find")
@opt(
    "level", type=click.Choice(["patient", "study", "series", "instance"]), default="study", show_default=True
)
@opt(
    "c",
    "--condition",
    dest="condition",
    help='A JSON condition, e.g. \'{"modality": "MR", "study_date": {"$gt": "20240101"}}\'.',
)
@opt("columns", help="Comma-separated fields to show.")
@opt("limit", type=click.IntRange(min=0), help="At most this many rows.")
@opt("offset", type=click.IntRange(min=0), default=0, help="Skip this many rows first.")
@json_option
def find(
    level: str, condition: str | None, columns: str | None, limit: int | None, offset: int, json: bool
) -> None:
    """Find patients, studies, series or instances in the imaging index.

    Conditions are MongoDB-style on snake_case fields: patient_id, patient_name, study_date, modality,
    study_description, series_description, body_part_examined, sop_class_uid, volume, path, … (fields
    of lower levels match when any row below does: a study matches {"modality": "MR"} when one of its
    series is MR). Operators: $eq $ne $lt $lte $gt $gte $in $nin $exists $like $matches $and $or $not.

    Example: medfabric dicom find -level series -c '{"modality": "MR", "study_date": {"$gt": "20240101"}}'
    """
    with open_fabric() as fabric:
        rows = fabric.dicom.find(level, condition, limit=limit, offset=offset)
    wanted = [c.strip() for c in columns.split(",")] if columns else TEXT_COLUMNS[level]
    shown: list[dict[str, Any]] = [
        {key: ("\\".join(v) if isinstance(v := row.get(key), list) else v) for key in wanted} for row in rows
    ]
    emit(
        json,
        [{k: row.get(k) for k in wanted} for row in rows] if columns else rows,
        lambda: print_table(shown, wanted),
    )


@command(dicom, "routes")
@opt(
    "set",
    dest="rules",
    help='Routing rules, a JSON list: \'[{"volume": "mri_2024", "modality": "MR"}]\'.',
)
@opt("default", dest="default_volume", help="The volume for instances no rule matches ('' for none).")
@opt(
    "policy",
    type=click.Choice(["reject", "keep"]),
    help="A different object under a stored SOP Instance UID.",
)
@opt("metadatatable", help="The JSON table ingest keeps one document per instance in ('' to turn off).")
@json_option
def routes(
    rules: str | None, default_volume: str | None, policy: str | None, metadatatable: str | None, json: bool
) -> None:
    """Show or change where ingest puts instances, and what it does with duplicates.

    Rules are tried in order; the first that matches names the volume.

    Example: medfabric dicom routes -default medical_images -set
    '[{"volume": "ct_2024", "modality": "CT", "study_date": {"$gte": "20240101", "$lt": "20250101"}}]'
    """
    with open_fabric() as fabric:
        if rules is None and default_volume is None and policy is None and metadatatable is None:
            document = fabric.dicom.configuration()
        else:
            document = fabric.dicom.configure(
                routes=rules, default_volume=default_volume, policy=policy, metadata_table=metadatatable
            )

    def show() -> None:
        print_fields({key: value for key, value in document.items() if key != "routes"})
        click.echo("routes:")
        for number, rule in enumerate(document["routes"], start=1):
            click.echo(f"  {number}. {rule}")

    emit(json, [document], show)


@command(dicom, "reindex")
@opt("volume", help="Only this volume (default: every mounted volume).")
@json_option
def reindex(volume: str | None, json: bool) -> None:
    """Reconcile the imaging index with files removed, renamed or written by hand.

    Example: medfabric dicom reindex -volume mri_studies
    """
    with open_fabric() as fabric:
        results = fabric.dicom.reindex(volume)
    emit(json, results, lambda: print_table(results, ["volume", "removed", "moved", "added", "skipped"]))


# -- de-identification (deidentify, verify-deid) joins here ---------------------------------------


def _options(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


@command(dicom, "deidentify")
@opt("source", required=True, help="A fabric path: an instance or a directory of instances.")
@opt("target", required=True, help="A path in the volume that receives the de-identified copies.")
@opt("profile", default="basic", help="basic, longitudinal, research, or a profile TOML file.")
@opt(
    "options", help="PS3.15 options, e.g. retain_longitudinal_modified_dates,retain_patient_characteristics."
)
@opt("reidrole", help="Keep an encrypted re-identification map readable only by this role.")
@json_option
def deidentify(
    source: str, target: str, profile: str, options: str | None, reidrole: str | None, json: bool
) -> None:
    """De-identified copies (DICOM PS3.15 Annex E), indexed like any ingest, with lineage to their source.

    Example: medfabric dicom deidentify -source /mri_studies -target /research -profile research
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with (
        open_fabric() as fabric,
        Progress(TextColumn("de-identifying"), BarColumn(), MofNCompleteColumn(), disable=json) as bar,
    ):
        task = bar.add_task("instances", total=None)
        run = fabric.deid.deidentify(
            source,
            target,
            profile=profile,
            options=_options(options),
            reid_role=reidrole,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    document = run.as_json()

    def text() -> None:
        counts = ", ".join(f"{count} {status}" for status, count in sorted(document["counts"].items()))
        click.echo(f"run {run.run_id} ({run.profile}): {counts or 'nothing to do'}")
        for item in run.instances:
            if item.status not in ("stored", "duplicate"):
                click.echo(f"  {item.status} {item.source}: {item.reason}")

    emit(json, [document], text)


@command(dicom, "verify-deid")
@click.argument("path")
@opt("profile", default="basic")
@opt("options")
@json_option
def verify_deid(path: str, profile: str, options: str | None, json: bool) -> None:
    """Check de-identified instances against the profile's table and their sources' identifying
    values; exit 1 on any finding.

    Example: medfabric dicom verify-deid /research -profile research
    """
    with open_fabric() as fabric:
        findings = fabric.deid.verify(path, profile=profile, options=_options(options))

    def text() -> None:
        for finding in findings:
            click.echo(f"{finding['path']}: {finding['rule']}: {finding['message']}")
        click.echo(f"verify-deid: {len(findings)} finding(s)")

    emit(json, findings, text)
    if findings:
        sys.exit(1)


@command(dicom, "reidentify")
@opt("run", required=True, help="The run id a deidentify printed.")
@json_option
def reidentify(run: str, json: bool) -> None:
    """Print a run's re-identification map (only for the role it names: the honest broker)."""
    with open_fabric() as fabric:
        mapping = fabric.deid.reid_map(run)

    def text() -> None:
        for path, pairs in mapping.items():
            click.echo(f"{path}: {pairs}")

    emit(json, [mapping], text)
