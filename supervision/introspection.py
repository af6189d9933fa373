"""Looking at a running tree: its shape as data, and a stream of what happens.

`describe_tree` asks each supervisor for its children and builds an immutable
`TreeNode` tree, ready to render or to serialise (``to_dict`` gives the shape of
Chatter's ``/api/supervision``). An `EventStream` carries every start, exit,
restart and surrender as a `SupervisionEvent` to whoever subscribed; the live
supervision page and the fault tests are its observers.
"""

from __future__ import annotations

import collections
import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka

from supervision.child_spec import ChildKind, Restart
from supervision.strategy import Strategy

__all__ = [
    "ChildInfo",
    "Describe",
    "EventKind",
    "EventStream",
    "SupervisionEvent",
    "SupervisorInfo",
    "TreeNode",
    "describe_tree",
    "find_actor",
    "render_tree",
]

logger = logging.getLogger(__name__)


class EventKind(enum.Enum):
    """What happened to a child."""

    STARTED = "started"
    EXITED = "exited"
    RESTARTED = "restarted"
    GAVE_UP = "gave_up"
    """The supervisor itself exceeded its restart intensity (``child`` is None)."""


@dataclass(frozen=True)
class SupervisionEvent:
    """One thing that happened in the tree."""

    time: float
    """Wall-clock time, seconds since the epoch."""
    supervisor: str
    """The id of the supervisor that saw it."""
    child: str | None
    """The child it happened to; None when it is about the supervisor itself."""
    kind: EventKind
    reason: str | None = None
    """For an exit, why (``normal``, ``shutdown``, ``killed``, ``crashed: ...``);
    for giving up, the intensity that was exceeded."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "supervisor": self.supervisor,
            "child": self.child,
            "kind": self.kind.value,
            "reason": self.reason,
        }


Subscriber = Callable[[SupervisionEvent], None]


class EventStream:
    """Fan-out of supervision events to subscribers, with a short memory.

    Subscribers are called in the thread of the supervisor that publishes, in
    the order events happen; they must be quick and must not block (tell an
    actor, or hand over with ``call_soon_threadsafe``). A subscriber that raises
    is logged and kept.
    """

    def __init__(self, keep: int = 200, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._subscribers: list[Subscriber] = []
        self._recent: collections.deque[SupervisionEvent] = collections.deque(maxlen=keep)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Start calling `subscriber` with every event; returns the unsubscribe."""
        with self._lock:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return unsubscribe

    def recent(self) -> list[SupervisionEvent]:
        """The last events, oldest first (as many as `keep`)."""
        with self._lock:
            return list(self._recent)

    def publish(
        self,
        supervisor: str,
        child: str | None,
        kind: EventKind,
        reason: str | None = None,
    ) -> SupervisionEvent:
        event = SupervisionEvent(self.clock(), supervisor, child, kind, reason)
        with self._lock:
            self._recent.append(event)
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception:
                logger.exception("Supervision event subscriber %r failed", subscriber)
        return event


@dataclass(frozen=True)
class Describe:
    """Ask a supervisor for its `SupervisorInfo`."""


@dataclass(frozen=True)
class ChildInfo:
    """One child as its supervisor sees it."""

    id: str
    kind: ChildKind
    restart: Restart
    alive: bool
    restarts: int
    """How often the supervisor restarted this child."""
    ref: pykka.ActorRef[Any] | None


@dataclass(frozen=True)
class SupervisorInfo:
    """A supervisor's answer to being described."""

    id: str
    strategy: Strategy
    children: tuple[ChildInfo, ...]


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


def describe_tree(supervisor: pykka.ActorRef[Any], *, timeout_s: float = 5.0) -> TreeNode:
    """The tree under `supervisor`, asked level by level. Blocks: call it from a
    thread of its own (not from an actor or an event loop)."""
    info: SupervisorInfo = supervisor.ask(Describe(), block=False).get(timeout=timeout_s)
    return _node(info, alive=True, restarts=0, restart=None, timeout_s=timeout_s)


def _node(
    info: SupervisorInfo, *, alive: bool, restarts: int, restart: Restart | None, timeout_s: float
) -> TreeNode:
    children: list[TreeNode] = []
    for child in info.children:
        sub: SupervisorInfo | None = None
        if child.kind is ChildKind.SUPERVISOR and child.ref is not None:
            try:
                sub = child.ref.ask(Describe(), block=False).get(timeout=timeout_s)
            except pykka.ActorDeadError:
                sub = None  # it died while we looked; shown as not alive
        if sub is not None:
            children.append(
                _node(
                    sub,
                    alive=child.alive,
                    restarts=child.restarts,
                    restart=child.restart,
                    timeout_s=timeout_s,
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
    )


def find_actor(
    supervisor: pykka.ActorRef[Any], node_id: str, *, timeout_s: float = 5.0
) -> pykka.ActorRef[Any] | None:
    """The running actor with id `node_id` in the tree under `supervisor` (the
    root itself included), or None. Blocks, like `describe_tree`."""
    if node_id == _own_id(supervisor, timeout_s):
        return supervisor
    pending = [supervisor]
    while pending:
        info: SupervisorInfo = pending.pop(0).ask(Describe(), block=False).get(timeout=timeout_s)
        for child in info.children:
            if child.ref is None:
                continue
            if child.id == node_id:
                return child.ref if child.ref.is_alive() else None
            if child.kind is ChildKind.SUPERVISOR:
                pending.append(child.ref)
    return None


def _own_id(supervisor: pykka.ActorRef[Any], timeout_s: float) -> str:
    info: SupervisorInfo = supervisor.ask(Describe(), block=False).get(timeout=timeout_s)
    return info.id


def render_tree(node: TreeNode, *, max_children: int = 20) -> str:
    """The tree as indented text, one node a line, as a terminal shows it::

        root  supervisor one_for_one  alive
        ├─ room  worker permanent  alive  restarts 1
        └─ sessions  supervisor one_for_one  alive
           └─ session-1  worker temporary  alive

    A supervisor with more than `max_children` children shows that many and a count.
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
    for index, child in enumerate(shown):
        last = index == len(shown) - 1 and len(children) <= max_children
        lines.append(f"{indent}{'└─' if last else '├─'} {_describe_node(child)}")
        _render_children(child, indent + ("   " if last else "│  "), lines, max_children)
    if len(children) > max_children:
        lines.append(f"{indent}└─ … {len(children) - max_children} more")
