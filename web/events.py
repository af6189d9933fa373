"""``GET /api/supervision/events``: the supervision event stream over a WebSocket.

On connect it sends the recent events (``{"type": "events", "events": [...]}``),
then each event as it happens (``{"type": "event", "event": {...}}``), with
``time``, ``supervisor``, ``child``, ``kind`` (started, exited, restarted,
gave_up) and ``reason``. The live supervision page draws the tree from
``GET /api/supervision`` and redraws it when an event arrives.

Watching costs the server little, and a watcher cannot make it cost more:

- Watchers have caps of their own, in total and per address
  (``CHATTER_MAX_WATCHERS``, ``CHATTER_MAX_WATCHERS_PER_IP``), apart from the
  chat connections' so that they never take a chat client's place. Over a cap
  the upgrade is answered 503, as ``/ws`` does.
- Events reach the watchers through one `WatcherHub` (web/watchers.py): one
  subscription, each event encoded once, and the events of a burst written
  together at most every `WATCHER_FLUSH_INTERVAL_S` (so several ``event``
  frames may arrive at once, up to that late).
- A watcher that leaves more than its bound of output unread is dropped, as a
  chat client that stops reading is: its connection is closed without a close
  frame, which it would not read either.
- Frames are written to the socket's stream directly, not through Tornado's
  ``write_message``, whose future fails, unretrieved, when the socket closes
  with a write pending ("Task exception was never retrieved" in the log).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from tornado.iostream import StreamClosedError

from chatter.config import Settings
from chatter.tree import ChatTree
from web.guarded_socket import GuardedSocket
from web.keepalive import Keepalive
from web.limits import ConnectionLimits
from web.watchers import MAX_WATCHER_PENDING_OUTPUT, WatcherHub, text_frame

__all__ = ["EVENTS_ROUTE_NAME", "SupervisionEventsSocket"]

logger = logging.getLogger(__name__)

EVENTS_ROUTE_NAME = "supervision-events"
"""The name of the route (``reverse_url``, and where tests find its hub)."""


class SupervisionEventsSocket(GuardedSocket):
    """Pushes supervision events to one watcher; it sends nothing back. Like a
    chat socket it is closed with 1001 when the server stops (`limits` holds
    it for that); its place under the caps is a slot of `watcher_limits`."""

    refusal = "too many watchers; retry later"

    def initialize(
        self,
        tree: ChatTree,
        settings: Settings,
        limits: ConnectionLimits,
        watcher_limits: ConnectionLimits,
        hub: WatcherHub,
        keepalive: Keepalive,
        max_pending_output: int = MAX_WATCHER_PENDING_OUTPUT,
    ) -> None:
        self.tree = tree
        self.settings_ = settings
        self.limits = limits
        self.slots = watcher_limits
        self.keepalive = keepalive
        self.hub = hub
        self.max_pending_output = max_pending_output
        self._dropped = False

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.opened(self._pending_output)
        recent = self.hub.join(self)
        snapshot = {"type": "events", "events": [event.to_dict() for event in recent]}
        self.send(text_frame(json.dumps(snapshot).encode()))

    def on_message(self, message: str | bytes) -> None:
        """Watchers only listen."""

    def on_close(self) -> None:
        super().on_close()
        self.hub.leave(self)

    def _pending_output(self) -> int:
        """The bytes written to this watcher that it has not read (and the
        kernel did not take)."""
        connection = self.ws_connection
        stream = connection.stream if connection is not None else None
        return len(stream._write_buffer) if stream is not None else 0

    def send(self, data: bytes) -> None:
        """Write `data` (whole frames) to the socket, unless it is closing;
        drop the watcher instead when it leaves too much unread."""
        connection = self.ws_connection
        if self._dropped or connection is None or connection.is_closing():
            return
        stream = connection.stream
        if stream is None:
            return
        # Tornado keeps what the kernel did not take in the stream's write
        # buffer: past the bound, this watcher has stopped reading.
        if len(stream._write_buffer) > self.max_pending_output:
            logger.warning("Dropping a watcher at %s: it stopped reading", self.request.remote_ip)
            self._dropped = True
            stream.close()  # it does not read, so no close frame would get through
            return
        try:
            stream.write(data)  # its future retrieves its own error: nothing to log
        except StreamClosedError:
            self._dropped = True  # on_close follows

    def get_compression_options(self) -> dict[str, Any] | None:
        return None  # frames are pre-built and shared: no per-connection deflate
