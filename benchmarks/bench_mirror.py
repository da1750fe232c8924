"""Mirror sync: a full sync of a volume of 4 MB files, then an incremental one after 1 % changed,
compared with ``rsync -a`` of the same files between two directories on the same disk.

Both fabrics are embedded (SQLite, one data directory each, replication 1, compression off: the
data is random) and on the same disk, like rsync's two directories. A sync is durable when it
returns (every pack fsync'd, one catalog commit); rsync's figures are given with and without the
final `sync` that makes its copy durable too. Target: incremental <= 5 % of the full sync's time.

    .venv/bin/python benchmarks/bench_mirror.py --size-gb 10     # 2,500 files (the issue's figure)
    .venv/bin/python benchmarks/bench_mirror.py --size-gb 1      # a quick run
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import drop_caches, table

import medfabric
from medfabric.service.fabric import Fabric

FILE_SIZE = 4 * 1024 * 1024


def body(seed: random.Random, base: bytes) -> bytes:
    """A distinct 4 MB body, cheaply: a random base with a random 64 KB window replaced."""
    data = bytearray(base)
    start = seed.randrange(0, FILE_SIZE - 65536)
    data[start : start + 65536] = seed.randbytes(65536)
    return bytes(data)


def generate(source: Fabric, plain: Path, count: int, rng: random.Random) -> float:
    base = os.urandom(FILE_SIZE)
    started = time.perf_counter()
    for index in range(count):
        data = body(rng, base)
        path = f"d{index // 100:03}/f{index:05}.bin"
        source.fs.write(f"/data/{path}", data, parents=True)
        (plain / path).parent.mkdir(parents=True, exist_ok=True)
        (plain / path).write_bytes(data)
    os.sync()
    return time.perf_counter() - started


def change(source: Fabric, plain: Path, count: int, fraction: float, rng: random.Random) -> int:
    base = os.urandom(FILE_SIZE)
    chosen = rng.sample(range(count), max(1, int(count * fraction)))
    for index in chosen:
        data = body(rng, base)
        path = f"d{index // 100:03}/f{index:05}.bin"
        source.fs.write(f"/data/{path}", data, overwrite=True)
        (plain / path).write_bytes(data)
    os.sync()
    return len(chosen)


def rsync(source: Path, target: Path) -> tuple[float, float]:
    """Seconds for `rsync -a`, and for it followed by `sync` (durable)."""
    drop_caches()
    started = time.perf_counter()
    subprocess.run(["rsync", "-a", f"{source}/", f"{target}/"], check=True)
    copied = time.perf_counter() - started
    os.sync()
    return copied, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-gb", type=float, default=1.0, help="Volume size (10 = the issue's figure).")
    parser.add_argument(
        "--change", type=float, default=0.01, help="Fraction of files changed (default 1 %%)."
    )
    parser.add_argument("--dir", default=".", help="Where to work (the disk under test).")
    args = parser.parse_args()
    count = max(10, int(args.size_gb * 1024**3 / FILE_SIZE))
    rng = random.Random(2024)
    work = Path(tempfile.mkdtemp(prefix="bench-mirror-", dir=args.dir))
    try:
        hospital = medfabric.init(work / "hospital", datadirs=[work / "hospital-data"], user="bench")
        dr = medfabric.init(work / "dr", datadirs=[work / "dr-data"], user="bench", name="dr.fabric")
        try:
            hospital.volumes.create("data", "/data", replication=1, compression="off")
            generated = generate(hospital, work / "plain-src", count, rng)
            dr.remotes.add("hospital", str(work / "hospital"))
            dr.volumes.create("data_dr", "/data", volume_type="mirror", source="data@hospital", replication=1)
            drop_caches()
            full = dr.mirrors.start("data_dr")
            full_rsync, full_rsync_durable = rsync(work / "plain-src", work / "plain-dst")
            changed = change(hospital, work / "plain-src", count, args.change, rng)
            drop_caches()
            incremental = dr.mirrors.start("data_dr")
            incr_rsync, incr_rsync_durable = rsync(work / "plain-src", work / "plain-dst")
            assert incremental.blobs_sent == changed, (incremental.blobs_sent, changed)
        finally:
            hospital.close()
            dr.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    gigabytes = count * FILE_SIZE / 1024**3
    rows = [
        ["full", f"{full.seconds:.1f} s", f"{gigabytes / full.seconds * 1024:.0f} MB/s", f"{full.blobs_sent}",
         f"{full_rsync:.1f} s / {full_rsync_durable:.1f} s", f"{full.seconds / full_rsync_durable:.2f}"],
        [f"incremental ({changed} files)", f"{incremental.seconds:.2f} s", "",
         f"{incremental.blobs_sent}", f"{incr_rsync:.2f} s / {incr_rsync_durable:.2f} s",
         f"{incremental.seconds / incr_rsync_durable:.2f}"],
    ]  # fmt: skip
    print(f"Mirror sync of {count:,} files of 4 MB ({gigabytes:.1f} GiB); generated in {generated:.0f} s")
    print(
        table(
            ["sync", "medfabric", "throughput", "blobs sent", "rsync -a / +sync", "ratio to rsync+sync"], rows
        )
    )
    print(
        f"incremental / full = {incremental.seconds / full.seconds * 100:.2f} % (target <= 5 %); "
        f"full sync / rsync -a + sync = {full.seconds / full_rsync_durable:.2f}"
    )


if __name__ == "__main__":
    main()
