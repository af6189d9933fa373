"""The session actor: one per WebSocket connection, owning that connection's state.

The web handler only moves frames: it tells the session each frame the client
sent (`Inbound`) and hands it a `Connection` to write to. The session owns the
rest: who the client is, its throttles, what it has been sent (the highest
seq, so nothing is sent twice), and the order frames are answered in. It runs
on the event loop (a `LoopActor`), so it writes to its connection directly.

Frames are handled one at a time in arrival order. The welcome goes first:
frames that arrive before it is sent wait, and so do messages fanned out
meanwhile (the session joins the room before it reads the database, so
nothing falls between the two; duplicates are dropped by seq). A frame that
needs an answer from another actor (claiming a name) holds the frames behind
it until the answer comes; posts do not wait for their commit, so a client can
have several in flight, acked in order.

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

import collections
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pykka

from chatter.errors import ChatError, ErrorCode, InvalidUsername
from chatter.messages import Page, validate_body, validate_client_id
from chatter.metrics import ChatMetrics
from chatter.persistence import Joined, Persistence, StoreResult, User, UsersPage
from chatter.presence import ClaimResult, IdentityReport, Presence, Replaced, ReportIdentity
from chatter.protocol import (
    BadRequest,
    ClientFrame,
    History,
    Join,
    Leave,
    Post,
    encode,
    error_frame,
    page_frame,
    parse,
)
from chatter.room import SESSIONS_GROUP, Deliver, Room
from chatter.throttle import (
    FRAME_BURST,
    FRAME_RATE_PER_S,
    POST_BURST,
    POST_RATE_PER_S,
    NameClaimLimits,
    TokenBucket,
)
from chatter.tokens import issue, verify
from chatter.usernames import username_key, validate_username
from supervision import Future, LoopActor, Registry

__all__ = [
    "CLOSE_INTERNAL_ERROR",
    "CLOSE_POLICY",
    "MAX_RESUME",
    "RECENT_OFFLINE_USERS",
    "WELCOME_MESSAGES",
    "Connection",
    "Inbound",
    "SessionActor",
    "SessionContext",
]

logger = logging.getLogger(__name__)

WELCOME_MESSAGES = 500
"""Messages in a welcome: the newest ones."""

MAX_RESUME = 5000
"""Most missed messages a resume sends; beyond it, the newest `WELCOME_MESSAGES`."""

RECENT_OFFLINE_USERS = 50
"""Offline users listed in a welcome, most recently active first."""

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_INTERNAL_ERROR = 1011


class Connection(Protocol):
    """What a session needs of its socket; `web/` implements it over Tornado.
    Called on the event loop thread only."""

    remote: str
    """The client's address, for logs."""

    def send(self, frame: bytes) -> None:
        """Queue one text frame (UTF-8 JSON) to the client."""

    def close(self, code: int, reason: str) -> None:
        """Close the connection with a WebSocket close code."""


@dataclass(frozen=True)
class SessionContext:
    """What every session shares: names to reach the other actors, and the
    secret that signs identity tokens."""

    registry: Registry
    secret: bytes
    clock: Callable[[], float] = time.time
    metrics: ChatMetrics = field(default_factory=ChatMetrics)
    """The tree's metrics: sessions count refusals and time post to ack."""
    name_claims: NameClaimLimits = field(default_factory=NameClaimLimits)
    """How fast names may be taken: each session keeps a bucket of
    ``per_connection``; presence keeps those of ``per_address``."""


@dataclass(frozen=True)
class Inbound:
    """A frame the client sent, as received."""

    text: str | bytes


# -- answers from other actors, told back to the session ----------------------------------


@dataclass(frozen=True)
class _Answer:
    """The outcome of a future, and what to do with it, on the session's turn."""

    future: Future[Any] = field(compare=False)
    then: Callable[[Any], None] = field(compare=False)
    failed: Callable[[Exception], None] = field(compare=False)


@dataclass(frozen=True)
class _Backlog:
    """The welcome's messages, and the seq up to which the client has every
    message (live ones at or below it are not sent again)."""

    page: Page
    seen_up_to: int


@dataclass
class _Identity:
    username: str
    key: str
    user_id: uuid.UUID
    token_version: int


