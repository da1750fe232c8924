"""The pack format: a header, then blob records, each self-describing and checksummed.

Specified byte for byte in docs/design/pack-format.md; a second reader can be written from it.
All integers are little-endian. A pack can be scanned from the start to rebuild the blob index:
a record whose magic, header CRC or payload CRC does not check marks the end of the valid data
(a torn append that was never acknowledged).
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import blake3

from medfabric.blobstore.codec import ID_CHECKED

PACK_MAGIC = b"MFPACK\x00\x01"
PACK_HEADER = struct.Struct("<8s16sII")  # magic, pack id, volume id, flags
PACK_HEADER_SIZE = PACK_HEADER.size  # 32

RECORD_MAGIC = b"MFB1"
RECORD_HEADER = struct.Struct("<4s32sB3xQQI")  # magic, blob id, codec, pad, length, stored, payload crc
RECORD_CRC = struct.Struct("<I")
RECORD_HEADER_SIZE = RECORD_HEADER.size + RECORD_CRC.size  # 64


def new_pack_id() -> str:
    """128 bits, hex: 48 bits of milliseconds (so ids sort by age) then 80 random bits."""
    millis = time.time_ns() // 1_000_000
    return (millis.to_bytes(6, "big") + os.urandom(10)).hex()


def pack_object_name(volume_id: int, pack_id: str) -> str:
    return f"packs/{volume_id}/{pack_id[-2:]}/{pack_id}.pack"


def encode_pack_header(pack_id: str, volume_id: int) -> bytes:
    return PACK_HEADER.pack(PACK_MAGIC, bytes.fromhex(pack_id), volume_id, 0)


@dataclass(frozen=True)
class PackHeader:
    pack_id: str
    volume_id: int


def decode_pack_header(data: bytes) -> PackHeader:
    if len(data) < PACK_HEADER_SIZE:
        raise ValueError("pack shorter than its header")
    magic, raw_id, volume_id, _flags = PACK_HEADER.unpack_from(data)
    if magic != PACK_MAGIC:
        raise ValueError("not a medfabric pack (bad magic)")
    return PackHeader(raw_id.hex(), volume_id)


def encode_record_header(
    blob_id: bytes, codec: int, length: int, payload: bytes | memoryview, payload_crc: int | None = None
) -> bytes:
    """The 64-byte header that precedes ``payload`` in a pack (written with it, without copying it);
    ``payload_crc``: the payload's CRC-32 when the caller computed it already (on another thread).
    A record checked by its id (codec ``ID_CHECKED``) has no payload CRC: the field is 0."""
    if codec & ID_CHECKED:
        crc = 0
    elif payload_crc is not None:
        crc = payload_crc
    else:
        crc = zlib.crc32(payload)
    head = RECORD_HEADER.pack(RECORD_MAGIC, blob_id, codec, length, len(payload), crc)
    return head + RECORD_CRC.pack(zlib.crc32(head))


def encode_record(blob_id: bytes, codec: int, length: int, payload: bytes) -> bytes:
    """The record header followed by the payload, as one buffer."""
    return encode_record_header(blob_id, codec, length, payload) + payload


@dataclass(frozen=True)
class RecordHeader:
    blob_id: bytes
    codec: int
    length: int
    stored_length: int
    payload_crc: int


def decode_record_header(data: bytes) -> RecordHeader:
    if len(data) < RECORD_HEADER_SIZE:
        raise ValueError("record header truncated")
    magic, blob_id, codec, length, stored, payload_crc = RECORD_HEADER.unpack_from(data)
    (header_crc,) = RECORD_CRC.unpack_from(data, RECORD_HEADER.size)
    if magic != RECORD_MAGIC:
        raise ValueError("bad record magic")
    if zlib.crc32(data[: RECORD_HEADER.size]) != header_crc:
        raise ValueError("record header checksum mismatch")
    return RecordHeader(blob_id, codec, length, stored, payload_crc)


def payload_checks(header: RecordHeader, payload: bytes | memoryview) -> bool:
    """Whether ``payload`` is the one ``header`` describes: its CRC-32, or for a record checked by its
    id, the payload's BLAKE3 (it is the plaintext)."""
    if header.codec & ID_CHECKED:
        return (
            header.codec == ID_CHECKED
            and header.length == len(payload)
            and blake3.blake3(payload).digest() == header.blob_id
        )
    return zlib.crc32(payload) == header.payload_crc


def check_record(
    record: bytes, expected_blob_id: bytes, *, decoding: bool = False
) -> tuple[RecordHeader, memoryview]:
    """Verify a whole record (header CRC, blob id, payload); return its header and payload (a view
    into ``record``: no copy). ``decoding``: the caller decodes the payload next, which verifies the
    blob id of the plaintext, so a record checked by its id is not hashed twice (a CRC is still
    checked: it guards the decryption and decompression)."""
    header = decode_record_header(record)
    if header.blob_id != expected_blob_id:
        raise ValueError("record holds another blob")
    payload = memoryview(record)[RECORD_HEADER_SIZE:]
    if len(payload) != header.stored_length:
        raise ValueError("record payload truncated")
    if not (decoding and header.codec & ID_CHECKED) and not payload_checks(header, payload):
        raise ValueError("record payload checksum mismatch")
    return header, payload


@dataclass(frozen=True)
class ScannedRecord:
    offset: int
    header: RecordHeader


def scan_records(read: Callable[[int, int], bytes], size: int) -> Iterator[ScannedRecord]:
    """Walk a pack's records from the start; stop at the first record that does not check."""
    offset = PACK_HEADER_SIZE
    while offset + RECORD_HEADER_SIZE <= size:
        try:
            header = decode_record_header(read(offset, RECORD_HEADER_SIZE))
        except ValueError:
            return
        end = offset + RECORD_HEADER_SIZE + header.stored_length
        if end > size:
            return
        payload = read(offset + RECORD_HEADER_SIZE, header.stored_length)
        if not payload_checks(header, payload):
            return
        yield ScannedRecord(offset, header)
        offset = end
