"""The supervision API: the live tree as JSON, and killing an actor on purpose.

``GET /api/supervision`` is the tree (see docs/PROTOCOL.md for the node shape).
``POST /api/supervision/kill`` with ``{"id": "<node id>"}`` makes that actor
crash from inside, as a fault would; its supervisor reacts as it would to any
crash. Killing is for development, tests and teaching: refused with 403 when
``CHATTER_ENV=prod`` unless ``CHATTER_CHAOS=1``.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from typing import Any

import pykka
import tornado.web

from chatter.config import Environment, Settings
from chatter.tree import SESSIONS, ChatTree
from supervision import TreeNode, describe_tree, find_actor, inject_crash

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


class TreeHandler(tornado.web.RequestHandler):
    """``GET /api/supervision``."""

    def initialize(self, tree: ChatTree) -> None:
        self.tree = tree

    async def get(self) -> None:
        loop = asyncio.get_running_loop()
        self.set_header("Cache-Control", "no-store")
        try:
            node = await loop.run_in_executor(None, describe_tree, self.tree.root)
        except (pykka.ActorDeadError, pykka.Timeout):
            self.set_status(503)
            self.finish({"error": "unavailable", "message": "the supervision tree is down"})
            return
        self.finish(tree_json(node))


class KillHandler(tornado.web.RequestHandler):
    """``POST /api/supervision/kill``: 202 when the crash is injected, 404 for an
    unknown id, 400 for a malformed body, 403 where chaos is off."""

    def initialize(self, tree: ChatTree, settings: Settings) -> None:
        self.tree = tree
        self.settings_ = settings

    def check_xsrf_cookie(self) -> None:
        """JSON only (checked below): a cross-site form cannot send it."""

    async def post(self) -> None:
        origin = self.request.headers.get("Origin")
        if origin is not None and urllib.parse.urlparse(origin).netloc != self.request.host:
            self._answer(403, {"error": "forbidden", "message": "foreign origin"})
            return
        if not chaos_enabled(self.settings_):
            self._answer(403, {"error": "forbidden", "message": "chaos is off in prod"})
            return
        if not self.request.headers.get("Content-Type", "").startswith("application/json"):
            self._answer(415, {"error": "bad_request", "message": "send application/json"})
            return
        try:
            body = json.loads(self.request.body or b"null")
            node_id = body["id"]
            if not isinstance(node_id, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            self._answer(400, {"error": "bad_request", "message": 'send {"id": "<node id>"}'})
            return
        loop = asyncio.get_running_loop()
        try:
            ref = await loop.run_in_executor(None, find_actor, self.tree.root, node_id)
        except (pykka.ActorDeadError, pykka.Timeout):
            ref = None
        if ref is None:
            self._answer(404, {"error": "not_found", "message": f"no running actor {node_id!r}"})
            return
        inject_crash(ref, f"killed through the API: {node_id}")
        self._answer(202, {"id": node_id, "status": "crash injected"})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        self.set_status(status)
        self.finish(body)
