"""How a session takes a name: joining, posting under a new name, reclaiming
one with a token at connect (holding it with the same person's other
connections, if any), and letting it go (a Leave lets it go for all of them).

A claim is two asks. Presence reserves the name (`presence.Claim`, answered
`Claimed`); then persistence records the user (`persistence.RecordUser`,
answered `UserRecorded`), and only then is the name the connection's and
online for everyone (`presence.Confirm`). Both answers carry a `Claiming` tag
saying which name was asked for and, for a post, which post to send once it is
ours. Frames behind a claim wait until it is settled.

`NameClaims` is this part of `chatter.session.SessionActor`, kept apart so
that each file reads as one story; it holds no state of its own.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka

from chatter import persistence, presence
from chatter.connection import Connection, SessionContext
from chatter.errors import ChatError, ErrorCode, InvalidUsername
from chatter.persistence import Persistence
from chatter.presence import Presence
from chatter.protocol import Join, Post, encode
from chatter.queries import Joined
from chatter.throttle import TokenBucket
from chatter.tokens import issue
from chatter.usernames import username_key, validate_username

__all__ = [
    "ANNOUNCE_WAIT_S",
    "LEFT_ELSEWHERE",
    "AnnounceWaited",
    "Announcing",
    "Claiming",
    "Identity",
    "NameClaims",
    "Reclaim",
    "Reclaiming",
]

LEFT_ELSEWHERE = "left_elsewhere"
"""The `left` frame's reason when a Leave on another connection of the same
person let the name go (docs/PROTOCOL.md, `left`)."""

ANNOUNCE_WAIT_S = 1.0
"""How long a first post waits for presence to announce its poster's join."""

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reclaim:
    """Looking up the user a token names (at connect)."""

    version: int


@dataclass(frozen=True)
class Reclaiming:
    """Holding the token's name, with whoever holds it already (the same
    person's other tabs)."""

    user: persistence.User


@dataclass(frozen=True)
class Claiming:
    """Claiming `username` for a `join`, or for `post` (then posted once it is ours)."""

    username: str
    client_id: str | None
    post: Post | None = None
    started: float = 0.0


@dataclass(frozen=True, eq=False)
class Announcing:
    """Waiting for presence to announce the join before posting `claiming.post`."""

    claiming: Claiming


@dataclass(frozen=True)
class AnnounceWaited:
    """To itself: presence did not answer in `ANNOUNCE_WAIT_S`; post anyway."""

    announcing: Announcing


@dataclass
class Identity:
    """The name a connection holds, as recorded."""

    username: str
    key: str
    user_id: uuid.UUID
    token_version: int
    posted: bool = False
    """Whether the user has posted (presence is told once, at the first post)."""


