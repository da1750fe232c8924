"""The audit trail: every access to an audited volume recorded, and every tampering detected."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from medfabric.catalog.schema import audit_log
from medfabric.clock import ManualClock
from medfabric.errors import NotFound, PermissionDenied
from medfabric.service.fabric import Fabric, resolve_principal
from medfabric.service.writes import NewFile


@pytest.fixture
def audited(fabric: Fabric) -> Fabric:
    fabric.security.user_add("guest")
    fabric.volumes.create("medical_images", "/medical_images")
    fabric.admin.config_save({"mfs.enable.audit.log": "1"})
    fabric.audit.data("medical_images", True)
    return fabric


def _records(fabric: Fabric) -> list[tuple[str, str, str, str | None]]:
    return [
        (r.principal, r.operation, r.outcome.value, r.path)
        for r in fabric.audit.query(volume="medical_images")
    ]


def test_every_access_allowed_or_denied_is_recorded(audited: Fabric) -> None:
    fabric = audited
    guest = fabric.acting_as(resolve_principal(fabric.catalog, "guest"))
    fabric.fs.write("/medical_images/a.dcm", b"DICM")
    fabric.fs.read("/medical_images/a.dcm")
    fabric.fs.stat("/medical_images/a.dcm")
    fabric.fs.listdir("/medical_images")
    fabric.fs.write_many([NewFile(f"/medical_images/s/{i}.dcm", b"x") for i in range(3)])
    with pytest.raises(PermissionDenied):
        guest.fs.read("/medical_images/a.dcm")
    with pytest.raises(PermissionDenied):
        guest.fs.write("/medical_images/b.dcm", b"x")
    with pytest.raises(NotFound):
        fabric.fs.read("/medical_images/none.dcm")
    fabric.fs.remove("/medical_images/a.dcm")
    records = _records(fabric)
    assert ("admin", "write", "allowed", "/medical_images/a.dcm") in records
    assert ("admin", "read", "allowed", "/medical_images/a.dcm") in records
    assert ("admin", "getattr", "allowed", "/medical_images/a.dcm") in records
    assert ("admin", "readdir", "allowed", "/medical_images") in records
    assert sum(1 for r in records if r[1] == "write" and r[3] and r[3].startswith("/medical_images/s/")) == 3
    assert ("guest", "read", "denied", "/medical_images/a.dcm") in records
    assert ("guest", "write", "denied", "/medical_images/b.dcm") in records
    assert ("admin", "read", "allowed", "/medical_images/none.dcm") in records  # failed, but authorised
    assert ("admin", "delete", "allowed", "/medical_images/a.dcm") in records
    assert fabric.audit.verify().ok


def test_unaudited_volumes_and_excluded_operations_are_not_recorded(audited: Fabric) -> None:
    fabric = audited
    fabric.volumes.create("scratch", "/scratch")
    fabric.fs.write("/scratch/x", b"1")
    fabric.audit.data("medical_images", True, "-getattr")
    fabric.fs.write("/medical_images/a", b"1")
    fabric.fs.stat("/medical_images/a")
    operations = [op for _user, op, _outcome, _path in _records(fabric)]
    assert "getattr" not in operations and "write" in operations
    assert fabric.audit.query(volume="scratch") == []


def test_management_operations_are_recorded_when_cluster_auditing_is_on(audited: Fabric) -> None:
    audited.audit.cluster(True)
    audited.volumes.create("other", "/other")
    audited.security.acl_change("volume", volume="other", user="guest:r")
    operations = [record.operation for record in audited.audit.query()]
    assert "volume create" in operations and "acl edit" in operations


@pytest.mark.parametrize("tamper", ["edit", "edit column", "delete", "swap", "truncate", "rehash"])
def test_verify_catches_every_tampering(audited: Fabric, tamper: str) -> None:
    fabric = audited
    for i in range(6):
        fabric.fs.write(f"/medical_images/f{i}", b"x")
    assert fabric.audit.verify().ok
    with fabric.catalog.write() as conn:
        rows = conn.execute(sa.select(audit_log).order_by(audit_log.c.seq)).all()
        victim = rows[2]
        if tamper == "edit":
            forged = bytes(victim.record).replace(b'"admin"', b'"mallory"')
            conn.execute(audit_log.update().where(audit_log.c.seq == victim.seq).values(record=forged))
        elif tamper == "edit column":
            conn.execute(audit_log.update().where(audit_log.c.seq == victim.seq).values(principal="mallory"))
        elif tamper == "delete":
            conn.execute(audit_log.delete().where(audit_log.c.seq == victim.seq))
        elif tamper == "swap":
            other = rows[3]
            conn.execute(
                audit_log.update()
                .where(audit_log.c.seq == victim.seq)
                .values(record=other.record, chain_hash=other.chain_hash)
            )
            conn.execute(
                audit_log.update()
                .where(audit_log.c.seq == other.seq)
                .values(record=victim.record, chain_hash=victim.chain_hash)
            )
        elif tamper == "truncate":
            conn.execute(audit_log.delete().where(audit_log.c.seq >= rows[-2].seq))
        elif tamper == "rehash":  # a forger without the key cannot recompute the chain
            import hashlib

            conn.execute(
                audit_log.update()
                .where(audit_log.c.seq == victim.seq)
                .values(chain_hash=hashlib.sha256(bytes(victim.record)).digest())
            )
    check = fabric.audit.verify()
    assert not check.ok
    expected = rows[-2].seq if tamper == "truncate" else victim.seq
    assert check.as_json()["firstBadSeq"] == expected


def test_fhir_export_is_a_bundle_of_audit_events(audited: Fabric) -> None:
    audited.fs.write("/medical_images/a.dcm", b"x")
    bundle = audited.audit.export_fhir(volume="medical_images")
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    event = bundle["entry"][0]["resource"]
    assert event["resourceType"] == "AuditEvent" and event["outcome"] == "0"
    assert event["agent"][0]["who"]


def test_a_missing_audit_key_fails_loudly(audited: Fabric) -> None:
    key = Path(audited.config.home) / "keys" / "audit.key"
    key.rename(key.with_suffix(".moved"))
    fresh = audited.acting_as(audited.principal)
    fresh.engines.listeners.clear()
    from medfabric.errors import Unavailable
    from medfabric.service.audit import AuditWriter

    fresh.engines.listeners.append(AuditWriter(fresh.engines))
    with pytest.raises(Unavailable, match="audit key"):
        fresh.fs.write("/medical_images/unrecorded", b"x")


def test_a_batch_write_records_every_file_in_one_audit_transaction(
    audited: Fabric, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medfabric.audit import log

    appends: list[int] = []
    real = log.append_many

    def counting(conn: sa.Connection, batch: list[dict[str, object]], *, key: bytes) -> object:
        appends.append(len(batch))
        return real(conn, batch, key=key)

    monkeypatch.setattr(log, "append_many", counting)
    audited.fs.write_many([NewFile(f"/medical_images/batch/{i}.dcm", b"x") for i in range(40)])
    records = [
        r for r in _records(audited) if r[1] == "write" and (r[3] or "").startswith("/medical_images/batch/")
    ]
    assert len(records) == 40
    assert appends == [40]  # the files' records together, nothing for the unaudited batch event
    assert audited.audit.verify().ok


def test_coalescing_records_repeated_reads_once_per_interval_but_every_denial(audited: Fabric) -> None:
    fabric = audited
    clock = ManualClock(int(time.time() * 1000))
    fabric.engines.clock = clock
    fabric.fs.write("/medical_images/c.dcm", b"DICM")
    fabric.audit.data("medical_images", True, coalesce=10)
    assert fabric.volumes.describe(fabric.volumes.info("medical_images"))["auditCoalesce"] == 10
    guest = fabric.acting_as(resolve_principal(fabric.catalog, "guest"))
    for _ in range(5):
        fabric.fs.read("/medical_images/c.dcm")
        with pytest.raises(PermissionDenied):
            guest.fs.read("/medical_images/c.dcm")
    fabric.fs.stat("/medical_images/c.dcm")
    records = [r for r in _records(fabric) if r[3] == "/medical_images/c.dcm"]
    assert records.count(("admin", "read", "allowed", "/medical_images/c.dcm")) == 1
    assert records.count(("guest", "read", "denied", "/medical_images/c.dcm")) == 5
    assert records.count(("admin", "getattr", "allowed", "/medical_images/c.dcm")) == 1
    clock.advance(9 * 60_000)
    fabric.fs.read("/medical_images/c.dcm")  # within ten minutes of the first: coalesced
    clock.advance(2 * 60_000)
    fabric.fs.read("/medical_images/c.dcm")  # eleven minutes on: recorded again
    again = [r for r in _records(fabric) if r[3] == "/medical_images/c.dcm"]
    assert again.count(("admin", "read", "allowed", "/medical_images/c.dcm")) == 2
    assert fabric.audit.verify().ok


def test_coalescing_is_off_by_default_and_bounded(audited: Fabric) -> None:
    from medfabric.errors import InvalidInput

    fabric = audited
    fabric.fs.write("/medical_images/d.dcm", b"DICM")
    for _ in range(3):
        fabric.fs.read("/medical_images/d.dcm")
    assert _records(fabric).count(("admin", "read", "allowed", "/medical_images/d.dcm")) == 3
    for wrong in (-1, 24 * 60 + 1):
        with pytest.raises(InvalidInput, match="coalesce"):
            fabric.audit.data("medical_images", True, coalesce=wrong)
