"""What security costs: an encrypted volume against the same unencrypted, and reads with audit on/off.

Same fabric, same data, interleaved rounds; medians and ratios (targets: ≥ 0.8× for both).

    .venv/bin/python benchmarks/bench_security.py --large-mb 512 --small-files 2000 --rounds 3
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import drop_caches, median, table, timed

import medfabric
from medfabric.service.writes import NewFile


def fresh(data: bytes) -> bytes:
    """The same size, different content in every 4 MiB chunk."""
    out = bytearray(data)
    for offset in range(0, len(out), 4 << 20):
        out[offset : offset + 16] = os.urandom(16)
    return bytes(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--large-mb", type=int, default=512)
    parser.add_argument("--small-files", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", default=".")
    parser.add_argument("--threads", type=int, default=8, help="Concurrent readers for the parallel case.")
    parser.add_argument("--audit-durability", default="commit", choices=["commit", "process"])
    parser.add_argument(
        "--coalesce",
        type=int,
        default=0,
        help="audit data -coalesce MINUTES: every round re-reads the same files, so with it on only "
        "the first read of each file is recorded",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-security-", dir=args.dir))
    fabric = medfabric.init(work / "home", datadirs=[work / "data"], user="bench")
    try:
        fabric.volumes.create("plain", "/plain", replication=1, compression="off")
        fabric.volumes.create("secret", "/secret", replication=1, compression="off", dare=True)
        fabric.volumes.create("quiet", "/quiet", replication=1, compression="off")
        fabric.volumes.create("audited", "/audited", replication=1, compression="off")
        fabric.admin.config_save({"mfs.enable.audit.log": "1", "mfs.audit.durability": args.audit_durability})
        fabric.audit.data("audited", True, coalesce=args.coalesce)
        large = os.urandom(args.large_mb << 20)
        small = [os.urandom(64 * 1024) for _ in range(args.small_files)]
        results: dict[str, list[float]] = {
            key: []
            for key in (
                "plain write",
                "secret write",
                "plain read",
                "secret read",
                "quiet read",
                "audited read",
                "quiet parallel",
                "audited parallel",
            )
        }
        for volume in ("quiet", "audited"):
            fabric.fs.write_many([NewFile(f"/{volume}/f{i}", body) for i, body in enumerate(small)])
        for round_number in range(args.rounds):
            for volume in ("plain", "secret"):
                path = f"/{volume}/big{round_number}"
                large = fresh(large)  # new bytes every time: deduplication must not help either side
                drop_caches()  # flush the previous write's dirty pages: no order bias
                results[f"{volume} write"].append(timed(lambda p=path: fabric.fs.write(p, io.BytesIO(large))))
                drop_caches()
                results[f"{volume} read"].append(timed(lambda p=path: fabric.fs.read(p)))
            for volume in ("quiet", "audited"):
                drop_caches()

                def read_all(v: str = volume) -> None:
                    for i in range(args.small_files):
                        fabric.fs.read(f"/{v}/f{i}")

                results[f"{volume} read"].append(timed(read_all))
                drop_caches()

                def read_parallel(v: str = volume) -> None:
                    with ThreadPoolExecutor(max_workers=args.threads) as pool:
                        list(pool.map(lambda i: fabric.fs.read(f"/{v}/f{i}"), range(args.small_files)))

                results[f"{volume} parallel"].append(timed(read_parallel))
        mb = args.large_mb
        n = args.small_files
        rows = [
            [
                "large write MB/s",
                f"{mb / median(results['plain write']):.0f}",
                f"{mb / median(results['secret write']):.0f}",
                f"{median(results['plain write']) / median(results['secret write']):.2f}",
            ],
            [
                "large read MB/s",
                f"{mb / median(results['plain read']):.0f}",
                f"{mb / median(results['secret read']):.0f}",
                f"{median(results['plain read']) / median(results['secret read']):.2f}",
            ],
            [
                "64 KB reads/s, audit off → on",
                f"{n / median(results['quiet read']):.0f}",
                f"{n / median(results['audited read']):.0f}",
                f"{median(results['quiet read']) / median(results['audited read']):.2f}",
            ],
            [
                f"64 KB reads/s, {args.threads} threads, audit off → on",
                f"{n / median(results['quiet parallel']):.0f}",
                f"{n / median(results['audited parallel']):.0f}",
                f"{median(results['quiet parallel']) / median(results['audited parallel']):.2f}",
            ],
        ]
        print(
            f"{args.rounds} rounds, medians; large file {mb} MB, {n} small files; "
            f"audit durability {args.audit_durability}, coalesce {args.coalesce} min"
        )
        print(table(["", "baseline", "encrypted / audited", "ratio"], rows))
    finally:
        fabric.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
