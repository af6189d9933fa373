"""Chatter's typed errors. Those a client can see carry their wire code.

The session turns a `ChatError` into an ``error`` frame (`chatter.protocol.error_frame`);
the codes are the closed set of the wire contract (docs/PROTOCOL.md).
"""

from __future__ import annotations

import enum

__all__ = [
    "ChatError",
    "ConfigError",
    "ErrorCode",
    "InvalidBody",
    "InvalidUsername",
    "PresenceUnavailable",
    "RoomUnavailable",
    "StorageError",
    "StorageUnavailable",
]


class ErrorCode(enum.Enum):
    """The ``code`` of an ``error`` frame."""

    BAD_REQUEST = "bad_request"
    INVALID_USERNAME = "invalid_username"
    USERNAME_TAKEN = "username_taken"
    IDENTITY_REQUIRED = "identity_required"
    INVALID_BODY = "invalid_body"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"


class ConfigError(Exception):
    """A setting has a value Chatter cannot run with."""


class ChatError(Exception):
    """An error a client is told about, with its wire code."""

    code: ErrorCode = ErrorCode.BAD_REQUEST


class InvalidBody(ChatError):  # noqa: N818  (named for the wire code)
    """A message body breaks the body rules; nothing was stored."""

    code = ErrorCode.INVALID_BODY


class InvalidUsername(ChatError):  # noqa: N818
    """A username breaks the name rules."""

    code = ErrorCode.INVALID_USERNAME


class StorageUnavailable(ChatError):  # noqa: N818
    """The database could not be reached or did not commit in time; retry later."""

    code = ErrorCode.UNAVAILABLE


class PresenceUnavailable(ChatError):  # noqa: N818
    """The presence actor could not be reached (it is restarting); retry later."""

    code = ErrorCode.UNAVAILABLE


class RoomUnavailable(ChatError):  # noqa: N818
    """The room could not answer from memory (it is restarting, or does not
    remember what was asked); the log answers instead."""

    code = ErrorCode.UNAVAILABLE


class StorageError(Exception):
    """The database refused a write for a reason of its own (not an outage)."""
