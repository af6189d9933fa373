"""Live traffic for the fault suite: chat users that behave as a careful client
does, and the checks every fault test ends with.

A `ChatUser` joins under its name and keeps posting at a pace the post throttle
allows, each message with a fresh ``client_id``. It keeps at most a few posts
in flight; one answered ``unavailable`` or ``rate_limited`` goes back to the
front of its outbox and is sent again, with the same ``client_id``, after a
back-off. When its connection drops it reconnects with ``after`` (the highest
seq it has seen) and its token, and sends again whatever was not acked. It
records every message seq it received, every ack, every close and every
surprise, so that a test can prove afterwards, from the clients' own records and
the database, that nothing was lost, stored twice, duplicated or reordered.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import tornado.httpclient
import tornado.websocket

from chatter.throttle import POST_RATE_PER_S
from tests.harness.data import stored
from tests.harness.http import healthz

__all__ = ["ChatUser", "Crowd", "assert_consistent", "chatting", "while_chatting"]

POST_INTERVAL_S = 1.1 / POST_RATE_PER_S
"""A little slower than the post throttle refills, so pacing alone is never refused."""
MAX_IN_FLIGHT = 3
OUTBOX_LIMIT = 40
"""A user stops typing while this many of their messages are not yet acked, as a
UI that greys out Send would; it keeps a long outage from growing without end
(a crowd may set another, `ChatUser.outbox_limit`)."""
RETRY_BACKOFF_S = (0.25, 0.5, 1.0, 2.0)
JOIN_RETRIED = ("unavailable", "rate_limited", "username_taken")
"""The refusals of a join that a client answers by joining again later."""
RECONNECT_BACKOFF_S = (0.05, 0.1, 0.2, 0.5, 1.0)
TIMEOUT_S = 15.0


class Changes:
    """Lets a test wait until a condition over many users holds, woken by every
    frame any of them receives (never by a clock)."""

    def __init__(self) -> None:
        self._condition = asyncio.Condition()

    def notify(self) -> None:
        async def wake() -> None:
            async with self._condition:
                self._condition.notify_all()

        asyncio.get_running_loop().create_task(wake())

    async def until(
        self, holds: Callable[[], bool], what: Callable[[], str], timeout_s: float
    ) -> None:
        """Return once `holds()`; fail naming `what()` after `timeout_s`."""

        async def wait() -> None:
            async with self._condition:
                await self._condition.wait_for(holds)

        try:
            await asyncio.wait_for(wait(), timeout_s)
        except TimeoutError:
            raise AssertionError(f"not within {timeout_s} s: {what()}") from None


@dataclass
class ChatUser:
    """One person's client; `run` until `close`."""

    name: str | None
    """None for a viewer, who reads and never posts."""
    url: str
    changes: Changes
    acked: dict[str, int] = field(default_factory=dict)
    """client_id -> the seq its ack named."""
    sent_ever: set[str] = field(default_factory=set)
    seqs: list[int] = field(default_factory=list)
    """Every message seq received, welcome and live, in order of arrival."""
    surprises: list[str] = field(default_factory=list)
    """Anything the contract does not allow: a seq out of order or twice, an
    error that a well-behaved client should never get."""
    closes: list[int | None] = field(default_factory=list)
    """The close code of every connection the server ended."""
    unavailable: int = 0
    rate_limited: int = 0
    online: set[str] = field(default_factory=set)
    """Who is online, as this client's welcome and presence frames say."""
    joined: bool = False
    connected: bool = False
    connects: int = 0
    padding: str = ""
    """Appended to every body: long bodies fill a slow reader's buffers sooner."""
    outbox_limit: int = OUTBOX_LIMIT
    """Messages not yet acked at which the user stops writing new ones."""
    ack_waits: list[float] = field(default_factory=list)
    """Seconds from each post's (last) sending to its ack."""
    other_urls: tuple[str, ...] = ()
    """Other nodes of the same cluster: when `url` refuses a connection, the
    user tries the next, as a client behind a load balancer would be sent on."""

    def __post_init__(self) -> None:
        self._outbox: deque[str] = deque()
        self._in_flight: set[str] = set()
        self._token: str | None = None
        self._typing = False
        self._closing = False
        self._counter = itertools.count(1)
        self._retry_at = 0.0
        self._failures = 0
        self._connection: tornado.websocket.WebSocketClientConnection | None = None
        self._wake_sender = asyncio.Event()
        self._sent_at: dict[str, float] = {}

    # -- what a test reads ---------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        return self.seqs[-1] if self.seqs else 0

    @property
    def unacked(self) -> int:
        return len(self._outbox) + len(self._in_flight)

    @property
    def outbox_full(self) -> bool:
        """Whether the user stopped writing: `outbox_limit` messages wait for an ack."""
        return self.unacked >= self.outbox_limit

    @property
    def backing_off_longest(self) -> bool:
        """Whether refusals in a row have taken its retry back-off to the longest."""
        return self._failures >= len(RETRY_BACKOFF_S)

    def type_messages(self, on: bool) -> None:
        """Start or stop writing new messages; those already written are still sent."""
        self._typing = on
        self._wake_sender.set()

    async def close(self) -> None:
        self._closing = True
        self._wake_sender.set()
        if self._connection is not None:
            self._connection.close()

    # -- the client ----------------------------------------------------------------------

    async def run(self) -> None:
        """Stay connected (reconnecting as a client should) until `close`."""
        attempt = 0
        while not self._closing:
            try:
                self._connection = await tornado.websocket.websocket_connect(
                    tornado.httpclient.HTTPRequest(self._connect_url(), connect_timeout=5)
                )
            except (TimeoutError, OSError, tornado.httpclient.HTTPClientError):
                # Refused (server down), 503 (over a cap) or no answer: back off,
                # and try another node if there is one.
                if self.other_urls:
                    self.url, self.other_urls = (
                        self.other_urls[0],
                        (
                            *self.other_urls[1:],
                            self.url,
                        ),
                    )
                await asyncio.sleep(_jittered(RECONNECT_BACKOFF_S, attempt))
                attempt += 1
                continue
            attempt = 0
            self.connects += 1
            connection = self._connection
            sender = asyncio.ensure_future(self._send_loop(connection))
            try:
                await self._read_loop(connection)
            finally:
                # The sender ends on seeing its connection gone, even if the
                # cancel is lost (Python 3.11's wait_for can swallow one).
                self._connection = None
                self.connected = self.joined = False
                self._wake_sender.set()
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender
                self._outbox.extendleft(sorted(self._in_flight, reverse=True))
                self._in_flight.clear()
                self.changes.notify()
            if not self._closing:
                await asyncio.sleep(_jittered(RECONNECT_BACKOFF_S, 0))

    def _connect_url(self) -> str:
        query = [f"after={self.last_seq}"] if self.seqs else []
        if self._token is not None:
            query.append(f"token={self._token}")
        return self.url + ("?" + "&".join(query) if query else "")

    async def _read_loop(self, connection: tornado.websocket.WebSocketClientConnection) -> None:
        while True:
            text = await connection.read_message()
            if text is None:
                if not self._closing:
                    self.closes.append(connection.close_code)
                return
            assert isinstance(text, str)
            await self._handle(json.loads(text))
            self.changes.notify()

    async def _handle(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        if kind == "welcome":
            self.connected = True
            for message in frame["messages"]:
                self._saw(message["seq"])
            self.online = {u["username"] for u in frame["users"] if u["online"]}
            if frame["you"] is None and self.name is not None:
                await self._send({"type": "join", "username": self.name})
        elif kind == "joined":
            assert frame["username"] == self.name, frame
            self._token = frame["token"]
            self.joined = True
            self._failures = 0
            self._wake_sender.set()
        elif kind == "message":
            self._saw(frame["message"]["seq"])
        elif kind == "presence":
            self.online |= set(frame["joins"])
            self.online -= set(frame["leaves"])
        elif kind == "ack":
            client_id = frame["client_id"]
            if client_id in self.acked and self.acked[client_id] != frame["seq"]:
                self.surprises.append(f"{client_id} acked as {self.acked[client_id]}, then {frame}")
            self.acked[client_id] = frame["seq"]
            if client_id in self._sent_at:
                loop = asyncio.get_running_loop()
                self.ack_waits.append(loop.time() - self._sent_at.pop(client_id))
            self._in_flight.discard(client_id)
            self._failures = 0
            self._wake_sender.set()
        elif kind == "error":
            self._refused(frame)

    def _refused(self, frame: dict[str, Any]) -> None:
        code, client_id = frame["code"], frame.get("client_id")
        if code == "unavailable" and client_id is None and not self.connected:
            self.unavailable += 1  # the welcome could not be read; a close follows
            return
        if client_id is None and not self.joined and code in JOIN_RETRIED:
            # The join was refused and holds nothing: join again, as the
            # contract says a client does. Taken: our own previous connection
            # still holds the name for a moment.
            self._join_again_after(self._retry_delay(frame) if code != "username_taken" else 0.2)
            return
        if code not in ("unavailable", "rate_limited") or client_id not in self._in_flight:
            self.surprises.append(f"refused: {frame}")
            return
        loop = asyncio.get_running_loop()
        delay = self._retry_delay(frame)
        self._in_flight.discard(client_id)
        self._outbox.appendleft(client_id)
        self._retry_at = max(self._retry_at, loop.time() + delay)
        self._wake_sender.set()

    def _retry_delay(self, frame: dict[str, Any]) -> float:
        """How long to wait before sending again what `frame` (``unavailable``
        or ``rate_limited``) refused; counted among the refusals."""
        if frame["code"] == "unavailable":
            self.unavailable += 1
            self._failures += 1
            return RETRY_BACKOFF_S[min(self._failures - 1, len(RETRY_BACKOFF_S) - 1)]
        self.rate_limited += 1
        return float(frame["retry_after_ms"]) / 1000

    def _join_again_after(self, delay_s: float) -> None:
        async def join() -> None:
            await asyncio.sleep(delay_s)
            if self.connected and not self.joined:
                await self._send({"type": "join", "username": self.name})

        asyncio.get_running_loop().create_task(join())

    def _saw(self, seq: int) -> None:
        if seq <= self.last_seq:
            self.surprises.append(f"seq {seq} after {self.last_seq}")
            return
        self.seqs.append(seq)

    async def _send(self, frame: dict[str, Any]) -> None:
        connection = self._connection
        if connection is None:
            return
        with contextlib.suppress(tornado.websocket.WebSocketClosedError):
            await connection.write_message(json.dumps(frame))

    async def _send_loop(self, connection: tornado.websocket.WebSocketClientConnection) -> None:
        """Write new messages while typing; send the outbox, paced, a few in
        flight, for as long as `connection` is the user's."""
        loop = asyncio.get_running_loop()
        next_post = loop.time()
        next_typed = loop.time()
        while not self._closing and self._connection is connection:
            now = loop.time()
            if self._typing and self.name is not None and now >= next_typed:
                if not self.outbox_full:
                    client_id = f"{self.name}-{next(self._counter)}"
                    self._outbox.append(client_id)
                    self.sent_ever.add(client_id)
                next_typed = now + POST_INTERVAL_S
            ready = (
                self.joined
                and self._outbox
                and len(self._in_flight) < MAX_IN_FLIGHT
                and now >= max(next_post, self._retry_at)
            )
            if ready:
                client_id = self._outbox.popleft()
                self._in_flight.add(client_id)
                self._sent_at[client_id] = now
                body = f"message {client_id}{self.padding}"
                await self._send({"type": "post", "body": body, "client_id": client_id})
                next_post = now + POST_INTERVAL_S
                continue
            wake_at = [next_post, self._retry_at] if self._outbox else []
            if self._typing:
                wake_at.append(next_typed)
            self._wake_sender.clear()
            timeout = max(0.0, min(wake_at) - now) if wake_at else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_sender.wait(), timeout)


