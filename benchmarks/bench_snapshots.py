"""Snapshot creation time on volumes of 1 k, 100 k and 1 M files: it must not grow with the volume.

The volumes are populated through a bulk path: entry rows are inserted straight into the catalog
(one directory per 1,000 files, every file sharing one small body), which is what a snapshot
looks at; writing a million real files would only measure the write path. Each snapshot is then
taken through the service (`fabric.snapshots.create`, what `volume snapshot create` calls).
Targets: ≤ 50 ms at 1 M files and time(1 M) / time(1 k) ≤ 1.5.

    .venv/bin/python benchmarks/bench_snapshots.py                 # 1k, 100k, 1M on SQLite
    .venv/bin/python benchmarks/bench_snapshots.py --catalog postgres --sizes 1000,100000
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import table

import medfabric
from medfabric.catalog.schema import contents, entries, volumes
from medfabric.fs.namespace import make_ino
from medfabric.service.fabric import Fabric

PER_DIRECTORY = 1000


def populate(fabric: Fabric, volume: str, files: int) -> float:
    """Insert ``files`` file rows (and their directories) into the volume; returns seconds."""
    started = time.perf_counter()
    found = fabric.volumes.info(volume)
    now = fabric.clock.now_ns()
    counter = found.next_ino
    body = make_ino(found.id, counter)
    counter += 1
    common = {
        "volume_id": found.id,
        "mode": 0o644,
        "owner": "bench",
        "grp": "bench",
        "mtime_ns": now,
        "ctime_ns": now,
        "atime_ns": now,
        "target": None,
        "born": found.version,
        "died": None,
    }
    directories = (files + PER_DIRECTORY - 1) // PER_DIRECTORY
    with fabric.catalog.write() as conn:
        conn.execute(
            contents.insert().values(id=body, volume_id=found.id, size=100, digest=None, created_at=0)
        )
        rows = []
        for number in range(directories):
            directory = make_ino(found.id, counter)
            counter += 1
            rows.append(
                {
                    **common,
                    "parent_ino": found.root_ino,
                    "name": f"d{number:05}",
                    "ino": directory,
                    "kind": "d",
                    "size": 0,
                    "content_id": None,
                    "mode": 0o755,
                }
            )
            for index in range(min(PER_DIRECTORY, files - number * PER_DIRECTORY)):
                rows.append(
                    {
                        **common,
                        "parent_ino": directory,
                        "name": f"i{index:04}.dcm",
                        "ino": make_ino(found.id, counter),
                        "kind": "f",
                        "size": 100,
                        "content_id": body,
                    }
                )
                counter += 1
            if len(rows) >= 50_000:
                conn.execute(entries.insert(), rows)
                rows = []
        if rows:
            conn.execute(entries.insert(), rows)
        conn.execute(
            volumes.update()
            .where(volumes.c.id == found.id)
            .values(next_ino=counter, file_count=files, dir_count=directories, logical_bytes=100 * files)
        )
    return time.perf_counter() - started


def settle(fabric: Fabric) -> None:
    """Let the catalog absorb the bulk insert first (SQLite: checkpoint the write-ahead log, which a
    long-running fabric does in the background), so snapshots are timed in a steady state."""
    if fabric.catalog.dialect == "sqlite":
        raw = fabric.catalog.engine.raw_connection()
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()
    else:
        with fabric.catalog.write() as conn:
            conn.exec_driver_sql("ANALYZE")


def time_snapshots(fabric: Fabric, volume: str, runs: int) -> list[float]:
    for warm in range(3):
        fabric.snapshots.create(volume, f"warm{warm}")
    timings = []
    for run in range(runs):
        started = time.perf_counter()
        fabric.snapshots.create(volume, f"bench{run}")
        timings.append(time.perf_counter() - started)
    return timings


@contextlib.contextmanager
def catalog_url(kind: str, work: Path) -> Iterator[str | None]:
    if kind == "sqlite":
        yield None
        return
    from medfabric.testing.servers import postgres_server

    with postgres_server() as server:
        yield server.create_database("bench_snapshots")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,100000,1000000", help="Files per volume, comma-separated.")
    parser.add_argument("--runs", type=int, default=25, help="Snapshots timed per volume.")
    parser.add_argument("--catalog", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--dir", default=".", help="Where to work.")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-snapshots-", dir=args.dir))
    results: list[tuple[int, float, float, float, float]] = []
    try:
        with catalog_url(args.catalog, work) as url:
            fabric = medfabric.init(work / "home", datadirs=[work / "data"], user="bench", catalog_url=url)
            try:
                for size in sizes:
                    name = f"v{size}"
                    fabric.volumes.create(name, f"/{name}", replication=1)
                    populated = populate(fabric, name, size)
                    settle(fabric)
                    timings = time_snapshots(fabric, name, args.runs)
                    median = statistics.median(timings)
                    p90 = sorted(timings)[int(0.9 * (len(timings) - 1))]
                    results.append((size, populated, median, p90, max(timings)))
            finally:
                fabric.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = [
        [
            f"{size:,}",
            f"{populated:.1f} s",
            f"{median * 1000:.2f} ms",
            f"{p90 * 1000:.2f} ms",
            f"{worst * 1000:.2f} ms",
        ]
        for size, populated, median, p90, worst in results
    ]
    print(f"Snapshot creation ({args.catalog} catalog, {args.runs} snapshots per volume, service call)")
    print(table(["files", "populate (bulk)", "median", "p90", "max"], rows))
    smallest, largest = results[0], results[-1]
    ratio = largest[2] / smallest[2]
    print(
        f"time({largest[0]:,}) / time({smallest[0]:,}) = {ratio:.2f}  (target <= 1.5); "
        f"median at {largest[0]:,} files: {largest[2] * 1000:.2f} ms (target <= 50 ms)"
    )


if __name__ == "__main__":
    main()
