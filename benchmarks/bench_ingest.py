"""DICOM ingest, side by side in one run: `cp -r` + `sync` (the physical limit), Orthanc (REST
`POST /instances` from parallel clients) and `medfabric dicom import`, on the same synthetic corpus
of 512×512 CT instances on the same disk. Every contender ends with `sync`, so each time is "until
durable". Prints instances/s, MB/s, the ratios to cp and to Orthanc, the CPU seconds each used, and
the machine's CPU pressure during each run (a shared machine shows up there, not in the ratios).

    .venv/bin/python benchmarks/bench_ingest.py [--instances 5000] [--clients 4] [--cold]

Orthanc is Debian's package (`apt-get install -y orthanc`); the benchmark starts it on loopback with a
temporary storage directory and free ports, and stops it (its start is not timed). medfabric runs
as the CLI (`dicom import`, its start-up timed; `init` and `volume create` not) on a fresh fabric
in a temporary home, once with compression off (the default: what cp and Orthanc do, store the bytes
as they are) and once with `volume create -compression zstd`.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import drop_caches, table

from medfabric.imaging.synth import MANIFEST_NAME, generate_ct_series_bulk

ROOT = Path(__file__).resolve().parent.parent
MEDFABRIC = [sys.executable, "-m", "medfabric.cli.main"]


@dataclass
class Result:
    name: str
    seconds: float
    instances: int
    cpu_seconds: float
    pressure: float  # % of the run some task was waiting for a CPU (Linux PSI "some")
    note: str = ""


def cpu_pressure_total() -> float:
    """Microseconds that some task waited for a CPU, since boot (0 where PSI is missing)."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return 0.0
    return float(line.rsplit("total=", 1)[1])


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(
    name: str,
    action: Callable[[], float],
    instances: int,
    *,
    extra_cpu: Callable[[], float] | None = None,
    note: str = "",
    cold: bool = False,
) -> Result:
    if cold:
        drop_caches()
    os.sync()
    cpu_before, pressure_before, own_before = children_cpu(), cpu_pressure_total(), time.process_time()
    started = time.perf_counter()
    action_cpu = action()
    os.sync()
    seconds = time.perf_counter() - started
    cpu = children_cpu() - cpu_before + (time.process_time() - own_before) + action_cpu
    if extra_cpu is not None:
        cpu += extra_cpu()
    pressure = (cpu_pressure_total() - pressure_before) / 1e6 / seconds * 100
    return Result(name, seconds, instances, cpu, pressure, note)


# -- the contenders -------------------------------------------------------------------------------


