"""The session actor: one per WebSocket connection, owning that connection's state.

The web handler only moves frames: it hands the session each frame the client
sent (`Inbound`, through `chatter.session_client.SessionClient`) and a
`Connection` to write to. The session owns the rest: who the client is, its
throttles, what it has been sent (the highest seq, so nothing is sent twice),
and the order frames are answered in. It runs on the event loop (a
`LoopActor`), so it writes to its connection directly.

It talks to the other actors only by message, as a gen_server does: it sends a
request with itself as `reply_to` and a tag saying what the request is for,
and handles the answer as one more message, in one clause of `on_receive` per
kind of answer. It never waits, and nothing of its own runs on another
actor's thread.

When a room starts (after a crash of the last one), it tells every session to
`CatchUp`: the session reads the log after the last seq it has sent and sends
what it missed, holding fan-out rounds meanwhile, as it does for the welcome.

Frames are handled one at a time in arrival order. The welcome goes first:
frames that arrive before it is sent wait, and so do messages fanned out
meanwhile (the session joins the room before it asks for the welcome's data,
so nothing falls between the two; duplicates are dropped by seq). The room
answers the welcome's messages from those it remembers (`chatter.room.Recall`). A frame that
needs an answer first (claiming a name) holds the frames behind it until the
answer comes; posts do not wait for their commit, so a client can have several
in flight. A post's path is session -> persistence (commit; the poster gets
`Stored`, then sends ``ack``) -> room -> every session (``message``).

Three token buckets limit a connection: posts, every other frame (a flood
limit), and name claims. A name claim is a `join`, or a `post` whose
`username` is not the name the connection holds; it needs a token from the
session's bucket and from its address's bucket (kept by presence), and takes
them only once granted. Without one it is refused with ``rate_limited`` before
presence holds anything or a user row is written, and a post that carried the
name is not stored. Re-joining with the held name, and reclaiming a name with
a token at connect, are not claims of a new name and take nothing.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

from chatter import persistence, presence, room, welcome
from chatter.connection import Connection, Inbound, SessionContext
from chatter.errors import ChatError, ErrorCode
from chatter.messages import Page, validate_body, validate_client_id
from chatter.persistence import ReadDone, ReadFailed
from chatter.protocol import (
    BadRequest,
    ClientFrame,
    CloseCode,
    History,
    Join,
    Leave,
    Post,
    encode,
    error_frame,
    message_frame,
    page_frame,
    parse,
)
from chatter.room import CATCH_UP_LIMIT, SESSIONS_GROUP, CatchUp, Deliver
from chatter.session_names import (
    AnnounceWaited,
    Announcing,
    Claiming,
    Identity,
    NameClaims,
    Reclaim,
    Reclaiming,
)
from chatter.throttle import (
    FRAME_BURST,
    FRAME_RATE_PER_S,
    POST_BURST,
    POST_RATE_PER_S,
    Limit,
    TokenBucket,
)
from chatter.tokens import verify
from supervision import LoopActor

__all__ = ["SessionActor"]

logger = logging.getLogger(__name__)


# -- tags: what an answer is for --------------------------------------------------------


@dataclass(frozen=True)
class _CatchingUp:
    """A read of the log after the last seq sent, after a room restarted."""


@dataclass(frozen=True)
class _Posting:
    """A post on its way to the database; `started` for the post-to-ack metric."""

    client_id: str | None
    started: float


class _Buckets:
    """A session's three token buckets (see the module's docs)."""

    __slots__ = ("claims", "flood", "posts")

    def __init__(self, name_claims: Limit) -> None:
        monotonic = time.monotonic
        self.posts = TokenBucket(POST_BURST, POST_RATE_PER_S, monotonic)
        self.flood = TokenBucket(FRAME_BURST, FRAME_RATE_PER_S, monotonic)
        self.claims = name_claims.bucket(monotonic)


class SessionActor(NameClaims, LoopActor):
    """One client connection's state and behaviour."""

    def __init__(
        self,
        session_id: str,
        connection: Connection,
        context: SessionContext,
        *,
        after: int | None = None,
        token: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.session_id = session_id
        self._connection = connection
        self._context = context
        self._persistence = context.persistence
        self._presence = context.presence
        self._token = token
        self._identity: Identity | None = None
        self._claiming: str | None = None
        self._granted: str | None = None  # granted by presence, not yet recorded
        self._announcing: Announcing | None = None
        self._welcome: welcome.WelcomeParts | None = welcome.WelcomeParts(after)
        self._held: list[Deliver] = []
        """Rounds that came while the welcome or a catch-up was being read."""
        self._last_seq = 0
        self._catching_up = False
        self._catch_up_again = False
        """A room restarted during the welcome or a catch-up: read once more after."""
        self._frames: list[ClientFrame | ChatError] = []
        """Frames waiting for the one before to be answered (rarely more than one)."""
        self._busy = True  # until the welcome is sent
        self._buckets: _Buckets | None = None
        """The throttles, made by the first frame: a bucket starts full, so one
        made then is the one made at connect. An idle connection holds none.
        (An actor of at most 30 attributes keeps them in a compact table
        shared by every session, not a dict of its own: 1.3 KiB less each.)"""

    # -- lifecycle ---------------------------------------------------------------------

    def on_start(self) -> None:
        self._context.registry.join(SESSIONS_GROUP, self.actor_ref)
        logger.debug("Session %s opened from %s", self.session_id, self._connection.remote)
        claims = (
            verify(self._context.secret, self._token, self._context.clock())
            if self._token
            else None
        )
        if claims is not None:
            self._persistence.tell(
                persistence.find_user(claims.username_key, self.actor_ref, Reclaim(claims.version))
            )
        else:
            self._gather_welcome()

    def on_stop(self) -> None:
        self._leave_everything()
        # Stopped from outside (its supervisor shutting down): the socket goes
        # too. After the client closed it, this does nothing.
        self._connection.close(CloseCode.GOING_AWAY, "server going away")
        logger.debug("Session %s closed", self.session_id)

    def on_failure(self, *_: Any) -> None:
        self._leave_everything()
        self._connection.close(CloseCode.INTERNAL_ERROR, "internal error")
        logger.error("Session %s crashed; its connection is closed", self.session_id)

    def _leave_everything(self) -> None:
        self._context.registry.leave(SESSIONS_GROUP, self.actor_ref)
        if self._identity is not None or self._claiming is not None:
            self._presence.release(self.session_id)
        if self._identity is not None:
            self._persistence.touch_user(self._identity.user_id)

    def on_receive(self, message: Any) -> Any:
        match message:
            case Inbound(text=text):
                self._inbound(text)
            case Deliver():
                self._deliver(message)
            case CatchUp():
                self._catch_up()
            case ReadDone(tag=_CatchingUp(), value=page) if self._catching_up:
                self._caught_up(page)
            case ReadFailed(tag=_CatchingUp()) if self._catching_up:
                self._catch_up_failed()
            # the welcome, and reclaiming a name with a token first
            case ReadDone(tag=Reclaim(version=version), value=user):
                self._reclaim(user, version)
            case presence.Claimed(tag=Reclaiming(user=user), result=result):
                self._reclaimed(user, result)
            case ReadFailed(tag=Reclaim()) | presence.ClaimFailed(tag=Reclaiming()):
                self._claiming = None
                self._gather_welcome()
            case ReadDone(tag=welcome.Part() as part, value=value):
                self._welcome_part(part, value)
            case presence.OnlineNow(tag=welcome.Part() as part, users=users):
                if users is None and self._welcome is not None:  # presence could not read them
                    self._welcome.read_users(self._persistence, self.actor_ref)
                self._welcome_part(part, message)
            case room.NotRemembered(tag=welcome.Part()) if self._welcome is not None:
                self._welcome.read_messages(self._persistence, self.actor_ref)
            case ReadFailed(tag=welcome.Part()) | presence.OnlineFailed(tag=welcome.Part()):
                self._welcome_failed()
            # claiming a name
            case presence.Claimed(tag=Claiming() as claiming, result=result):
                self._claimed(claiming, result)
            case presence.ClaimFailed(tag=Claiming() as claiming):
                self._unavailable(claiming.client_id, release=False)
            case persistence.UserRecorded(tag=Claiming() as claiming, joined=joined):
                self._recorded(claiming, joined)
            case persistence.UserRecordFailed(tag=Claiming() as claiming):
                self._unavailable(claiming.client_id, release=True)
            # posting
            case persistence.Stored(tag=_Posting() as posting, result=result):
                self._acked(posting, result.message.id, result.message.seq)
            case persistence.StoreFailed(tag=_Posting() as posting, error=error):
                self._store_failed(posting, error)
            # history
            case ReadDone(tag=History(), value=page):
                self._send(page_frame("history", page, has_more=page.has_more))
            case ReadFailed(tag=History() as frame):
                self._send_error(
                    ErrorCode.UNAVAILABLE, "history is unavailable; retry shortly", frame.client_id
                )
            # from presence
            case presence.ReportIdentity(presence=asker):
                # A name counts once presence granted it; a claim still waiting
                # for an answer is decided by the new presence when it gets to it.
                name = self._identity.username if self._identity is not None else self._granted
                confirmed = self._identity is not None
                report = presence.IdentityReport(self.session_id, self.actor_ref, name, confirmed)
                asker.tell(report)
            case presence.Announced(tag=Announcing() as announcing):
                self._announced(announcing)
            case AnnounceWaited(announcing=announcing):
                self._announced(announcing)
            case presence.LeftElsewhere(username=username):
                self._left_elsewhere(username)
            case presence.Fenced():
                self._connection.close(
                    CloseCode.SERVICE_RESTART, "name lost while fenced; reconnect"
                )
            case _:
                super().on_receive(message)
        return None

    # -- the welcome ------------------------------------------------------------------------

    def _gather_welcome(self) -> None:
        if self._welcome is not None:
            self._welcome.ask(self._context.room, self._persistence, self._presence, self.actor_ref)

    # -- the throttles ----------------------------------------------------------------------

    def _throttles(self) -> _Buckets:
        if self._buckets is None:
            self._buckets = _Buckets(self._context.name_claims.per_connection)
        return self._buckets

    def _claims_bucket(self) -> TokenBucket:
        return self._throttles().claims

    def _welcome_part(self, part: welcome.Part, value: Any) -> None:
        parts = self._welcome
        if parts is None:
            return  # the welcome failed already
        if not parts.take(part, value):
            return
        self._welcome = None
        you = self._identity.username if self._identity is not None else None
        self._send(parts.frame(you))
        assert parts.backlog is not None
        self._last_seq = parts.backlog.seen_up_to
        if self._identity is not None and self._token is not None:
            self._send_joined()
        if self._catch_up_again:  # a room started while the welcome was read
            self._catch_up()
        self._send_held()
        self._resume_frames()

    def _welcome_failed(self) -> None:
        if self._welcome is None:
            return  # sent, or failed already: do not try twice
        self._welcome = None
        self._send_error(ErrorCode.UNAVAILABLE, "the chat is unavailable; reconnect shortly")
        self._connection.close(CloseCode.TRY_AGAIN_LATER, "try again later")

    # -- catching up after a room restarted -------------------------------------------------

    def _catch_up(self) -> None:
        """Read the log after the last seq sent; rounds wait until it is in.
        Told during the welcome, ask the new room for its messages too, if
        they have not come: the room that was asked may have died with it."""
        if self._welcome is not None and self._welcome.backlog is None:
            self._context.room.recall(self._welcome.after, self.actor_ref, welcome.RECALL)
        if self._welcome is not None or self._catching_up:
            self._catch_up_again = True
            return
        self._catch_up_again = False
        self._catching_up = True
        self._persistence.tell(
            persistence.read_after(self._last_seq, CATCH_UP_LIMIT, self.actor_ref, _CatchingUp())
        )

    def _caught_up(self, page: Page) -> None:
        missed = [m for m in page.messages if m.seq > self._last_seq]
        if missed:
            self._last_seq = missed[-1].seq
            self._connection.send_all([message_frame(m).encode() for m in missed])
        self._catching_up = False
        if page.has_more or self._catch_up_again:
            self._catch_up()
        else:
            self._send_held()

    def _catch_up_failed(self) -> None:
        """Without the log this connection may have a gap: the client resumes
        from what it has, which the welcome of its next connection fills."""
        self._catching_up = False
        self._send_error(ErrorCode.UNAVAILABLE, "the chat is unavailable; reconnect shortly")
        self._connection.close(CloseCode.TRY_AGAIN_LATER, "try again later")

    def _send_held(self) -> None:
        if self._catching_up:
            return  # the catch-up sends them once it is in
        held, self._held = self._held, []
        for deliver in held:
            self._deliver(deliver)

    # -- frames from the client ------------------------------------------------------------

    def _inbound(self, text: str | bytes) -> None:
        try:
            frame: ClientFrame | ChatError = parse(text)
        except BadRequest as error:
            frame = error
        if not isinstance(frame, Post) and self._throttles().flood.take() > 0:
            self._connection.close(CloseCode.POLICY, "too many frames")
            return
        self._frames.append(frame)
        self._next_frame()

    def _next_frame(self) -> None:
        while not self._busy and self._frames:
            match self._frames.pop(0):
                case ChatError() as error:
                    self._reject(error, getattr(error, "client_id", None))
                case Post() as post:
                    self._post(post)
                case Join() as join:
                    self._join(join)
                case History() as history:
                    self._persistence.tell(
                        persistence.read_before(
                            history.before, history.limit, self.actor_ref, history
                        )
                    )
                case Leave():
                    self._leave()

    def _resume_frames(self) -> None:
        self._busy = False
        self._next_frame()

    def _reject(self, error: ChatError, client_id: str | None = None) -> None:
        retry = getattr(error, "retry_after_ms", None)
        self._send_error(error.code, str(error), client_id, retry)

    # post ---------------------------------------------------------------------------

    def _post(self, frame: Post) -> None:
        started = time.monotonic()  # post-to-ack latency counts from here
        if frame.username is None:
            self._post_as_self(frame, started)
            return
        username = self._validated(frame.username, frame.client_id)
        if username is None:
            return
        if self._holds(username):
            self._post_as_self(frame, started)
            return
        self._claim(Claiming(username, frame.client_id, frame, started))

    def _post_as_self(self, frame: Post, started: float) -> None:
        client_id = frame.client_id
        identity = self._identity
        if identity is None:
            self._send_error(
                ErrorCode.IDENTITY_REQUIRED, "your first message must carry a username", client_id
            )
            return
        try:
            body = validate_body(frame.body)
            validate_client_id(client_id)
        except ChatError as error:
            self._reject(error, client_id)
            return
        throttles = self._throttles()
        wait_s = throttles.posts.take()
        if wait_s > 0:
            if throttles.flood.take() > 0:  # refused posts in a flood are abuse too
                self._connection.close(CloseCode.POLICY, "too many frames")
                return
            self._send_rate_limited("you are sending too fast; wait a moment", client_id, wait_s)
            return
        self._persistence.tell(
            persistence.Store(
                identity.user_id,
                identity.username,
                body,
                client_id,
                reply_to=self.actor_ref,
                tag=_Posting(client_id, started),
            )
        )

    def _acked(self, posting: _Posting, message_id: uuid.UUID, seq: int) -> None:
        ack = {"type": "ack", "client_id": posting.client_id, "id": str(message_id), "seq": seq}
        self._send(encode(ack))
        identity = self._identity
        if identity is not None and not identity.posted:
            identity.posted = True  # they took part: when they leave, they stay listed
            self._presence.posted(self.session_id)
        self._context.metrics.post_ack_seconds.observe(time.monotonic() - posting.started)

    def _store_failed(self, posting: _Posting, error: Exception) -> None:
        if isinstance(error, ChatError):
            self._reject(error, posting.client_id)
        else:
            logger.error("Store failed for session %s: %s", self.session_id, error)
            self._send_error(
                ErrorCode.UNAVAILABLE, "the message was not stored; retry", posting.client_id
            )

    # -- from other actors ------------------------------------------------------------------

    def _deliver(self, deliver: Deliver) -> None:
        if self._welcome is not None or self._catching_up:
            self._held.append(deliver)
            return
        first = deliver.first_seq
        if first is None or first > self._last_seq:  # all new: the round as it is
            if deliver.last_seq is not None:
                self._last_seq = deliver.last_seq
            self._connection.send_all(deliver.frames)
            return
        frames = []
        for delivery in deliver.deliveries:
            if delivery.seq is not None:
                if delivery.seq <= self._last_seq:
                    continue  # already in the welcome, or sent before
                self._last_seq = delivery.seq
            frames.append(delivery.frame)
        if frames:
            self._connection.send_all(frames)

    def _send(self, text: str) -> None:
        self._connection.send(text.encode())

    def _send_rate_limited(self, message: str, client_id: str | None, wait_s: float) -> None:
        """Refuse with ``rate_limited``: `wait_s` rounded up to the millisecond
        and at least 1, so a client that waits as told is never too soon."""
        retry_ms = max(1, math.ceil(wait_s * 1000))
        self._send_error(ErrorCode.RATE_LIMITED, message, client_id, retry_ms)

    def _send_error(
        self,
        code: ErrorCode,
        message: str,
        client_id: str | None = None,
        retry_after_ms: int | None = None,
    ) -> None:
        """Send an error frame, counted by its code (errors are rare: one
        locked increment each is nothing)."""
        self._context.metrics.frames_refused.labels(code.value).inc()
        self._send(error_frame(code, message, client_id, retry_after_ms))
