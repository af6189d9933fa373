"""The Tornado application factory: every route, and what each handler needs,
injected through ``initialize`` (no globals: each test builds its own app)."""

from __future__ import annotations

import asyncio
from typing import Any

import tornado.routing
import tornado.web

from chatter.config import Settings
from chatter.persistence import Persistence
from chatter.tree import ActorState, ChatTree
from web.api import KillHandler, SessionsHandler, TreeHandler
from web.docs import docs_routes
from web.events import EVENTS_ROUTE_NAME, SupervisionEventsSocket
from web.json_handler import JsonHandler, NotFoundJson
from web.keepalive import Keepalive
from web.limits import ConnectionLimits
from web.metrics import MetricsHandler, app_registry
from web.pages import STATIC_PATH, TEMPLATE_PATH, SecureStaticFiles, page_routes
from web.socket import (
    MAX_FRAME_BYTES,
    MAX_PENDING_OUTPUT_BYTES,
    PING_INTERVAL_S,
    ChatSocket,
    FramedRounds,
)
from web.watchers import MAX_WATCHER_PENDING_OUTPUT, WatcherHub

__all__ = ["HEALTH_TIMEOUT_S", "HealthHandler", "make_app"]

HEALTH_TIMEOUT_S = 2.0
"""How long /healthz waits for the database before it says it is down."""


class HealthHandler(JsonHandler):
    """``GET /healthz``: each part (``database``, ``tree``) and its state; 200
    when every part is well, 503 naming the failing ones (``failing`` is the
    first, ``failures`` all of them). See docs/OBSERVABILITY.md."""

    def initialize(self, tree: ChatTree, limits: ConnectionLimits, node_id: str) -> None:
        self.tree = tree
        self.limits = limits
        self.node_id = node_id

    async def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        actors = self.tree.actor_states()
        tree_ok = all(state is not ActorState.DOWN for state in actors.values())
        # With the root down there is no persistence actor to ask: say so
        # rather than blame the database.
        database = await self._database() if tree_ok else "unknown"
        failures = [] if database != "unreachable" else ["database"]
        if not tree_ok:
            failures.append("tree")
        body: dict[str, Any] = {
            "status": "unavailable" if failures else "ok",
            "database": database,
            "tree": "ok" if tree_ok else "down",
            "actors": {name: state.value for name, state in actors.items()},
            "connections": self.limits.total,
            "node": self.node_id,
        }
        if failures:
            self.set_status(503)
            body["failing"] = failures[0]
            body["failures"] = failures
        self.finish(body)

    async def head(self) -> None:
        """As GET without the body: for a balancer's health check."""
        await self.get()

    async def _database(self) -> str:
        """``ok`` when the database answers a trivial query in time, else ``unreachable``."""
        try:
            answered = await asyncio.wait_for(
                _awaitable(Persistence(self.tree.registry).check()), HEALTH_TIMEOUT_S
            )
        except Exception:
            answered = False
        return "ok" if answered else "unreachable"


async def _awaitable(future: Any) -> Any:
    return await future


def make_app(
    settings: Settings,
    tree: ChatTree,
    limits: ConnectionLimits,
    *,
    max_pending_output: int = MAX_PENDING_OUTPUT_BYTES,
    ping_interval_s: float = PING_INTERVAL_S,
    max_watcher_pending_output: int = MAX_WATCHER_PENDING_OUTPUT,
) -> tornado.web.Application:
    """The application for one running tree. The keyword options exist for
    tests that cannot wait for the real bounds."""
    metrics_routes: list[tornado.routing.Rule | tuple[Any, ...]] = []
    # Off in prod unless CHATTER_METRICS=1, and moved off this port by
    # CHATTER_METRICS_PORT (web/server.py): then a 404 here, like any unknown path.
    if settings.metrics_on_public_port:
        metrics_routes.append(
            (r"/metrics", MetricsHandler, {"registry": app_registry(tree, limits)})
        )
    # One timer pings every socket, chat and watcher (web/keepalive.py), not
    # Tornado's task per connection: websocket_ping_interval stays unset.
    keepalive = Keepalive(ping_interval_s)
    chat_socket = ChatSocket.for_app(
        tree,
        limits,
        settings,
        keepalive,
        max_pending_output=max_pending_output,
        rounds=FramedRounds(),
    )
    return tornado.web.Application(
        [
            (r"/ws", chat_socket),
            (
                r"/healthz",
                HealthHandler,
                {"tree": tree, "limits": limits, "node_id": settings.node_id},
            ),
            *metrics_routes,
            *page_routes(),
            *docs_routes(),
            (r"/api/supervision", TreeHandler, {"tree": tree, "node_id": settings.node_id}),
            (r"/api/supervision/kill", KillHandler, {"tree": tree, "settings": settings}),
            (r"/api/supervision/sessions", SessionsHandler, {"tree": tree}),
            tornado.web.url(
                r"/api/supervision/events",
                SupervisionEventsSocket,
                {
                    "tree": tree,
                    "settings": settings,
                    "limits": limits,  # to be closed on shutdown, like a chat socket
                    # Watchers have caps of their own: they never take a chat client's place.
                    "watcher_limits": ConnectionLimits(
                        settings.max_watchers, settings.max_watchers_per_ip
                    ),
                    "hub": WatcherHub(tree.events, tree.loop),
                    "keepalive": keepalive,
                    "max_pending_output": max_watcher_pending_output,
                },
                name=EVENTS_ROUTE_NAME,
            ),
            (r"/api/.*", NotFoundJson),  # last: only what no route above takes
        ],
        websocket_max_message_size=MAX_FRAME_BYTES,
        xsrf_cookies=False,
        template_path=str(TEMPLATE_PATH),
        static_path=str(STATIC_PATH),
        static_handler_class=SecureStaticFiles,
    )
