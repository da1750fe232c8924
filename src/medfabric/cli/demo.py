"""`medfabric demo`: the main job on an embedded fabric, and `medfabric demo generate`, the corpus generator.

The demo is a script of steps over the public Python API (the same calls a user makes): a fabric, the
seed's volumes and routing rules, a synthetic corpus, the import, the seed's query, and a summary.
It never reaches below the service layer.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click

from medfabric.cli.common import emit, json_option, opt, print_table

if TYPE_CHECKING:
    from medfabric.service.fabric import Fabric

SEED_QUERY = {"modality": "MR", "study_date": {"$gt": "20240101"}}
# The seed's volumes: (name, mount path, parent volume, replication).
VOLUMES = (
    ("mri_studies", "/mri_studies", None, None),
    ("medical_images", "/medical_images", None, 3),
    ("mri_2024", "/medical_images/mri/2024", "medical_images", None),
    ("ct_2024", "/medical_images/ct/2024", "medical_images", None),
)
ROUTES: list[dict[str, Any]] = [
    {"volume": "mri_2024", "modality": "MR", "study_date": {"$gte": "20240101", "$lt": "20250101"}},
    {"volume": "ct_2024", "modality": "CT", "study_date": {"$gte": "20240101", "$lt": "20250101"}},
    {"volume": "mri_studies", "modality": "MR"},
]
DEFAULT_VOLUME = "medical_images"


@dataclass
class DemoRun:
    """What the steps learn, for the summary."""

    workdir: Path
    patients: int
    seed: int
    size: str
    timings: dict[str, float] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)


@click.group("demo", invoke_without_command=True)
@opt(
    "workdir",
    type=click.Path(file_okay=False),
    default="demo-output",
    show_default=True,
    help="Where the corpus goes.",
)
@opt("patients", type=click.IntRange(1, 1000), default=12, show_default=True, help="Synthetic patients.")
@opt("seed", type=int, default=0, show_default=True, help="The corpus' random seed.")
@opt("size", type=click.Choice(["small", "full"]), default="full", show_default=True, help="full: 512x512 CT")
@json_option
@click.pass_context
def demo(ctx: click.Context, workdir: str, patients: int, seed: int, size: str, json: bool) -> None:
    """Run the main job on an embedded fabric: volumes, routing, corpus, import, the seed's query.

    The fabric is $MEDFABRIC_HOME (created if it does not exist; WORKDIR/fabric when unset).

    Example: MEDFABRIC_HOME=/tmp/demo/fabric medfabric demo -workdir /tmp/demo
    """
    if ctx.invoked_subcommand is not None:
        return
    run = DemoRun(Path(workdir).resolve(), patients, seed, size)
    os.environ.setdefault("MEDFABRIC_HOME", str(run.workdir / "fabric"))
    say: Callable[[str], None] = (lambda _text: None) if json else click.echo
    fabric = _open_or_init(run, say)
    with fabric:
        for title, step in STEPS:
            say(f"== {title}")
            started = time.perf_counter()
            step(fabric, run, say)
            run.timings[title] = round(time.perf_counter() - started, 3)
    emit(json, [{"timings": run.timings, **run.facts}], lambda: _summary(run))


def _size(size: str) -> Literal["small", "full"]:
    return "full" if size == "full" else "small"


def _open_or_init(run: DemoRun, say: Callable[[str], None]) -> Fabric:
    from medfabric.config import config_path, default_home
    from medfabric.service.fabric import init_fabric, open_fabric

    home = default_home()
    if config_path(home).exists():
        say(f"Using the fabric at {home}")
        return open_fabric(home, interface="cli")
    say(f"Creating an embedded fabric at {home} (SQLite catalog, three data directories)")
    return init_fabric(
        home, name="demo.fabric", datadirs=[home / f"data{n}" for n in (1, 2, 3)], interface="cli"
    )


def _volumes(fabric: Fabric, run: DemoRun, say: Callable[[str], None]) -> None:
    existing = {volume.name for volume in fabric.volumes.list()}
    for name, path, parent, replication in VOLUMES:
        if name in existing:
            say(f"volume {name} exists")
            continue
        fabric.volumes.create(name, path, parent_volume=parent, replication=replication)
        say(
            f"medfabric volume create -name {name} -path {path}"
            + (f" -parentvolume {parent}" if parent else "")
            + (f" -replication {replication}" if replication else "")
        )
    fabric.dicom.configure(routes=ROUTES, default_volume=DEFAULT_VOLUME)
    for rule in ROUTES:
        say(f"route {rule}")
    say(f"route everything else -> {DEFAULT_VOLUME}")


def _generate(fabric: Fabric, run: DemoRun, say: Callable[[str], None]) -> None:
    from medfabric.imaging.synth import generate_corpus, write_bad_files

    summary = generate_corpus(
        run.workdir / "corpus",
        patients=run.patients,
        seed=run.seed,
        size=_size(run.size),
        workers=os.cpu_count() or 1,
    )
    bad = write_bad_files(run.workdir / "bad-files")
    run.facts["corpus"] = {
        "files": summary.files,
        "bytes": summary.total_bytes,
        "byModality": dict(summary.by_modality),
    }
    say(
        f"{summary.files} instances ({summary.total_bytes / 1e6:.1f} MB) of {summary.patients} patients, "
        f"{summary.studies} studies: {dict(summary.by_modality)}; plus {len(bad)} broken files"
    )


def _import(fabric: Fabric, run: DemoRun, say: Callable[[str], None]) -> None:
    corpus = run.workdir / "corpus"
    sources = [*sorted(p for p in corpus.iterdir() if p.is_dir()), run.workdir / "bad-files"]
    say(f"medfabric dicom import {corpus}/PAT* {run.workdir / 'bad-files'}")
    report = fabric.dicom.import_paths(sources)
    summary = report.summary()
    run.facts["import"] = summary
    say(
        f"{summary['stored']} stored, {summary['duplicates']} duplicates, {summary['rejected']} rejected in "
        f"{summary['seconds']:.2f} s ({summary['filesPerSecond']} files/s, "
        f"{summary['storedBytes'] / 1e6 / max(summary['seconds'], 1e-9):.1f} MB/s)"
    )
    for outcome in report.rejected:
        say(f"  rejected {Path(outcome.source).name}: {outcome.reason}")
    again = fabric.dicom.import_paths(sources)
    say(f"again (idempotent): {again.summary()['stored']} stored, {again.summary()['duplicates']} duplicates")


def _query(fabric: Fabric, run: DemoRun, say: Callable[[str], None]) -> None:
    from medfabric.db import connect

    say("connect('/medical_metadata').find({'modality': 'MR', 'study_date': {'$gt': '20240101'}})")
    started = time.perf_counter()
    with connect("/medical_metadata") as table:
        documents = table.find(SEED_QUERY)
    elapsed = time.perf_counter() - started
    rows = [
        {key: document.get(key) for key in ("patient_id", "study_date", "modality", "volume", "path")}
        for document in documents
    ]
    run.facts["seedQuery"] = {
        "condition": SEED_QUERY,
        "count": len(documents),
        "seconds": round(elapsed, 4),
        "sample": rows[:3],
    }
    studies = fabric.dicom.find("study", SEED_QUERY)
    run.facts["seedQuery"]["studies"] = len(studies)
    run.facts["volumes"] = fabric.dicom.summary()
    say(f"{len(documents)} instances in {len(studies)} studies ({elapsed * 1000:.1f} ms)")


# The demo's script. Serving (S3 gateway, DICOMweb) joins here as a step once those gateways exist.
STEPS: list[tuple[str, Callable[[Fabric, DemoRun, Callable[[str], None]], None]]] = [
    ("volumes and routing", _volumes),
    ("corpus", _generate),
    ("import", _import),
    ("the seed's query", _query),
]


def _summary(run: DemoRun) -> None:
    click.echo("\n== summary")
    print_table(run.facts["volumes"], ["volume", "modality", "studies", "series", "instances", "bytes"])
    query = run.facts["seedQuery"]
    click.echo(
        f"\nThe seed's query {query['condition']}: {query['count']} instances in {query['studies']} studies"
    )
    print_table(query["sample"], ["patient_id", "study_date", "modality", "volume", "path"])
    imported = run.facts["import"]
    click.echo(
        f"\nIngest: {imported['stored']} instances in {imported['seconds']:.2f} s "
        f"({imported['filesPerSecond']} instances/s); {imported['rejected']} bad files rejected"
    )
    click.echo("Timings: " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in run.timings.items()))
    click.echo(
        f"\nTry: MEDFABRIC_HOME={os.environ['MEDFABRIC_HOME']} medfabric dicom find -level series -c "
        '\'{"modality": "MR"}\''
    )


@demo.command("generate")
@click.argument("out", type=click.Path(file_okay=False))
@opt("patients", type=click.IntRange(1, 100000), default=4, show_default=True, help="Synthetic patients.")
@opt("seed", type=int, default=0, show_default=True, help="Random seed (same seed, same bytes).")
@opt("size", type=click.Choice(["small", "full"]), default="small", show_default=True, help="Image sizes.")
@opt("bad", is_flag=True, help="Also write broken files (for ingest tests) into OUT/bad-files.")
@json_option
def generate(out: str, patients: int, seed: int, size: str, bad: bool, json: bool) -> None:
    """Write a realistic synthetic DICOM corpus (CT, MR, CR, US, SC; five transfer syntaxes; PHI planted).

    Example: medfabric demo generate ./corpus -patients 12 -size full
    """
    from medfabric.imaging.synth import generate_corpus, write_bad_files

    summary = generate_corpus(
        Path(out), patients=patients, seed=seed, size=_size(size), workers=os.cpu_count() or 1
    )
    document = {
        "root": str(summary.root),
        "manifest": str(summary.manifest),
        "patients": summary.patients,
        "studies": summary.studies,
        "series": summary.series,
        "files": summary.files,
        "bytes": summary.total_bytes,
        "byModality": dict(summary.by_modality),
        "byTransferSyntax": dict(summary.by_transfer_syntax),
    }
    if bad:
        document["badFiles"] = write_bad_files(Path(out) / "bad-files")
    emit(
        json,
        [document],
        f"Wrote {summary.files} instances ({summary.total_bytes / 1e6:.1f} MB) of "
        f"{summary.patients} patients, {summary.studies} studies to {summary.root}: {document['byModality']}",
    )
