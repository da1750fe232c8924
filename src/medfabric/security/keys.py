"""Keys: the fabric's master key behind a small KMS interface, and the per-volume keys it wraps.

The master key never leaves the KMS object: callers hand it a volume's data key to wrap or a
wrapped key to unwrap. The local KMS keeps master keys in 0600 files under ``<home>/keys`` (or
takes one from ``MEDFABRIC_MASTER_KEY``, base64); a real KMS (Vault, AWS KMS, an HSM) implements
the same three methods. A missing or wrong key is a clear error, never garbage.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from medfabric.errors import IntegrityError, Unavailable

KEY_SIZE = 32
MASTER_ENV = "MEDFABRIC_MASTER_KEY"


class Kms(Protocol):
    """Wraps and unwraps data keys with a master key it never reveals."""

    def current_key_id(self) -> str: ...

    def wrap(self, plaintext_key: bytes, *, context: bytes) -> tuple[str, bytes]:
        """(key id used, wrapped key)."""
        ...

    def unwrap(self, key_id: str, wrapped: bytes, *, context: bytes) -> bytes: ...


def _key_id(master: bytes) -> str:
    return "local:" + hashlib.sha256(b"medfabric key id\x00" + master).hexdigest()[:16]


def write_secret(path: Path, secret: bytes) -> None:
    """A new 0600 file holding ``secret`` (refuses to replace an existing one)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, base64.b64encode(secret) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)


def read_secret(path: Path, what: str) -> bytes:
    try:
        secret = base64.b64decode(path.read_bytes().strip(), validate=True)
    except FileNotFoundError:
        raise Unavailable(f"the {what} file {path} is missing: restore it from your key backup") from None
    except (OSError, ValueError) as error:
        raise IntegrityError(f"the {what} file {path} is unreadable: {error}") from error
    if len(secret) != KEY_SIZE:
        raise IntegrityError(f"the {what} file {path} does not hold a {KEY_SIZE}-byte key")
    return secret


class LocalKms:
    """Master keys in ``<home>/keys/master-<id>.key``; the newest (``master.key``) wraps new keys."""

    def __init__(self, key_dir: Path) -> None:
        self.key_dir = key_dir
        self._keys: dict[str, bytes] = {}

    @staticmethod
    def create(key_dir: Path) -> LocalKms:
        kms = LocalKms(key_dir)
        if os.environ.get(MASTER_ENV) is None and not (key_dir / "master.key").exists():
            write_secret(key_dir / "master.key", os.urandom(KEY_SIZE))
        return kms

    def _current(self) -> bytes:
        env = os.environ.get(MASTER_ENV)
        if env is not None:
            try:
                key = base64.b64decode(env, validate=True)
            except ValueError as error:
                raise IntegrityError(f"{MASTER_ENV} is not base64: {error}") from error
            if len(key) != KEY_SIZE:
                raise IntegrityError(f"{MASTER_ENV} must hold a {KEY_SIZE}-byte key")
            return key
        return read_secret(self.key_dir / "master.key", "master key")

    def current_key_id(self) -> str:
        return _key_id(self._current())

    def _key(self, key_id: str) -> bytes:
        if key_id in self._keys:
            return self._keys[key_id]
        current = self._current()
        candidates = [current]
        for path in sorted(self.key_dir.glob("master-*.key")):
            candidates.append(read_secret(path, "old master key"))
        for candidate in candidates:
            self._keys[_key_id(candidate)] = candidate
        if key_id not in self._keys:
            raise Unavailable(f"master key {key_id} is not available (was it rotated away or not restored?)")
        return self._keys[key_id]

    def wrap(self, plaintext_key: bytes, *, context: bytes) -> tuple[str, bytes]:
        master = self._current()
        nonce = os.urandom(12)
        return _key_id(master), nonce + AESGCM(master).encrypt(nonce, plaintext_key, context)

    def unwrap(self, key_id: str, wrapped: bytes, *, context: bytes) -> bytes:
        master = self._key(key_id)
        try:
            return AESGCM(master).decrypt(wrapped[:12], wrapped[12:], context)
        except InvalidTag:
            raise IntegrityError(f"a key wrapped by {key_id} does not unwrap: wrong master key") from None

    def rotate(self) -> str:
        """A new current master key; the old one is kept (as master-<id>.key) until keys are re-wrapped."""
        if os.environ.get(MASTER_ENV) is not None:
            raise Unavailable(f"the master key comes from {MASTER_ENV}: rotate it there")
        old = self._current()
        archived = self.key_dir / f"master-{_key_id(old).split(':')[1]}.key"
        if not archived.exists():
            write_secret(archived, old)
        fresh = os.urandom(KEY_SIZE)
        temporary = self.key_dir / "master.key.new"
        temporary.unlink(missing_ok=True)
        write_secret(temporary, fresh)
        temporary.replace(self.key_dir / "master.key")
        self._keys.clear()
        return _key_id(fresh)
