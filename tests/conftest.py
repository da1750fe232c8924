"""Fixtures shared by the whole suite: throw-away engines and fresh fabrics.

Core tests run on both catalogs (SQLite and a PostgreSQL 15 the suite starts itself) through
the ``catalog_url`` fixture; blob store tests on both backends (local directories and a
SeaweedFS server the suite starts) through ``backend_kind``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from medfabric.config import S3Config
from medfabric.service.fabric import Fabric, init_fabric
from medfabric.testing.servers import PostgresServer, SeaweedServer, postgres_server, seaweedfs_server

_database_numbers = itertools.count()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[SeaweedServer]:
    with seaweedfs_server() as server:
        yield server


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty catalog database on each dialect."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database(f"t{os.getpid()}_{next(_database_numbers)}")


def make_fabric(
    home: Path,
    catalog_url: str | None = None,
    *,
    datadirs: int = 3,
    user: str = "admin",
    s3: S3Config | None = None,
) -> Fabric:
    return init_fabric(
        home / "home",
        name="test.fabric",
        catalog_url=catalog_url,
        datadirs=[home / f"data{i}" for i in range(datadirs)] if s3 is None else None,
        s3=s3,
        user=user,
    )


@pytest.fixture
def fabric(tmp_path: Path, catalog_url: str) -> Iterator[Fabric]:
    """A new fabric with three data directories, on each catalog dialect, opened by its admin."""
    opened = make_fabric(tmp_path, catalog_url)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def local_fabric(tmp_path: Path) -> Iterator[Fabric]:
    """A new embedded fabric (SQLite, three data directories): for tests about one dialect only."""
    opened = make_fabric(tmp_path)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def s3_fabric(tmp_path: Path, seaweedfs: SeaweedServer) -> Iterator[Fabric]:
    """A new fabric whose blob store is a bucket on the SeaweedFS server."""
    bucket = f"mf{os.getpid()}x{next(_database_numbers)}"
    opened = make_fabric(
        tmp_path,
        s3=S3Config(
            seaweedfs.endpoint, bucket, "", seaweedfs.access_key, seaweedfs.secret_key, seaweedfs.region
        ),
    )
    try:
        yield opened
    finally:
        opened.close()
