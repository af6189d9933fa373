"""Looking at a running tree: its shape as data.

`describe_tree` asks each supervisor for its children and builds an immutable
`TreeNode` tree, ready to render (`render_tree`) or to serialise (``to_dict``
gives the shape of Chatter's ``/api/supervision``); `find_actor` finds a node's
actor by its id. What happens in the tree over time is `supervision.events`'
business.

A tree may hold ten thousand children under one supervisor (a connection
each). Reading it must not cost ten thousand of anything: `describe_tree`
takes ``max_children``, so that each supervisor lists that many and says how
many it has (`TreeNode.count`); `describe_children` reads one supervisor's
children a page at a time; and `find_actor` asks each supervisor for one id
(`FindChild`) rather than for its whole list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pykka

from supervision import _pykka
from supervision.child_spec import ChildKind, Restart
from supervision.client import ChildFound, Describe, FindChild, RestartCount, SupervisorInfo
from supervision.strategy import Strategy

__all__ = [
    "TreeNode",
    "describe_child",
    "describe_children",
    "describe_tree",
    "find_actor",
    "mailbox_depth",
    "render_tree",
]


@dataclass(frozen=True)
class TreeNode:
    """A node of the introspected tree."""

    id: str
    kind: ChildKind
    alive: bool
    restarts: int
    restart: Restart | None = None
    """The node's restart type under its parent; None for the root."""
    strategy: Strategy | None = None
    """For a supervisor."""
    children: tuple[TreeNode, ...] | None = None
    """For a supervisor; None for a worker."""
    count: int | None = None
    """For a supervisor: how many children it has, listed in `children` or not."""
    intensity: RestartCount | None = None
    """For a supervisor: its restart intensity, and its restarts that count
    against it now (with their ages), as `count_restarts` reads them."""
    restarting: bool = False
    """Not running, and its supervisor is to start it again: a failed restart
    to be tried again, or a restart waiting out the supervisor's delay."""
    ref: pykka.ActorRef[Any] | None = field(default=None, compare=False, repr=False)
    """For a worker: the incarnation that was running when the tree was read,
    for a caller that has more to ask it (never serialised)."""

    @property
    def unlisted(self) -> int:
        """Children counted but not listed in `children` (``max_children``)."""
        if self.count is None:
            return 0
        return max(0, self.count - len(self.children or ()))

    def to_dict(self) -> dict[str, Any]:
        node: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind.value,
            "restarts": self.restarts,
            "alive": self.alive,
        }
        if self.restart is not None:
            node["restart"] = self.restart.value
        if self.strategy is not None:
            node["strategy"] = self.strategy.value
        if self.children is not None:
            node["children"] = [child.to_dict() for child in self.children]
        if self.unlisted:
            node["count"] = self.count
        if self.restarting:
            node["restarting"] = True
        if self.intensity is not None:
            node["intensity"] = {
                "restarts": self.intensity.restarts,
                "max_restarts": self.intensity.max_restarts,
                "max_seconds": self.intensity.max_seconds,
                "ages_s": [round(age, 3) for age in self.intensity.ages_s],
            }
        return node

    def find(self, node_id: str) -> TreeNode | None:
        """The node with this id in this subtree, if any."""
        if self.id == node_id:
            return self
        for child in self.children or ():
            found = child.find(node_id)
            if found is not None:
                return found
        return None


def describe_tree(
    supervisor: pykka.ActorRef[Any],
    *,
    timeout_s: float = 5.0,
    max_children: int | Callable[[str], int | None] | None = None,
) -> TreeNode:
    """The tree under `supervisor`, asked level by level. Each supervisor lists
    at most `max_children` children (None: all; or a function of the
    supervisor's id, to bound some supervisors and not others) and counts them
    all in `TreeNode.count`. Blocks: call it from a thread of its own (not from
    an actor or an event loop)."""
    limit_for = max_children if callable(max_children) else lambda _id: max_children
    root_id = _own_id(supervisor, timeout_s) if callable(max_children) else ""
    ask = Describe(limit=limit_for(root_id))
    info: SupervisorInfo = supervisor.ask(ask, block=False).get(timeout=timeout_s)
    return _node(info, limit_for, alive=True, restarts=0, restart=None, timeout_s=timeout_s)


def describe_children(
    supervisor: pykka.ActorRef[Any], *, offset: int = 0, limit: int, timeout_s: float = 5.0
) -> TreeNode:
    """One supervisor and a page of its children (from the `offset`-th, at most
    `limit`), each child a leaf: a child supervisor is not asked for its own.
    Blocks, like `describe_tree`."""
    ask = Describe(limit=limit, offset=offset)
    info: SupervisorInfo = supervisor.ask(ask, block=False).get(timeout=timeout_s)
    return _node(info, None, alive=True, restarts=0, restart=None, timeout_s=timeout_s)


def describe_child(
    supervisor: pykka.ActorRef[Any], child_id: str, *, timeout_s: float = 5.0
) -> TreeNode | None:
    """The child `child_id` of `supervisor` as a leaf node, or None if it has no
    such child: one lookup, however many children it has. Blocks, like
    `describe_tree`."""
    found: ChildFound = supervisor.ask(FindChild(child_id), block=False).get(timeout=timeout_s)
    child = found.child
    if child is None:
        return None
    return TreeNode(
        child.id,
        child.kind,
        child.alive,
        child.restarts,
        child.restart,
        restarting=child.restarting,
        ref=child.ref if child.kind is ChildKind.WORKER else None,
    )


