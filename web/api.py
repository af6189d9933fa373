"""The supervision API: the live tree as JSON, and killing an actor on purpose.

``GET /api/supervision`` is the tree (see docs/PROTOCOL.md for the node shape).
With ten thousand sessions it stays small and fast: each sessions partition
lists at most `MAX_LISTED_PER_PARTITION` of its sessions and counts them all
(``count``), and only that many are ever read from a supervisor.
``GET /api/supervision/sessions`` reads the rest: a page of one partition
(``?partition=sessions.1&offset=50&limit=100``), or the sessions whose user's
name starts with ``?name=`` (asked of presence), or one by its id.
Each session the tree or a page lists says who it is: ``username``, the name
it holds, or null for a viewer (asked of the sessions listed, never of all).
``POST /api/supervision/kill`` with ``{"id": "<node id>", "by"?: "<who>"}``
makes that actor crash from inside, as a fault would; its supervisor reacts as
it would to any crash, and the log says who asked (one WARNING line, no
traceback: `chatter.logs`). Killing is for development, tests and teaching:
refused with 403 when ``CHATTER_ENV=prod`` unless ``CHATTER_CHAOS=1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pykka

from chatter.config import Environment, Settings
from chatter.presence import (
    IdentityReport,
    Presence,
    ReportIdentity,
    SessionsNamed,
    SessionsNamedNow,
)
from chatter.reply import FutureRecipient
from chatter.tree import SESSIONS, ChatTree
from supervision import (
    ChildKind,
    Partitions,
    TreeNode,
    describe_child,
    describe_children,
    describe_tree,
    find_actor,
    inject_crash,
)
from web.errors import ApiError, BadApiRequestError
from web.json_handler import JsonHandler

__all__ = [
    "MAX_ASKER_CHARS",
    "MAX_LISTED_PER_PARTITION",
    "MAX_PAGE",
    "NAMES_WAIT_S",
    "KillHandler",
    "SessionsHandler",
    "TreeHandler",
    "chaos_enabled",
    "tree_json",
]

MAX_LISTED_PER_PARTITION = 50
"""Sessions listed in the tree under each sessions partition; the rest are
counted. With the default four partitions, 200 in all, as many as one list
on the page shows."""

MAX_PAGE = 200
"""Most sessions one ``GET /api/supervision/sessions`` lists."""

DEFAULT_PAGE = 100
"""Sessions in a page unless ``limit`` says otherwise."""

NAMES_WAIT_S = 0.5
"""How long the listed sessions have to say their names: a session that is
closing may never answer, and the tree is not held up for it (its node then
has no ``username``)."""

MAX_ASKER_CHARS = 64
"""The longest ``by`` a kill may carry: it goes into the log line as it is."""


def chaos_enabled(settings: Settings) -> bool:
    """Killing actors over HTTP: on in dev and test, in prod only with CHATTER_CHAOS=1."""
    return settings.env is not Environment.PROD or settings.chaos


def tree_json(
    node: TreeNode, sessions: Partitions, names: dict[str, str | None] | None = None
) -> dict[str, Any]:
    """The contract's node shape. The sessions supervisor says how many
    sessions there are (``count``) and in how many partitions
    (``partitions``); each partition how many it holds (``count``), listing
    those it was asked for; each session listed its ``username`` (null: a
    viewer) if it said in time (`names`)."""
    names = names or {}
    data = node.to_dict()
    if node.children is not None:
        data["children"] = [tree_json(child, sessions, names) for child in node.children]
        if sessions.holds(node.id):
            for child, child_data in zip(node.children, data["children"], strict=True):
                if child.id in names:
                    child_data["username"] = names[child.id]
    if node.id == SESSIONS:
        data["count"] = sum(child.count or 0 for child in node.children or ())
        data["partitions"] = len(node.children or ())
    elif sessions.holds(node.id):
        data["count"] = node.count if node.count is not None else len(node.children or ())
    return data


def _session_json(
    node: TreeNode, partition: str, names: dict[str, str | None], username: str | None = None
) -> dict[str, Any]:
    data = node.to_dict()
    data["partition"] = partition
    if username is not None:
        data["username"] = username
    elif node.id in names:
        data["username"] = names[node.id]
    return data


def _listed_sessions(node: TreeNode, sessions: Partitions) -> Iterator[TreeNode]:
    """The sessions the tree lists, under each partition."""
    for child in node.children or ():
        if sessions.holds(node.id):
            yield child
        else:
            yield from _listed_sessions(child, sessions)


class _Names:
    """Collects the `IdentityReport`s of the sessions asked (`session_names`);
    told from the sessions' loop or any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, expected: int) -> None:
        self._loop = loop
        self._expected = expected
        self.names: dict[str, str | None] = {}
        self.all_said = asyncio.Event()

    def tell(self, message: Any) -> None:
        if isinstance(message, IdentityReport):
            self._loop.call_soon_threadsafe(self._said, message.session_id, message.username)

    def gone(self) -> None:
        """One of the sessions asked had ended: it will not answer."""
        self._expected -= 1
        self._check()

    def _said(self, session_id: str, username: str | None) -> None:
        self.names[session_id] = username
        self._check()

    def _check(self) -> None:
        if len(self.names) >= self._expected:
            self.all_said.set()


