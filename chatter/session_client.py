"""The web layer's handle on one session: open it, hand it frames, close it.

A WebSocket handler never holds an actor ref or sends actor messages itself;
it calls `ChatTree.open_session` when the socket opens, `frame` for each
frame the client sends, and `close` when the socket closes. The client hides
the one awkward moment: the session starts under its supervisor on another
thread, so frames that arrive before it is running are kept and handed over,
in order, once it is; a socket that closes first stops the session as soon
as it exists.

Every method runs on the event loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import Any

import pykka

from chatter.connection import Connection, Inbound
from chatter.protocol import CloseCode
from supervision import run_on_loop

__all__ = ["SessionClient"]

logger = logging.getLogger(__name__)


class SessionClient:
    """One session, seen from its socket. `starting` is the future of the
    session's ref (from its supervisor); `connection` is closed with 1013 if
    the session cannot start, and with 1011 if a frame comes after it ended."""

    __slots__ = ("_closed", "_connection", "_early", "_loop", "_session")

    def __init__(
        self,
        starting: pykka.Future[pykka.ActorRef[Any]],
        connection: Connection,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._connection = connection
        self._loop = loop
        self._session: pykka.ActorRef[Any] | None = None
        self._early: list[str | bytes] = []
        self._closed = False
        starting.add_done_callback(  # type: ignore[attr-defined]
            lambda done: run_on_loop(loop, functools.partial(self._started, done))
        )

    def frame(self, text: str | bytes) -> None:
        """A frame the client sent."""
        if self._session is None:
            self._early.append(text)
            return
        try:
            self._session.tell(Inbound(text))
        except pykka.ActorDeadError:
            self._connection.close(CloseCode.INTERNAL_ERROR, "session ended")

    def close(self) -> None:
        """The socket closed: the session stops (now, or once it has started)."""
        self._closed = True
        if self._session is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                self._session.stop(block=False)

    def _started(self, done: pykka.Future[pykka.ActorRef[Any]]) -> None:
        try:
            session = done.get()
        except Exception as error:
            logger.warning("Could not start a session: %s", error)
            if not self._closed:
                self._connection.close(CloseCode.TRY_AGAIN_LATER, "try again later")
            return
        if self._closed:
            session.stop(block=False)
            return
        self._session = session
        early, self._early = self._early, []
        for text in early:
            self.frame(text)