class NameClaims:
    """The session's name-taking clauses. The session provides the state
    named here and the methods it calls back (sending, resuming frames, posting)."""

    session_id: str
    actor_ref: Any
    _connection: Connection
    _context: SessionContext
    _persistence: Persistence
    _presence: Presence
    _identity: Identity | None
    _claiming: str | None
    _granted: str | None
    _claims_bucket: Callable[[], TokenBucket]
    _busy: bool
    _announcing: Announcing | None
    actor_loop: Any

    # What the session provides (see `chatter.session.Session`).
    _send: Callable[[str], None]
    _send_error: Callable[[ErrorCode, str, str | None], None]
    _send_rate_limited: Callable[[str, str | None, float], None]
    _reject: Callable[[ChatError, str | None], None]
    _resume_frames: Callable[[], None]
    _post_as_self: Callable[[Post, float], None]
    _gather_welcome: Callable[[], None]

    # reclaiming with a token, before the welcome ---------------------------------------

    def _reclaim(self, user: persistence.User | None, version: int) -> None:
        if user is None or user.token_version != version:
            self._gather_welcome()  # revoked by a Leave, or unknown: join as a viewer
            return
        self._claiming = user.username
        self._ask_presence(user.username, by_token=True, tag=Reclaiming(user))

    def _reclaimed(self, user: persistence.User, result: presence.ClaimResult) -> None:
        self._claiming = None
        if result.granted:
            self._identity = Identity(
                user.username, user.key, user.id, user.token_version, user.posted
            )
            self._presence.confirm(self.session_id, posted=user.posted)
            logger.info("Session %s reclaimed %r with its token", self.session_id, user.username)
        self._gather_welcome()

    # join and name claims -----------------------------------------------------------

    def _join(self, frame: Join) -> None:
        username = self._validated(frame.username, frame.client_id)
        if username is None:
            return
        if self._holds(username):
            self._send_joined()  # already yours: the answer is still "joined"
            return
        self._claim(Claiming(username, frame.client_id))

    def _validated(self, username: str, client_id: str | None) -> str | None:
        """`username` as it is held; None when it is not a valid name (the
        client is told why)."""
        try:
            return validate_username(username)
        except InvalidUsername as error:
            self._reject(error, client_id)
            return None

    def _holds(self, username: str) -> bool:
        """Whether this connection holds `username` (valid) already."""
        return self._identity is not None and self._identity.key == username_key(username)

    def _claim(self, claiming: Claiming) -> None:
        """Ask presence for the name; frames behind this one wait for the answer."""
        # Taken once the name is ours: a refusal, or a user the database
        # could not record, costs no token.
        wait_s = self._claims_bucket().wait()
        if wait_s > 0:
            self._send_rate_limited(
                "you are changing names too fast; wait a moment", claiming.client_id, wait_s
            )
            return
        self._busy = True
        self._claiming = claiming.username
        self._ask_presence(
            claiming.username, by_token=False, tag=claiming, address=self._connection.remote
        )

    def _ask_presence(
        self, username: str, *, by_token: bool, tag: Any, address: str | None = None
    ) -> None:
        claim = presence.Claim(
            self.session_id,
            self.actor_ref,
            username,
            by_token,
            address=address,
            reply_to=self.actor_ref,
            tag=tag,
        )
        self._presence.tell(claim)

    def _claimed(self, claiming: Claiming, result: presence.ClaimResult) -> None:
        if not result.granted:
            self._claiming = None
            if result.retry_after_s is not None:
                self._send_rate_limited(
                    "too many names were taken from your address; wait a moment",
                    claiming.client_id,
                    result.retry_after_s,
                )
            else:
                self._send_error(
                    ErrorCode.USERNAME_TAKEN,
                    f"{claiming.username!r} is taken by someone online; choose another name",
                    claiming.client_id,
                )
            self._resume_frames()
            return
        self._granted = claiming.username
        previous, self._identity = self._identity, None
        if previous is not None:
            self._persistence.touch_user(previous.user_id)
        record = persistence.RecordUser(claiming.username, reply_to=self.actor_ref, tag=claiming)
        self._persistence.tell(record)

    def _recorded(self, claiming: Claiming, joined: Joined) -> None:
        self._claiming = self._granted = None
        self._claims_bucket().take()  # a token was there when asked; time only adds more
        user = joined.user
        self._identity = Identity(user.username, user.key, user.id, user.token_version, user.posted)
        # A post that carried the name is stored once the join has gone to the
        # room, so that everyone sees the person join before their first words.
        awaited = Announcing(claiming) if claiming.post is not None else None
        told = self._presence.confirm(
            self.session_id,
            joined.total_users,
            reply_to=self.actor_ref if awaited is not None else None,
            tag=awaited,
            posted=user.posted,
        )
        self._send_joined()
        logger.info("Session %s is now %r", self.session_id, user.username)
        if awaited is not None and told:
            self._announcing = awaited
            self.actor_loop.call_later(ANNOUNCE_WAIT_S, self._announce_waited, awaited)
            return  # frames behind this one wait for `_announced`
        if claiming.post is not None:
            self._post_as_self(claiming.post, claiming.started)
        self._resume_frames()

    def _announced(self, announcing: Announcing) -> None:
        """The join has gone to the room (or waited long enough): post."""
        if self._announcing is not announcing:
            return  # answered already
        self._announcing = None
        post = announcing.claiming.post
        assert post is not None
        self._post_as_self(post, announcing.claiming.started)
        self._resume_frames()

    def _announce_waited(self, announcing: Announcing) -> None:
        # A presence that died with the Confirm in hand never answers.
        with contextlib.suppress(pykka.ActorDeadError):
            self.actor_ref.tell(AnnounceWaited(announcing))

    def _unavailable(self, client_id: str | None, *, release: bool) -> None:
        # Presence never answered: it holds nothing new, and what we held
        # before stays ours. Or the user could not be recorded: let go.
        if release and self._claiming is not None:
            self._presence.release(self.session_id)
        self._claiming = self._granted = None
        self._send_error(ErrorCode.UNAVAILABLE, "the chat is unavailable; retry shortly", client_id)
        self._resume_frames()

    def _send_joined(self) -> None:
        assert self._identity is not None
        identity = self._identity
        token = issue(
            self._context.secret, identity.key, identity.token_version, self._context.clock()
        )
        self._send(encode({"type": "joined", "username": identity.username, "token": token}))

    # leave --------------------------------------------------------------------------

    def _leave(self) -> None:
        """Let the name go for every connection holding it (the person's
        other tabs become viewers too), and revoke the person's tokens."""
        identity, self._identity = self._identity, None
        if identity is not None:
            self._presence.leave(self.session_id)
            self._persistence.touch_user(identity.user_id, revoke_tokens=True)
            logger.info("Session %s released %r", self.session_id, identity.username)
        self._send(encode({"type": "left"}))

    def _left_elsewhere(self, username: str) -> None:
        """Another connection holding the name with this one let it go (Leave)."""
        if self._identity is not None and self._identity.key == username_key(username):
            self._identity = None
            self._send(encode({"type": "left", "reason": LEFT_ELSEWHERE}))
            logger.info("Session %s let %r go with another tab", self.session_id, username)