def _node(
    info: SupervisorInfo,
    limit_for: Callable[[str], int | None] | None,
    *,
    alive: bool,
    restarts: int,
    restart: Restart | None,
    timeout_s: float,
) -> TreeNode:
    """`info` as a node; its child supervisors are asked in turn for at most
    ``limit_for(their id)`` children (`limit_for` None: not asked)."""
    children: list[TreeNode] = []
    for child in info.children:
        sub: SupervisorInfo | None = None
        if limit_for is not None and child.kind is ChildKind.SUPERVISOR and child.ref is not None:
            ask = Describe(limit=limit_for(child.id))
            try:
                sub = child.ref.ask(ask, block=False).get(timeout=timeout_s)
            except pykka.ActorDeadError:
                sub = None  # it died while we looked; shown as not alive
        if sub is not None:
            children.append(
                _node(
                    sub,
                    limit_for,
                    alive=child.alive,
                    restarts=child.restarts,
                    restart=child.restart,
                    timeout_s=timeout_s,
                )
            )
        elif limit_for is None:
            children.append(
                TreeNode(
                    id=child.id,
                    kind=child.kind,
                    alive=child.alive,
                    restarts=child.restarts,
                    restart=child.restart,
                    restarting=child.restarting,
                    ref=child.ref if child.kind is ChildKind.WORKER else None,
                )
            )
        else:
            children.append(
                TreeNode(
                    id=child.id,
                    kind=child.kind,
                    alive=child.alive and sub is None and child.kind is ChildKind.WORKER,
                    restarts=child.restarts,
                    restart=child.restart,
                    children=() if child.kind is ChildKind.SUPERVISOR else None,
                    restarting=child.restarting,
                    ref=child.ref if child.kind is ChildKind.WORKER else None,
                )
            )
    return TreeNode(
        id=info.id,
        kind=ChildKind.SUPERVISOR,
        alive=alive,
        restarts=restarts,
        restart=restart,
        strategy=info.strategy,
        children=tuple(children),
        count=info.count,
        intensity=info.intensity,
    )


def find_actor(
    supervisor: pykka.ActorRef[Any], node_id: str, *, timeout_s: float = 5.0
) -> pykka.ActorRef[Any] | None:
    """The running actor with id `node_id` in the tree under `supervisor` (the
    root itself included), or None. Each supervisor, breadth first, is asked
    for that one id (`FindChild`), never for its list of children. Blocks, like
    `describe_tree`."""
    if node_id == _own_id(supervisor, timeout_s):
        return supervisor
    pending = [supervisor]
    while pending:
        asked = pending.pop(0).ask(FindChild(node_id), block=False)
        try:
            found: ChildFound = asked.get(timeout=timeout_s)
        except pykka.ActorDeadError:
            continue  # it died while we looked
        child = found.child
        if child is not None and child.ref is not None:
            return child.ref if child.ref.is_alive() else None
        pending.extend(found.supervisors)
    return None


def _own_id(supervisor: pykka.ActorRef[Any], timeout_s: float) -> str:
    info: SupervisorInfo = supervisor.ask(Describe(limit=0), block=False).get(timeout=timeout_s)
    return info.id


def mailbox_depth(ref: pykka.ActorRef[Any]) -> int:
    """How many messages wait in an actor's inbox now, as OTP's
    ``process_info(Pid, message_queue_len)`` says; from any thread."""
    return _pykka.queued(ref)


def render_tree(node: TreeNode, *, max_children: int = 20) -> str:
    """The tree as indented text, one node a line, as a terminal shows it::

        root  supervisor one_for_one  alive
        ├─ room  worker permanent  alive  restarts 1
        └─ sessions  supervisor one_for_one  alive
           └─ session-1  worker temporary  alive

    A supervisor with more than `max_children` children shows that many and a
    count of the rest (those `describe_tree` did not list, too).
    """
    lines = [_describe_node(node)]
    _render_children(node, "", lines, max_children)
    return "\n".join(lines)


def _describe_node(node: TreeNode) -> str:
    parts = [node.id, node.kind.value]
    if node.strategy is not None:
        parts[-1] += f" {node.strategy.value}"
    if node.restart is not None:
        parts[-1] += f" {node.restart.value}"
    parts.append("alive" if node.alive else "down")
    if node.restarts:
        parts.append(f"restarts {node.restarts}")
    return "  ".join(parts)


def _render_children(node: TreeNode, indent: str, lines: list[str], max_children: int) -> None:
    children = list(node.children or ())
    shown = children[:max_children]
    more = len(children) - len(shown) + node.unlisted  # read but not shown, and not read
    for index, child in enumerate(shown):
        last = index == len(shown) - 1 and not more
        lines.append(f"{indent}{'└─' if last else '├─'} {_describe_node(child)}")
        _render_children(child, indent + ("   " if last else "│  "), lines, max_children)
    if more:
        lines.append(f"{indent}└─ … {more} more")
