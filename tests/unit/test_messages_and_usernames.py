"""Body and username rules, checked before anything reaches the database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatter.errors import InvalidBody, InvalidUsername
from chatter.messages import StoredMessage, validate_body, validate_client_id
from chatter.usernames import username_key, validate_username


@pytest.mark.parametrize(
    ("body", "stored"),
    [
        ("  hi  ", "hi"),
        ("line\r\nbreak", "line\nbreak"),
        ("tab\there", "tab\there"),
        ("<img src=x onerror=alert(1)>", "<img src=x onerror=alert(1)>"),
        ("x" * 2000, "x" * 2000),
        ("👩🏽‍💻", "👩🏽‍💻"),
    ],
)
def test_valid_bodies_are_trimmed_and_kept_as_text(body: str, stored: str) -> None:
    assert validate_body(body) == stored


@pytest.mark.parametrize(
    "body", ["", "   ", "x" * 2001, "a\x00b", "a\x1bb", "\ud83d", "carriage\rreturn", None, 5]
)
def test_invalid_bodies_are_refused(body: object) -> None:
    with pytest.raises(InvalidBody):
        validate_body(body)


@given(st.text())
def test_any_text_is_either_refused_or_valid_utf8_within_limits(text: str) -> None:
    try:
        body = validate_body(text)
    except InvalidBody:
        return
    assert 1 <= len(body) <= 2000
    body.encode("utf-8")


@pytest.mark.parametrize("client_id", ["", "x" * 65, "tab\t", 7])
def test_invalid_client_ids_are_refused(client_id: object) -> None:
    with pytest.raises(InvalidBody, match="client_id"):
        validate_client_id(client_id)


def test_client_id_may_be_absent() -> None:
    assert validate_client_id(None) is None
    assert validate_client_id("abc-123") == "abc-123"


@pytest.mark.parametrize(
    "name", ["alice", "Zoë", "李小龙", "محمد", "a.b-c_d", "x" * 32, "\uff22\uff4f\uff42"]
)
def test_valid_usernames(name: str) -> None:
    assert validate_username(name)


@pytest.mark.parametrize(
    "name",
    ["", "x" * 33, "two words", "<script>", "a\u202eb", "zero\u200bwidth", "tab\t", "\u0301a", 3],
)
def test_invalid_usernames_are_refused(name: object) -> None:
    with pytest.raises(InvalidUsername):
        validate_username(name)


def test_names_compare_case_insensitively_after_nfkc() -> None:
    assert username_key("Alice") == username_key("ALICE") == username_key("Ａｌｉｃｅ")  # noqa: RUF001
    assert username_key("Straße") == username_key("STRASSE")
    assert username_key("alice") != username_key("alicia")


def test_wire_form_of_a_message_is_the_contracts() -> None:
    message = StoredMessage(
        uuid.UUID(int=1), 7, "ann", "hi", datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    )
    assert message.to_wire() == {
        "id": "00000000-0000-0000-0000-000000000001",
        "seq": 7,
        "username": "ann",
        "body": "hi",
        "inserted_at": "2026-11-25T12:00:00Z",
    }
