"""API tokens and password hashes (Argon2id)."""

from __future__ import annotations

import re
import unicodedata

import pytest
from argon2 import PasswordHasher

from medfabric.errors import IntegrityError, InvalidInput
from medfabric.security.tokens import (
    MAX_PASSWORD_LENGTH,
    TOKEN_HASHER,
    TokenRecord,
    burn_verification,
    hash_password,
    issue_token,
    needs_rehash,
    parse_token,
    verify_password,
    verify_token,
)

# Cheap parameters keep the suite fast; one test below uses the real password profile.
CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
TOKEN_FORMAT = re.compile(r"mf_[0-9a-f]{16}_[A-Za-z0-9]{43}")


def test_issued_token_has_the_documented_format_and_verifies() -> None:
    issued = issue_token()
    assert TOKEN_FORMAT.fullmatch(issued.token)
    assert issued.record.token_id == issued.token.split("_")[1]
    assert issued.record.token_hash.startswith("$argon2id$")
    assert issued.token not in issued.record.token_hash
    assert verify_token(issued.token, issued.record)


def test_tokens_are_unique() -> None:
    tokens = [issue_token(hasher=CHEAP) for _ in range(20)]
    assert len({t.token for t in tokens}) == 20
    assert len({t.record.token_id for t in tokens}) == 20


def test_secrets_never_appear_in_reprs() -> None:
    issued = issue_token(hasher=CHEAP)
    secret = issued.token.split("_")[2]
    assert secret not in repr(issued) and secret not in repr(parse_token(issued.token))
    assert issued.record.token_hash not in repr(issued.record)


def test_wrong_tokens_do_not_verify() -> None:
    issued = issue_token(hasher=CHEAP)
    other = issue_token(hasher=CHEAP)
    last = issued.token[-1]
    tampered = issued.token[:-1] + ("A" if last != "A" else "B")
    assert not verify_token(tampered, issued.record, hasher=CHEAP)
    assert not verify_token(other.token, issued.record, hasher=CHEAP)
    # right secret presented under another row's id: refused even though the hash would match
    swapped = TokenRecord(other.record.token_id, issued.record.token_hash)
    assert not verify_token(issued.token, swapped, hasher=CHEAP)
    assert not verify_token("not a token", issued.record, hasher=CHEAP)
    assert not verify_token("", issued.record, hasher=CHEAP)
    assert verify_token(f"  {issued.token}\n", issued.record, hasher=CHEAP)  # pasted with whitespace


@pytest.mark.parametrize(
    "text",
    [
        "",
        "mf_0123456789abcdef",
        "mf_0123456789abcdef_" + "a" * 42,
        "mf_0123456789abcdef_" + "a" * 44,
        "mf_0123456789ABCDEF_" + "a" * 43,
        "xx_0123456789abcdef_" + "a" * 43,
        "mf_0123456789abcde_" + "a" * 44,
        "mf_0123456789abcdef_" + "a" * 42 + "-",
    ],
)
def test_parse_token_refuses_malformed_text_without_echoing_it(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_token(text)
    assert not text or text not in caught.value.message


def test_parse_token() -> None:
    parsed = parse_token("mf_0123456789abcdef_" + "Ab1" * 14 + "Z")
    assert parsed.token_id == "0123456789abcdef" and parsed.secret == "Ab1" * 14 + "Z"


def test_password_hash_uses_the_rfc9106_low_memory_profile() -> None:
    stored = hash_password("correct horse battery staple")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert verify_password("correct horse battery staple", stored)
    assert not verify_password("correct horse battery stapler", stored)
    assert not needs_rehash(stored)


def test_password_hashes_are_salted() -> None:
    assert hash_password("same", hasher=CHEAP) != hash_password("same", hasher=CHEAP)


def test_passwords_are_nfc_normalised() -> None:
    composed = unicodedata.normalize("NFC", "Grüße-Ärztin")
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    assert verify_password(decomposed, hash_password(composed, hasher=CHEAP), hasher=CHEAP)


def test_password_limits() -> None:
    with pytest.raises(InvalidInput):
        hash_password("", hasher=CHEAP)
    with pytest.raises(InvalidInput):
        hash_password("x" * (MAX_PASSWORD_LENGTH + 1), hasher=CHEAP)
    stored = hash_password("x" * MAX_PASSWORD_LENGTH, hasher=CHEAP)
    assert not verify_password("", stored, hasher=CHEAP)
    assert not verify_password("x" * (MAX_PASSWORD_LENGTH + 1), stored, hasher=CHEAP)


def test_weaker_hashes_need_a_rehash() -> None:
    weak = hash_password("secret", hasher=CHEAP)
    assert needs_rehash(weak)
    assert not needs_rehash(weak, hasher=CHEAP)
    assert verify_password("secret", weak)  # still verifies with the default hasher until rehashed


def test_corrupt_stored_hashes_are_integrity_errors() -> None:
    with pytest.raises(IntegrityError):
        verify_password("secret", "plaintext-secret")
    with pytest.raises(IntegrityError):
        needs_rehash("$md5$nope")
    issued = issue_token(hasher=CHEAP)
    with pytest.raises(IntegrityError):
        verify_token(issued.token, TokenRecord(issued.record.token_id, "garbage"))


def test_burn_verification_costs_a_verification_and_fails() -> None:
    assert burn_verification(hasher=CHEAP) is False
    assert burn_verification() is False
    assert TOKEN_HASHER.time_cost == 1 and TOKEN_HASHER.memory_cost == 8 * 1024
