"""Chatter's supervision tree.

    root (one_for_one)
     ├─ persistence   ThreadActor: the pool, group commit       (permanent)
     ├─ lease         ThreadActor: this node's lease on names   (permanent)
     ├─ presence      LoopActor: who holds which name           (permanent)
     ├─ room          LoopActor: fan-out to the sessions        (permanent)
     ├─ listener      ThreadActor: LISTENs for commits, wakes the room (permanent)
     └─ sessions      PartitionSupervisor                       (permanent)
          └─ sessions.P   DynamicSupervisor, one per partition  (permanent)
               └─ session-N  LoopActor, one per WebSocket       (temporary)

Started in that order, each needing only those before it; stopped in reverse,
so sessions close before the room, presence and the database go. one_for_one,
because each child rebuilds its own state (presence asks the sessions, the
room reads the sessions group) and none depends on another's incarnation.
Sessions are temporary: a crashed session's client reconnects and resumes, and
its crash never spends the root's restart budget.

Sessions are started through several partitions (`supervision.PartitionSupervisor`,
as Elixir's): a session's id picks its partition, registered under the
partition's id, so a crowd of connections queues at several supervisors, not
one, and each partition's list is a share of the sessions. Every partition
may hold `max_sessions`: the exact total is the web layer's cap, checked
before a WebSocket is upgraded (`web.limits`), so no session is refused for
falling in a fuller partition; the partitions' bound is the backstop behind it.

The loop actors run on the web server's event loop, so fan-out to sessions and
their socket writes need no thread hand-off.

The tree owns its metrics (`ChatMetrics`, a Prometheus registry of its own,
handed to the actors that count), so counts survive an actor's restart; and
`ChatTree.actor_states` says, without asking any actor, which parts are alive,
being restarted or down, for ``/healthz``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
from dataclasses import dataclass
from typing import Any

import pykka

from chatter import lease, persistence, presence, room
from chatter.commit_listener import CommitListener
from chatter.connection import Connection, SessionContext
from chatter.lease import LeaseActor
from chatter.logs import log_supervision_event, quiet_injected_crashes
from chatter.metrics import ChatMetrics
from chatter.persistence_actor import PersistenceActor
from chatter.presence import Release
from chatter.presence_actor import PresenceActor
from chatter.reply import Named
from chatter.room import RoomActor
from chatter.session import SessionActor
from chatter.session_client import SessionClient
from chatter.sessions import SESSIONS, is_sessions_partition
from chatter.throttle import NameClaimLimits
from supervision import (
    ChildSpec,
    DynamicSupervisor,
    EventKind,
    EventStream,
    NameNotRegisteredError,
    NameUnavailableError,
    Partitions,
    PartitionSupervisor,
    Registry,
    Restart,
    SupervisionError,
    SupervisionEvent,
    Supervisor,
    adopt_child,
    start_link,
)
from supervision.exits import Exit

__all__ = [
    "LEASE",
    "LISTENER",
    "PERMANENT_CHILDREN",
    "SESSIONS",
    "SESSION_PARTITIONS",
    "ActorState",
    "ChatTree",
    "is_sessions_partition",
    "start_tree",
]

logger = logging.getLogger(__name__)

SESSION_PARTITIONS = 4
"""Partitions of the sessions supervisor unless `start_tree` is told otherwise.
A small fixed number, not one per CPU: the partitions are threads of one
interpreter (and its lock), so what they spread is the queue of starts and
exits and the list each supervisor keeps and describes, not CPU time. One or
four connect 10,000 clients in the same time (docs/PERFORMANCE.md, scenario 3);
four keep each supervisor's list at a quarter of the sessions."""

LEASE = lease.NAME
"""The id (and registered name) of the lease actor."""

LISTENER = "listener"
"""The id (and registered name) of the commit listener."""

PERMANENT_CHILDREN = (persistence.NAME, LEASE, presence.NAME, room.NAME, LISTENER, SESSIONS)
"""The root's children, in start order; each is registered under its id."""


