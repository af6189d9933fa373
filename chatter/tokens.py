"""Identity tokens: how a reconnecting client takes its own name back.

``joined`` hands the client a token; presented again as ``/ws?token=T``, it
makes the new connection that user from the start, even before the server has
noticed that the old connection died. A token is::

    base64url(["<username_key>",<version>,<issued_at>]) "." base64url(HMAC-SHA256)

the payload compact JSON, the MAC taken with the server's secret over the
first part (and a label naming its purpose), base64url without padding. It is
valid for `TOKEN_LIFETIME_S` after ``issued_at`` (whole seconds of wall-clock
time since the epoch: tokens outlive the process, so not a monotonic clock),
and until Leave or a claim of the name by typing it: each user has a token
version, which both bump, and the caller accepts a token only while
``claims.version`` is the user's current version. `verify` checks everything but that.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from chatter.errors import ConfigError

__all__ = [
    "CLOCK_SKEW_S",
    "MAX_TOKEN_CHARS",
    "SECRET_FILE_NAME",
    "TOKEN_LIFETIME_S",
    "TokenClaims",
    "issue",
    "secret_from",
    "verify",
]

TOKEN_LIFETIME_S = 24 * 3600
"""How long a token stays valid after it was issued: a day, as the design says."""
CLOCK_SKEW_S = 60
"""How far in the future ``issued_at`` may lie: another node's clock may run ahead."""
MAX_TOKEN_CHARS = 1024
"""Longer input is refused unread: the longest real token, for 32 characters whose
keys take 5 bytes of UTF-8 each (``ᾀ`` folds to ``ἀι``), is about 310 characters."""
SECRET_FILE_NAME = "secret_key"
"""The file in the data directory that holds the generated secret when no
``SECRET_KEY_BASE`` is set, so that restarts in development keep tokens valid."""

_MAC_LABEL = b"chatter identity token v1\x00"  # a MAC for this purpose, no other
_SECRET_BYTES = 32  # 256 random bits: the strength of HMAC-SHA256
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a valid token says."""

    username_key: str
    """The `chatter.usernames.username_key` of the name it gives back."""
    version: int
    """The user's token version when it was issued; Leave bumps the current one."""
    issued_at: float
    """When it was issued: whole seconds of wall-clock time since the epoch."""


def issue(secret: bytes, username_key: str, version: int, now: float) -> str:
    """A token for the user with this name key and token version, issued ``now``."""
    if version < 0:
        raise ValueError(f"version must be 0 or more, got {version!r}")
    claims = [username_key, version, int(now)]
    payload = _encode(json.dumps(claims, ensure_ascii=False, separators=(",", ":")).encode())
    token = f"{payload}.{_mac(secret, payload)}"
    if len(token) > MAX_TOKEN_CHARS:
        raise ValueError(f"a token for a {len(username_key)}-character key would be too long")
    return token


def verify(secret: bytes, token: object, now: float) -> TokenClaims | None:
    """The claims of a token signed with ``secret`` and valid at ``now``; else None.

    Anything at all may be passed: whatever is not such a token (not a string,
    too long, malformed, signed with another secret, altered, expired, or
    issued more than `CLOCK_SKEW_S` in the future) gives None, never an error.
    The caller still compares ``claims.version`` with the user's current token
    version, which Leave bumps: an older version is a token given up.
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or not token.isascii():
        return None
    payload, dot, mac = token.partition(".")
    if not dot or not _BASE64URL.fullmatch(payload):
        return None
    # Compared as text, so a MAC spelt another way (padding, spare bits) fails too.
    if not hmac.compare_digest(mac, _mac(secret, payload)):
        return None
    claims = _decode_claims(payload)
    if claims is None:
        return None
    username_key, version, issued_at = claims
    if not now - TOKEN_LIFETIME_S <= issued_at <= now + CLOCK_SKEW_S:
        return None
    return TokenClaims(username_key, version, float(issued_at))


def secret_from(settings_secret: str | None, data_dir: Path) -> bytes:
    """The key that signs tokens: from ``SECRET_KEY_BASE``, else from the data dir.

    Without ``SECRET_KEY_BASE`` (development, tests), a random secret is read
    from `SECRET_FILE_NAME` in ``data_dir``, which is created first (mode
    0600) when missing. Either way the key is derived for tokens alone, so the
    same base can safely sign other things. Raises `ConfigError` when the file
    holds something this function did not write.
    """
    if settings_secret:
        return _derive(settings_secret.encode())
    path = data_dir / SECRET_FILE_NAME
    if not path.exists():
        _create_secret_file(path)
    text = path.read_text(encoding="ascii", errors="replace").strip()
    try:
        base = bytes.fromhex(text)
    except ValueError:
        base = b""
    if len(base) < _SECRET_BYTES:
        raise ConfigError(
            f"{path} should hold {_SECRET_BYTES} random bytes in hex; "
            "delete it to have a new one made (tokens issued before stop working)"
        )
    return _derive(base)


def _create_secret_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: of two processes starting at once, one writes and both read it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w", encoding="ascii") as file:
        file.write(secrets.token_hex(_SECRET_BYTES) + "\n")


def _derive(base: bytes) -> bytes:
    return hmac.digest(base, b"chatter identity tokens", hashlib.sha256)


def _mac(secret: bytes, payload: str) -> str:
    return _encode(hmac.digest(secret, _MAC_LABEL + payload.encode("ascii"), hashlib.sha256))


def _decode_claims(payload: str) -> tuple[str, int, int] | None:
    # Signed by us, so well-formed unless the secret leaked; checked all the same.
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        return None
    match claims:
        case [str(username_key), int(version), int(issued_at)] if (
            not isinstance(version, bool) and not isinstance(issued_at, bool) and version >= 0
        ):
            return username_key, version, issued_at
        case _:
            return None


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
