"""De-identification throughput and quality: medfabric against dicognito and deid (pydicom-deid).

Each tool de-identifies the same synthetic corpus file to file, in one process, with its documented
default profile; every output is then checked by medfabric's verifier under the Basic Profile with the
corpus manifest's planted PHI and each file's original UIDs. Prints instances/s (wall clock, and per
CPU second of the benchmark process, which is what a shared machine does not disturb), the ratios (per
CPU second), and the verifier's findings per tool.

    .venv/bin/python benchmarks/bench_deid.py [--instances 600] [--mixed-patients 8] [--repeat 2]

dicognito and deid are benchmark-only dependencies: `.venv/bin/pip install 'dicognito>=0.19,<0.20'
'deid>=0.4.13,<0.5'`.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom

from medfabric.imaging.deid import BASIC, Deidentifier, verify_path
from medfabric.imaging.synth import generate_corpus, generate_ct_series_bulk

SECRET = b"benchmark-secret-0123456789abcdef"
Tool = Callable[[list[tuple[Path, Path]]], int]  # (source, target) pairs -> instances written


def run_medfabric(pairs: list[tuple[Path, Path]]) -> int:
    engine = Deidentifier(BASIC, SECRET)
    return sum(engine.deidentify_file(source, target).dataset is not None for source, target in pairs)


def run_dicognito(pairs: list[tuple[Path, Path]]) -> int:
    from dicognito.anonymizer import Anonymizer  # the documented library use: one Anonymizer per batch

    anonymizer = Anonymizer()
    for source, target in pairs:
        with pydicom.dcmread(source) as dataset:
            anonymizer.anonymize(dataset)
            target.parent.mkdir(parents=True, exist_ok=True)
            dataset.save_as(target)
    return len(pairs)


def run_deid(pairs: list[tuple[Path, Path]]) -> int:
    from deid.dicom import get_identifiers, replace_identifiers  # the documented default recipe
    from deid.logger import bot

    bot.level = 0  # it warns on every call that the default recipe is used
    written = 0
    for source, target in pairs:
        target.parent.mkdir(parents=True, exist_ok=True)
        items = get_identifiers([str(source)])
        replace_identifiers(
            [str(source)], ids=items, save=True, output_folder=str(target.parent), overwrite=True
        )
        written += 1
    return written


TOOLS: dict[str, Tool] = {"medfabric": run_medfabric, "dicognito": run_dicognito, "deid": run_deid}


def _source_phi(manifest: dict[str, Any]) -> dict[str, list[str]]:
    by_patient = {p["PatientID"]: p["phi_strings"] for p in manifest["patients"]}
    return {
        f["path"]: [
            *by_patient[f["PatientID"]],
            f["SOPInstanceUID"],
            f["SeriesInstanceUID"],
            f["StudyInstanceUID"],
        ]
        for f in manifest["files"]
    }


def bench_corpus(label: str, root: Path, work: Path, repeat: int) -> list[dict[str, Any]]:
    manifest = json.loads((root / "corpus.json").read_text("utf-8"))
    phi = _source_phi(manifest)
    rows = []
    for name, tool in TOOLS.items():
        out = work / f"{label}-{name}"
        pairs = [(root / f["path"], out / f["path"]) for f in manifest["files"]]
        tool(pairs[:5])  # warm up: imports, caches
        best = best_cpu = float("inf")
        written = 0
        for _ in range(repeat):
            shutil.rmtree(out, ignore_errors=True)
            started, started_cpu = time.perf_counter(), time.process_time()
            written = tool(pairs)
            best = min(best, time.perf_counter() - started)
            best_cpu = min(best_cpu, time.process_time() - started_cpu)
        findings: Counter[str] = Counter()
        outputs = 0
        for (_, target), record in zip(pairs, manifest["files"], strict=True):
            if target.exists():
                outputs += 1
                findings.update(f.rule for f in verify_path(target, BASIC, phi[record["path"]]))
        rows.append(
            {
                "corpus": label,
                "tool": name,
                "instances": len(pairs),
                "written": written,
                "outputs": outputs,
                "seconds": best,
                "per_second": len(pairs) / best,
                "per_cpu_second": len(pairs) / best_cpu,
                "findings": findings,
            }
        )
    return rows


def bench_in_memory(root: Path, repeat: int) -> float:
    """medfabric alone, bytes to bytes (parse, de-identify, encode): the engine without the file system."""
    from medfabric.imaging.deid.dicomio import encode_file

    manifest = json.loads((root / "corpus.json").read_text("utf-8"))
    blobs = [(root / f["path"]).read_bytes() for f in manifest["files"]]
    engine = Deidentifier(BASIC, SECRET)
    best = float("inf")
    for _ in range(repeat + 1):  # the first run warms the per-study caches
        started = time.process_time()
        for blob in blobs:
            outcome = engine.deidentify(pydicom.dcmread(io.BytesIO(blob)), in_place=True)
            if outcome.dataset is not None:
                encode_file(outcome.dataset)
        best = min(best, time.process_time() - started)
    return len(blobs) / best


def print_rows(rows: list[dict[str, Any]]) -> None:
    """One line per corpus and tool: wall-clock and per-CPU-second rates, the ratio, verifier findings."""
    print(
        f"\n{'corpus':<10}{'tool':<11}{'inst':>6}{'out':>6}{'wall s':>8}{'inst/s':>8}{'inst/cpu-s':>11}"
        f"{'medfabric is':>15}  findings (Basic Profile verifier)"
    )
    for corpus in dict.fromkeys(r["corpus"] for r in rows):
        group = [r for r in rows if r["corpus"] == corpus]
        ours = next(r for r in group if r["tool"] == "medfabric")["per_cpu_second"]
        for row in group:
            mine = row["tool"] == "medfabric"
            ratio = "-" if mine else f"{ours / row['per_cpu_second']:.1f}x faster"
            found = sum(row["findings"].values())
            detail = ", ".join(f"{rule} {n}" for rule, n in row["findings"].most_common())
            print(
                f"{corpus:<10}{row['tool']:<11}{row['instances']:>6}{row['outputs']:>6}{row['seconds']:>8.2f}"
                f"{row['per_second']:>8.0f}{row['per_cpu_second']:>11.0f}{ratio:>15}  {found}"
                + (f" ({detail})" if detail else "")
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instances", type=int, default=600, help="small CT instances in the bulk corpus")
    parser.add_argument(
        "--mixed-patients", type=int, default=8, help="patients in the mixed corpus (0: skip)"
    )
    parser.add_argument("--repeat", type=int, default=2, help="timed runs per tool; the best is reported")
    parser.add_argument(
        "--work", type=Path, default=None, help="working directory (default: a temporary one)"
    )
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-deid-"))
    try:
        rows = []
        bulk = work / "bulk"
        generate_ct_series_bulk(bulk, instances=args.instances, size="small")
        rows += bench_corpus("ct-small", bulk, work, args.repeat)
        in_memory = bench_in_memory(bulk, args.repeat)
        if args.mixed_patients:
            mixed = work / "mixed"
            generate_corpus(mixed, patients=args.mixed_patients, size="small")
            rows += bench_corpus("mixed", mixed, work, args.repeat)
        print_rows(rows)
        print(
            f"\nmedfabric in memory on ct-small (parse, de-identify, encode; no file system): "
            f"{in_memory:.0f} inst/cpu-s"
        )
        print(
            "\nmedfabric quarantines burned-in and ultrasound/secondary-capture instances (not output);"
            " the others write every instance."
        )
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