def _jittered(backoff: tuple[float, ...], attempt: int) -> float:
    base = backoff[min(attempt, len(backoff) - 1)]
    return base * random.uniform(0.5, 1.0)


class Crowd:
    """Posters and viewers on one server, or spread over the nodes of a
    cluster, started together and checked together."""

    def __init__(
        self, ws_url: str | Sequence[str], posters: int, viewers: int = 1, **user_options: Any
    ) -> None:
        """`ws_url` is one server's, or each node's: users are dealt to them in
        turn. `user_options` are `ChatUser`'s (`padding`, `outbox_limit`)."""
        self.changes = Changes()
        urls = (ws_url,) if isinstance(ws_url, str) else tuple(ws_url)
        names = [f"poster{i}" for i in range(posters)] + [None] * viewers
        self.users = [
            ChatUser(
                name,
                urls[n % len(urls)],
                self.changes,
                other_urls=urls[n % len(urls) + 1 :] + urls[: n % len(urls)],
                **user_options,
            )
            for n, name in enumerate(names)
        ]
        self._tasks: dict[int, asyncio.Task[None]] = {}

    @property
    def posters(self) -> list[ChatUser]:
        return [u for u in self.users if u.name is not None]

    @property
    def names(self) -> set[str]:
        return {u.name for u in self.users if u.name is not None}

    @property
    def acks(self) -> int:
        """Acks the posters have had, together."""
        return sum(len(u.acked) for u in self.users)

    @property
    def unavailable(self) -> int:
        """`unavailable` refusals the users have had, together."""
        return sum(u.unavailable for u in self.users)

    async def start(self, users: Iterable[ChatUser] | None = None) -> None:
        """Connect `users` (everyone not yet started); return once each is
        welcomed and each poster holds its name."""
        chosen = self.launch(users)
        await self.until(
            lambda: all(u.connected and (u.joined or u.name is None) for u in chosen),
            "everyone connected and joined",
        )

    def launch(self, users: Iterable[ChatUser] | None = None) -> list[ChatUser]:
        """Start `users` (everyone not yet started) connecting, without waiting."""
        chosen = [u for u in (self.users if users is None else users) if id(u) not in self._tasks]
        for user in chosen:
            self._tasks[id(user)] = asyncio.ensure_future(user.run())
        return chosen

    def type_messages(self, on: bool) -> None:
        for user in self.users:
            user.type_messages(on)

    async def until(
        self, holds: Callable[[], bool], what: str, timeout_s: float = TIMEOUT_S
    ) -> None:
        await self.changes.until(holds, lambda: f"{what}; {self.state()}", timeout_s)

    async def acked_at_least(self, count: int, timeout_s: float = TIMEOUT_S) -> None:
        """Wait until the posters together have `count` acks."""
        await self.until(lambda: self.acks >= count, f"{count} acks", timeout_s)

    async def settle(self, conninfo: str, timeout_s: float = 60.0) -> list[int]:
        """Stop typing; wait until every message written is acked and every
        client has every stored message; the stored seqs."""
        self.type_messages(False)
        await self.until(
            lambda: all(u.unacked == 0 for u in self.users), "every post acked", timeout_s
        )
        seqs: list[int] = await asyncio.to_thread(stored, conninfo, "seq")
        newest = seqs[-1] if seqs else 0
        await self.until(
            lambda: all(u.connected and u.last_seq >= newest for u in self.users),
            f"everyone has seq {newest}",
            timeout_s,
        )
        await self.until(
            lambda: all(u.online == self.names for u in self.users if u.connected),
            f"everyone sees {sorted(self.names)} online",
            timeout_s,
        )
        return seqs

    async def lost_nothing(
        self,
        conninfo: str,
        base_url: str,
        *,
        more_acks: int = 20,
        reconnects_allowed: Iterable[str | None] = (),
    ) -> None:
        """After a fault: the chat goes on (`more_acks` more posts acked), every
        post settles, and the suite's verdict (`assert_consistent`) holds."""
        await self.acked_at_least(self.acks + more_acks, timeout_s=30)
        await self.settle(conninfo)
        await asyncio.to_thread(
            assert_consistent, self, conninfo, base_url, reconnects_allowed=reconnects_allowed
        )

    async def close(self) -> None:
        for user in self.users:
            await user.close()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 5)

    def state(self) -> str:
        return "; ".join(
            f"{u.name or 'viewer'}: connected={u.connected} joined={u.joined} "
            f"acked={len(u.acked)} unacked={u.unacked} last={u.last_seq} "
            f"online={sorted(u.online)} closes={u.closes} surprises={u.surprises[:3]}"
            for u in self.users
        )


