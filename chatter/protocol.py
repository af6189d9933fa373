"""The wire contract, version 1: client frames parsed into typed requests,
server frames encoded once.

Parsing checks the frame's shape only (a JSON object, a known ``type``, fields
of the right types); what the fields mean (a valid name, a valid body) is
checked by the session in the contract's order. Anything malformed raises
`BadRequest`, which becomes a ``bad_request`` error frame: the connection stays up.
See docs/PROTOCOL.md.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chatter.errors import ChatError, ErrorCode
from chatter.messages import Page, StoredMessage

__all__ = [
    "HISTORY_DEFAULT_LIMIT",
    "HISTORY_MAX_LIMIT",
    "BadRequest",
    "ClientFrame",
    "CloseCode",
    "History",
    "Join",
    "Leave",
    "Post",
    "encode",
    "error_frame",
    "message_frame",
    "page_frame",
    "parse",
    "presence_frame",
]


class CloseCode(enum.IntEnum):
    """The WebSocket close codes Chatter's server sends (RFC 6455 section 7.4)."""

    NORMAL = 1000
    """A ping went unanswered (Tornado sends it)."""
    GOING_AWAY = 1001
    """The server is stopping, or the session was stopped from outside."""
    PROTOCOL_ERROR = 1002
    """A client frame was not masked."""
    INVALID_DATA = 1007
    """A text frame was not UTF-8."""
    POLICY = 1008
    """Too many frames: the flood limit."""
    TOO_BIG = 1009
    """A frame over the size limit (Tornado sends it)."""
    INTERNAL_ERROR = 1011
    """The session crashed, or has ended."""
    SERVICE_RESTART = 1012
    """While this node had no live lease (it was cut off or paused), another
    node took the connection's name: reconnect and resume."""
    TRY_AGAIN_LATER = 1013
    """A session could not start, or its welcome could not be read."""


HISTORY_DEFAULT_LIMIT = 100
HISTORY_MAX_LIMIT = 100
_MAX_SEQ = 2**63 - 1


class BadRequest(ChatError):  # noqa: N818  (named for its wire code)
    """The frame is not a well-formed client frame."""

    code = ErrorCode.BAD_REQUEST

    def __init__(self, message: str, client_id: str | None = None) -> None:
        super().__init__(message)
        self.client_id = client_id


@dataclass(frozen=True)
class Join:
    username: str
    client_id: str | None = None
    """Echoed in an error, as for any frame that carries one."""


@dataclass(frozen=True)
class Post:
    body: str
    username: str | None
    client_id: str | None


@dataclass(frozen=True)
class History:
    before: int
    limit: int
    client_id: str | None = None


@dataclass(frozen=True)
class Leave:
    pass


ClientFrame = Join | Post | History | Leave


def parse(text: str | bytes) -> ClientFrame:
    """The request a text frame carries; raises `BadRequest` for anything else."""
    if isinstance(text, bytes):
        raise BadRequest("binary frames are not supported; send JSON text frames")
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError):
        raise BadRequest("the frame is not valid JSON") from None
    if not isinstance(frame, dict):
        raise BadRequest("the frame must be a JSON object with a 'type'")
    echo = echoable(frame.get("client_id"))
    kind = frame.get("type")
    if kind == "post":
        return Post(
            body=_field(frame, "body", str, echo),
            username=_optional(frame, "username", str, echo),
            client_id=_optional(frame, "client_id", str, echo),
        )
    if kind == "join":
        return Join(username=_field(frame, "username", str, echo), client_id=echo)
    if kind == "history":
        before = _field(frame, "before", int, echo)
        limit = _optional(frame, "limit", int, echo)
        if not 0 <= before <= _MAX_SEQ:
            raise BadRequest("'before' must be a seq (an integer >= 0)", echo)
        if limit is None:
            limit = HISTORY_DEFAULT_LIMIT
        return History(before=before, limit=max(1, min(HISTORY_MAX_LIMIT, limit)), client_id=echo)
    if kind == "leave":
        return Leave()
    if isinstance(kind, str):
        raise BadRequest(f"unknown frame type {kind[:40]!r}", echo)
    raise BadRequest("the frame must have a string 'type'", echo)


def echoable(client_id: object) -> str | None:
    """The client_id to echo in an error: any string the frame carried."""
    return client_id if isinstance(client_id, str) else None


def _is_text(value: str) -> bool:
    """Whether `value` can be sent as UTF-8 (a lone surrogate cannot)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _field(frame: dict[str, Any], name: str, kind: type, echo: str | None) -> Any:
    if name not in frame:
        raise BadRequest(f"'{name}' is required", echo)
    return _typed(frame, name, kind, echo)


def _optional(frame: dict[str, Any], name: str, kind: type, echo: str | None) -> Any:
    if frame.get(name) is None:
        return None
    return _typed(frame, name, kind, echo)


def _typed(frame: dict[str, Any], name: str, kind: type, echo: str | None) -> Any:
    value = frame[name]
    if isinstance(value, bool) or not isinstance(value, kind):
        expected = "an integer" if kind is int else "a string"
        raise BadRequest(f"'{name}' must be {expected}", echo)
    return value


# -- server frames --------------------------------------------------------------------------


def encode(frame: dict[str, Any]) -> str:
    """A frame as compact JSON text; non-ASCII stays as it is."""
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


def page_frame(kind: str, page: Page, **fields: Any) -> str:
    """A frame of type `kind` carrying `page` as ``messages``, then `fields`:
    the page's messages are spliced in as `Page.wire_json`, encoded once for
    every frame that carries the same page."""
    head = '{"type":' + json.dumps(kind) + ',"messages":' + page.wire_json
    return head + ("," + encode(fields)[1:] if fields else "}")


def message_frame(message: StoredMessage) -> str:
    return encode({"type": "message", "message": message.to_wire()})


def presence_frame(
    joins: Sequence[str],
    leaves: Sequence[str],
    total_users: int | None = None,
    unlisted: Sequence[str] = (),
) -> str:
    """A presence change; `total_users` rides along when a join was just recorded,
    and `unlisted` names those of `leaves` that never posted (no longer listed)."""
    frame: dict[str, Any] = {"type": "presence", "joins": list(joins), "leaves": list(leaves)}
    if total_users is not None:
        frame["total_users"] = total_users
    if unlisted:
        frame["unlisted"] = list(unlisted)
    return encode(frame)


def error_frame(
    code: ErrorCode,
    message: str,
    client_id: str | None = None,
    retry_after_ms: int | None = None,
) -> str:
    frame: dict[str, Any] = {"type": "error", "code": code.value, "message": message}
    if client_id is not None:
        frame["client_id"] = client_id
    if retry_after_ms is not None:
        frame["retry_after_ms"] = retry_after_ms
    if client_id is not None and not _is_text(client_id):
        # Echo it as the client wrote it: a JSON escape (\ud800), plain ASCII.
        return json.dumps(frame, separators=(",", ":"))
    return encode(frame)
