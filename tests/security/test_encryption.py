"""Encryption at rest: no plaintext byte of patient data in any backend object; keys handled safely."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from medfabric.errors import IntegrityError, Unavailable
from medfabric.imaging.synth import generate_corpus
from medfabric.service.fabric import Fabric, open_fabric
from medfabric.service.writes import NewFile
from tests.conftest import make_fabric


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[NewFile], list[bytes]]:
    root = tmp_path_factory.mktemp("corpus")
    summary = generate_corpus(root, patients=2, seed=3)
    manifest = json.loads(summary.manifest.read_text())
    files = [NewFile(f"/x/{item['path']}", (root / item["path"]).read_bytes()) for item in manifest["files"]]
    phi: list[bytes] = []
    for patient in manifest["patients"]:
        for text in patient["phi_strings"]:
            if len(text) >= 6:  # short strings (a sex, a year) occur by chance in any bytes
                phi.append(text.encode("utf-8"))
                phi.append(text.encode("latin-1", "ignore"))
    return files, sorted(set(phi))


def _backend_bytes(roots: list[Path]) -> list[tuple[Path, bytes]]:
    return [(path, path.read_bytes()) for root in roots for path in root.rglob("*.pack")]


def _leaks(objects: list[tuple[Path, bytes]], phi: list[bytes]) -> list[str]:
    return [
        f"{path.name}: {needle!r}" for path, data in objects for needle in phi if needle and needle in data
    ]


def _roots(fabric: Fabric) -> list[Path]:
    return [Path(backend.uri) for backend in fabric.store.backends.values()]


def _files_in(volume: str, files: list[NewFile]) -> list[NewFile]:
    return [NewFile(item.path.replace("/x/", f"/{volume}/", 1), item.data) for item in files]


def test_an_encrypted_volume_keeps_no_planted_phi_in_any_pack(local_fabric: Fabric, corpus: tuple) -> None:
    files, phi = corpus
    local_fabric.volumes.create("plain", "/plain", compression="off")
    local_fabric.fs.write_many(_files_in("plain", files))
    assert _leaks(_backend_bytes(_roots(local_fabric)), phi), "the test must be able to see plaintext PHI"
    local_fabric.volumes.create("secret", "/secret", dare=True)
    local_fabric.fs.write_many(_files_in("secret", files))
    secret_id = local_fabric.volumes.info("secret").id
    packs = [(p, d) for p, d in _backend_bytes(_roots(local_fabric)) if f"/packs/{secret_id}/" in str(p)]
    assert packs and _leaks(packs, phi) == []
    for item in _files_in("secret", files)[:5]:
        assert local_fabric.fs.read(item.path) == item.data


def test_volume_encrypt_rewrites_existing_data_and_removes_the_plaintext(
    local_fabric: Fabric, corpus: tuple
) -> None:
    files, phi = corpus
    local_fabric.volumes.create("ct", "/ct", compression="off")
    written = _files_in("ct", files)
    local_fabric.fs.write_many(written)
    local_fabric.snapshots.create("ct", "before")
    assert _leaks(_backend_bytes(_roots(local_fabric)), phi)
    seen: list[tuple[int, int]] = []
    local_fabric.encryption.enable("ct", progress=lambda done, total: seen.append((done, total)))
    assert local_fabric.volumes.info("ct").encryption == "on"
    assert seen and seen[-1][0] == seen[-1][1] > 0
    assert _leaks(_backend_bytes(_roots(local_fabric)), phi) == []
    for item in written:
        assert local_fabric.fs.read(item.path) == item.data
    snapshot_copy = written[0].path.replace("/ct/", "/ct/.snapshot/before/", 1)
    assert local_fabric.fs.read(snapshot_copy) == written[0].data
    assert [p for p in local_fabric.admin.fsck() if p.severity == "error"] == []
    local_fabric.fs.write("/ct/new.dcm", written[0].data)  # new writes are encrypted too
    assert _leaks(_backend_bytes(_roots(local_fabric)), phi) == []


def test_equal_plaintexts_in_two_encrypted_volumes_have_unrelated_ids(local_fabric: Fabric) -> None:
    body = os.urandom(50_000)
    for name in ("a", "b"):
        local_fabric.volumes.create(name, f"/{name}", dare=True)
        local_fabric.fs.write(f"/{name}/same", body)
    ids = []
    for name in ("a", "b"):
        with local_fabric.fs.open(f"/{name}/same") as reader:
            ids.append(reader._parts[0].blob_id)
    assert ids[0] != ids[1]


def test_keys_rotate_and_a_missing_or_wrong_master_key_is_a_clear_error(tmp_path: Path) -> None:
    fabric = make_fabric(tmp_path, datadirs=1)
    fabric.volumes.create("s", "/s", dare=True)
    fabric.fs.write("/s/f", b"secret scan")
    fabric.encryption.rotate_master_key()
    assert fabric.fs.read("/s/f") == b"secret scan"
    fabric.close()
    keys = tmp_path / "home" / "keys"
    assert oct((keys / "master.key").stat().st_mode & 0o777) == "0o600"
    for old in keys.glob("master-*.key"):
        old.unlink()  # every volume key was re-wrapped: the old master key is no longer needed
    reopened = open_fabric(tmp_path / "home", "admin")
    assert reopened.fs.read("/s/f") == b"secret scan"
    reopened.close()
    (keys / "master.key").rename(keys / "elsewhere")
    reopened = open_fabric(tmp_path / "home", "admin")
    with pytest.raises(Unavailable, match="master key"):
        reopened.fs.read("/s/f")
    reopened.close()
    from medfabric.security.keys import write_secret

    write_secret(keys / "master.key", os.urandom(32))
    reopened = open_fabric(tmp_path / "home", "admin")
    with pytest.raises((IntegrityError, Unavailable)):
        reopened.fs.read("/s/f")
    reopened.close()


@pytest.mark.seaweedfs
def test_no_phi_in_any_seaweedfs_object(s3_fabric: Fabric, corpus: tuple, seaweedfs: object) -> None:
    import boto3

    files, phi = corpus
    s3_fabric.volumes.create("secret", "/secret", dare=True)
    s3_fabric.fs.write_many(_files_in("secret", files))
    settings = s3_fabric.config.s3
    assert settings is not None
    client = boto3.client(
        "s3",
        endpoint_url=settings.endpoint,
        aws_access_key_id=settings.access_key,
        aws_secret_access_key=settings.secret_key,
        region_name=settings.region,
    )
    keys = [item["Key"] for item in client.list_objects_v2(Bucket=settings.bucket).get("Contents", [])]
    assert keys
    objects = [(Path(key), client.get_object(Bucket=settings.bucket, Key=key)["Body"].read()) for key in keys]
    assert _leaks(objects, phi) == []


def test_the_embedded_catalog_can_be_encrypted(tmp_path: Path) -> None:
    from medfabric.service.fabric import init_fabric

    fabric = init_fabric(tmp_path / "home", datadirs=[tmp_path / "d"], user="admin", encrypt_catalog=True)
    fabric.volumes.create("v", "/v")
    fabric.fs.write("/v/MUELLER^JUERGEN-1957", b"x", parents=True)
    fabric.close()
    for path in (tmp_path / "home").glob("catalog.db*"):
        assert b"MUELLER" not in path.read_bytes()
    reopened = open_fabric(tmp_path / "home", "admin")
    assert reopened.fs.read("/v/MUELLER^JUERGEN-1957") == b"x"
    reopened.close()
    key = tmp_path / "home" / "keys" / "catalog.key"
    key.rename(key.with_suffix(".gone"))
    with pytest.raises(Unavailable, match="catalog key"):
        open_fabric(tmp_path / "home", "admin")
    key.with_suffix(".gone").rename(key)
    key.write_text("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk=\n")  # another 32-byte key
    with pytest.raises(Unavailable, match="another key"):
        open_fabric(tmp_path / "home", "admin")


def test_catalog_backups_in_the_blob_store_are_sealed(local_fabric: Fabric) -> None:
    local_fabric.volumes.create("v", "/v", dare=True)
    local_fabric.fs.write("/v/OESTERGAARD^AASE/scan.dcm", b"x", parents=True)
    local_fabric.backups.backup()
    stored = [
        path.read_bytes() for root in _roots(local_fabric) for path in root.rglob("*") if path.is_file()
    ]
    assert any(data.startswith(b"MFBACKUP1") for data in stored)
    assert not any(b"OESTERGAARD" in data for data in stored)