class _SessionStart:
    """How a session's supervisor starts it: `SessionActor.start` with what the
    session is given. A callable of its own rather than a `functools.partial`,
    whose keyword arguments make a dict: the spec, and so this, is kept as
    long as the session runs, one per connection."""

    __slots__ = ("_after", "_connection", "_context", "_loop", "_session_id", "_token")

    def __init__(
        self,
        session_id: str,
        connection: Connection,
        context: SessionContext,
        loop: asyncio.AbstractEventLoop,
        after: int | None,
        token: str | None,
    ) -> None:
        self._session_id = session_id
        self._connection = connection
        self._context = context
        self._loop = loop
        self._after = after
        self._token = token

    def __call__(self) -> pykka.ActorRef[Any]:
        return SessionActor.start(
            self._session_id,
            self._connection,
            self._context,
            after=self._after,
            token=self._token,
            loop=self._loop,
        )

    def __repr__(self) -> str:
        return f"<start of {self._session_id}>"


class ActorState(enum.Enum):
    """How a part of the tree is doing, as ``/healthz`` reports it."""

    ALIVE = "alive"
    RESTARTING = "restarting"
    """Dead, and its supervisor (alive) is starting it again: the tree at work."""
    DOWN = "down"
    """Dead with nobody to restart it: the root gave up or was stopped."""