async def session_names(nodes: list[TreeNode]) -> dict[str, str | None]:
    """Each session's name (None: a viewer), asked of the sessions `nodes`
    themselves, as a restarted presence asks them; those that do not answer
    within `NAMES_WAIT_S` are left out. Runs on the loop."""
    refs = [node.ref for node in nodes if node.ref is not None]
    if not refs:
        return {}
    names = _Names(asyncio.get_running_loop(), len(refs))
    for ref in refs:
        try:
            ref.tell(ReportIdentity(presence=names))  # type: ignore[arg-type]
        except pykka.ActorDeadError:
            names.gone()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(names.all_said.wait(), NAMES_WAIT_S)
    return dict(names.names)


class TreeHandler(JsonHandler):
    """``GET /api/supervision``: the tree, its root naming the node it runs on."""

    def initialize(self, tree: ChatTree, node_id: str) -> None:
        self.tree = tree
        self.node_id = node_id

    async def get(self) -> None:
        loop = asyncio.get_running_loop()
        self.set_header("Cache-Control", "no-store")
        partitions = self.tree.sessions

        def listed(supervisor_id: str) -> int | None:
            return MAX_LISTED_PER_PARTITION if partitions.holds(supervisor_id) else None

        read = functools.partial(describe_tree, self.tree.root, max_children=listed)
        try:
            node = await loop.run_in_executor(None, read)
        except (pykka.ActorDeadError, pykka.Timeout):
            raise ApiError(503, "the supervision tree is down") from None
        names = await session_names(list(_listed_sessions(node, partitions)))
        self.finish(
            {
                **tree_json(node, partitions, names),
                "node": self.node_id,
                "restart_delay_ms": round(self.tree.restart_delay_s * 1000),
            }
        )


