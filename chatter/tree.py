"""Chatter's supervision tree.

    root (one_for_one)
     ├─ persistence   ThreadActor: the pool, group commit       (permanent)
     ├─ lease         ThreadActor: this node's lease on names   (permanent)
     ├─ presence      LoopActor: who holds which name           (permanent)
     ├─ room          LoopActor: fan-out to the sessions        (permanent)
     ├─ listener      ThreadActor: LISTENs for commits, wakes the room (permanent)
     └─ sessions      DynamicSupervisor                         (permanent)
          └─ session-N  LoopActor, one per WebSocket            (temporary)

Started in that order, each needing only those before it; stopped in reverse,
so sessions close before the room, presence and the database go. one_for_one,
because each child rebuilds its own state (presence asks the sessions, the
room reads the sessions group) and none depends on another's incarnation.
Sessions are temporary: a crashed session's client reconnects and resumes, and
its crash never spends the root's restart budget.

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
from dataclasses import dataclass
from typing import Any

import pykka

from chatter import lease, persistence, presence, room
from chatter.commit_listener import CommitListener
from chatter.connection import Connection, SessionContext
from chatter.lease import LeaseActor
from chatter.logs import log_supervision_event
from chatter.metrics import ChatMetrics
from chatter.persistence_actor import PersistenceActor
from chatter.presence import Release
from chatter.presence_actor import PresenceActor
from chatter.reply import Named
from chatter.room import RoomActor
from chatter.session import SessionActor
from chatter.session_client import SessionClient
from chatter.throttle import NameClaimLimits
from supervision import (
    ChildSpec,
    DynamicSupervisor,
    EventKind,
    EventStream,
    Future,
    NameNotRegisteredError,
    NameUnavailableError,
    Registry,
    Restart,
    SupervisionError,
    SupervisionEvent,
    Supervisor,
    start_child,
    start_link,
)
from supervision.exits import Exit

__all__ = [
    "LEASE",
    "LISTENER",
    "PERMANENT_CHILDREN",
    "SESSIONS",
    "ActorState",
    "ChatTree",
    "start_tree",
]

SESSIONS = "sessions"
"""The id (and registered name) of the sessions supervisor."""

LEASE = lease.NAME
"""The id (and registered name) of the lease actor."""

LISTENER = "listener"
"""The id (and registered name) of the commit listener."""

PERMANENT_CHILDREN = (persistence.NAME, LEASE, presence.NAME, room.NAME, LISTENER, SESSIONS)
"""The root's children, in start order; each is registered under its id."""


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

    def open_session(
        self, session_id: str, connection: Connection, *, after: int | None, token: str | None
    ) -> SessionClient:
        """Start a session for `connection`; the handle the web layer talks to
        it through. If no session can be started, the connection is closed
        with 1013 (try again later)."""
        try:
            starting = self.start_session(session_id, connection, after=after, token=token)
        except SupervisionError as error:
            starting = Future()
            starting.set_exception((type(error), error, None))
        return SessionClient(starting, connection, self.loop)

    def start_session(
        self,
        session_id: str,
        connection: Connection,
        *,
        after: int | None,
        token: str | None,
    ) -> pykka.Future[pykka.ActorRef[Any]]:
        """Start a session actor under the sessions supervisor; the future holds its ref."""
        sessions = self.registry.whereis(SESSIONS)
        if sessions is None:
            raise NameUnavailableError("the sessions supervisor is restarting")
        spec = ChildSpec(
            id=session_id,
            start=functools.partial(
                SessionActor.start,
                session_id,
                connection,
                self.context,
                after=after,
                token=token,
                loop=self.loop,
            ),
            restart=Restart.TEMPORARY,
            shutdown=2.0,
        )
        return start_child(sessions, spec)

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
) -> ChatTree:
    """Start the whole tree and return once every child has started. Blocks:
    call it off the event loop (the loop actors start on it). `name_claims`
    limits how fast names are taken (default: the contract's limits);
    `node_id` names this node's lease."""
    registry, events, metrics = Registry(), EventStream(), ChatMetrics()
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
        DynamicSupervisor.child_spec(
            SESSIONS, name=SESSIONS, max_children=max_sessions, registry=registry, events=events
        ),
    ]
    events.subscribe(functools.partial(_release_exited_session, registry))
    events.subscribe(log_supervision_event)
    spec = Supervisor.child_spec("root", children, registry=registry, events=events)

    def exited(exit: Exit) -> None:
        if on_exit is not None:
            on_exit(exit)

    root = start_link(spec, on_exit=exited)
    return ChatTree(root, registry, events, context, loop, metrics)


def _release_exited_session(registry: Registry, event: SupervisionEvent) -> None:
    """A session that died without a word (killed) still frees its name: the
    sessions supervisor's exit event is the monitor that says so."""
    if event.supervisor == SESSIONS and event.kind is EventKind.EXITED and event.child:
        # A restarting presence rebuilds from the live sessions anyway.
        with contextlib.suppress(NameNotRegisteredError, NameUnavailableError):
            registry.tell(presence.NAME, Release(event.child))