@dataclass
class ChatTree:
    """The running tree and what the web layer needs to reach it."""

    root: pykka.ActorRef[Any]
    registry: Registry
    events: EventStream
    context: SessionContext
    loop: asyncio.AbstractEventLoop
    metrics: ChatMetrics
    """This tree's metrics (its own Prometheus registry), served at ``/metrics``."""
    sessions: Partitions
    """Where the sessions supervisor's partitions are: a session id picks one."""
    restart_delay_s: float = 0.0
    """How long the root waits before restarting a child: 0 but in a lesson
    (``CHATTER_RESTART_DELAY_MS``, dev and test only)."""

    def open_session(
        self, session_id: str, connection: Connection, *, after: int | None, token: str | None
    ) -> SessionClient:
        """Start a session for `connection`; the handle the web layer talks to
        it through. If no session can be started, the connection is closed
        with 1013 (try again later)."""
        try:
            session = self.start_session(session_id, connection, after=after, token=token)
        except SupervisionError as error:
            logger.warning("Could not start a session: %s", error)
            return SessionClient(None, connection)
        return SessionClient(session, connection)

    def start_session(
        self,
        session_id: str,
        connection: Connection,
        *,
        after: int | None,
        token: str | None,
    ) -> pykka.ActorRef[Any]:
        """Start a session actor here, on the loop, and hand it to the sessions
        partition its id picks (`adopt_child`: no hop to the partition's thread
        and back per connection); its ref. Runs on the loop."""
        partition = self.sessions.id_for(session_id)
        sessions = self.registry.whereis(partition)
        if sessions is None:
            raise NameUnavailableError(f"the sessions supervisor {partition} is restarting")
        start = _SessionStart(session_id, connection, self.context, self.loop, after, token)
        spec = ChildSpec(id=session_id, start=start, restart=Restart.TEMPORARY, shutdown=2.0)
        try:
            return adopt_child(sessions, spec)
        except pykka.ActorDeadError:
            raise NameUnavailableError(
                f"the sessions supervisor {partition} is restarting"
            ) from None

    def actor_states(self) -> dict[str, ActorState]:
        """The root's state and each permanent child's, read from the registry
        without asking any actor (so it never blocks, and works when the tree
        is wedged). A dead child under a live root counts as restarting: a root
        that cannot restart a child gives up and dies itself, and then every
        part is down."""
        root_alive = self.root.is_alive()
        states = {"root": ActorState.ALIVE if root_alive else ActorState.DOWN}
        for name in PERMANENT_CHILDREN:
            ref = self.registry.whereis(name)
            if ref is not None and ref.is_alive():
                states[name] = ActorState.ALIVE
            else:
                states[name] = ActorState.RESTARTING if root_alive else ActorState.DOWN
        return states

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the tree, children in reverse order. Blocks: not on the loop."""
        self.root.stop(block=True, timeout=timeout_s)


def start_tree(
    conninfo: str,
    secret: bytes,
    loop: asyncio.AbstractEventLoop,
    *,
    max_sessions: int | None = None,
    on_exit: Any = None,
    name_claims: NameClaimLimits | None = None,
    node_id: str = "node",
    session_partitions: int = SESSION_PARTITIONS,
    restart_delay_s: float = 0.0,
) -> ChatTree:
    """Start the whole tree and return once every child has started. Blocks:
    call it off the event loop (the loop actors start on it). `name_claims`
    limits how fast names are taken (default: the contract's limits);
    `node_id` names this node's lease; `session_partitions` is how many
    supervisors sessions are started through; `restart_delay_s` slows the
    root's restarts down for a lesson (`Settings.restart_delay_s`)."""
    registry, events, metrics = Registry(), EventStream(), ChatMetrics()
    sessions = Partitions(SESSIONS, session_partitions)
    metrics.observe_tree(registry, events, room.SESSIONS_GROUP)
    claims = name_claims if name_claims is not None else NameClaimLimits()
    context = SessionContext(registry, secret, metrics=metrics, name_claims=claims)
    children = [
        ChildSpec(
            persistence.NAME,
            functools.partial(PersistenceActor.start, conninfo, registry=registry, metrics=metrics),
            name=persistence.NAME,
        ),
        ChildSpec(
            LEASE,
            functools.partial(LeaseActor.start, conninfo, node_id, Named(registry, presence.NAME)),
            name=LEASE,
        ),
        ChildSpec(
            presence.NAME,
            functools.partial(
                PresenceActor.start,
                registry,
                loop=loop,
                metrics=metrics,
                address_claims=claims.per_address,
            ),
            name=presence.NAME,
        ),
        ChildSpec(
            room.NAME,
            functools.partial(RoomActor.start, registry, loop=loop, metrics=metrics),
            name=room.NAME,
        ),
        ChildSpec(
            LISTENER,
            functools.partial(
                CommitListener.start,
                conninfo,
                Named(registry, room.NAME),
                presence=Named(registry, presence.NAME),
            ),
            name=LISTENER,
        ),
        PartitionSupervisor.child_spec(
            SESSIONS,
            functools.partial(_sessions_partition, registry, events, max_sessions),
            partitions=sessions.count,
            name=SESSIONS,
            registry=registry,
            events=events,
        ),
    ]
    events.subscribe(functools.partial(_release_exited_session, registry))
    events.subscribe(log_supervision_event)
    quiet_injected_crashes()
    spec = Supervisor.child_spec(
        "root", children, registry=registry, events=events, restart_delay_s=restart_delay_s
    )

    def exited(exit: Exit) -> None:
        if on_exit is not None:
            on_exit(exit)

    root = start_link(spec, on_exit=exited)
    return ChatTree(root, registry, events, context, loop, metrics, sessions, restart_delay_s)


def _sessions_partition(
    registry: Registry, events: EventStream, max_sessions: int | None, partition_id: str
) -> ChildSpec:
    """One partition of the sessions supervisor, registered under its id."""
    return DynamicSupervisor.child_spec(
        partition_id,
        name=partition_id,
        max_children=max_sessions,
        registry=registry,
        events=events,
    )


def _release_exited_session(registry: Registry, event: SupervisionEvent) -> None:
    """A session that died without a word (killed) still frees its name: its
    partition's exit event is the monitor that says so."""
    if is_sessions_partition(event.supervisor) and event.kind is EventKind.EXITED and event.child:
        # A restarting presence rebuilds from the live sessions anyway.
        with contextlib.suppress(NameNotRegisteredError, NameUnavailableError):
            registry.tell(presence.NAME, Release(event.child))
