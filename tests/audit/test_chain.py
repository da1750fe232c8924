"""The hash-chained audit record: canonical bytes, chain hash, and detection of every tampering."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medfabric.audit.chain import (
    GENESIS,
    GENESIS_HASH,
    Anchor,
    AuditRecord,
    ChainFailure,
    Interface,
    Outcome,
    VerifyResult,
    chain_hash,
    extend,
    utc_now_us,
    verify_chain,
)
from medfabric.errors import IntegrityError, InvalidInput

KEY = b"k" * 32
OTHER_KEY = b"o" * 32
Log = list[tuple[AuditRecord, bytes]]


def make_record(number: int, **changes: object) -> AuditRecord:
    seq = number
    values: dict[str, object] = dict(
        seq=seq,
        time_us=1_717_000_000_000_000 + seq * 1000,
        principal="radiologist",
        client_address="10.1.2.3",
        interface=Interface.DICOMWEB,
        operation="read",
        outcome=Outcome.ALLOWED,
        volume="mri_2024",
        path=f"/medical_images/mri/2024/P{seq}/20240101/MR/1.2.3/1.2.3.{seq}.dcm",
        file_id=f"2049.{seq}.1",
        patient_id=f"P{seq}",
        study_instance_uid="1.2.3",
        series_instance_uid="1.2.3.4",
        sop_instance_uid=f"1.2.3.4.{seq}",
        detail=None,
    )
    values.update(changes)
    return AuditRecord(**values)  # type: ignore[arg-type]


def build_log(count: int, *, key: bytes | None = KEY) -> tuple[Log, Anchor]:
    head, log = GENESIS, []
    for seq in range(1, count + 1):
        record = make_record(seq)
        head = extend(head, record, key=key)
        log.append((record, head.head_hash))
    return log, head


def assert_broken(result: VerifyResult, seq: int, failure: ChainFailure) -> None:
    assert not result.ok
    assert (result.first_bad_seq, result.failure) == (seq, failure), result.reason
    if failure is not ChainFailure.ANCHOR_MISMATCH:
        assert result.head.seq == seq - 1  # the last record that verified
    with pytest.raises(IntegrityError, match=f"seq {seq}"):
        result.raise_for_failure()


# ------------------------------------------------------------------------------------- record


def test_canonical_bytes_are_pinned() -> None:
    record = AuditRecord(
        seq=7,
        time_us=1_717_171_717_123_456,
        principal="jdoe",
        client_address="::1",
        interface=Interface.S3,
        operation="read",
        outcome=Outcome.DENIED,
        path="/mri/José.dcm",
        detail="volume readAce denies read",
    )
    expected = (
        b'{"client_address":"::1","detail":"volume readAce denies read","file_id":null,"interface":"s3",'
        b'"operation":"read","outcome":"denied","path":"/mri/Jos\\u00e9.dcm","patient_id":null,'
        b'"principal":"jdoe","seq":7,"series_instance_uid":null,"sop_instance_uid":null,'
        b'"study_instance_uid":null,"time_us":1717171717123456,"v":1,"volume":null}'
    )
    assert record.canonical_bytes() == expected
    # the chain hash is pinned too: SHA-256 / HMAC-SHA256 over domain || previous hash || bytes
    domain = b"medfabric.audit.v1\x00"
    assert (
        chain_hash(GENESIS_HASH, record, key=None) == hashlib.sha256(domain + bytes(32) + expected).digest()
    )
    keyed = hmac.new(KEY, domain + bytes(32) + expected, hashlib.sha256).digest()
    assert chain_hash(GENESIS_HASH, record, key=KEY) == keyed


def test_record_accepts_plain_strings_for_enums_and_converts_them() -> None:
    record = make_record(1, interface="fuse", outcome="denied")
    assert record.interface is Interface.FUSE and record.outcome is Outcome.DENIED
    assert {i.value for i in Interface} == {"cli", "api", "s3", "webhdfs", "dicomweb", "dimse", "fuse"}


@pytest.mark.parametrize(
    "changes",
    [
        {"seq": 0},
        {"seq": True},
        {"seq": 1.0},
        {"time_us": -1},
        {"time_us": 253_402_300_800_000_000},
        {"time_us": "now"},
        {"principal": ""},
        {"operation": ""},
        {"interface": "ftp"},
        {"outcome": "maybe"},
        {"path": 42},
        {"patient_id": b"P1"},
    ],
)
def test_invalid_records_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        make_record(1, **changes)


def test_record_is_frozen_and_knows_its_time() -> None:
    record = make_record(1, time_us=1_700_000_000_000_001)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.path = "/elsewhere"  # type: ignore[misc]
    assert record.recorded_at == datetime(2023, 11, 14, 22, 13, 20, 1, tzinfo=UTC)
    now = utc_now_us()
    assert abs(now - int(datetime.now(UTC).timestamp() * 1_000_000)) < 5_000_000


optional_text = st.none() | st.text(max_size=20)
records = st.builds(
    AuditRecord,
    seq=st.integers(1, 2**63),
    time_us=st.integers(0, 253_402_300_799_999_999),
    principal=st.text(min_size=1, max_size=20),
    client_address=optional_text,
    interface=st.sampled_from(Interface),
    operation=st.text(min_size=1, max_size=10),
    outcome=st.sampled_from(Outcome),
    volume=optional_text,
    path=optional_text | st.just("/bad/\udcff\udcfe"),  # surrogateescape'd bytes from a POSIX path
    file_id=optional_text,
    patient_id=optional_text,
    study_instance_uid=optional_text,
    series_instance_uid=optional_text,
    sop_instance_uid=optional_text,
    detail=optional_text,
)


@given(records)
def test_canonical_round_trip(record: AuditRecord) -> None:
    data = record.canonical_bytes()
    assert data.isascii()
    assert data == json.dumps(json.loads(data), sort_keys=True, separators=(",", ":")).encode()
    assert AuditRecord.from_canonical(data) == record
    assert AuditRecord.from_canonical(data).canonical_bytes() == data


@pytest.mark.parametrize(
    "mutate",
    [
        lambda data: data.replace(b",", b", ", 1),  # whitespace
        lambda data: data.replace(b'"v":1', b'"v":2'),  # unknown version
        lambda data: data.replace(b'"v":1', b'"v":true'),  # look-alike version
        lambda data: data[:-1] + b',"extra":1}',  # unknown field
        lambda data: data.replace(b'"seq":1', b'"seq":1.0'),  # float
        lambda data: data.replace(b'"detail":null,', b""),  # missing field
        lambda data: data[:-3],  # truncated
        lambda data: data.replace(b'"seq":1', b'"seq":0'),  # invalid value
    ],
)
def test_non_canonical_bytes_are_integrity_errors(mutate: object) -> None:
    data = make_record(1).canonical_bytes()
    with pytest.raises(IntegrityError):
        AuditRecord.from_canonical(mutate(data))  # type: ignore[operator]


# -------------------------------------------------------------------------------------- chain


def test_keyed_and_unkeyed_hashes_differ_and_short_keys_are_refused() -> None:
    record = make_record(1)
    assert chain_hash(GENESIS_HASH, record, key=KEY) != chain_hash(GENESIS_HASH, record, key=None)
    assert chain_hash(GENESIS_HASH, record, key=KEY) != chain_hash(GENESIS_HASH, record, key=OTHER_KEY)
    with pytest.raises(InvalidInput, match="at least 32 bytes"):
        chain_hash(GENESIS_HASH, record, key=b"short")
    with pytest.raises(InvalidInput, match="32 bytes"):
        chain_hash(b"\x00" * 31, record, key=KEY)


def test_extend_requires_the_next_seq() -> None:
    head = extend(GENESIS, make_record(1), key=KEY)
    assert head.seq == 1 and head.head_hash == chain_hash(GENESIS_HASH, make_record(1), key=KEY)
    with pytest.raises(InvalidInput, match="does not follow"):
        extend(head, make_record(3), key=KEY)
    with pytest.raises(InvalidInput, match="does not follow"):
        extend(head, make_record(1), key=KEY)


def test_an_intact_chain_verifies() -> None:
    log, anchor = build_log(10)
    result = verify_chain(log, anchor, key=KEY)
    assert result == VerifyResult(True, 10, anchor)
    result.raise_for_failure()
    assert verify_chain(log, None, key=KEY).ok
    assert verify_chain([], GENESIS, key=KEY).ok
    assert verify_chain([], None, key=KEY).ok


FIELD_CHANGES: dict[str, Any] = {
    "time_us": 1,
    "principal": "attacker",
    "client_address": "10.6.6.6",
    "interface": Interface.FUSE,
    "operation": "write",
    "outcome": Outcome.DENIED,
    "volume": "other",
    "path": "/elsewhere",
    "file_id": "1.1.1",
    "patient_id": "P999",
    "study_instance_uid": "9.9",
    "series_instance_uid": "9.9.9",
    "sop_instance_uid": "9.9.9.9",
    "detail": "nothing to see",
}


@pytest.mark.parametrize("field_name", sorted(FIELD_CHANGES))
@pytest.mark.parametrize("position", [1, 5, 10])
def test_every_changed_field_is_detected_at_its_record(field_name: str, position: int) -> None:
    log, anchor = build_log(10)
    record, stored = log[position - 1]
    log[position - 1] = (dataclasses.replace(record, **{field_name: FIELD_CHANGES[field_name]}), stored)
    assert_broken(verify_chain(log, anchor, key=KEY), position, ChainFailure.HASH_MISMATCH)


def test_a_field_set_back_to_none_is_detected() -> None:
    log, anchor = build_log(5)
    record, stored = log[2]
    log[2] = (dataclasses.replace(record, patient_id=None), stored)
    assert_broken(verify_chain(log, anchor, key=KEY), 3, ChainFailure.HASH_MISMATCH)


def test_a_changed_stored_hash_is_detected() -> None:
    log, anchor = build_log(6)
    record, stored = log[3]
    log[3] = (record, bytes([stored[0] ^ 1]) + stored[1:])
    assert_broken(verify_chain(log, anchor, key=KEY), 4, ChainFailure.HASH_MISMATCH)
    log[3] = (record, stored[:-1])
    assert_broken(verify_chain(log, anchor, key=KEY), 4, ChainFailure.HASH_MISMATCH)


@pytest.mark.parametrize("position", [1, 4, 9])
def test_a_deleted_record_is_detected(position: int) -> None:
    log, anchor = build_log(10)
    del log[position - 1]
    result = verify_chain(log, anchor, key=KEY)
    assert_broken(result, position, ChainFailure.MISSING_RECORD)
    assert f"seq {position} missing" in (result.reason or "")


def test_several_deleted_records_are_reported_as_a_range() -> None:
    log, anchor = build_log(10)
    del log[3:6]
    result = verify_chain(log, anchor, key=KEY)
    assert_broken(result, 4, ChainFailure.MISSING_RECORD)
    assert result.reason == "seq 4..6 missing; next is 7"


def test_a_deleted_and_renumbered_record_is_detected() -> None:
    """The attacker deletes record 4 and renumbers 5..10 to 4..9 to hide the gap."""
    log, _ = build_log(10)
    del log[3]
    log = [
        (dataclasses.replace(record, seq=record.seq - 1) if record.seq > 4 else record, stored)
        for record, stored in log
    ]
    assert_broken(verify_chain(log, None, key=KEY), 4, ChainFailure.HASH_MISMATCH)


def test_reordered_records_are_detected() -> None:
    log, anchor = build_log(10)
    log[4], log[5] = log[5], log[4]
    assert_broken(verify_chain(log, anchor, key=KEY), 5, ChainFailure.MISSING_RECORD)


def test_reordered_records_with_swapped_seqs_are_detected() -> None:
    log, anchor = build_log(10)
    (r5, h5), (r6, h6) = log[4], log[5]
    log[4] = (dataclasses.replace(r6, seq=5), h6)
    log[5] = (dataclasses.replace(r5, seq=6), h5)
    assert_broken(verify_chain(log, anchor, key=KEY), 5, ChainFailure.HASH_MISMATCH)


def test_a_duplicated_record_is_detected() -> None:
    log, anchor = build_log(6)
    log.insert(3, log[2])
    result = verify_chain(log, anchor, key=KEY)
    assert_broken(result, 4, ChainFailure.OUT_OF_ORDER)
    assert result.reason == "expected seq 4, found 3 again"


@pytest.mark.parametrize("removed", [1, 3, 10])
def test_a_truncated_tail_is_detected_by_the_anchor(removed: int) -> None:
    log, anchor = build_log(10)
    truncated = log[: len(log) - removed]
    result = verify_chain(truncated, anchor, key=KEY)
    assert_broken(result, 11 - removed, ChainFailure.TRUNCATED)
    assert result.reason == f"log ends at seq {10 - removed} but the anchor's head is seq 10"
    # without an anchor a clean cut cannot be told from a shorter log: that is what the anchor is for
    assert verify_chain(truncated, None, key=KEY).ok


def test_an_anchor_older_than_the_log_checks_its_own_record() -> None:
    log, _ = build_log(10)
    _, anchor_at_6 = build_log(6)
    assert verify_chain(log, anchor_at_6, key=KEY).ok
    forged = Anchor(6, b"\x00" * 32)
    assert_broken(verify_chain(log, forged, key=KEY), 6, ChainFailure.ANCHOR_MISMATCH)


def test_a_recomputed_unkeyed_chain_is_caught_by_the_anchor() -> None:
    """Without a key an attacker can rewrite record 3 and recompute every later hash."""
    log, anchor = build_log(8, key=None)
    head, forged = GENESIS, []
    for record, _ in log:
        if record.seq == 3:
            record = dataclasses.replace(record, principal="someone_else")
        head = extend(head, record, key=None)
        forged.append((record, head.head_hash))
    assert verify_chain(forged, None, key=None).ok  # the chain alone is fooled ...
    assert_broken(
        verify_chain(forged, anchor, key=None), 8, ChainFailure.ANCHOR_MISMATCH
    )  # ... the anchor not


def test_a_keyed_chain_cannot_be_recomputed_without_the_key() -> None:
    log, _ = build_log(8, key=KEY)
    head, forged = GENESIS, []
    for record, _ in log:
        if record.seq == 3:
            record = dataclasses.replace(record, principal="someone_else")
        head = extend(head, record, key=OTHER_KEY)  # the attacker's best guess at the key
        forged.append((record, head.head_hash))
    assert_broken(verify_chain(forged, None, key=KEY), 1, ChainFailure.HASH_MISMATCH)


def test_the_wrong_key_fails_at_the_first_record() -> None:
    log, anchor = build_log(3)
    assert_broken(verify_chain(log, anchor, key=OTHER_KEY), 1, ChainFailure.HASH_MISMATCH)
    assert_broken(verify_chain(log, anchor, key=None), 1, ChainFailure.HASH_MISMATCH)


def test_verification_can_start_from_a_checkpoint() -> None:
    log, anchor = build_log(10)
    checkpoint = Anchor(5, log[4][1])
    assert verify_chain(log[5:], anchor, key=KEY, start=checkpoint) == VerifyResult(True, 5, anchor)
    assert_broken(verify_chain(log[6:], anchor, key=KEY, start=checkpoint), 6, ChainFailure.MISSING_RECORD)
    wrong_checkpoint = Anchor(5, log[3][1])
    assert_broken(
        verify_chain(log[5:], anchor, key=KEY, start=wrong_checkpoint), 6, ChainFailure.HASH_MISMATCH
    )
    assert verify_chain([], checkpoint, key=KEY, start=checkpoint).ok
    assert_broken(
        verify_chain([], Anchor(5, b"\x01" * 32), key=KEY, start=checkpoint), 5, ChainFailure.ANCHOR_MISMATCH
    )
    with pytest.raises(InvalidInput, match="precedes"):
        verify_chain(log[5:], Anchor(4, log[3][1]), key=KEY, start=checkpoint)


def test_verification_streams_and_stops_at_the_first_break() -> None:
    log, anchor = build_log(5)
    del log[1]
    consumed: list[int] = []

    def stream() -> Iterator[tuple[AuditRecord, bytes]]:
        for item in log:
            consumed.append(item[0].seq)
            yield item
        yield from ((make_record(seq), b"") for seq in range(6, 10**9))  # would never end

    assert_broken(verify_chain(stream(), anchor, key=KEY), 2, ChainFailure.MISSING_RECORD)
    assert consumed == [1, 3]


def test_anchor_serialisation() -> None:
    _, anchor = build_log(3)
    text = anchor.to_json()
    assert Anchor.from_json(text) == anchor and Anchor.from_json(text.encode()) == anchor
    assert text == f'{{"hash": "{anchor.head_hash.hex()}", "seq": 3, "v": 1}}'
    assert Anchor(0, bytes(32)) == GENESIS
    zeros = "00" * 32
    bad_anchors = [
        "",
        "{}",
        "[]",
        '{"seq": 1, "hash": "zz", "v": 1}',
        '{"seq": -1, "hash": "' + zeros + '", "v": 1}',
        '{"seq": 1, "hash": "00", "v": 1}',
        '{"seq": 1, "hash": "' + zeros + '", "v": 9}',
        '{"seq": 1.5, "hash": "' + zeros + '", "v": 1}',
        '{"seq": "1", "hash": "' + zeros + '", "v": 1}',
        '{"seq": 1, "hash": "' + zeros[:-2] + ' 0", "v": 1}',
        '{"seq": 1, "hash": "' + zeros + '", "v": 1, "extra": 0}',
    ]
    for bad in bad_anchors:
        with pytest.raises(InvalidInput):
            Anchor.from_json(bad)
    with pytest.raises(InvalidInput):
        Anchor(1, b"short")


TAMPERINGS = ["change", "delete", "swap", "duplicate", "truncate", "rehash"]


@given(st.integers(2, 30), st.data())
@settings(max_examples=150, deadline=None)
def test_any_single_tampering_is_detected_at_the_right_seq(length: int, data: st.DataObject) -> None:
    log, anchor = build_log(length)
    kind = data.draw(st.sampled_from(TAMPERINGS))
    position = data.draw(st.integers(1, length - 1 if kind == "swap" else length))
    index = position - 1
    if kind == "change":
        record, stored = log[index]
        log[index] = (dataclasses.replace(record, operation=record.operation + "x"), stored)
        expected = (position, ChainFailure.HASH_MISMATCH)
    elif kind == "delete":
        del log[index]
        failure = ChainFailure.TRUNCATED if position == length else ChainFailure.MISSING_RECORD
        expected = (position, failure)
    elif kind == "swap":
        log[index], log[index + 1] = log[index + 1], log[index]
        expected = (position, ChainFailure.MISSING_RECORD)
    elif kind == "duplicate":
        log.insert(index + 1, log[index])
        expected = (position + 1, ChainFailure.OUT_OF_ORDER)
    elif kind == "truncate":
        log = log[:index]
        expected = (position, ChainFailure.TRUNCATED)
    else:  # rehash: a record re-signed with a wrong key
        record, _ = log[index]
        prev = log[index - 1][1] if index else GENESIS_HASH
        log[index] = (record, chain_hash(prev, record, key=OTHER_KEY))
        expected = (position, ChainFailure.HASH_MISMATCH)
    result = verify_chain(log, anchor, key=KEY)
    assert not result.ok and (result.first_bad_seq, result.failure) == expected