def run_cp(corpus: Path, target: Path) -> float:
    subprocess.run(["cp", "-r", str(corpus), str(target)], check=True)
    return 0.0  # counted as a child's


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Orthanc:
    """Debian's Orthanc on loopback, with its own storage and free ports."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        storage = workdir / "storage"
        storage.mkdir(parents=True)
        config = {
            "Name": "bench",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "StorageCompression": False,
            "HttpPort": self.port,
            "DicomServerEnabled": False,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "Plugins": [],
            "HttpCompressionEnabled": False,
        }
        (workdir / "orthanc.json").write_text(json.dumps(config))
        self.process = subprocess.Popen(
            ["Orthanc", str(workdir / "orthanc.json")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                connection.request("GET", "/system")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("Orthanc did not start")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def upload(self, files: list[Path], clients: int) -> float:
        errors: list[str] = []

        def client(share: list[Path]) -> None:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            for path in share:
                connection.request(
                    "POST",
                    "/instances",
                    body=path.read_bytes(),
                    headers={"Content-Type": "application/dicom"},
                )
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    errors.append(f"{path}: HTTP {response.status}")
            connection.close()

        threads = [threading.Thread(target=client, args=(files[n::clients],)) for n in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise RuntimeError(f"Orthanc refused {len(errors)} instances, e.g. {errors[0]}")
        return 0.0  # the clients' CPU is this process's; Orthanc's is read from /proc

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def medfabric_env(home: Path) -> dict[str, str]:
    return {**os.environ, "MEDFABRIC_HOME": str(home), "MEDFABRIC_USER": "bench"}


def prepare_medfabric(home: Path, compression: str) -> None:
    """A fresh fabric with one volume: set up before the clock starts, as Orthanc is started."""
    env = medfabric_env(home)
    subprocess.run(
        [*MEDFABRIC, "init", "-name", "bench.fabric", "-datadir", str(home / "data")],
        env=env,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [*MEDFABRIC, "volume", "create", "-name", "ct", "-path", "/ct", "-compression", compression],
        env=env,
        check=True,
        capture_output=True,
    )


def run_medfabric(corpus: Path, home: Path) -> float:
    """The timed part: the whole `medfabric dicom import` command, its start-up included."""
    result = subprocess.run(
        [*MEDFABRIC, "dicom", "import", str(corpus), "-volume", "ct", "-json"],
        env=medfabric_env(home),
        check=True,
        capture_output=True,
        text=True,
    )
    summary = json.loads(result.stdout)["data"][0]
    if summary["failed"] or summary["stored"] == 0:
        raise RuntimeError(f"medfabric import failed: {summary}")
    return 0.0  # its CPU is counted as a child's


# -- main -------------------------------------------------------------------------------------------


def corpus_of(path: Path, instances: int) -> list[Path]:
    manifest = path / MANIFEST_NAME
    if not manifest.exists() or len(json.loads(manifest.read_text())["files"]) != instances:
        shutil.rmtree(path, ignore_errors=True)
        print(f"generating {instances} CT instances (512x512) in {path} ...", flush=True)
        generate_ct_series_bulk(path, instances=instances, size="full", workers=os.cpu_count() or 1)
    return sorted(path.rglob("*.dcm"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=4, help="parallel Orthanc clients")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="same disk as the corpus (default: a temp dir)"
    )
    parser.add_argument("--corpus", type=Path, default=None, help="reuse this corpus directory")
    parser.add_argument("--cold", action="store_true", help="drop the page cache before each run (root)")
    parser.add_argument("--skip-orthanc", action="store_true")
    args = parser.parse_args()

    (ROOT / "bench-output").mkdir(exist_ok=True)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="ingest-", dir=str(ROOT / "bench-output")))
    workdir.mkdir(parents=True, exist_ok=True)
    corpus = args.corpus or workdir / "corpus"
    files = corpus_of(corpus, args.instances)
    size = sum(path.stat().st_size for path in files)
    print(
        f"corpus: {len(files)} instances, {size / 1e9:.2f} GB, {os.cpu_count()} CPUs, workdir {workdir}\n",
        flush=True,
    )
    results: list[Result] = []
    try:
        target = workdir / "cp-target"
        results.append(measure("cp -r + sync", lambda: run_cp(corpus, target), len(files), cold=args.cold))
        shutil.rmtree(target)
        if not args.skip_orthanc and shutil.which("Orthanc"):
            orthanc = Orthanc(workdir / "orthanc")
            try:
                before = orthanc.cpu_seconds()
                results.append(measure(
                    f"Orthanc REST ({args.clients} clients)",
                    lambda: orthanc.upload(files, args.clients),
                    len(files),
                    extra_cpu=lambda: orthanc.cpu_seconds() - before,
                    cold=args.cold,
                ))  # fmt: skip
            finally:
                orthanc.stop()
                shutil.rmtree(workdir / "orthanc")
        for compression, label in (("off", "compression off"), ("zstd", "zstd")):
            home = workdir / f"medfabric-{compression}"
            prepare_medfabric(home, compression)
            results.append(measure(
                f"medfabric dicom import ({label})",
                functools.partial(run_medfabric, corpus, home),
                len(files),
                cold=args.cold,
            ))  # fmt: skip
            shutil.rmtree(home)
    finally:
        if args.workdir is None and args.corpus is None:
            shutil.rmtree(workdir, ignore_errors=True)
    report(results, size)


def report(results: list[Result], size: int) -> None:
    cp = next(r for r in results if r.name.startswith("cp"))
    orthanc = next((r for r in results if r.name.startswith("Orthanc")), None)
    rows = []
    for result in results:
        rate = result.instances / result.seconds
        rows.append([
            result.name,
            f"{result.seconds:.1f}",
            f"{rate:.0f}",
            f"{size / result.seconds / 1e6:.0f}",
            f"{cp.seconds / result.seconds:.2f}x",
            f"{orthanc.seconds / result.seconds:.2f}x" if orthanc else "-",
            f"{result.cpu_seconds:.1f}",
            f"{result.pressure:.0f}%",
        ])  # fmt: skip
    print(
        table(
            ["contender", "seconds", "inst/s", "MB/s", "vs cp", "vs Orthanc", "CPU s", "CPU pressure"], rows
        )
    )
    for result in results:
        if result.name.startswith("medfabric"):
            print(f"\n{result.name}: {cp.seconds / result.seconds:.2f}x cp (target >= 0.8x)", end="")
            if orthanc:
                print(f", {orthanc.seconds / result.seconds:.2f}x Orthanc (target >= 2.5x)", end="")
    print()


if __name__ == "__main__":
    main()
