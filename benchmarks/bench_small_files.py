"""Small files: write N files of 64 KB durably with packs on, packs off, and as plain files.

Same disk, same bytes (each file unique, incompressible). Plain files get one fsync each (the
file) as a careful application would; medfabric writes batches (``fs put -r`` / DICOM import do)
and each batch is durable when ``write_many`` returns. Prints files/s, backend objects, ratios.

    .venv/bin/python benchmarks/bench_small_files.py --files 100000
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import drop_caches, table, timed

import medfabric
from medfabric.service.writes import NewFile

FILE_SIZE = 64 * 1024


def bodies(count: int) -> list[bytes]:
    base = os.urandom(FILE_SIZE)
    return [index.to_bytes(8, "little") + base[8:] for index in range(count)]


def plain_files(root: Path, data: list[bytes]) -> float:
    def work() -> None:
        for index, body in enumerate(data):
            directory = root / f"d{index // 1000:03}"
            if index % 1000 == 0:
                directory.mkdir(parents=True)
            fd = os.open(directory / f"f{index}.dcm", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, body)
                os.fsync(fd)
            finally:
                os.close(fd)

    return timed(work)


def medfabric_files(home: Path, data: list[bytes], *, packing: bool, batch: int) -> tuple[float, int]:
    fabric = medfabric.init(home, datadirs=[home / "data"], user="bench")
    try:
        fabric.admin.config_save({"mfs.enable.small.file.optimization": "1" if packing else "0"})
        fabric.volumes.create("small", "/small", replication=1, min_replication=1, compression="off")

        def work() -> None:
            for start in range(0, len(data), batch):
                files = [
                    NewFile(f"/small/d{index // 1000:03}/f{index}.dcm", data[index])
                    for index in range(start, min(start + batch, len(data)))
                ]
                result = fabric.fs.write_many(files)
                assert not result.errors, result.errors

        seconds = timed(work)
        objects = sum(1 for _ in (home / "data").rglob("*.pack"))
        return seconds, objects
    finally:
        fabric.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000, help="Files per durable batch.")
    parser.add_argument("--dir", default=".", help="Where to work (the disk under test).")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-small-", dir=args.dir))
    data = bodies(args.files)
    # What a contender wrote is deleted only at the end: deleting gigabytes on a disk mounted with
    # online discard slows whoever writes next for seconds (it made the second contender pay).
    try:
        drop_caches()
        plain = plain_files(work / "plain", data)
        drop_caches()
        packed, packed_objects = medfabric_files(work / "packed", data, packing=True, batch=args.batch)
        drop_caches()
        unpacked, unpacked_objects = medfabric_files(work / "unpacked", data, packing=False, batch=args.batch)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    n = args.files
    rows = [
        ["plain files, fsync each", f"{n / plain:.0f}", n, "1.00", "1"],
        [
            "medfabric, packs on",
            f"{n / packed:.0f}",
            packed_objects,
            f"{plain / packed:.2f}",
            f"{n / max(1, packed_objects):.0f}",
        ],
        [
            "medfabric, packs off",
            f"{n / unpacked:.0f}",
            unpacked_objects,
            f"{plain / unpacked:.2f}",
            f"{n / max(1, unpacked_objects):.0f}",
        ],
    ]
    print(f"{n} files of {FILE_SIZE // 1024} KB, batches of {args.batch}, replication 1, compression off")
    print(table(["", "files/s", "backend objects", "speed vs plain", "fewer objects"], rows))


if __name__ == "__main__":
    main()