@contextlib.asynccontextmanager
async def chatting(
    ws_url: str | Sequence[str],
    posters: int,
    viewers: int = 1,
    *,
    acked: int = 0,
    **user_options: Any,
) -> AsyncIterator[Crowd]:
    """A crowd connected, every poster holding its name and typing, once
    `acked` of their posts are acked; closed when the block ends, however.
    `user_options` are `ChatUser`'s."""
    crowd = Crowd(ws_url, posters, viewers, **user_options)
    try:
        await crowd.start()
        crowd.type_messages(True)
        await crowd.acked_at_least(acked)
        yield crowd
    finally:
        await crowd.close()


def while_chatting(
    ws_url: str,
    fault: Callable[[Crowd], Awaitable[None]],
    posters: int,
    viewers: int = 1,
    *,
    acked: int = 0,
    **user_options: Any,
) -> None:
    """Run `fault(crowd)` to its end, on an event loop of its own, while a crowd
    chats on `ws_url` (`chatting`'s options)."""

    async def run() -> None:
        async with chatting(ws_url, posters, viewers, acked=acked, **user_options) as crowd:
            await fault(crowd)

    asyncio.run(run())


def assert_consistent(
    crowd: Crowd,
    conninfo: str,
    base_url: str,
    *,
    reconnects_allowed: Iterable[str | None] = (),
) -> None:
    """The fault suite's verdict, from the clients' records and the database:
    every acked message stored exactly once under its seq, nothing stored that
    no one wrote, every client holding every stored message once and in order,
    presence as connected, the server healthy. Only users in
    `reconnects_allowed` (by name; None for viewers) may have been disconnected."""
    rows = stored(conninfo, "seq", "client_id")
    seqs = [seq for seq, _ in rows]
    by_client_id = {client_id: seq for seq, client_id in rows}
    assert len(by_client_id) == len(rows), "a client_id stored twice"
    written: set[str] = set()
    for user in crowd.users:
        assert not user.surprises, f"{user.name}: {user.surprises}"
        assert user.unacked == 0
        assert set(user.acked) == user.sent_ever, f"{user.name}: written but never acked"
        written |= user.sent_ever
        for client_id, seq in user.acked.items():
            assert by_client_id.get(client_id) == seq, f"{client_id} acked as {seq}, not stored"
        assert user.seqs == seqs, f"{user.name or 'viewer'} has not every stored message once"
        if user.name not in set(reconnects_allowed):
            assert user.closes == [], f"{user.name} was disconnected: {user.closes}"
            assert user.connects == 1
    assert set(by_client_id) == written, "stored messages that no client wrote"
    assert all(user.online == crowd.names for user in crowd.users)
    status, health = healthz(base_url)
    assert status == 200, health
