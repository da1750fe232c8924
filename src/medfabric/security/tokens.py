"""API tokens and passwords: generate, hash (Argon2id), parse and verify — pure functions, no storage.

Only hashes leave this module for storage; it never logs, stores or compares a secret in plaintext,
and verification fails closed.

Token text is ``mf_<id>_<secret>``: ``id`` is 16 lowercase hex digits (not secret: it lets the server
find the one row to check), ``secret`` is 43 characters of ``[A-Za-z0-9]`` (256 bits from
``secrets``). The Argon2id hash covers the whole token text, so a hash is bound to its id.
Passwords are NFC-normalised before hashing, so the same password typed on macOS (NFD) and Linux
matches; they must be 1..1024 characters.

Cost: passwords use argon2-cffi's default, RFC 9106's low-memory profile (t=3, 64 MiB, p=4), since
people choose guessable ones. A token's secret has 256 bits of entropy, so a work factor buys
nothing against guessing; tokens use a light Argon2id profile (t=1, 8 MiB, p=1) to keep per-request
verification cheap while keeping one hash format. Comparison is constant-time inside libargon2; for
an unknown token id call ``burn_verification`` so that path costs the same as a wrong secret.
"""

from __future__ import annotations

import hmac
import re
import secrets
import string
import unicodedata
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from medfabric.errors import IntegrityError, InvalidInput

TOKEN_PREFIX = "mf"
TOKEN_ID_HEX_DIGITS = 16
TOKEN_SECRET_LENGTH = 43
MAX_PASSWORD_LENGTH = 1024
_SECRET_ALPHABET = string.ascii_letters + string.digits
_TOKEN_RE = re.compile(
    rf"{TOKEN_PREFIX}_(?P<id>[0-9a-f]{{{TOKEN_ID_HEX_DIGITS}}})_(?P<secret>[A-Za-z0-9]{{{TOKEN_SECRET_LENGTH}}})"
)

PASSWORD_HASHER = PasswordHasher()  # RFC 9106 low-memory profile
TOKEN_HASHER = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)


@dataclass(frozen=True, slots=True)
class ParsedToken:
    token_id: str
    secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """What the server stores for a token: the id to find it and the Argon2id hash to check it."""

    token_id: str
    token_hash: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A freshly minted token: ``token`` is shown to the user once; only ``record`` is stored."""

    token: str = field(repr=False)
    record: TokenRecord


def parse_token(token: str) -> ParsedToken:
    """Split ``mf_<id>_<secret>``; anything else raises ``InvalidInput`` (without echoing the text)."""
    match = _TOKEN_RE.fullmatch(token.strip()) if isinstance(token, str) else None
    if match is None:
        raise InvalidInput(
            f"malformed API token: expected {TOKEN_PREFIX}_<{TOKEN_ID_HEX_DIGITS} hex digits>_"
            f"<{TOKEN_SECRET_LENGTH} letters or digits>"
        )
    return ParsedToken(match["id"], match["secret"])


def issue_token(*, hasher: PasswordHasher = TOKEN_HASHER) -> IssuedToken:
    token_id = secrets.token_hex(TOKEN_ID_HEX_DIGITS // 2)
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(TOKEN_SECRET_LENGTH))
    token = f"{TOKEN_PREFIX}_{token_id}_{secret}"
    return IssuedToken(token, TokenRecord(token_id, hasher.hash(token)))


def verify_token(token: str, record: TokenRecord, *, hasher: PasswordHasher = TOKEN_HASHER) -> bool:
    """True only if ``token`` is well formed, carries ``record``'s id, and matches its hash."""
    try:
        parsed = parse_token(token)
    except InvalidInput:
        return False
    same_id = hmac.compare_digest(parsed.token_id.encode(), record.token_id.encode())
    matches = _verify(hasher, record.token_hash, token.strip())
    return same_id and matches


def hash_password(password: str, *, hasher: PasswordHasher = PASSWORD_HASHER) -> str:
    return hasher.hash(_normalise_password(password))


def verify_password(password: str, password_hash: str, *, hasher: PasswordHasher = PASSWORD_HASHER) -> bool:
    try:
        normalised = _normalise_password(password)
    except InvalidInput:
        return False
    return _verify(hasher, password_hash, normalised)


def needs_rehash(stored_hash: str, *, hasher: PasswordHasher = PASSWORD_HASHER) -> bool:
    """True if ``stored_hash`` was made with weaker parameters than ``hasher``'s (rehash at next login)."""
    try:
        return hasher.check_needs_rehash(stored_hash)
    except InvalidHashError as error:
        raise IntegrityError("stored credential hash is not an Argon2 hash") from error


_DUMMY_HASHES: dict[tuple[int, int, int], str] = {}


def burn_verification(*, hasher: PasswordHasher = TOKEN_HASHER) -> bool:
    """Spend one verification's time and return False: for an unknown token id or user name."""
    params = (hasher.time_cost, hasher.memory_cost, hasher.parallelism)
    dummy = _DUMMY_HASHES.get(params)
    if dummy is None:
        dummy = _DUMMY_HASHES.setdefault(params, hasher.hash(secrets.token_hex(16)))
    _verify(hasher, dummy, "not the secret")
    return False


def _verify(hasher: PasswordHasher, stored_hash: str, secret: str) -> bool:
    try:
        return hasher.verify(stored_hash, secret)
    except VerifyMismatchError:
        return False
    except InvalidHashError as error:
        raise IntegrityError("stored credential hash is not an Argon2 hash") from error
    except VerificationError:
        return False


def _normalise_password(password: str) -> str:
    if not isinstance(password, str) or not password:
        raise InvalidInput("a password must be non-empty text")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"a password may have at most {MAX_PASSWORD_LENGTH} characters")
    return unicodedata.normalize("NFC", password)
