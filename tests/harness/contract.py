"""What the wire contract says an answer looks like, checked."""

from __future__ import annotations

from typing import Any

from tests.harness.client import Client

__all__ = [
    "CODES",
    "MAX_FRAME_BYTES",
    "MAX_SEQ",
    "check_error",
    "check_rate_limited",
    "error_code",
    "is_text",
]

CODES = frozenset(
    {
        "bad_request",
        "invalid_username",
        "username_taken",
        "identity_required",
        "invalid_body",
        "rate_limited",
        "unavailable",
    }
)
"""Every error code the contract names."""
MAX_FRAME_BYTES = 64 * 1024
MAX_SEQ = 2**63 - 1
"""The largest seq (a bigint); a cursor above it is a bad request."""


def is_text(value: str) -> bool:
    """Whether UTF-8 can carry `value` as it is (no lone surrogates)."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def check_error(
    frame: dict[str, Any], code: str, client_id: str | None, *, strict_echo: bool = True
) -> None:
    """An error frame as the contract shapes it. Without `strict_echo`, a client_id
    that is not valid text may be left out instead of echoed (whether it must be
    echoed is proved on its own, in one test, so the other tests do not fail for it)."""
    assert frame["type"] == "error"
    assert frame["code"] == code, frame
    assert isinstance(frame["message"], str)
    assert frame["message"]
    if client_id is None:
        assert "client_id" not in frame, frame
    elif not strict_echo and not is_text(client_id) and "client_id" not in frame:
        pass
    else:
        assert frame.get("client_id") == client_id, frame
    if code == "rate_limited":
        check_rate_limited(frame)
    else:
        assert "retry_after_ms" not in frame, frame


def check_rate_limited(error: dict[str, Any]) -> None:
    """A `rate_limited` error, saying when to try again."""
    assert error["code"] == "rate_limited", error
    assert isinstance(error["retry_after_ms"], int), error
    assert error["retry_after_ms"] >= 1, error


async def error_code(client: Client) -> str:
    """The code of the next error frame `client` gets."""
    code: str = (await client.expect("error"))["code"]
    return code
