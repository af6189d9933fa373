"""The web layer's handle on one session: open it, hand it frames, close it.

A WebSocket handler never holds an actor ref or sends actor messages itself;
it calls `ChatTree.open_session` when the socket opens, `frame` for each
frame the client sends, and `close` when the socket closes. The session is
started on the loop itself and handed to its supervisor (`adopt_child`), so
its ref exists at once: frames that arrive before its ``on_start`` has run
wait in its inbox, in order, and a socket that closes first stops it after
them.

Every method runs on the event loop's thread.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pykka

from chatter.connection import Connection, Inbound
from chatter.protocol import CloseCode

__all__ = ["SessionClient"]


class SessionClient:
    """One session, seen from its socket. `session` is the session's ref, or
    None when it could not be started: then `connection` is closed with 1013
    (try again later). A frame after the session ended closes it with 1011."""

    __slots__ = ("_connection", "_session")

    def __init__(self, session: pykka.ActorRef[Any] | None, connection: Connection) -> None:
        self._connection = connection
        self._session = session
        if session is None:
            connection.close(CloseCode.TRY_AGAIN_LATER, "try again later")

    def frame(self, text: str | bytes) -> None:
        """A frame the client sent."""
        if self._session is None:
            return
        try:
            self._session.tell(Inbound(text))
        except pykka.ActorDeadError:
            self._connection.close(CloseCode.INTERNAL_ERROR, "session ended")

    def close(self) -> None:
        """The socket closed: the session stops, after any frame it was handed."""
        if self._session is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                self._session.stop(block=False)
