"""``chatter serve``: the database, the tree and Tornado, started and stopped in order.

Start: the database (embedded unless ``DATABASE_URL``), its schema
(`chatter.schema`: migrated if older, served with a warning if newer), the
tree (persistence, presence, room, sessions), then the HTTP server. Stop, on
SIGINT or SIGTERM: stop accepting, close every socket with 1001, stop the tree
in reverse order, let the database go, exit 0. If the root supervisor gives up,
the same happens and the exit status is 1, for an outside restarter.

`start` builds every running piece (the listening sockets, the tree, the
connection limits, the application and its listeners) and `stop` takes them
down; they are the one way a server is assembled. `serve` runs them in the
foreground with signal handlers; `BackgroundServer` runs them on an event loop
of a thread of its own, for the console and for the tests' in-process servers.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import tornado.netutil

from chatter.config import Settings
from chatter.database import migrate
from chatter.schema import SchemaBehind
from chatter.schema import prepare as prepare_schema
from chatter.throttle import NameClaimLimits
from chatter.tokens import secret_from
from chatter.tree import ChatTree, start_tree
from supervision import EXIT_GAVE_UP
from supervision.exits import Exit
from web.app import make_app
from web.limits import MAX_PENDING_OUTPUT_PER_ADDRESS, ConnectionLimits
from web.listener import Listener, listen, raise_open_files_limit
from web.metrics import metrics_app
from web.socket import CLOSE_GOING_AWAY

__all__ = ["BackgroundServer", "Running", "serve", "start", "stop"]

logger = logging.getLogger("chatter.server")

SOCKET_CLOSE_TIMEOUT_S = 3.0
"""How long shutdown waits for clients to answer the close frames."""

START_TIMEOUT_S = 60.0

GC_THRESHOLDS = (20_000, 20, 20)
"""The collector's thresholds for a server (Python 3.11's default is (700, 10, 10)).
Every delivery allocates a few tracked objects (an envelope per session, loop
handles) that are still queued when a young collection runs, so with the
defaults they are promoted and full collections of the ~230,000 objects that
1,000 connections hold (75-90 ms each) come every few seconds, setting p99.
See docs/PERFORMANCE.md, "What limits Chatter"."""

T = TypeVar("T")


@dataclass
class Running:
    """A started server: its tree, HTTP server and open connections."""

    settings: Settings
    """As given, but for the ports: those actually bound (``PORT=0`` picks one)."""
    tree: ChatTree
    http: Listener
    limits: ConnectionLimits
    metrics_http: Listener | None = None
    """The ``CHATTER_METRICS_PORT`` listener, if one was asked for."""
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the server should stop: a signal, or the root exited."""
    root_exit: Exit | None = None
    """How the root supervisor exited, if it did on its own."""

    @property
    def port(self) -> int:
        return self.settings.port


