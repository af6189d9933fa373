"""Identity tokens: what verifies, what never does, and where the secret comes from."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatter.errors import ConfigError
from chatter.tokens import (
    CLOCK_SKEW_S,
    MAX_TOKEN_CHARS,
    SECRET_FILE_NAME,
    TOKEN_LIFETIME_S,
    TokenClaims,
    issue,
    secret_from,
    verify,
)
from chatter.usernames import MAX_USERNAME_CHARS, username_key, validate_username

SECRET = b"s" * 32
NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_token_gives_back_the_claims_it_was_issued_with() -> None:
    token = issue(SECRET, "alice", 3, NOW)
    assert verify(SECRET, token, NOW) == TokenClaims("alice", 3, NOW)


def test_a_token_is_url_safe_ascii() -> None:
    token = issue(SECRET, username_key("Зоя_李.x"), 0, NOW)
    assert token.isascii()
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
    assert verify(SECRET, token, NOW) == TokenClaims(username_key("Зоя_李.x"), 0, NOW)


def test_issued_at_is_kept_in_whole_seconds() -> None:
    claims = verify(SECRET, issue(SECRET, "alice", 1, NOW + 0.75), NOW + 1)
    assert claims is not None
    assert claims.issued_at == NOW


def test_a_token_is_valid_for_24_hours_and_not_a_second_longer() -> None:
    assert TOKEN_LIFETIME_S == 24 * 3600
    token = issue(SECRET, "alice", 1, NOW)
    assert verify(SECRET, token, NOW + TOKEN_LIFETIME_S) is not None
    assert verify(SECRET, token, NOW + TOKEN_LIFETIME_S + 1) is None


def test_a_token_from_slightly_in_the_future_is_allowed_for_clock_skew() -> None:
    token = issue(SECRET, "alice", 1, NOW)
    assert verify(SECRET, token, NOW - CLOCK_SKEW_S) is not None
    assert verify(SECRET, token, NOW - CLOCK_SKEW_S - 1) is None


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = issue(b"another secret", "alice", 1, NOW)
    assert verify(SECRET, token, NOW) is None


def test_the_version_is_returned_for_the_caller_to_compare_after_leave() -> None:
    # verify does not know the current version: Leave bumps it, the caller compares.
    old, new = issue(SECRET, "alice", 1, NOW), issue(SECRET, "alice", 2, NOW)
    old_claims, new_claims = verify(SECRET, old, NOW), verify(SECRET, new, NOW)
    assert old_claims is not None
    assert new_claims is not None
    assert (old_claims.version, new_claims.version) == (1, 2)


def test_every_altered_character_makes_the_token_invalid() -> None:
    token = issue(SECRET, "alice", 1, NOW)
    for index, char in enumerate(token):
        for replacement in {"A", "B", "_", "-", "."} - {char}:
            altered = token[:index] + replacement + token[index + 1 :]
            assert verify(SECRET, altered, NOW) is None, (index, replacement)


def test_a_token_with_changed_claims_and_the_old_mac_is_refused() -> None:
    mac = issue(SECRET, "alice", 1, NOW).partition(".")[2]
    for claims in (["mallory", 1, int(NOW)], ["alice", 2, int(NOW)], ["alice", 1, int(NOW) + 9]):
        forged = _b64(json.dumps(claims, separators=(",", ":")).encode())
        assert verify(SECRET, f"{forged}.{mac}", NOW) is None


def test_a_mac_spelt_with_padding_or_other_spare_bits_is_refused() -> None:
    token = issue(SECRET, "alice", 1, NOW)
    payload, _, mac = token.partition(".")
    assert verify(SECRET, f"{token}=", NOW) is None
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".index(mac[-1])
    spare = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last ^ 1]
    assert base64.urlsafe_b64decode(mac + "=") == base64.urlsafe_b64decode(mac[:-1] + spare + "=")
    assert verify(SECRET, f"{payload}.{mac[:-1]}{spare}", NOW) is None


def _signed(payload: bytes) -> str:
    """A token for any payload bytes, signed as `issue` signs (to test what is inside)."""
    text = _b64(payload)
    mac = hmac.digest(SECRET, b"chatter identity token v1\x00" + text.encode(), hashlib.sha256)
    return f"{text}.{_b64(mac)}"


def test_the_test_signer_signs_as_issue_does() -> None:
    assert verify(SECRET, _signed(b'["alice",1,1767225600]'), NOW) is not None


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not json",
        b"{}",
        b"[]",
        b'["alice",1]',
        b'["alice",1,1767225600,4]',
        b"[1,1,1767225600]",
        b'["alice","1",1767225600]',
        b'["alice",true,1767225600]',
        b'["alice",1,true]',
        b'["alice",-1,1767225600]',
        b'["alice",1,1767225600.5]',
        b'["alice",1,1e400]',
        b'["alice",1,' + b"9" * 400 + b"]",
        b"[" * 350 + b"]" * 350,
        b"\xff\xfe\x00",
    ],
)
def test_a_well_signed_token_with_malformed_claims_is_refused(payload: bytes) -> None:
    token = _signed(payload)
    assert len(token) <= MAX_TOKEN_CHARS
    assert verify(SECRET, token, NOW) is None


@pytest.mark.parametrize(
    "token",
    [
        "",
        ".",
        "..",
        "abc",
        "abc.",
        ".abc",
        "a.b.c",
        "é.é",
        "\x00.\x00",
        "🙂" * 10,
        None,
        42,
        b"bytes.token",
        ["a", "b"],
    ],
)
def test_garbage_is_refused_without_raising(token: object) -> None:
    assert verify(SECRET, token, NOW) is None


def test_input_longer_than_any_token_is_refused_unread() -> None:
    token = issue(SECRET, "alice", 1, NOW)
    assert verify(SECRET, token + "A" * (MAX_TOKEN_CHARS - len(token) + 1), NOW) is None
    assert verify(SECRET, "A" * 10_000_000, NOW) is None


@given(st.text(max_size=3000))
def test_verify_never_raises_on_any_text(text: str) -> None:
    assert verify(SECRET, text, NOW) is None


@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."))
def test_verify_never_raises_on_text_that_looks_like_a_token(text: str) -> None:
    assert verify(SECRET, text, NOW) is None


@given(
    key=st.text(min_size=1, max_size=MAX_USERNAME_CHARS).map(username_key),
    version=st.integers(min_value=0, max_value=2**63),
    offset=st.floats(min_value=-CLOCK_SKEW_S, max_value=TOKEN_LIFETIME_S),
)
def test_any_issued_token_verifies_within_its_lifetime(
    key: str, version: int, offset: float
) -> None:
    token = issue(SECRET, key, version, NOW)
    assert verify(SECRET, token, NOW + offset) == TokenClaims(key, version, NOW)


def test_the_longest_name_still_makes_a_token() -> None:
    # Each folds to two characters, five bytes of UTF-8: the most any does.
    name = validate_username("\u1f80" * MAX_USERNAME_CHARS)
    token = issue(SECRET, username_key(name), 2**63, NOW)
    assert len(token) < MAX_TOKEN_CHARS / 2
    assert verify(SECRET, token, NOW) is not None


def test_a_key_too_long_for_a_token_is_refused_at_issue() -> None:
    with pytest.raises(ValueError, match="too long"):
        issue(SECRET, "x" * MAX_TOKEN_CHARS, 1, NOW)


def test_a_negative_version_is_refused_at_issue() -> None:
    with pytest.raises(ValueError, match="version"):
        issue(SECRET, "alice", -1, NOW)


# -- the secret ------------------------------------------------------------------------------


def test_secret_key_base_is_used_when_given(tmp_path: Path) -> None:
    one = secret_from("base one", tmp_path)
    assert one == secret_from("base one", tmp_path / "elsewhere")
    assert one != secret_from("base two", tmp_path)
    assert not (tmp_path / SECRET_FILE_NAME).exists()


def test_the_secret_is_derived_not_the_base_itself(tmp_path: Path) -> None:
    assert secret_from("base", tmp_path) != b"base"
    assert len(secret_from("base", tmp_path)) == 32


def test_without_a_base_a_secret_file_is_made_once_and_kept(tmp_path: Path) -> None:
    first = secret_from(None, tmp_path)
    path = tmp_path / SECRET_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert secret_from(None, tmp_path) == first
    assert secret_from("", tmp_path) == first


def test_tokens_survive_a_restart_in_development(tmp_path: Path) -> None:
    token = issue(secret_from(None, tmp_path), "alice", 1, NOW)
    assert verify(secret_from(None, tmp_path), token, NOW) is not None


def test_each_data_dir_gets_its_own_secret(tmp_path: Path) -> None:
    assert secret_from(None, tmp_path / "a") != secret_from(None, tmp_path / "b")


def test_a_missing_data_dir_is_created(tmp_path: Path) -> None:
    secret_from(None, tmp_path / "new" / "dir")
    assert (tmp_path / "new" / "dir" / SECRET_FILE_NAME).is_file()


@pytest.mark.parametrize("content", ["", "not hex\n", "abcd\n", "\xff"])
def test_a_secret_file_this_did_not_write_is_a_config_error(tmp_path: Path, content: str) -> None:
    (tmp_path / SECRET_FILE_NAME).write_text(content, encoding="latin-1")
    with pytest.raises(ConfigError, match=SECRET_FILE_NAME):
        secret_from(None, tmp_path)
