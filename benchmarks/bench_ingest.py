"""DICOM ingest, side by side in one run: `cp -r` + `sync` (the physical limit), Orthanc (REST
`POST /instances` from parallel clients) and `medfabric dicom import`, on the same synthetic corpus
of 512×512 CT instances on the same disk. Every contender ends with `sync`, so each time is "until
durable". Prints instances/s, MB/s, the ratios to cp and to Orthanc, the CPU seconds each used, and
the machine's CPU pressure during each run (a shared machine shows up there, not in the ratios).

    .venv/bin/python benchmarks/bench_ingest.py [--instances 5000] [--clients 4] [--rounds 3] [--cold]

The machine is shared and its disk's speed moves, so the contenders run in rounds, each round in a
different order, and the summary gives each contender's median and the median of the per-round
ratios. What a contender wrote is deleted only at the end of its round, followed by a `sync` and a
pause: deleting gigabytes on a disk mounted with online discard slows the next writer for seconds,
and that cost belongs to no contender.

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

from common import drop_caches, median, table

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
    parser.add_argument("--skip-zstd", action="store_true", help="leave out medfabric with zstd")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all contenders (median reported)")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds of pause after a round's cleanup")
    args = parser.parse_args()

    (ROOT / "bench-output").mkdir(exist_ok=True)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="ingest-", dir=str(ROOT / "bench-output")))
    workdir.mkdir(parents=True, exist_ok=True)
    corpus = args.corpus or workdir / "corpus"
    files = corpus_of(corpus, args.instances)
    size = sum(path.stat().st_size for path in files)
    # installed software has its bytecode compiled (a wheel install does it); an editable checkout may not
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src")], check=True)
    print(
        f"corpus: {len(files)} instances, {size / 1e9:.2f} GB, {os.cpu_count()} CPUs, workdir {workdir}\n",
        flush=True,
    )
    contenders: list[tuple[str, Callable[[Path], Result]]] = [
        ("cp -r + sync", lambda target: measure(
            "cp -r + sync", lambda: run_cp(corpus, target), len(files), cold=args.cold
        )),
    ]  # fmt: skip
    if not args.skip_orthanc and shutil.which("Orthanc"):
        contenders.append((f"Orthanc REST ({args.clients} clients)", lambda target: run_orthanc(
            target, files, args.clients, args.cold
        )))  # fmt: skip
    for compression, label in (("off", "compression off"), ("zstd", "zstd")):
        if compression == "zstd" and args.skip_zstd:
            continue
        name = f"medfabric dicom import ({label})"
        contenders.append((name, functools.partial(
            medfabric_contender, name, compression, corpus, len(files), args.cold
        )))  # fmt: skip
    rounds: list[list[Result]] = []
    try:
        for number in range(args.rounds):
            shift = number % len(contenders)
            order = contenders[shift:] + contenders[:shift]
            targets: list[Path] = []
            results: dict[str, Result] = {}
            for position, (name, run_one) in enumerate(order):
                target = workdir / f"round{number}-{position}"
                targets.append(target)
                results[name] = run_one(target)
            rounds.append([results[name] for name, _run in contenders])
            print(f"round {number + 1} (order: {', '.join(name for name, _run in order)})")
            report(rounds[-1], size)
            for target in targets:
                shutil.rmtree(target, ignore_errors=True)
            os.sync()
            time.sleep(args.settle)
    finally:
        if args.workdir is None and args.corpus is None:
            shutil.rmtree(workdir, ignore_errors=True)
    if len(rounds) > 1:
        summarize(rounds, size)


def run_orthanc(target: Path, files: list[Path], clients: int, cold: bool) -> Result:
    """A fresh Orthanc (started before the clock, stopped after it) storing under ``target``."""
    orthanc = Orthanc(target)
    try:
        before = orthanc.cpu_seconds()
        return measure(
            f"Orthanc REST ({clients} clients)",
            lambda: orthanc.upload(files, clients),
            len(files),
            extra_cpu=lambda: orthanc.cpu_seconds() - before,
            cold=cold,
        )
    finally:
        orthanc.stop()


def medfabric_contender(
    name: str, compression: str, corpus: Path, count: int, cold: bool, home: Path
) -> Result:
    prepare_medfabric(home, compression)
    return measure(name, functools.partial(run_medfabric, corpus, home), count, cold=cold)


def summarize(rounds: list[list[Result]], size: int) -> None:
    """Each contender's median over the rounds, and the medians of the per-round ratios."""
    names = [result.name for result in rounds[0]]
    rows = []
    for index, name in enumerate(names):
        runs = [round_[index] for round_ in rounds]
        seconds = median([run.seconds for run in runs])
        vs_cp = median([round_[0].seconds / round_[index].seconds for round_ in rounds])
        orthanc_at = next((i for i, n in enumerate(names) if n.startswith("Orthanc")), None)
        vs_orthanc = (
            f"{median([round_[orthanc_at].seconds / round_[index].seconds for round_ in rounds]):.2f}x"
            if orthanc_at is not None
            else "-"
        )
        rates = sorted(run.instances / run.seconds for run in runs)
        rows.append([
            name,
            f"{seconds:.2f}",
            f"{runs[0].instances / seconds:.0f}",
            f"{rates[0]:.0f}-{rates[-1]:.0f}",
            f"{vs_cp:.2f}x",
            vs_orthanc,
            f"{median([run.cpu_seconds for run in runs]):.1f}",
        ])  # fmt: skip
    print(f"\nmedians over {len(rounds)} rounds ({size / 1e9:.2f} GB)")
    print(table(["contender", "seconds", "inst/s", "range", "vs cp", "vs Orthanc", "CPU s"], rows))


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
