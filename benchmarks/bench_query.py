"""Benchmark: bulk-load instance-like documents into a JSON table, then time selective queries.

Times each query (p50/p99 over --runs runs, fetching every result) with the seed's index
``modality:asc,study_date:desc`` (plus one on patient_id), then again with the indexes dropped.
Starts its own throw-away PostgreSQL. Never run by the test suite.

    .venv/bin/python benchmarks/bench_query.py --docs 1000000 --dialect both
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from medfabric.docdb import DocumentTable
from medfabric.testing.servers import postgres_server

MODALITIES = ("CT", "MR", "CR", "DX", "US")
MODALITY_WEIGHTS = (0.35, 0.25, 0.20, 0.12, 0.08)
FIRST_DAY = datetime.date(2015, 1, 1)
DAYS = (datetime.date(2025, 12, 31) - FIRST_DAY).days + 1
TRANSFER_SYNTAXES = (
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.5",
)
BODY_PARTS = ("HEAD", "CHEST", "ABDOMEN", "PELVIS", "KNEE", "SPINE", "BREAST", "HAND")
MANUFACTURERS = (
    ("SIEMENS", "Skyra"),
    ("GE MEDICAL SYSTEMS", "SIGNA Premier"),
    ("Philips", "Ingenia"),
    ("Canon", "Aquilion ONE"),
    ("FUJIFILM", "FDR D-EVO"),
)
SOP_CLASSES = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",
    "MR": "1.2.840.10008.5.1.4.1.1.4",
    "CR": "1.2.840.10008.5.1.4.1.1.1",
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",
    "US": "1.2.840.10008.5.1.4.1.1.6.1",
}
UID_ROOT = "1.2.826.0.1.3680043.8.498"


def day(offset: int) -> str:
    return (FIRST_DAY + datetime.timedelta(days=offset)).strftime("%Y%m%d")


def instances(count: int, seed: int = 1) -> Iterator[dict[str, Any]]:
    """Documents shaped like the fabric's per-instance index: studies of series of instances."""
    rnd = random.Random(seed)
    patients = max(count // 20, 1)
    produced = study = 0
    while produced < count:
        study += 1
        patient = rnd.randrange(patients)
        modality = rnd.choices(MODALITIES, MODALITY_WEIGHTS)[0]
        study_date = day(rnd.randrange(DAYS))
        manufacturer, model = rnd.choice(MANUFACTURERS)
        body_part = rnd.choice(BODY_PARTS)
        study_uid = f"{UID_ROOT}.1.{study}"
        for series in range(1, rnd.randint(1, 4) + 1):
            series_uid = f"{study_uid}.{series}"
            for number in range(1, rnd.randint(1, 8) + 1):
                if produced == count:
                    return
                produced += 1
                sop_uid = f"{series_uid}.{number}"
                yield {
                    "_id": sop_uid,
                    "patient_id": f"PAT{patient:07d}",
                    "patient_name": f"DOE^PATIENT{patient}",
                    "study_uid": study_uid,
                    "study_date": study_date,
                    "modality": modality,
                    "series_uid": series_uid,
                    "sop_uid": sop_uid,
                    "path": f"/medical_images/{modality.lower()}/{study_date[:4]}/PAT{patient:07d}/"
                    f"{study_date}/{series_uid}/{sop_uid}.dcm",
                    "volume": f"{modality.lower()}_{study_date[:4]}",
                    "size": rnd.randint(40_000, 700_000),
                    "transfer_syntax": rnd.choice(TRANSFER_SYNTAXES),
                    "StudyTime": f"{rnd.randrange(7, 20):02d}{rnd.randrange(60):02d}00",
                    "AccessionNumber": f"ACC{study:09d}",
                    "StudyDescription": f"{body_part} {modality}",
                    "SeriesDescription": f"{body_part} series {series}",
                    "SeriesNumber": series,
                    "InstanceNumber": number,
                    "SOPClassUID": SOP_CLASSES[modality],
                    "BodyPartExamined": body_part,
                    "Manufacturer": manufacturer,
                    "ManufacturerModelName": model,
                    "InstitutionName": "MEDFABRIC GENERAL HOSPITAL",
                    "StationName": f"STATION{rnd.randrange(40):02d}",
                    "ReferringPhysicianName": f"REF^DOCTOR{rnd.randrange(300)}",
                    "PatientSex": "MF"[patient % 2],
                    "PatientBirthDate": day(-rnd.randrange(30_000)),
                    "PatientAge": f"{rnd.randrange(1, 95):03d}Y",
                    "SliceThickness": round(rnd.uniform(0.5, 5), 2),
                    "Rows": 512,
                    "Columns": 512,
                    "BitsAllocated": 16,
                    "PhotometricInterpretation": "MONOCHROME2",
                    "ProtocolName": f"{body_part}_ROUTINE",
                }


def queries(rnd: random.Random, docs: int) -> list[tuple[str, Callable[[], dict[str, Any]]]]:
    patients = max(docs // 20, 1)
    return [
        ("seed: MR after 20251228", lambda: {"modality": "MR", "study_date": {"$gt": "20251228"}}),
        (
            "modality + one day",
            lambda: {
                "modality": rnd.choice(MODALITIES),
                "study_date": {"$between": [d := day(rnd.randrange(DAYS)), d]},
            },
        ),
        (
            "OJAI form, CT in a week",
            lambda: {
                "$and": [
                    {"$eq": {"modality": "CT"}},
                    {"$between": {"study_date": [day(start := rnd.randrange(DAYS - 7)), day(start + 6)]}},
                ]
            },
        ),
        ("patient_id =", lambda: {"patient_id": f"PAT{rnd.randrange(patients):07d}"}),
    ]


def time_queries(
    engine: sa.Engine, table: DocumentTable, runs: int, docs: int
) -> list[tuple[str, float, float, float]]:
    rnd = random.Random(7)
    results = []
    for label, make in queries(rnd, docs):
        timings, rows = [], 0
        with engine.connect() as conn:
            for _ in range(runs):
                condition = make()
                start = time.perf_counter()
                rows += sum(1 for _ in table.find(conn, condition))
                timings.append((time.perf_counter() - start) * 1000)
        timings.sort()
        p99 = timings[min(len(timings) - 1, round(0.99 * (len(timings) - 1)))]
        results.append((label, statistics.median(timings), p99, rows / runs))
    return results


def run_dialect(name: str, engine: sa.Engine, docs: int, runs: int, unindexed_runs: int) -> None:
    table = DocumentTable(1)
    with engine.begin() as conn:
        table.create(conn)
    start = time.perf_counter()
    with engine.begin() as conn:
        loaded = table.insert_many(conn, instances(docs))
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    with engine.begin() as conn:
        table.add_index(conn, "by_modality_date", "modality:asc,study_date:desc")
        table.add_index(conn, "by_patient", "patient_id")
        table.analyze(conn)
    index_s = time.perf_counter() - start
    with engine.connect() as conn:
        plan = table.explain(conn, {"modality": "MR", "study_date": {"$gt": "20240101"}})
    indexed = time_queries(engine, table, runs, docs)
    with engine.begin() as conn:
        table.drop_index(conn, "by_modality_date")
        table.drop_index(conn, "by_patient")
    unindexed = time_queries(engine, table, unindexed_runs, docs)
    print(
        f"\n== {name}: {loaded:,} documents loaded in {load_s:.1f} s ({loaded / load_s:,.0f} docs/s); "
        f"indexes built and analysed in {index_s:.1f} s"
    )
    print("plan for {'modality': 'MR', 'study_date': {'$gt': '20240101'}}:")
    for line in plan.splitlines():
        if not any(
            noise in line
            for noise in (
                "Filter:",
                "Recheck Cond:",
                "SubPlan",
                "SUBQUERY",
                "VIRTUAL TABLE",
                "Function Scan",
                "Index Cond:",
            )
        ):
            print("   " + line[:140])
    print(
        f"{'query':28} {'rows':>7} {'p50 ms':>9} {'p99 ms':>9} {'no-index p50':>13} {'no-index p99':>13} "
        f"{'speed-up':>9}"
    )
    for (label, p50, p99, rows), (_, u50, u99, _) in zip(indexed, unindexed, strict=True):
        print(f"{label:28} {rows:7.0f} {p50:9.2f} {p99:9.2f} {u50:13.1f} {u99:13.1f} {u50 / p50:8.0f}x")


@contextlib.contextmanager
def sqlite_engine() -> Iterator[sa.Engine]:
    with tempfile.TemporaryDirectory(prefix="medfabric-bench-") as directory:
        engine = sa.create_engine(f"sqlite:///{Path(directory, 'catalog.db')}")

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA cache_size=-262144")  # 256 MiB
            cursor.execute("PRAGMA mmap_size=4294967296")
            cursor.close()

        yield engine
        engine.dispose()


@contextlib.contextmanager
def postgres_engine() -> Iterator[sa.Engine]:
    with postgres_server() as server:
        url = server.create_database("bench").replace("postgresql://", "postgresql+psycopg://")
        engine = sa.create_engine(url)
        yield engine
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--dialect", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--runs", type=int, default=50, help="timed runs per query with the indexes")
    parser.add_argument("--unindexed-runs", type=int, default=50, help="timed runs per query without them")
    args = parser.parse_args()
    if args.dialect in ("sqlite", "both"):
        with sqlite_engine() as engine:
            run_dialect(f"SQLite {sqlite3.sqlite_version}", engine, args.docs, args.runs, args.unindexed_runs)
    if args.dialect in ("postgres", "both"):
        with postgres_engine() as engine:
            with engine.connect() as conn:
                version = conn.exec_driver_sql("SHOW server_version").scalar()
            run_dialect(f"PostgreSQL {version}", engine, args.docs, args.runs, args.unindexed_runs)


if __name__ == "__main__":
    main()
