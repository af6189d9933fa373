"""The supervision API: the live tree as JSON, and killing an actor on purpose.

``GET /api/supervision`` is the tree (see docs/PROTOCOL.md for the node shape).
``POST /api/supervision/kill`` with ``{"id": "<node id>"}`` makes that actor
crash from inside, as a fault would; its supervisor reacts as it would to any
crash. Killing is for development, tests and teaching: refused with 403 when
``CHATTER_ENV=prod`` unless ``CHATTER_CHAOS=1``.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from typing import Any

import pykka

from chatter.config import Environment, Settings
from chatter.tree import SESSIONS, ChatTree
from supervision import TreeNode, describe_tree, find_actor, inject_crash
from web.errors import ApiError, BadApiRequestError
from web.json_handler import JsonHandler

__all__ = ["MAX_LISTED_SESSIONS", "KillHandler", "TreeHandler", "chaos_enabled", "tree_json"]

MAX_LISTED_SESSIONS = 200
"""Session workers listed under the sessions supervisor; the rest are counted."""


def chaos_enabled(settings: Settings) -> bool:
    """Killing actors over HTTP: on in dev and test, in prod only with CHATTER_CHAOS=1."""
    return settings.env is not Environment.PROD or settings.chaos


def tree_json(node: TreeNode) -> dict[str, Any]:
    """The contract's node shape; the sessions supervisor lists at most
    `MAX_LISTED_SESSIONS` workers and says how many there are in ``count``."""
    data = node.to_dict()
    if node.id == SESSIONS and node.children is not None:
        data["count"] = len(node.children)
        data["children"] = data["children"][:MAX_LISTED_SESSIONS]
    if "children" in data and node.id != SESSIONS:
        data["children"] = [tree_json(child) for child in node.children or ()]
    return data


class TreeHandler(JsonHandler):
    """``GET /api/supervision``: the tree, its root naming the node it runs on."""

    def initialize(self, tree: ChatTree, node_id: str) -> None:
        self.tree = tree
        self.node_id = node_id

    async def get(self) -> None:
        loop = asyncio.get_running_loop()
        self.set_header("Cache-Control", "no-store")
        try:
            node = await loop.run_in_executor(None, describe_tree, self.tree.root)
        except (pykka.ActorDeadError, pykka.Timeout):
            raise ApiError(503, "the supervision tree is down") from None
        self.finish({**tree_json(node), "node": self.node_id})


class KillHandler(JsonHandler):
    """``POST /api/supervision/kill``: 202 when the crash is injected, 404 for an
    unknown id, 400 for a malformed body (naming what is wrong), 403 where chaos
    is off or the Origin is foreign, 415 for a body that is not JSON."""

    def initialize(self, tree: ChatTree, settings: Settings) -> None:
        self.tree = tree
        self.settings_ = settings

    def check_xsrf_cookie(self) -> None:
        """JSON only (checked below): a cross-site form cannot send it."""

    async def post(self) -> None:
        origin = self.request.headers.get("Origin")
        if origin is not None and urllib.parse.urlparse(origin).netloc != self.request.host:
            raise ApiError(403, "foreign origin")
        if not chaos_enabled(self.settings_):
            raise ApiError(403, "chaos is off in prod")
        node_id = self.json_body().get("id")
        if not isinstance(node_id, str) or not node_id:
            raise BadApiRequestError('send {"id": "<node id>"}: "id" must be a non-empty string')
        loop = asyncio.get_running_loop()
        try:
            ref = await loop.run_in_executor(None, find_actor, self.tree.root, node_id)
        except (pykka.ActorDeadError, pykka.Timeout):
            ref = None
        if ref is None:
            raise ApiError(404, f"no running actor {node_id[:100]!r}")
        inject_crash(ref, f"killed through the API: {node_id}")
        self.set_status(202)
        self.finish({"id": node_id, "status": "crash injected"})
