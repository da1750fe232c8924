"""Blob ids and the codecs a volume stacks on its blobs: compression (zstd), then encryption.

A blob id is BLAKE3 of the plaintext, keyed per volume when the volume is encrypted so equal
plaintexts in two volumes cannot be recognised. Encryption is AES-256-GCM with a random nonce
and the blob id as associated data. Decoding verifies everything it can and never returns
bytes whose id does not check.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import blake3
import zstandard

from medfabric.errors import IntegrityError

COMPRESSION_NONE = 0
COMPRESSION_ZSTD = 1
COMPRESSION_MASK = 0x0F
ENCRYPTED = 0x10
# The payload is the plaintext as is (no compression, no encryption) and its check is the blob id
# itself (plain BLAKE3 of the payload): the record's payload CRC is 0 and not used. Only ever alone.
ID_CHECKED = 0x20
KNOWN_BITS = COMPRESSION_MASK | ENCRYPTED | ID_CHECKED
NONCE_SIZE = 12

# Don't keep a compressed form that saves less than this fraction: it costs reads for nothing.
MIN_SAVING = 0.05


@dataclass(frozen=True)
class CodecPolicy:
    """How one volume encodes its blobs."""

    compression: str = "zstd"  # off | zstd
    level: int = 1
    data_key: bytes | None = None  # AES-256 key: the volume is encrypted
    id_key: bytes | None = None  # BLAKE3 key for blob ids of an encrypted volume

    @property
    def encrypted(self) -> bool:
        return self.data_key is not None


PLAIN = CodecPolicy(compression="off")

_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    cache: dict[int, zstandard.ZstdCompressor] | None = getattr(_local, "compressors", None)
    if cache is None:
        cache = _local.compressors = {}
    compressor = cache.get(level)
    if compressor is None:
        compressor = cache[level] = zstandard.ZstdCompressor(level=level)
    return compressor


def _decompressor() -> zstandard.ZstdDecompressor:
    decompressor: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if decompressor is None:
        decompressor = _local.decompressor = zstandard.ZstdDecompressor()
    return decompressor


def compute_blob_id(policy: CodecPolicy, plaintext: bytes | memoryview) -> bytes:
    """The id a new blob gets under ``policy``: keyed when the volume is encrypted."""
    return _blob_id(policy.id_key if policy.encrypted else None, plaintext)


def _blob_id(id_key: bytes | None, plaintext: bytes | memoryview) -> bytes:
    hasher = blake3.blake3(key=id_key) if id_key is not None else blake3.blake3()
    hasher.update(plaintext)
    return hasher.digest()


def encode(policy: CodecPolicy, blob_id: bytes, plaintext: bytes) -> tuple[int, bytes]:
    """Return (codec, payload) for a blob."""
    codec = COMPRESSION_NONE
    payload = plaintext
    if policy.compression == "zstd" and len(plaintext) >= 256:
        compressed = _compressor(policy.level).compress(plaintext)
        if len(compressed) <= len(plaintext) * (1 - MIN_SAVING):
            codec, payload = COMPRESSION_ZSTD, compressed
    if policy.data_key is not None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = os.urandom(NONCE_SIZE)
        payload = nonce + AESGCM(policy.data_key).encrypt(nonce, payload, blob_id)
        codec |= ENCRYPTED
    if codec == COMPRESSION_NONE:
        codec = ID_CHECKED  # verified by its id on every read: a CRC of the payload would add nothing
    return codec, payload


Buffer = bytes | memoryview


def decode(policy: CodecPolicy, blob_id: bytes, codec: int, payload: Buffer, length: int) -> Buffer:
    """Undo the codecs and verify the blob id; IntegrityError on any mismatch.

    A payload stored as is comes back as the same buffer (a view, no copy)."""
    data: Buffer = payload
    if codec & ~KNOWN_BITS or (codec & ID_CHECKED and codec != ID_CHECKED):
        raise IntegrityError(f"unknown codec {codec:#x}")
    if codec & ENCRYPTED:
        if policy.data_key is None:
            raise IntegrityError("blob is encrypted but no data key is available for its volume")
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            data = AESGCM(policy.data_key).decrypt(data[:NONCE_SIZE], data[NONCE_SIZE:], blob_id)
        except InvalidTag as error:
            raise IntegrityError("blob failed authentication (wrong key or altered bytes)") from error
    compression = codec & COMPRESSION_MASK
    if compression == COMPRESSION_ZSTD:
        try:
            data = _decompressor().decompress(data, max_output_size=length)
        except zstandard.ZstdError as error:
            raise IntegrityError(f"blob does not decompress: {error}") from error
    elif compression != COMPRESSION_NONE:
        raise IntegrityError(f"unknown compression codec {compression}")
    # Encrypted blobs have ids keyed with the volume's id key; plain blobs have plain BLAKE3 ids
    # (a volume being encrypted holds both for a while).
    id_key = policy.id_key if codec & ENCRYPTED else None
    if len(data) != length or _blob_id(id_key, data) != blob_id:
        raise IntegrityError("blob content does not match its id")
    return data
