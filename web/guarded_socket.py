"""What every WebSocket route checks before and after the upgrade: the Origin
rule, and a place under the connection caps held from before the upgrade
until the socket ends.
"""

from __future__ import annotations

import http.client
import time
import urllib.parse
from collections.abc import Callable

import tornado
from tornado import httputil
from tornado.websocket import WebSocketHandler

from chatter.config import Settings
from web.keepalive import Keepalive
from web.limits import ConnectionLimits, Slot

__all__ = ["GuardedSocket", "http_date", "origin_allowed"]

_SERVER = f"TornadoServer/{tornado.version}"
_date: tuple[int, str] = (0, "")


def http_date() -> str:
    """Now, as a ``Date`` header says it (RFC 9110), formatted once a second
    rather than once a response: a burst of handshakes formats it once."""
    global _date
    second = int(time.time())
    if _date[0] != second:
        _date = (second, httputil.format_timestamp(second))
    return _date[1]


def origin_allowed(origin: str, host: str, public_host: str | None) -> bool:
    """The Origin rule of every WebSocket route (docs/PROTOCOL.md §2): the
    origin's ``host[:port]``, or its host name alone, is the request's `host`
    or the configured public host, compared case-insensitively."""
    parsed = urllib.parse.urlparse(origin)
    allowed = {host.lower()}
    if public_host:
        allowed.add(public_host.lower())
    return parsed.netloc.lower() in allowed or (parsed.hostname or "").lower() in allowed


class GuardedSocket(WebSocketHandler):
    """A WebSocket handler under the caps. Before the upgrade it takes a slot
    of `slots` (none free: 503, `refusal` says of what), which it gives back
    whichever way the request ends: answered without an upgrade (``on_finish``),
    or closed before or after it (``on_close``, which Tornado calls for a
    connection lost mid-handshake too); a slot is given back once, however
    often it is released. Once open it is counted in `limits`, which closes it
    with 1001 when the server stops, and pinged by `keepalive`. Subclasses set
    the four attributes (in ``initialize``, or as class attributes) and call
    `opened` from ``open``; a
    subclass's ``prepare`` that refuses the request must do so before calling
    this one."""

    limits: ConnectionLimits
    slots: ConnectionLimits
    settings_: Settings
    keepalive: Keepalive
    """Pings this socket while it is open (web/keepalive.py)."""
    refusal = "too many connections; retry later"
    _slot: Slot | None = None

    def clear(self) -> None:
        # Tornado's, with the Date formatted once a second (`http_date`): its
        # formatting was a fiftieth of a connection's cost to the server.
        self._headers = httputil.HTTPHeaders(
            {"Server": _SERVER, "Content-Type": "text/html; charset=UTF-8", "Date": http_date()}
        )
        self.set_default_headers()
        self._write_buffer: list[bytes] = []
        self._status_code = 200
        self._reason = http.client.responses[200]

    def prepare(self) -> None:
        # In prepare and not around `get`: a coroutine wrapping Tornado's
        # `get` would be held, suspended, for as long as the socket is open.
        slot = self.slots.acquire(self.request.remote_ip or "unknown")
        if slot is None:
            self.set_status(503)
            self.finish({"error": "unavailable", "message": self.refusal})
            return
        self._slot = slot

    def on_finish(self) -> None:
        # The response is written: a refusal (403, 400, 426...) gives the slot
        # back here; an upgrade (101) keeps it until the socket closes.
        if self._slot is not None and self.get_status() != 101:
            self._slot.release()

    def check_origin(self, origin: str) -> bool:
        return origin_allowed(origin, self.request.host, self.settings_.public_host)

    def opened(self, pending_output: Callable[[], int]) -> None:
        """Count the open socket, and ping it from now on; `pending_output`
        tells its slot how much output it has left unread, for the
        per-address bound."""
        self.limits.opened(self)
        self.keepalive.track(self)
        if self._slot is not None:
            self._slot.pending_output = pending_output

    def on_pong(self, data: bytes) -> None:
        self.keepalive.answered(self)

    def on_close(self) -> None:
        self.limits.closed(self)
        self.keepalive.forget(self)
        if self._slot is not None:
            self._slot.release()
