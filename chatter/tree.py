"""Chatter's supervision tree.

    root (one_for_one)
     ├─ persistence   ThreadActor: the pool, group commit       (permanent)
     ├─ presence      LoopActor: who holds which name           (permanent)
     ├─ room          LoopActor: fan-out to the sessions        (permanent)
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
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from dataclasses import dataclass
from typing import Any

import pykka

from chatter import persistence, presence, room
from chatter.logs import log_supervision_event
from chatter.persistence import PersistenceActor
from chatter.presence import PresenceActor, Release
from chatter.room import RoomActor
from chatter.session import Connection, SessionActor, SessionContext
from supervision import (
    ChildSpec,
    DynamicSupervisor,
    EventKind,
    EventStream,
    NameNotRegisteredError,
    NameUnavailableError,
    Registry,
    Restart,
    SupervisionEvent,
    Supervisor,
    start_child,
    start_link,
)
from supervision.exits import Exit

__all__ = ["SESSIONS", "ChatTree", "start_tree"]

SESSIONS = "sessions"
"""The id (and registered name) of the sessions supervisor."""


@dataclass
class ChatTree:
    """The running tree and what the web layer needs to reach it."""

    root: pykka.ActorRef[Any]
    registry: Registry
    events: EventStream
    context: SessionContext
    loop: asyncio.AbstractEventLoop

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
) -> ChatTree:
    """Start the whole tree and return once every child has started. Blocks:
    call it off the event loop (the loop actors start on it)."""
    registry, events = Registry(), EventStream()
    context = SessionContext(registry, secret)
    children = [
        ChildSpec(
            persistence.NAME,
            functools.partial(PersistenceActor.start, conninfo),
            name=persistence.NAME,
        ),
        ChildSpec(
            presence.NAME,
            functools.partial(PresenceActor.start, registry, loop=loop),
            name=presence.NAME,
        ),
        ChildSpec(
            room.NAME, functools.partial(RoomActor.start, registry, loop=loop), name=room.NAME
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
    return ChatTree(root, registry, events, context, loop)


def _release_exited_session(registry: Registry, event: SupervisionEvent) -> None:
    """A session that died without a word (killed) still frees its name: the
    sessions supervisor's exit event is the monitor that says so."""
    if event.supervisor == SESSIONS and event.kind is EventKind.EXITED and event.child:
        # A restarting presence rebuilds from the live sessions anyway.
        with contextlib.suppress(NameNotRegisteredError, NameUnavailableError):
            registry.tell(presence.NAME, Release(event.child))
