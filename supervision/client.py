"""The client API of a supervisor: the messages it answers, and the functions
that send them.

A running supervisor is managed by asking it, as OTP's ``supervisor`` module
does with ``start_child/2``, ``terminate_child/2`` and the rest. Each function
here sends one message and returns a future at once: ``.get()`` it at the edges
(tests, the CLI, start-up), ``await`` it on an event loop, or give it a
callback (``add_done_callback``) from an actor. The supervisor handles the
message in its own thread, one at a time, in `supervision.supervisor`.

=====================================  =================================================
function                               the future holds
=====================================  =================================================
`start_child` (sup, spec)              the new child's ref (None if it declined:
                                       `Ignore`), or its `StartChildError`
`terminate_child` (sup, child_id)      None once the child has stopped (a dynamic
                                       supervisor also takes the child's ref)
`restart_child` (sup, child_id)        the ref of a terminated child started again
`delete_child` (sup, child_id)         None once a terminated child's spec is forgotten
`which_children` (sup)                 a `ChildInfo` per child, in start order
`count_children` (sup)                 a `ChildCounts`
`count_restarts` (sup)                 a `RestartCount`: restarts in the current window
=====================================  =================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka

from supervision.child_spec import ChildKind, ChildSpec, Restart
from supervision.strategy import Strategy

__all__ = [
    "ChildCounts",
    "ChildFound",
    "ChildInfo",
    "CountChildren",
    "CountRestarts",
    "DeleteChild",
    "Describe",
    "FindChild",
    "RestartChild",
    "RestartCount",
    "StartChild",
    "SupervisorInfo",
    "TerminateChild",
    "WhichChildren",
    "count_children",
    "count_restarts",
    "delete_child",
    "restart_child",
    "start_child",
    "terminate_child",
    "which_children",
]


# -- the messages --------------------------------------------------------------------------


@dataclass(frozen=True)
class StartChild:
    """Add a child and start it. A dynamic supervisor also takes a bare start function."""

    spec: ChildSpec | Callable[[], pykka.ActorRef[Any]]


@dataclass(frozen=True)
class TerminateChild:
    """Stop a child; a supervisor keeps its spec, a dynamic supervisor forgets it."""

    child_id: str | pykka.ActorRef[Any]
    """The child's id; for a dynamic supervisor, also the ref `start_child`
    returned (Elixir's ``DynamicSupervisor.terminate_child(sup, pid)``)."""


@dataclass(frozen=True)
class RestartChild:
    """Start again a child that was terminated."""

    child_id: str


@dataclass(frozen=True)
class DeleteChild:
    """Forget the spec of a terminated child."""

    child_id: str


@dataclass(frozen=True)
class WhichChildren:
    """List the children as `ChildInfo`s, in start order."""


@dataclass(frozen=True)
class CountChildren:
    """Count the children as `ChildCounts`."""


@dataclass(frozen=True)
class CountRestarts:
    """Ask for the `RestartCount`."""


@dataclass(frozen=True)
class Describe:
    """Ask a supervisor for its `SupervisorInfo` (see `supervision.introspection`):
    its children from the `offset`-th, at most `limit` of them (None: all), in
    start order. A supervisor of ten thousand children answers a page of them
    as fast as a supervisor of a page."""

    limit: int | None = None
    offset: int = 0


@dataclass(frozen=True)
class FindChild:
    """Ask a supervisor for its child `child_id`, answered with a `ChildFound`:
    a lookup by id, not a listing (see `supervision.introspection.find_actor`)."""

    child_id: str


# -- the answers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ChildInfo:
    """One child as its supervisor sees it, as OTP's ``which_children/1`` gives it."""

    id: str
    kind: ChildKind
    restart: Restart
    alive: bool
    restarts: int
    """How often the supervisor restarted this child."""
    ref: pykka.ActorRef[Any] | None
    """The running incarnation; None while the child is not running."""
    restarting: bool = False
    """Whether a failed restart of the child is to be tried again (OTP's
    ``restarting`` in place of a pid); it is not running meanwhile."""


@dataclass(frozen=True)
class ChildCounts:
    """The answer to `count_children`, as OTP's ``count_children/1``."""

    specs: int
    """Children known, running or not."""
    active: int
    """Children running."""
    supervisors: int
    """Children of kind supervisor, running or not."""
    workers: int
    """Children of kind worker, running or not."""


@dataclass(frozen=True)
class RestartCount:
    """The answer to `count_restarts`: what OTP keeps in the supervisor's state
    (``sys:get_state``) and a test or a live page may want to see."""

    restarts: int
    """Restarts that still count against the intensity, as of now."""
    max_restarts: int
    """How many it allows..."""
    max_seconds: float
    """...within how many seconds."""
    ages_s: tuple[float, ...] = ()
    """How long ago each of the `restarts` happened, in seconds, oldest first."""


@dataclass(frozen=True)
class SupervisorInfo:
    """A supervisor's answer to `Describe`."""

    id: str
    strategy: Strategy
    children: tuple[ChildInfo, ...]
    """The children asked for (a page of them when `Describe` set a limit)."""
    count: int = 0
    """How many children it has in all, listed or not."""
    intensity: RestartCount | None = None
    """Its restart intensity and the restarts that count against it now."""


@dataclass(frozen=True)
class ChildFound:
    """A supervisor's answer to `FindChild`."""

    child: ChildInfo | None
    """The child with that id, if this supervisor has one."""
    supervisors: tuple[pykka.ActorRef[Any], ...]
    """Its running children that are supervisors: where to look next."""


# -- the functions -------------------------------------------------------------------------


def start_child(
    supervisor: pykka.ActorRef[Any], spec: ChildSpec | Callable[[], pykka.ActorRef[Any]]
) -> pykka.Future[pykka.ActorRef[Any]]:
    """Add and start a child; the future holds its ref, or the `StartChildError`."""
    return supervisor.ask(StartChild(spec), block=False)


def terminate_child(
    supervisor: pykka.ActorRef[Any], child_id: str | pykka.ActorRef[Any]
) -> pykka.Future[None]:
    """Stop the child within its shutdown time; it is not restarted. A dynamic
    supervisor also takes the child's ref; a ref that is not its child's is
    `ChildNotFoundError`, and that actor is left alone."""
    return supervisor.ask(TerminateChild(child_id), block=False)


def restart_child(
    supervisor: pykka.ActorRef[Any], child_id: str
) -> pykka.Future[pykka.ActorRef[Any]]:
    """Start a terminated child again from its spec."""
    return supervisor.ask(RestartChild(child_id), block=False)


def delete_child(supervisor: pykka.ActorRef[Any], child_id: str) -> pykka.Future[None]:
    """Forget a terminated child's spec."""
    return supervisor.ask(DeleteChild(child_id), block=False)


def which_children(supervisor: pykka.ActorRef[Any]) -> pykka.Future[list[ChildInfo]]:
    """The children in start order."""
    return supervisor.ask(WhichChildren(), block=False)


def count_children(supervisor: pykka.ActorRef[Any]) -> pykka.Future[ChildCounts]:
    """How many children, by state and kind."""
    return supervisor.ask(CountChildren(), block=False)


def count_restarts(supervisor: pykka.ActorRef[Any]) -> pykka.Future[RestartCount]:
    """How many restarts count against the supervisor's intensity now."""
    return supervisor.ask(CountRestarts(), block=False)
