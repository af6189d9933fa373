"""``GET /api/supervision/events``: the supervision event stream over a WebSocket.

On connect it sends the recent events (``{"type": "events", "events": [...]}``),
then each event as it happens (``{"type": "event", "event": {...}}``), with
``time``, ``supervisor``, ``child``, ``kind`` (started, exited, restarted,
gave_up) and ``reason``. The live supervision page draws the tree from
``GET /api/supervision`` and redraws it when an event arrives.
"""

from __future__ import annotations

import contextlib
import json
import urllib.parse
from collections.abc import Callable
from typing import Any

from tornado.websocket import WebSocketClosedError, WebSocketHandler

from chatter.config import Settings
from chatter.tree import ChatTree
from supervision import SupervisionEvent
from web.limits import ConnectionLimits

__all__ = ["SupervisionEventsSocket"]


class SupervisionEventsSocket(WebSocketHandler):
    """Pushes supervision events to one watcher; it sends nothing back. Like a
    chat socket it is closed with 1001 when the server stops (`limits` holds
    it for that), but it takes no connection slot."""

    def initialize(self, tree: ChatTree, settings: Settings, limits: ConnectionLimits) -> None:
        self.tree = tree
        self.settings_ = settings
        self.limits = limits
        self._unsubscribe: Callable[[], None] | None = None
        self._already_sent: list[SupervisionEvent] = []

    def check_origin(self, origin: str) -> bool:
        host = urllib.parse.urlparse(origin).netloc.lower()
        allowed = {self.request.host.lower()}
        if self.settings_.public_host:
            allowed.add(self.settings_.public_host.lower())
        return host in allowed

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.limits.opened(self)
        loop = self.tree.loop

        def forward(event: SupervisionEvent) -> None:
            # In the publishing supervisor's thread: hand over to the loop.
            loop.call_soon_threadsafe(self._forward, event)

        # Subscribe before taking the recent events, so that no event falls
        # between the two; one in both is sent once, in the first frame.
        self._unsubscribe = self.tree.events.subscribe(forward)
        recent = self.tree.events.recent()
        self._already_sent = list(recent)
        self._write({"type": "events", "events": [event.to_dict() for event in recent]})

    def on_message(self, message: str | bytes) -> None:
        """Watchers only listen."""

    def on_close(self) -> None:
        self.limits.closed(self)
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _forward(self, event: SupervisionEvent) -> None:
        if any(event is sent for sent in self._already_sent):
            return
        self._already_sent = []  # events come in order: no later one was in the snapshot
        self._write({"type": "event", "event": event.to_dict()})

    def _write(self, frame: dict[str, Any]) -> None:
        if self.ws_connection is None or self.ws_connection.is_closing():
            return
        with contextlib.suppress(WebSocketClosedError):
            self.write_message(json.dumps(frame))
