"""Chat messages: the body rules, and a stored message as clients see it.

A body is text: 1 to 2,000 characters after trimming, with no NUL or other
control character but newline and tab, and nothing a UTF-8 encoder would refuse
(a lone surrogate). It is stored and sent as it is, never interpreted.
"""

from __future__ import annotations

import functools
import json
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chatter.errors import InvalidBody

__all__ = [
    "MAX_BODY_CHARS",
    "MAX_CLIENT_ID_CHARS",
    "Page",
    "StoredMessage",
    "validate_body",
    "validate_client_id",
]

MAX_BODY_CHARS = 2000
MAX_CLIENT_ID_CHARS = 64
_ALLOWED_CONTROLS = frozenset("\n\t")


def validate_body(body: object) -> str:
    """The body to store, trimmed; raises `InvalidBody` saying what is wrong."""
    if not isinstance(body, str):
        raise InvalidBody("the body must be a string")
    text = body.replace("\r\n", "\n").strip()
    if not text:
        raise InvalidBody("the message is empty")
    if len(text) > MAX_BODY_CHARS:
        raise InvalidBody(f"the message is {len(text)} characters; at most {MAX_BODY_CHARS}")
    for char in text:
        category = unicodedata.category(char)
        if category == "Cs":
            raise InvalidBody("the message contains an unpaired surrogate (not valid text)")
        if category == "Cc" and char not in _ALLOWED_CONTROLS:
            raise InvalidBody(f"the message contains the control character U+{ord(char):04X}")
    return text


def validate_client_id(client_id: object) -> str | None:
    """A client_id as stored: None, or 1 to 64 printable characters."""
    if client_id is None:
        return None
    if (
        not isinstance(client_id, str)
        or not 1 <= len(client_id) <= MAX_CLIENT_ID_CHARS
        or not client_id.isprintable()
    ):
        raise InvalidBody(
            f"client_id must be a string of 1 to {MAX_CLIENT_ID_CHARS} printable characters"
        )
    try:
        client_id.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidBody("client_id must be valid text") from None
    return client_id


@dataclass(frozen=True)
class StoredMessage:
    """A message as committed: what every client is sent."""

    id: uuid.UUID
    seq: int
    username: str
    body: str
    inserted_at: datetime
    client_id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """The contract's Message object."""
        return {
            "id": str(self.id),
            "seq": self.seq,
            "username": self.username,
            "body": self.body,
            "inserted_at": self.inserted_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }


@dataclass(frozen=True)
class Page:
    """Messages in seq order, and whether more lie beyond them."""

    messages: tuple[StoredMessage, ...]
    has_more: bool

    @functools.cached_property
    def wire_json(self) -> str:
        """The messages as the JSON array a frame carries (compact, non-ASCII
        as is), encoded once however many frames send this page: a crowd
        joining at once shares one newest page (`chatter.persistence`)."""
        wire = [message.to_wire() for message in self.messages]
        return json.dumps(wire, separators=(",", ":"), ensure_ascii=False)
