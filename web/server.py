"""``chatter serve``: the database, the tree and Tornado, started and stopped in order.

Start: the database (embedded unless ``DATABASE_URL``), its migrations, the
tree (persistence, presence, room, sessions), then the HTTP server. Stop, on
SIGINT or SIGTERM: stop accepting, close every socket with 1001, stop the tree
in reverse order, let the database go, exit 0. If the root supervisor gives up,
the same happens and the exit status is 1, for an outside restarter.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from tornado.httpserver import HTTPServer

from chatter.config import Settings
from chatter.database import migrate
from chatter.tokens import secret_from
from chatter.tree import start_tree
from supervision import EXIT_GAVE_UP
from supervision.exits import Exit
from web.app import make_app
from web.limits import ConnectionLimits
from web.socket import CLOSE_GOING_AWAY

SOCKET_CLOSE_TIMEOUT_S = 3.0
"""How long shutdown waits for clients to answer the close frames."""

__all__ = ["serve"]

logger = logging.getLogger("chatter.server")


def serve(settings: Settings, conninfo: str) -> int:
    """Run until a stop signal or the tree gives up; return the exit status."""
    migrate(conninfo)
    return asyncio.run(_serve(settings, conninfo))


async def _serve(settings: Settings, conninfo: str) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    outcome: dict[str, Any] = {}

    def root_exited(exit: Exit) -> None:
        outcome["exit"] = exit
        loop.call_soon_threadsafe(stop.set)

    secret = secret_from(settings.secret_key_base, settings.resolved_data_dir)
    tree = await loop.run_in_executor(
        None,
        lambda: start_tree(
            conninfo, secret, loop, max_sessions=settings.max_connections, on_exit=root_exited
        ),
    )
    limits = ConnectionLimits(settings.max_connections, settings.max_connections_per_ip)
    app = make_app(settings, tree, limits)
    server = HTTPServer(app, xheaders=False)
    server.listen(settings.port, address=settings.host)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    logger.info("Chatter listening on http://%s:%s", settings.host, settings.port)

    await stop.wait()
    exit: Exit | None = outcome.get("exit")
    logger.info("Stopping: %s", "the tree gave up" if exit else "signal received")
    server.stop()
    await limits.close_all(CLOSE_GOING_AWAY, "server shutting down", SOCKET_CLOSE_TIMEOUT_S)
    if exit is None:
        await loop.run_in_executor(None, tree.stop)
    logger.info("Chatter stopped")
    if exit is not None and exit.abnormal:
        logger.critical("The root supervisor exited (%s); exiting with status 1", exit)
        return EXIT_GAVE_UP
    return 0
