"""The HTTP listener: Tornado's HTTPServer, bounded at the edge.

Before a request's headers are complete a connection is anonymous work: no
handler runs and no connection cap applies yet. So the listener bounds it
itself. A client has `Settings.header_timeout_s` to send a request's headers
(Tornado's default is an hour), and so long to stay idle between requests; one
address may hold at most `Settings.max_pending_per_ip` sockets whose headers
are not yet complete, and a socket over that is closed as soon as it is
accepted. When ``accept`` fails for lack of file descriptors the listener stops
accepting for a moment and logs it once a second, instead of spinning on a
readable socket and logging a traceback per attempt.

Behind a load balancer every connection comes from the balancer. Only a peer
listed in `Settings.trusted_proxies` may name the client: with
`Settings.proxy_protocol` by a PROXY protocol header (v1 or v2) before the
request, otherwise by ``X-Forwarded-For``. Everyone else's headers are ignored.

It hooks Tornado's private ``TCPServer._sockets``, ``_handlers`` and
``_handle_connection`` to accept on its own terms, checked against Tornado 6.4
to 6.6; tests/integration/test_hostile_http.py fails if they change.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import resource
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from tornado import httputil
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream, StreamClosedError

from chatter.config import Settings
from web.errors import ProxyHeaderError
from web.proxy_protocol import read_proxy_header

__all__ = [
    "ACCEPT_BACKOFF_MAX_S",
    "MAX_REQUEST_BODY_BYTES",
    "Listener",
    "TrustedProxies",
    "listen",
]

logger = logging.getLogger("chatter.listener")

MAX_REQUEST_BODY_BYTES = 1024 * 1024
"""The largest request body accepted (Tornado's default is 100 MB): the API
takes a few bytes of JSON, nothing more."""

ACCEPT_BACKOFF_FIRST_S = 0.05
"""How long accepting pauses after the first failure for lack of descriptors."""
ACCEPT_BACKOFF_MAX_S = 1.0
"""The longest pause; the pause doubles up to it while failures go on."""
ACCEPT_LOG_INTERVAL_S = 1.0
"""At most one log line per this while accepting fails."""

_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_ACCEPTS_PER_TURN = 128  # as Tornado's accept handler: other work runs between rounds


class TrustedProxies:
    """The load balancers whose word on the client's address counts."""

    def __init__(self, networks: Iterable[str]) -> None:
        self._networks = tuple(ipaddress.ip_network(n, strict=False) for n in networks)

    def __bool__(self) -> bool:
        return bool(self._networks)

    def __contains__(self, address: object) -> bool:
        if not self._networks or not isinstance(address, str):
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._networks)

    def client_of(self, peer: str, forwarded_for: str | None) -> str:
        """The client's address from ``X-Forwarded-For`` sent by `peer`: the
        rightmost entry that is not itself a trusted proxy, or `peer` when the
        peer is not trusted or the header names no valid address."""
        if peer not in self or not forwarded_for:
            return peer
        for entry in reversed(forwarded_for.split(",")):
            candidate = entry.strip()
            try:
                candidate = str(ipaddress.ip_address(candidate))
            except ValueError:
                return peer  # a garbled chain: trust none of it
            if candidate not in self:
                return candidate
        return peer


@dataclass
class _Peer:
    """One accepted connection, as the listener tracks it."""

    address: str
    """The client's address: the TCP peer's, or the one its proxy named."""
    capped: bool
    """Whether `address` counts against the per-address cap (not for proxies)."""
    pending: bool = True
    """Whether the connection is waiting for a request's headers."""


class _HeadersWatch(httputil.HTTPMessageDelegate):
    """Passes a request through, noting when its headers are complete and
    naming the client for a trusted proxy's request."""

    def __init__(
        self,
        listener: Listener,
        peer: _Peer,
        request_conn: httputil.HTTPConnection,
        inner: httputil.HTTPMessageDelegate,
    ) -> None:
        self._listener = listener
        self._peer = peer
        self._request_conn = request_conn
        self._inner = inner

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Any:
        self._listener._headers_done(self._peer)
        context = getattr(self._request_conn, "context", None)
        if context is not None and not self._listener.proxy_protocol:
            proxies = self._listener.trusted_proxies
            context.remote_ip = proxies.client_of(
                self._peer.address, headers.get("X-Forwarded-For")
            )
        return self._inner.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Any:
        return self._inner.data_received(chunk)

    def finish(self) -> None:
        self._inner.finish()

    def on_connection_close(self) -> None:
        self._inner.on_connection_close()