async def start(
    settings: Settings,
    conninfo: str,
    *,
    name_claims: NameClaimLimits | None = None,
    max_output_per_address: int = MAX_PENDING_OUTPUT_PER_ADDRESS,
    **app_options: Any,
) -> Running:
    """Start the tree and listen; on the loop that will run them.

    `name_claims` (default: the settings') and `max_output_per_address` and
    `app_options` (`make_app`'s keyword options) exist for tests that cannot
    wait for the real bounds."""
    gc.set_threshold(*GC_THRESHOLDS)
    loop = asyncio.get_running_loop()
    holder: list[Running] = []

    def root_exited(exit: Exit) -> None:
        def record() -> None:
            if holder:
                holder[0].root_exit = exit
                holder[0].finished.set()

        loop.call_soon_threadsafe(record)

    secret = secret_from(settings.secret_key_base, settings.resolved_data_dir)
    if settings.database_url and not settings.secret_key_base:
        # Another node on the same database signs with its own data directory's
        # secret: a client sent there could not take its name back with its token.
        logger.warning(
            "No SECRET_KEY_BASE: tokens are signed with %s's secret, so they work on "
            "no other node; give every node sharing this database the same SECRET_KEY_BASE",
            settings.resolved_data_dir,
        )
    # Bind first: a port in use fails here, before any actor thread exists to
    # keep a failed start-up running.
    sockets = tornado.netutil.bind_sockets(settings.port, address=settings.host)
    metrics_sockets = None
    if settings.metrics_port is not None:
        try:
            metrics_sockets = tornado.netutil.bind_sockets(
                settings.metrics_port, address=settings.host
            )
        except OSError:
            for sock in sockets:
                sock.close()
            raise
    settings = replace(
        settings,
        port=_bound_port(sockets),
        metrics_port=_bound_port(metrics_sockets) if metrics_sockets else None,
    )
    tree = await loop.run_in_executor(
        None,
        lambda: start_tree(
            conninfo,
            secret,
            loop,
            max_sessions=settings.max_connections,
            name_claims=name_claims if name_claims is not None else settings.name_claims,
            on_exit=root_exited,
            node_id=settings.node_id,
            restart_delay_s=settings.restart_delay_s,
        ),
    )
    limits = ConnectionLimits(
        settings.max_connections, settings.max_connections_per_ip, max_output_per_address
    )
    http = listen(make_app(settings, tree, limits, **app_options), settings, sockets)
    metrics_http = None
    if metrics_sockets is not None:
        metrics_http = listen(metrics_app(tree, limits), settings, metrics_sockets)
        logger.info("Metrics on http://%s:%s/metrics", settings.host, settings.metrics_port)
    running = Running(settings, tree, http, limits, metrics_http)
    holder.append(running)
    logger.info(
        "Chatter node %s listening on http://%s:%s", settings.node_id, settings.host, settings.port
    )
    return running


def _bound_port(sockets: list[socket.socket]) -> int:
    port: int = sockets[0].getsockname()[1]
    return port


async def stop(running: Running) -> int:
    """Stop accepting, close the sockets with 1001, stop the tree; the exit status."""
    loop = asyncio.get_running_loop()
    exit = running.root_exit
    logger.info("Stopping: %s", "the root supervisor exited" if exit else "asked to")
    running.http.stop()
    if running.metrics_http is not None:
        running.metrics_http.stop()
    await running.limits.close_all(CLOSE_GOING_AWAY, "server shutting down", SOCKET_CLOSE_TIMEOUT_S)
    if exit is None:
        await loop.run_in_executor(None, running.tree.stop)
    logger.info("Chatter stopped")
    if exit is not None and (exit.abnormal or exit.gave_up):
        logger.critical("The root supervisor exited (%s); exiting with status 1", exit)
        return EXIT_GAVE_UP
    return 0


def serve(settings: Settings, conninfo: str) -> int:
    """Run in the foreground until SIGINT/SIGTERM or the tree gives up; the exit
    status: 2 when the schema is older than this node needs and it may not
    migrate (`chatter.schema`)."""
    raise_open_files_limit()
    try:
        prepare_schema(conninfo, may_migrate=settings.migrate)
    except SchemaBehind as behind:
        logger.error("Not serving: %s", behind)
        return 2

    async def main() -> int:
        running = await start(settings, conninfo)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, running.finished.set)
        await running.finished.wait()
        return await stop(running)

    return asyncio.run(main())


class BackgroundServer:
    """The server on an event loop of a thread of its own, until `stop`: for
    the console, and for tests that drive a server from outside its loop.

    It migrates the database first unless told it is `migrated` already;
    `options` are `start`'s."""

    def __init__(
        self, settings: Settings, conninfo: str, *, migrated: bool = False, **options: Any
    ) -> None:
        if not migrated:
            migrate(conninfo)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="chatter-server")
        self._thread.start()
        try:
            self.running: Running = self.run(start(settings, conninfo, **options))
        except BaseException:
            self._end_loop()
            raise

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the server's loop; its result, once it has one."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(START_TIMEOUT_S)

    def stop(self) -> int:
        """Stop the server and its thread; the exit status."""
        try:
            return self.run(stop(self.running))
        finally:
            self._end_loop()

    def _end_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(START_TIMEOUT_S)
        self.loop.close()