class SessionsHandler(JsonHandler):
    """``GET /api/supervision/sessions``: sessions the tree does not list.

    - ``?partition=sessions.P[&offset=N][&limit=M]``: a page of that partition's
      sessions, in start order (``limit`` 1 to `MAX_PAGE`, `DEFAULT_PAGE` unless
      given): ``{"partition", "count", "offset", "sessions": [node...]}``.
    - ``?name=TEXT``: the sessions whose user's name starts with TEXT
      (case-insensitively), and the session whose id is TEXT, if one is:
      ``{"name", "sessions": [node...]}``, each node with its ``partition``
      and, for a name, ``username`` and ``online``.
    """

    def initialize(self, tree: ChatTree) -> None:
        self.tree = tree

    async def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        partition = self.get_query_argument("partition", None)
        name = self.get_query_argument("name", None)
        if (partition is None) == (name is None):
            raise BadApiRequestError("give either partition=<sessions.P> or name=<text>")
        try:
            if partition is not None:
                self.finish(await self._page(partition))
            else:
                assert name is not None
                self.finish(await self._named(name.strip()))
        except (pykka.ActorDeadError, pykka.Timeout):
            raise ApiError(503, "the sessions supervisor is restarting") from None

    def _int_argument(self, name: str, default: int, low: int, high: int) -> int:
        text = self.get_query_argument(name, None)
        if text is None:
            return default
        if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
            raise BadApiRequestError(
                f"{name} must be an integer from {low} to {high}, got {text!r}"
            )
        return int(text)

    async def _page(self, partition: str) -> dict[str, Any]:
        if not self.tree.sessions.holds(partition):
            known = ", ".join(self.tree.sessions.ids())
            raise BadApiRequestError(f"partition must be one of {known}, got {partition[:100]!r}")
        offset = self._int_argument("offset", 0, 0, 10**9)
        limit = self._int_argument("limit", DEFAULT_PAGE, 1, MAX_PAGE)
        ref = self.tree.registry.whereis(partition)
        if ref is None:
            raise ApiError(503, f"{partition} is restarting")
        read = functools.partial(describe_children, ref, offset=offset, limit=limit)
        node = await asyncio.get_running_loop().run_in_executor(None, read)
        children = list(node.children or ())
        names = await session_names(children)
        return {
            "partition": partition,
            "count": node.count,
            "offset": offset,
            "sessions": [_session_json(child, partition, names) for child in children],
        }

    async def _named(self, name: str) -> dict[str, Any]:
        if not name or len(name) > 100:
            raise BadApiRequestError(f"name must be 1 to 100 characters, got {name[:100]!r}")
        asked = FutureRecipient()
        Presence(self.tree.registry).tell(SessionsNamed(name, limit=MAX_PAGE, reply_to=asked))
        try:
            answer: SessionsNamedNow = await asked.future
        except Exception:  # presence is restarting: no names to go by now
            raise ApiError(503, "presence is restarting; try again") from None
        found: list[tuple[str, str | None, bool]] = list(answer.sessions)
        if name not in {session_id for session_id, _, _ in found}:
            found.append((name, None, False))  # TEXT may be a session's id
        loop = asyncio.get_running_loop()
        sessions = []
        for session_id, username, online in found:
            partition = self._partition_of(session_id)
            if partition is None:
                continue
            node = await loop.run_in_executor(None, self._one, partition, session_id)
            if node is None:
                continue
            data = _session_json(node, partition, {}, username)
            if username is not None:
                data["online"] = online
            sessions.append(data)
        return {"name": name, "sessions": sessions}

    def _partition_of(self, session_id: str) -> str | None:
        try:
            return self.tree.sessions.id_for(session_id)
        except TypeError:
            return None

    def _one(self, partition: str, session_id: str) -> TreeNode | None:
        """The session `session_id` of `partition`, if it runs there. Blocks."""
        ref = self.tree.registry.whereis(partition)
        if ref is None:
            return None
        node = describe_child(ref, session_id)
        return node if node is not None and node.kind is ChildKind.WORKER else None


class KillHandler(JsonHandler):
    """``POST /api/supervision/kill``: 202 when the crash is injected, 404 for an
    unknown id, 400 for a malformed body (naming what is wrong), 403 where chaos
    is off or the Origin is foreign, 415 for a body that is not JSON.

    ``by`` says who asks (``the supervision page``, ``chatter chaos``; default
    ``an API client``): the crash's reason, and so the log line and the event
    the page shows, is ``asked by <by> from <address>``."""

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
        body = self.json_body()
        node_id = body.get("id")
        if not isinstance(node_id, str) or not node_id:
            raise BadApiRequestError('send {"id": "<node id>"}: "id" must be a non-empty string')
        asker = body.get("by", "an API client")
        if (
            not isinstance(asker, str)
            or not 1 <= len(asker) <= MAX_ASKER_CHARS
            or not asker.isprintable()
        ):
            raise BadApiRequestError(
                f'"by" must be 1 to {MAX_ASKER_CHARS} printable characters, got {asker!r:.100}'
            )
        loop = asyncio.get_running_loop()
        try:
            ref = await loop.run_in_executor(None, find_actor, self.tree.root, node_id)
        except (pykka.ActorDeadError, pykka.Timeout):
            ref = None
        if ref is None:
            raise ApiError(404, f"no running actor {node_id[:100]!r}")
        inject_crash(ref, f"asked by {asker} from {self.request.remote_ip}")
        self.set_status(202)
        self.finish({"id": node_id, "status": "crash injected"})
