"""Large files: write and read one big file with medfabric against `cp` on the same disk.

Each round, with the page cache dropped before every step: `cp SRC DST && sync` (write),
medfabric `fs.write` of the same file (durable when it returns), medfabric read to nothing,
and `dd` of the plain copy to /dev/null (read). Prints medians and the ratios.

    .venv/bin/python benchmarks/bench_large_files.py --size-mb 2048 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import drop_caches, median, run, table, timed

import medfabric


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", default=".", help="Where to work (the disk under test).")
    parser.add_argument("--compression", default="off", choices=["off", "zstd"])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-large-", dir=args.dir))
    source = work / "source.bin"
    with source.open("wb") as handle:
        for _ in range(args.size_mb):
            handle.write(os.urandom(1 << 20))  # incompressible, like compressed pixel data
    size = source.stat().st_size
    fabric = medfabric.init(work / "home", datadirs=[work / "data"], user="bench")
    fabric.volumes.create("big", "/big", replication=1, min_replication=1, compression=args.compression)
    cp_write, mf_write, mf_read, dd_read = [], [], [], []
    dropped = True
    try:
        for round_number in range(args.rounds):
            target = work / f"copy{round_number}.bin"
            dropped &= drop_caches()
            cp_write.append(timed(lambda: (run(["cp", str(source), str(target)]), run(["sync"]))))
            dropped &= drop_caches()

            def write() -> None:
                with source.open("rb") as handle:
                    fabric.fs.write(f"/big/file{round_number}", handle)

            mf_write.append(timed(write))
            dropped &= drop_caches()

            def read() -> None:
                with fabric.fs.open(f"/big/file{round_number}") as reader:
                    while reader.read(8 << 20):
                        pass

            mf_read.append(timed(read))
            dropped &= drop_caches()
            dd_read.append(
                timed(lambda: run(["dd", f"if={target}", "of=/dev/null", "bs=4M"], capture_output=True))
            )
            target.unlink()
        mb = size / 1e6
        rows = [
            [
                "write",
                f"{mb / median(cp_write):.0f}",
                f"{mb / median(mf_write):.0f}",
                f"{median(cp_write) / median(mf_write):.2f}",
            ],
            [
                "read",
                f"{mb / median(dd_read):.0f}",
                f"{mb / median(mf_read):.0f}",
                f"{median(dd_read) / median(mf_read):.2f}",
            ],
        ]
        print(
            f"{args.size_mb} MB file, {args.rounds} rounds, medians; page cache dropped: {dropped}; "
            f"compression {args.compression}"
        )
        print(table(["", "cp/dd MB/s", "medfabric MB/s", "ratio"], rows))
    finally:
        fabric.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
