"""A WebSocket client that speaks the wire contract, for tests. It keeps every
frame it received, in order, and waits for the frame a test expects: frames of
other kinds stay unread, in order, for the next wait."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import tornado.httpclient
import tornado.websocket

from tests.harness.waiting import TIMEOUT_S

__all__ = ["EMPTY_HISTORY", "SENTINEL", "Client", "Frame", "Reader"]

Frame = dict[str, Any]

SENTINEL: Frame = {"type": "history", "before": 0}
"""Always answered with `EMPTY_HISTORY` (no message has a seq below 1). Frames
are answered in order, so its answer proves that everything sent before it has
been handled."""
EMPTY_HISTORY: Frame = {"type": "history", "messages": [], "has_more": False}


@dataclass
class Client:
    """One WebSocket connection and every frame it received."""

    connection: tornado.websocket.WebSocketClientConnection
    frames: list[Frame] = field(default_factory=list)
    """Every frame received, in order."""
    unread: list[Frame] = field(default_factory=list)
    """Frames received but not yet returned by a wait."""
    closed_code: int | None = None
    welcomed: Frame | None = None
    """The welcome, once `welcome` has read it."""

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        after: int | None = None,
        token: str | None = None,
        origin: str | None = None,
        max_message_size: int = 64 * 1024 * 1024,
    ) -> Client:
        """A connection to the WebSocket at `url`, resuming `after` a seq, with
        a `token`, from a page at `origin` (None: not a browser)."""
        query = []
        if after is not None:
            query.append(f"after={after}")
        if token is not None:
            query.append(f"token={token}")
        full = url + ("?" + "&".join(query) if query else "")
        headers = {"Origin": origin} if origin else {}
        request = tornado.httpclient.HTTPRequest(full, headers=headers)
        connection = await tornado.websocket.websocket_connect(
            request, max_message_size=max_message_size
        )
        return cls(connection)

    # -- sending -------------------------------------------------------------------------------

    async def send(self, frame: Frame | str | bytes) -> None:
        """A frame: an object as JSON text, a string as text, bytes as a binary frame."""
        if isinstance(frame, dict):
            frame = json.dumps(frame)
        await self.connection.write_message(frame, binary=isinstance(frame, bytes))

    async def join(self, username: str) -> Frame:
        """Join as `username`; the `joined` answer."""
        await self.send({"type": "join", "username": username})
        return await self.expect("joined")

    async def post(self, body: str, client_id: str | None = None, **extra: Any) -> None:
        frame: Frame = {"type": "post", "body": body, **extra}
        if client_id is not None:
            frame["client_id"] = client_id
        await self.send(frame)

    def close(self) -> None:
        self.connection.close()

    # -- receiving -----------------------------------------------------------------------------

    async def receive(self, timeout_s: float = TIMEOUT_S) -> Frame | None:
        """The next frame, or None once the server closed the connection."""
        text = await asyncio.wait_for(self.connection.read_message(), timeout_s)
        if text is None:
            self.closed_code = self.connection.close_code
            return None
        frame: Frame = json.loads(text)
        self.frames.append(frame)
        return frame

    async def first(
        self, matches: Callable[[Frame], bool], what: str, timeout_s: float = TIMEOUT_S
    ) -> Frame:
        """The first unread frame that `matches`, reading more until it comes."""
        for index, frame in enumerate(self.unread):
            if matches(frame):
                return self.unread.pop(index)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            received = await self.receive(max(0.01, deadline - loop.time()))
            if received is None:
                raise AssertionError(f"closed ({self.closed_code}) while waiting for {what}")
            if matches(received):
                return received
            self.unread.append(received)

    async def expect(self, kind: str, timeout_s: float = TIMEOUT_S, **fields: Any) -> Frame:
        """The first unread frame of `kind` with these field values (an absent
        field counts as None)."""

        def matches(frame: Frame) -> bool:
            return frame["type"] == kind and all(frame.get(k) == v for k, v in fields.items())

        return await self.first(matches, kind, timeout_s)

    async def answer(self, *kinds: str, timeout_s: float = TIMEOUT_S) -> Frame:
        """The first unread frame of any of `kinds`."""
        return await self.first(lambda f: f["type"] in kinds, " or ".join(kinds), timeout_s)

    async def answer_to(self, client_id: str) -> Frame:
        """The ack or error answering the frame that carried `client_id`."""
        return await self.first(
            lambda f: f["type"] in ("ack", "error") and f.get("client_id") == client_id,
            f"the answer to {client_id}",
        )

    async def welcome(self) -> Frame:
        """The welcome (read once, then remembered)."""
        if self.welcomed is None:
            self.welcomed = await self.expect("welcome")
        return self.welcomed

    async def settle(self) -> Frame:
        """Wait until the session has handled every frame sent so far, and
        everything those frames made it send has arrived; the sentinel's answer."""
        await self.send(SENTINEL)
        return await self.expect("history", messages=[], has_more=False)

    async def read_until(
        self, holds: Callable[[], bool], what: str, timeout_s: float = TIMEOUT_S
    ) -> None:
        """Read (every frame stays unread for the waits) until `holds()`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not holds():
            remaining = deadline - loop.time()
            try:
                frame = await self.receive(max(0.01, remaining))
            except TimeoutError:
                frame = None
            if frame is None:
                raise AssertionError(f"closed ({self.closed_code}) or timed out before {what}")
            self.unread.append(frame)

    async def closed(self, timeout_s: float = TIMEOUT_S) -> int | None:
        """Wait until the server has closed the connection; its close code."""
        while await self.receive(timeout_s) is not None:
            pass
        return self.closed_code

    # -- what it has received ------------------------------------------------------------------

    def received(self, kind: str, **fields: Any) -> list[Frame]:
        """Every frame of `kind` (with these field values) received so far."""
        return [
            frame
            for frame in self.frames
            if frame["type"] == kind and all(frame.get(k) == v for k, v in fields.items())
        ]

    def kinds(self) -> list[str]:
        """The kind of every frame received so far, in order."""
        return [frame["type"] for frame in self.frames]

    def message_seqs(self) -> list[int]:
        """The seq of every message frame received so far, in order."""
        return [frame["message"]["seq"] for frame in self.received("message")]


class Reader:
    """Reads a client's frames as they come, in a task of its own (so that the
    client never falls behind and is never dropped for it), noting when each
    arrived. A test waits on what has come, woken by each frame."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.arrivals: list[tuple[float, Frame]] = []
        """(when it came, on the loop's clock; the frame), in order."""
        self.ended = False
        """Whether the server closed the connection."""
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while (frame := await self.client.receive(timeout_s=3600)) is not None:
                async with self._changed:
                    self.arrivals.append((loop.time(), frame))
                    self._changed.notify_all()
        finally:
            self.ended = True
            async with self._changed:
                self._changed.notify_all()

    @property
    def frames(self) -> list[Frame]:
        return [frame for _, frame in self.arrivals]

    async def until(
        self, holds: Callable[[], bool], what: str, timeout_s: float = TIMEOUT_S
    ) -> None:
        """Return once `holds()`, asked again as each frame comes; fail after
        `timeout_s` saying `what`."""
        try:
            async with self._changed:
                await asyncio.wait_for(self._changed.wait_for(holds), timeout_s)
        except TimeoutError:
            raise AssertionError(f"not within {timeout_s} s: {what}") from None

    async def first(
        self, matches: Callable[[Frame], bool], timeout_s: float = TIMEOUT_S
    ) -> tuple[float, Frame]:
        """The first frame that `matches`, and when it came, waiting for it."""

        def found() -> tuple[float, Frame] | None:
            return next((a for a in self.arrivals if matches(a[1])), None)

        await self.until(lambda: found() is not None or self.ended, "the frame", timeout_s)
        arrival = found()
        if arrival is None:
            raise AssertionError(f"closed ({self.client.closed_code}) before the frame came")
        return arrival

    def message_seqs(self) -> list[int]:
        return [f["message"]["seq"] for f in self.frames if f["type"] == "message"]

    def errors(self) -> list[Frame]:
        return [f for f in self.frames if f["type"] == "error"]

    async def close(self) -> None:
        """Close the connection and wait until the server has seen it through."""
        self.client.close()
        await asyncio.wait_for(asyncio.shield(self._task), TIMEOUT_S)

    async def stop(self) -> None:
        """Stop reading (the connection stays open)."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