class SessionActor(LoopActor):
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
        self._persistence = Persistence(context.registry)
        self._presence = Presence(context.registry)
        self._room = Room(context.registry)
        self._after = after
        self._token = token
        self._identity: _Identity | None = None
        self._claiming: str | None = None
        self._granted: str | None = None  # granted by presence, not yet recorded
        self._welcomed = False
        self._held: list[Deliver] = []
        self._last_seq = 0
        self._frames: collections.deque[ClientFrame | ChatError] = collections.deque()
        self._busy = True  # until the welcome is sent
        monotonic = time.monotonic
        self._posts = TokenBucket(POST_BURST, POST_RATE_PER_S, monotonic)
        self._flood = TokenBucket(FRAME_BURST, FRAME_RATE_PER_S, monotonic)
        self._claims = context.name_claims.per_connection.bucket(monotonic)

    # -- lifecycle ---------------------------------------------------------------------

    def on_start(self) -> None:
        self._context.registry.join(SESSIONS_GROUP, self.actor_ref)
        logger.info("Session %s opened from %s", self.session_id, self._connection.remote)
        if self._token is not None:
            self._reclaim(self._token)
        else:
            self._gather_welcome()

    def on_stop(self) -> None:
        self._leave_everything()
        # Stopped from outside (its supervisor shutting down): the socket goes
        # too. After the client closed it, this does nothing.
        self._connection.close(CLOSE_GOING_AWAY, "server going away")
        logger.info("Session %s closed", self.session_id)

    def on_failure(self, *_: Any) -> None:
        self._leave_everything()
        self._connection.close(CLOSE_INTERNAL_ERROR, "internal error")
        logger.error("Session %s crashed; its connection is closed", self.session_id)

    def _leave_everything(self) -> None:
        self._context.registry.leave(SESSIONS_GROUP, self.actor_ref)
        if self._identity is not None or self._claiming is not None:
            self._presence.release(self.session_id)
        if self._identity is not None:
            self._persistence.touch_user(self._identity.user_id)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Deliver):
            self._deliver(message)
        elif isinstance(message, Inbound):
            self._inbound(message.text)
        elif isinstance(message, _Answer):
            self._settle(message)
        elif isinstance(message, ReportIdentity):
            self._report_identity(message)
        elif isinstance(message, Replaced):
            self._replaced(message)
        else:
            super().on_receive(message)
        return None

    # -- talking to other actors without waiting ---------------------------------------

    def _when(
        self,
        future: Future[Any],
        then: Callable[[Any], None],
        failed: Callable[[Exception], None],
    ) -> None:
        """Continue with `then(value)` or `failed(error)` on this session's turn,
        once `future` is done: an answer is a message, never a blocking wait."""
        answer = _Answer(future, then, failed)

        def tell(_: Future[Any]) -> None:
            with contextlib.suppress(pykka.ActorDeadError):  # the connection closed meanwhile
                self.actor_ref.tell(answer)

        future.add_done_callback(tell)

    def _settle(self, answer: _Answer) -> None:
        try:
            value = answer.future.get()
        except Exception as error:
            answer.failed(error)
        else:
            answer.then(value)

    # -- the welcome ------------------------------------------------------------------------

    def _reclaim(self, token: str) -> None:
        claims = verify(self._context.secret, token, self._context.clock())
        if claims is None:
            self._gather_welcome()
            return
        self._when(
            self._persistence.user_by_key(claims.username_key),
            lambda user: self._reclaim_user(user, claims.version),
            lambda error: self._gather_welcome(),
        )

    def _reclaim_user(self, user: User | None, version: int) -> None:
        if user is None or user.token_version != version:
            self._gather_welcome()  # revoked by a Leave, or unknown: join as a viewer
            return
        self._claiming = user.username
        self._when(
            self._presence.claim(self.session_id, self.actor_ref, user.username, takeover=True),
            lambda result: self._reclaimed(user, result),
            lambda error: self._gather_welcome(),
        )

    def _reclaimed(self, user: User, result: ClaimResult) -> None:
        self._claiming = None
        if result.granted:
            self._identity = _Identity(user.username, user.key, user.id, user.token_version)
            self._presence.confirm(self.session_id)
            logger.info("Session %s reclaimed %r with its token", self.session_id, user.username)
        self._gather_welcome()

    def _gather_welcome(self) -> None:
        parts: dict[str, Any] = {}
        wanted = ("messages", "online", "users")

        def part(name: str) -> Callable[[Any], None]:
            def keep(value: Any) -> None:
                parts[name] = value
                if all(k in parts for k in wanted):
                    self._welcome(parts["messages"], parts["online"], parts["users"])

            return keep

        self._when(self._messages_for_welcome(), part("messages"), self._welcome_failed)
        self._when(self._presence.online(), part("online"), self._welcome_failed)
        self._when(
            self._persistence.recent_users(RECENT_OFFLINE_USERS * 2),
            part("users"),
            self._welcome_failed,
        )

    def _messages_for_welcome(self) -> Future[_Backlog]:
        """What the welcome carries: the newest messages, or, resuming, those
        missed (or the newest, if too many were missed)."""
        result: Future[_Backlog] = Future()

        def newest_then(limit: int, make: Callable[[Page], _Backlog]) -> None:
            self._persistence.newest(limit).add_done_callback(
                lambda done: _then(
                    done, lambda page: result.set(make(page)), lambda e: _fail(result, e)
                )
            )

        if self._after is None:
            newest_then(WELCOME_MESSAGES, lambda page: _Backlog(page, _last_seq_of(page)))
            return result
        after = self._after

        def resumed(page: Page) -> None:
            if not page.messages:
                # Nothing missed. An `after` beyond the newest seq must not hide
                # the messages to come, so what was seen is capped at the newest.
                newest_then(
                    1, lambda latest: _Backlog(Page((), False), min(after, _last_seq_of(latest)))
                )
            elif not page.has_more:
                result.set(_Backlog(Page(page.messages, False), _last_seq_of(page)))
            else:  # more were missed than a resume carries: the newest; the client pages back
                newest_then(WELCOME_MESSAGES, lambda newest: _Backlog(newest, _last_seq_of(newest)))

        self._persistence.after(after, MAX_RESUME).add_done_callback(
            lambda done: _then(done, resumed, lambda e: _fail(result, e))
        )
        return result

    def _welcome(self, backlog: _Backlog, online: tuple[str, ...], users: UsersPage) -> None:
        page = backlog.page
        online_keys = {username_key(name) for name in online}
        offline = [u.username for u in users.users if u.key not in online_keys]
        listed = [{"username": n, "online": True} for n in online]
        listed += [{"username": n, "online": False} for n in offline[:RECENT_OFFLINE_USERS]]
        you = {"username": self._identity.username} if self._identity is not None else None
        self._send(
            page_frame(
                "welcome",
                page,
                has_more=page.has_more,
                users=listed,
                total_users=users.total,
                you=you,
            )
        )
        self._last_seq = backlog.seen_up_to
        if self._identity is not None and self._token is not None:
            self._send_joined()
        self._welcomed = True
        held, self._held = self._held, []
        for deliver in held:
            self._deliver(deliver)
        self._busy = False
        self._next_frame()

    def _welcome_failed(self, error: Exception) -> None:
        if self._welcomed:
            return
        self._welcomed = True  # do not try twice
        self._send_error(ErrorCode.UNAVAILABLE, "the chat is unavailable; reconnect shortly")
        self._connection.close(1013, "try again later")

    # -- frames from the client ------------------------------------------------------------

    def _inbound(self, text: str | bytes) -> None:
        try:
            frame: ClientFrame | ChatError = parse(text)
        except BadRequest as error:
            frame = error
        if not isinstance(frame, Post) and self._flood.take() > 0:
            self._connection.close(CLOSE_POLICY, "too many frames")
            return
        self._frames.append(frame)
        self._next_frame()

    def _next_frame(self) -> None:
        while not self._busy and self._frames:
            frame = self._frames.popleft()
            if isinstance(frame, ChatError):
                self._reject(frame, getattr(frame, "client_id", None))
            elif isinstance(frame, Post):
                self._post(frame)
            elif isinstance(frame, Join):
                self._join(frame)
            elif isinstance(frame, History):
                self._history(frame)
            elif isinstance(frame, Leave):
                self._leave()

    def _reject(self, error: ChatError, client_id: str | None = None) -> None:
        retry = getattr(error, "retry_after_ms", None)
        self._send_error(error.code, str(error), client_id, retry)

    # join ---------------------------------------------------------------------------

    def _join(self, frame: Join) -> None:
        try:
            username = validate_username(frame.username)
        except InvalidUsername as error:
            self._reject(error, frame.client_id)
            return
        if self._identity is not None and self._identity.key == username_key(username):
            self._send_joined()  # already yours: the answer is still "joined"
            return
        self._establish(username, client_id=frame.client_id, then=lambda: None)

    def _establish(self, username: str, client_id: str | None, then: Callable[[], None]) -> None:
        """Make `username` this connection's identity, then go on with `then`.
        Frames behind this one wait until it is settled."""
        if self._identity is not None and self._identity.key == username_key(username):
            then()
            return
        wait_s = self._claims.wait()  # taken once granted: a refusal costs no token
        if wait_s > 0:
            self._send_rate_limited(
                "you are changing names too fast; wait a moment", client_id, wait_s
            )
            return
        self._busy = True
        self._claiming = username
        self._when(
            self._presence.claim(
                self.session_id,
                self.actor_ref,
                username,
                takeover=False,
                address=self._connection.remote,
            ),
            lambda result: self._claimed(username, result, client_id, then),
            # Presence never answered: it holds nothing new for us, and what we
            # held before stays ours.
            lambda error: self._unavailable(client_id, release=False),
        )

    def _claimed(
        self, username: str, result: ClaimResult, client_id: str | None, then: Callable[[], None]
    ) -> None:
        if not result.granted:
            self._claiming = None
            if result.retry_after_s is not None:
                self._send_rate_limited(
                    "too many names were taken from your address; wait a moment",
                    client_id,
                    result.retry_after_s,
                )
            else:
                self._send_error(
                    ErrorCode.USERNAME_TAKEN,
                    f"{username!r} is taken by someone online; choose another name",
                    client_id,
                )
            self._resume_frames()
            return
        self._claims.take()  # a token was there when asked; time only adds more
        self._granted = username
        previous, self._identity = self._identity, None
        if previous is not None:
            self._persistence.touch_user(previous.user_id)
        self._when(
            self._persistence.join_user(username),
            lambda joined: self._recorded(joined, then),
            lambda error: self._unavailable(client_id, release=True),
        )

    def _recorded(self, joined: Joined, then: Callable[[], None]) -> None:
        self._claiming = self._granted = None
        user = joined.user
        self._identity = _Identity(user.username, user.key, user.id, user.token_version)
        self._presence.confirm(self.session_id, joined.total_users)
        self._send_joined()
        logger.info("Session %s is now %r", self.session_id, user.username)
        self._busy = False
        then()
        self._next_frame()

    def _send_joined(self) -> None:
        assert self._identity is not None
        identity = self._identity
        token = issue(
            self._context.secret, identity.key, identity.token_version, self._context.clock()
        )
        self._send(encode({"type": "joined", "username": identity.username, "token": token}))

    def _unavailable(self, client_id: str | None, *, release: bool) -> None:
        if release and self._claiming is not None:
            self._presence.release(self.session_id)
        self._claiming = self._granted = None
        self._send_error(ErrorCode.UNAVAILABLE, "the chat is unavailable; retry shortly", client_id)
        self._resume_frames()

    def _resume_frames(self) -> None:
        self._busy = False
        self._next_frame()

    # post ---------------------------------------------------------------------------

    def _post(self, frame: Post) -> None:
        started = time.monotonic()  # post-to-ack latency counts from here
        client_id = frame.client_id
        if frame.username is not None:
            try:
                username = validate_username(frame.username)
            except InvalidUsername as error:
                self._reject(error, client_id)
                return
            self._establish(username, client_id, then=lambda: self._post_as_self(frame, started))
            return
        self._post_as_self(frame, started)

    def _post_as_self(self, frame: Post, started: float) -> None:
        client_id = frame.client_id
        identity = self._identity
        if identity is None:
            self._send_error(
                ErrorCode.IDENTITY_REQUIRED,
                "your first message must carry a username",
                client_id,
            )
            return
        try:
            body = validate_body(frame.body)
            validate_client_id(client_id)
        except ChatError as error:
            self._reject(error, client_id)
            return
        wait_s = self._posts.take()
        if wait_s > 0:
            if self._flood.take() > 0:  # refused posts in a flood are abuse too
                self._connection.close(CLOSE_POLICY, "too many frames")
                return
            self._send_rate_limited("you are sending too fast; wait a moment", client_id, wait_s)
            return
        stored = self._persistence.store(identity.user_id, identity.username, body, client_id)
        room = self._room

        def fan_out(done: Future[StoreResult]) -> None:
            # On the persistence thread, right after the commit: tell the room
            # now, so a session that dies meanwhile cannot hold anyone else up.
            try:
                result = done.get()
            except Exception:
                return
            if not result.duplicate:
                room.broadcast(result.message)

        stored.add_done_callback(fan_out)
        self._when(
            stored,
            lambda result: self._acked(client_id, result, started),
            lambda error: self._store_failed(client_id, error),
        )

    def _acked(self, client_id: str | None, result: StoreResult, started: float) -> None:
        message = result.message
        self._send(
            encode(
                {"type": "ack", "client_id": client_id, "id": str(message.id), "seq": message.seq}
            )
        )
        self._context.metrics.post_ack_seconds.observe(time.monotonic() - started)

    def _store_failed(self, client_id: str | None, error: Exception) -> None:
        if isinstance(error, ChatError):
            self._reject(error, client_id)
        else:
            logger.error("Store failed for session %s: %s", self.session_id, error)
            self._send_error(ErrorCode.UNAVAILABLE, "the message was not stored; retry", client_id)

    # history ------------------------------------------------------------------------

    def _history(self, frame: History) -> None:
        self._when(
            self._persistence.before(frame.before, frame.limit),
            lambda page: self._send(page_frame("history", page, has_more=page.has_more)),
            lambda error: self._send_error(
                ErrorCode.UNAVAILABLE, "history is unavailable; retry shortly", frame.client_id
            ),
        )

    # leave --------------------------------------------------------------------------

    def _leave(self) -> None:
        identity, self._identity = self._identity, None
        if identity is not None:
            self._presence.release(self.session_id)
            self._persistence.touch_user(identity.user_id, revoke_tokens=True)
            logger.info("Session %s released %r", self.session_id, identity.username)
        self._send(encode({"type": "left"}))

    # -- from other actors ------------------------------------------------------------------

    def _deliver(self, deliver: Deliver) -> None:
        if not self._welcomed:
            self._held.append(deliver)
            return
        if deliver.seq is not None:
            if deliver.seq <= self._last_seq:
                return  # already in the welcome, or sent before
            self._last_seq = deliver.seq
        self._connection.send(deliver.frame)

    def _report_identity(self, request: ReportIdentity) -> None:
        # A name counts once presence granted it; a claim still waiting for an
        # answer is decided by the new presence when it gets to it.
        name = self._identity.username if self._identity is not None else self._granted
        confirmed = self._identity is not None
        request.presence.tell(IdentityReport(self.session_id, self.actor_ref, name, confirmed))

    def _replaced(self, replaced: Replaced) -> None:
        if self._identity is not None and self._identity.key == username_key(replaced.username):
            self._identity = None
            self._send(encode({"type": "left", "reason": "replaced"}))
            logger.info("Session %s lost %r to a reconnect", self.session_id, replaced.username)

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


def _info(error: BaseException) -> tuple[type[BaseException], BaseException, Any]:
    return (type(error), error, error.__traceback__)


def _fail(target: Future[Any], error: Exception) -> None:
    target.set_exception(_info(error))


def _last_seq_of(page: Page) -> int:
    return page.messages[-1].seq if page.messages else 0


def _then(
    done: Future[Any], ok: Callable[[Any], None], failed: Callable[[Exception], None]
) -> None:
    try:
        value = done.get()
    except Exception as error:
        failed(error)
    else:
        ok(value)
