"""The pack format: records verify, and a scan stops cleanly at a torn tail."""

from __future__ import annotations

import os

import pytest

from medfabric.blobstore import codec
from medfabric.blobstore.pack import (
    PACK_HEADER_SIZE,
    RECORD_HEADER_SIZE,
    check_record,
    decode_pack_header,
    decode_record_header,
    encode_pack_header,
    encode_record,
    new_pack_id,
    scan_records,
)
from medfabric.errors import IntegrityError

# how a plain record is written now (checked by its id), and how it was before (a payload CRC):
# packs hold both, and every reader must accept both
PLAIN_CODECS = (codec.ID_CHECKED, codec.COMPRESSION_NONE)


def _pack(blobs: list[bytes], kind: int = codec.ID_CHECKED) -> tuple[str, bytes, list[bytes]]:
    pack_id = new_pack_id()
    data = bytearray(encode_pack_header(pack_id, 7))
    ids = []
    for blob in blobs:
        blob_id = codec.compute_blob_id(codec.PLAIN, blob)
        ids.append(blob_id)
        data += encode_record(blob_id, kind, len(blob), blob)
    return pack_id, bytes(data), ids


def test_header_round_trip() -> None:
    pack_id, data, _ids = _pack([])
    header = decode_pack_header(data)
    assert (header.pack_id, header.volume_id) == (pack_id, 7)
    with pytest.raises(ValueError, match="magic"):
        decode_pack_header(b"X" * PACK_HEADER_SIZE)


@pytest.mark.parametrize("kind", PLAIN_CODECS)
def test_scan_finds_every_record_and_stops_at_a_torn_tail(kind: int) -> None:
    blobs = [os.urandom(n) for n in (0, 1, 100, 70000)]
    _pack_id, data, ids = _pack(blobs, kind)
    records = list(scan_records(lambda offset, length: data[offset : offset + length], len(data)))
    assert [record.header.blob_id for record in records] == ids
    torn = data[:-10]
    records = list(scan_records(lambda offset, length: torn[offset : offset + length], len(torn)))
    assert [record.header.blob_id for record in records] == ids[:-1]


@pytest.mark.parametrize("kind", PLAIN_CODECS)
def test_a_flipped_byte_anywhere_in_a_record_is_detected(kind: int) -> None:
    blob = os.urandom(1000)
    blob_id = codec.compute_blob_id(codec.PLAIN, blob)
    record = encode_record(blob_id, kind, len(blob), blob)
    for position in range(0, len(record), 37):
        damaged = bytearray(record)
        damaged[position] ^= 0x40
        with pytest.raises(ValueError):
            check_record(bytes(damaged), blob_id)
        # a reader that decodes next leaves the payload's check to the decoding: still caught there
        with pytest.raises((ValueError, IntegrityError)):
            header, payload = check_record(bytes(damaged), blob_id, decoding=True)
            codec.decode(codec.PLAIN, blob_id, header.codec, payload, header.length)
    header, payload = check_record(record, blob_id)
    assert payload == blob and header.length == len(blob)
    assert len(record) == RECORD_HEADER_SIZE + len(blob)


def test_plain_blobs_are_checked_by_their_id_not_a_crc() -> None:
    blob = os.urandom(5000)
    blob_id = codec.compute_blob_id(codec.PLAIN, blob)
    kind, payload = codec.encode(codec.PLAIN, blob_id, blob)
    assert kind == codec.ID_CHECKED and payload is blob
    header = decode_record_header(encode_record(blob_id, kind, len(blob), blob))
    assert header.payload_crc == 0
    # the bit stands alone: with compression or encryption, or beside an unknown bit, it is refused
    for bad in (codec.ID_CHECKED | codec.COMPRESSION_ZSTD, codec.ID_CHECKED | codec.ENCRYPTED, 0x40, 0x80):
        with pytest.raises(IntegrityError, match="unknown codec"):
            codec.decode(codec.PLAIN, blob_id, bad, blob, len(blob))
    record = encode_record(blob_id, codec.ID_CHECKED | codec.COMPRESSION_ZSTD, len(blob), blob)
    with pytest.raises(ValueError):
        check_record(record, blob_id)


def test_codecs_round_trip_and_verify() -> None:
    data = b"DICM" * 5000
    for policy in (
        codec.PLAIN,
        codec.CodecPolicy("zstd"),
        codec.CodecPolicy("zstd", data_key=os.urandom(32), id_key=os.urandom(32)),
    ):
        blob_id = codec.compute_blob_id(policy, data)
        kind, payload = codec.encode(policy, blob_id, data)
        assert codec.decode(policy, blob_id, kind, payload, len(data)) == data
        if policy.compression == "zstd":
            assert len(payload) < len(data) // 10
        if policy.encrypted:
            assert b"DICM" not in payload
            with pytest.raises(IntegrityError):
                codec.decode(
                    codec.CodecPolicy("zstd", data_key=os.urandom(32), id_key=policy.id_key),
                    blob_id,
                    kind,
                    payload,
                    len(data),
                )
    with pytest.raises(IntegrityError):
        codec.decode(codec.PLAIN, codec.compute_blob_id(codec.PLAIN, b"other"), 0, data, len(data))


def test_keyed_blob_ids_hide_equal_plaintexts() -> None:
    first = codec.CodecPolicy(id_key=os.urandom(32), data_key=os.urandom(32))
    second = codec.CodecPolicy(id_key=os.urandom(32), data_key=os.urandom(32))
    assert codec.compute_blob_id(first, b"same") != codec.compute_blob_id(second, b"same")