class Listener(HTTPServer):
    """An HTTPServer with the edge bounds of the module docstring."""

    def initialize(  # type: ignore[override]
        self,
        request_callback: httputil.HTTPServerConnectionDelegate,
        settings: Settings,
        **options: Any,
    ) -> None:
        options.setdefault("idle_connection_timeout", settings.header_timeout_s)
        options.setdefault("body_timeout", settings.header_timeout_s)
        options.setdefault("max_body_size", MAX_REQUEST_BODY_BYTES)
        super().initialize(request_callback, **options)
        self.header_timeout_s = settings.header_timeout_s
        self.max_pending_per_address = settings.max_pending_per_ip
        self.trusted_proxies = TrustedProxies(settings.trusted_proxies)
        self.proxy_protocol = settings.proxy_protocol
        self.refused_pending = 0
        """Sockets closed at once because their address held too many pending."""
        self._peers: dict[IOStream, _Peer] = {}
        self._pending: Counter[str] = Counter()
        self._accept_failures = 0
        self._accept_failures_logged_at = float("-inf")

    # -- what tests and /healthz read ----------------------------------------------------------

    def pending_of(self, address: str) -> int:
        """Sockets of `address` waiting for their request's headers."""
        return self._pending[address]

    @property
    def open_streams(self) -> int:
        """Connections accepted and still speaking HTTP (not yet upgraded or closed)."""
        return len(self._peers)

    # -- accepting ----------------------------------------------------------------------------

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        for sock in sockets:
            accept = _Acceptor(self, sock)
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = accept.stop

    def _accepted(self, connection: socket.socket, address: Any) -> None:
        self._handle_connection(connection, address)

    def _accept_failed(self, error: OSError, pause_s: float) -> None:
        self._accept_failures += 1
        now = time.monotonic()
        if now - self._accept_failures_logged_at >= ACCEPT_LOG_INTERVAL_S:
            self._accept_failures_logged_at = now
            logger.error(
                "accept failed %d time(s) (%s): not accepting for %.2f s",
                self._accept_failures,
                errno.errorcode.get(error.errno or 0, error),
                pause_s,
            )
            self._accept_failures = 0

    # -- one connection -----------------------------------------------------------------------

    def handle_stream(  # type: ignore[override]  # TCPServer allows a coroutine
        self, stream: IOStream, address: Any
    ) -> Awaitable[None] | None:
        peer_ip = address[0] if isinstance(address, tuple) and address else "unix"
        trusted = peer_ip in self.trusted_proxies
        if trusted and self.proxy_protocol:
            return self._through_proxy(stream, address)  # Tornado runs it and logs a failure
        self._serve(stream, address, _Peer(peer_ip, capped=not trusted))
        return None

    async def _through_proxy(self, stream: IOStream, address: Any) -> None:
        """Read the PROXY header a trusted balancer sends first, then serve
        the connection as coming from the client it names."""
        try:
            client = await asyncio.wait_for(read_proxy_header(stream), self.header_timeout_s)
        except (ProxyHeaderError, StreamClosedError, TimeoutError) as error:
            logger.warning("Closing a connection from %s: %s", address[0], error or "timed out")
            stream.close()
            return
        if client is None:  # PROXY UNKNOWN or LOCAL: the balancer's own connection
            self._serve(stream, address, _Peer(address[0], capped=False))
        else:
            self._serve(stream, client, _Peer(client[0], capped=True))

    def _serve(self, stream: IOStream, address: Any, peer: _Peer) -> None:
        if peer.capped and self._pending[peer.address] >= self.max_pending_per_address:
            self.refused_pending += 1
            stream.close()
            return
        self._peers[stream] = peer
        self._count_pending(peer, +1)
        super().handle_stream(stream, address)

    def start_request(
        self, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> httputil.HTTPMessageDelegate:
        inner = super().start_request(server_conn, request_conn)
        stream = getattr(request_conn, "stream", None)
        peer = self._peers.get(stream) if stream is not None else None
        if peer is None:
            return inner
        if not peer.pending:  # the next request of a kept-alive connection
            peer.pending = True
            self._count_pending(peer, +1)
        context = getattr(request_conn, "context", None)
        if context is not None:
            context.remote_ip = peer.address  # no earlier request's forwarded address
        return _HeadersWatch(self, peer, request_conn, inner)

    def on_close(self, server_conn: object) -> None:
        stream = getattr(server_conn, "stream", None)
        peer = self._peers.pop(stream, None) if stream is not None else None
        if peer is not None and peer.pending:
            peer.pending = False
            self._count_pending(peer, -1)
        super().on_close(server_conn)

    def _headers_done(self, peer: _Peer) -> None:
        if peer.pending:
            peer.pending = False
            self._count_pending(peer, -1)

    def _count_pending(self, peer: _Peer, change: int) -> None:
        if not peer.capped:
            return
        self._pending[peer.address] += change
        if self._pending[peer.address] <= 0:
            del self._pending[peer.address]


class _Acceptor:
    """Accepts connections on one listening socket; on running out of file
    descriptors it stops watching the socket for a while, doubling the pause
    while failures go on, rather than spin on a socket that stays readable."""

    def __init__(self, listener: Listener, sock: socket.socket) -> None:
        self._listener = listener
        self._sock = sock
        self._loop = IOLoop.current()
        self._pause_s = ACCEPT_BACKOFF_FIRST_S
        self._resume: object | None = None
        self._stopped = False
        self._loop.add_handler(sock, self._accept, IOLoop.READ)

    def _accept(self, fd: Any, events: int) -> None:
        for _ in range(_ACCEPTS_PER_TURN):
            if self._stopped:
                return
            try:
                connection, address = self._sock.accept()
            except BlockingIOError:
                return
            except ConnectionAbortedError:
                continue
            except OSError as error:
                if error.errno not in _OUT_OF_RESOURCES:
                    raise
                self._pause(error)
                return
            self._pause_s = ACCEPT_BACKOFF_FIRST_S
            self._listener._accepted(connection, address)

    def _pause(self, error: OSError) -> None:
        self._loop.remove_handler(self._sock)
        self._listener._accept_failed(error, self._pause_s)
        self._resume = self._loop.call_later(self._pause_s, self._resumed)
        self._pause_s = min(self._pause_s * 2, ACCEPT_BACKOFF_MAX_S)

    def _resumed(self) -> None:
        self._resume = None
        if not self._stopped:
            self._loop.add_handler(self._sock, self._accept, IOLoop.READ)

    def stop(self) -> None:
        self._stopped = True
        if self._resume is not None:
            self._loop.remove_timeout(self._resume)
            self._resume = None
        else:
            self._loop.remove_handler(self._sock)


def listen(
    app: httputil.HTTPServerConnectionDelegate,
    settings: Settings,
    sockets: Iterable[socket.socket],
) -> Listener:
    """A `Listener` serving `app` on `sockets`; call on the loop that will run it."""
    listener = Listener(app, settings)
    listener.add_sockets(sockets)
    return listener


def raise_open_files_limit(log: Callable[[str], None] = logger.info) -> tuple[int, int]:
    """Raise this process's open-files soft limit to its hard limit (each
    connection is a descriptor); the (soft, hard) limits now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = _kernel_open_files_cap(soft)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as error:
            log(f"Could not raise the open-files limit from {soft} to {hard}: {error}")
            return soft, hard
        log(f"Open-files limit raised from {soft} to {hard}")
        soft = hard
    return soft, hard


def _kernel_open_files_cap(fallback: int) -> int:
    """The most descriptors a process may be allowed (Linux's fs.nr_open)."""
    try:
        with open("/proc/sys/fs/nr_open") as f:
            return int(f.read())
    except (OSError, ValueError):
        return fallback
