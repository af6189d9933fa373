"""The supervisor: an actor that starts children, watches them, and restarts them.

A supervisor is given its children as `ChildSpec`s. It starts them in order,
each only once the one before has started; if one fails to start, the ones
already running are stopped in reverse order and the supervisor fails to start,
naming the child. While running, it hears of each child's exit as a message
(see `supervision.supervised`), and reacts by its `Strategy` and the child's
`Restart` type, as long as its restart intensity allows: at most
``max_restarts`` restarts in ``max_seconds``. One more, and it gives up: it
stops its children in reverse order and exits, crashed, so that its own
supervisor decides. When it is stopped, it stops its children in reverse order
(a `DynamicSupervisor`: all at once),
each within its shutdown time, then killed.

The supervisor carries out plans made by `supervision.strategy` and counts with
`supervision.intensity`; the decisions live there.

Client API (each returns a future; use ``.get()`` at the edges, ``await`` on a
loop, or ``add_done_callback`` from an actor): `start_child`,
`terminate_child`, `restart_child`, `delete_child`, `which_children`,
`count_children`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pykka
from pykka._envelope import Envelope

from supervision._link import Link, await_started, fail_envelopes, spawn_linked
from supervision.child_spec import ChildKind, ChildSpec, Restart, Shutdown
from supervision.errors import (
    ChildNotFoundError,
    ChildRunningError,
    DuplicateChildError,
    InvalidChildSpecError,
    RestartIntensityExceededError,
    StartChildError,
)
from supervision.exits import KILLED, SHUTDOWN, Exit
from supervision.intensity import DEFAULT_MAX_RESTARTS, DEFAULT_MAX_SECONDS, RestartIntensity
from supervision.introspection import (
    ChildInfo,
    Describe,
    EventKind,
    EventStream,
    SupervisorInfo,
)
from supervision.registry import Registry
from supervision.strategy import Strategy, plan_restart, should_restart
from supervision.thread_actor import ThreadActor

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "DEFAULT_START_TIMEOUT_S",
    "ChildCounts",
    "Supervisor",
    "count_children",
    "delete_child",
    "restart_child",
    "start_child",
    "terminate_child",
    "which_children",
]

logger = logging.getLogger(__name__)

DEFAULT_START_TIMEOUT_S = 5.0
"""How long a child's ``on_start`` may take before the start counts as failed."""


# -- messages ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StartChild:
    """Add a child and start it. A dynamic supervisor also takes a bare start function."""

    spec: ChildSpec | Callable[[], pykka.ActorRef[Any]]


@dataclass(frozen=True)
class TerminateChild:
    """Stop a child; a supervisor keeps its spec, a dynamic supervisor forgets it."""

    child_id: str


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
class _ChildExited:
    link: Link
    exit: Exit


@dataclass(frozen=True)
class ChildCounts:
    """The answer to `count_children`, as OTP's ``count_children/1``."""

    specs: int
    active: int
    supervisors: int
    workers: int


# -- client API -------------------------------------------------------------------------


def start_child(
    supervisor: pykka.ActorRef[Any], spec: ChildSpec | Callable[[], pykka.ActorRef[Any]]
) -> pykka.Future[pykka.ActorRef[Any]]:
    """Add and start a child; the future holds its ref, or the `StartChildError`."""
    return supervisor.ask(StartChild(spec), block=False)


def terminate_child(supervisor: pykka.ActorRef[Any], child_id: str) -> pykka.Future[None]:
    """Stop the child within its shutdown time; it is not restarted."""
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


# -- the actor --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Stopping:
    """A child asked to stop, and until when it may take."""

    child: _Child
    link: Link
    restarting: bool
    deadline: float | None


@dataclass
class _Child:
    spec: ChildSpec
    ref: pykka.ActorRef[Any] | None = None
    link: Link | None = None
    restarts: int = 0

    @property
    def id(self) -> str:
        return self.spec.id

    def info(self) -> ChildInfo:
        alive = self.ref is not None and self.ref.is_alive()
        return ChildInfo(self.id, self.spec.kind, self.spec.restart, alive, self.restarts, self.ref)


class Supervisor(ThreadActor):
    """Supervises a fixed list of children by a strategy and a restart intensity."""

    def __init__(
        self,
        children: Sequence[ChildSpec] = (),
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        max_restarts: int = DEFAULT_MAX_RESTARTS,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        name: str = "supervisor",
        registry: Registry | None = None,
        events: EventStream | None = None,
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        if not isinstance(strategy, Strategy):
            raise TypeError(
                f"supervisor {name!r}: strategy must be Strategy.ONE_FOR_ONE, ONE_FOR_ALL "
                f"or REST_FOR_ONE, got {strategy!r}"
            )
        self.id = name
        self.strategy = strategy
        self._intensity = RestartIntensity(max_restarts, max_seconds, clock)
        self._registry = registry
        self._events = events if events is not None else EventStream()
        self._start_timeout_s = start_timeout_s
        self._children: dict[str, _Child] = {}
        self._by_link: dict[Link, _Child] = {}
        for spec in children:
            self._add(spec)

    @classmethod
    def child_spec(
        cls,
        id: str,
        children: Sequence[ChildSpec] = (),
        *,
        restart: Restart = Restart.PERMANENT,
        name: str | None = None,
        **options: Any,
    ) -> ChildSpec:
        """A spec for this supervisor as the child of another, as Elixir's
        ``child_spec/1``: kind supervisor, shutdown infinity, its id as its name."""
        return ChildSpec(
            id=id,
            start=lambda: cls.start(children, name=id, **options),
            restart=restart,
            shutdown=Shutdown.INFINITY,
            kind=ChildKind.SUPERVISOR,
            name=name,
        )

    # -- lifecycle -------------------------------------------------------------------

    def on_start(self) -> None:
        for child in list(self._children.values()):
            try:
                self._start_child(child)
            except StartChildError:
                self._stop_children()
                raise

    def on_stop(self) -> None:
        # A supervisor is stopped as a whole when its own supervisor restarts a
        # subtree, or when everything shuts down: either way, hold sends to its
        # children's names (a restart re-registers them; otherwise they expire).
        self._stop_children(restarting=True)

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop_children(restarting=True)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _ChildExited):
            return self._child_exited(message.link, message.exit)
        if isinstance(message, StartChild):
            return self._start_new(message.spec)
        if isinstance(message, TerminateChild):
            return self._terminate(message.child_id)
        if isinstance(message, RestartChild):
            return self._restart_terminated(message.child_id)
        if isinstance(message, DeleteChild):
            return self._delete(message.child_id)
        if isinstance(message, WhichChildren):
            return [child.info() for child in self._children.values()]
        if isinstance(message, CountChildren):
            return self._count()
        if isinstance(message, Describe):
            children = tuple(child.info() for child in self._children.values())
            return SupervisorInfo(self.id, self.strategy, children)
        return super().on_receive(message)

    # -- reacting to an exit ---------------------------------------------------------

    def _child_exited(self, link: Link, exit: Exit) -> None:
        child = self._by_link.pop(link, None)
        if child is None:
            return  # an incarnation we already stopped ourselves
        child.ref = child.link = None
        self._events.publish(self.id, child.id, EventKind.EXITED, str(exit))
        if not should_restart(child.spec.restart, crashed=exit.abnormal):
            self._unregister(child, link.leftovers)
            if child.spec.restart is Restart.TEMPORARY:
                del self._children[child.id]
            return
        self._suspend(child, link.leftovers)
        if not self._intensity.add_restart():
            self._give_up()
        plan = plan_restart(
            self.strategy,
            [(c.id, c.spec.restart) for c in self._children.values()],
            child.id,
            crashed=exit.abnormal,
        )
        for sibling_id in plan.stop:
            self._stop_child(self._children[sibling_id], restarting=sibling_id in plan.restart)
        for removed_id in plan.remove:
            del self._children[removed_id]
        for restart_id in plan.restart:
            self._restart(self._children[restart_id])

    def _restart(self, child: _Child) -> None:
        """Start the child again; a failed attempt counts as one more restart."""
        while True:
            try:
                self._start_child(child, restarting=True)
            except StartChildError as error:
                self._events.publish(self.id, child.id, EventKind.EXITED, error.reason)
                if not self._intensity.add_restart():
                    self._give_up()
                continue
            child.restarts += 1
            return

    def _give_up(self) -> None:
        intensity = self._intensity
        error = RestartIntensityExceededError(
            self.id, intensity.max_restarts, intensity.max_seconds
        )
        logger.error("%s; stopping its children", error)
        self._events.publish(self.id, None, EventKind.GAVE_UP, str(error))
        # Our own supervisor may restart us: hold sends to our children's names.
        self._stop_children(restarting=True)
        raise error

    # -- starting and stopping children ------------------------------------------------

    def _start_child(self, child: _Child, *, restarting: bool = False) -> pykka.ActorRef[Any]:
        ref, link = spawn_linked(child.id, child.spec.start, self._tell_exited)
        await_started(child.id, ref, link, self._start_timeout_s)
        return self._started(child, ref, link, restarting=restarting)

    def _started(
        self, child: _Child, ref: pykka.ActorRef[Any], link: Link, *, restarting: bool = False
    ) -> pykka.ActorRef[Any]:
        """Record a child whose ``on_start`` has returned: link, name, event."""
        child.ref, child.link = ref, link
        self._by_link[link] = child
        if child.spec.name is not None:
            self._registry_for(child).register(child.spec.name, ref)
        kind = EventKind.RESTARTED if restarting else EventKind.STARTED
        self._events.publish(self.id, child.id, kind)
        return ref

    def _tell_exited(self, link: Link, exit: Exit) -> None:
        # Runs in the dying child's thread: hand the news to our own thread.
        try:
            self.actor_ref.tell(_ChildExited(link, exit))
        except pykka.ActorDeadError:  # we are gone too; our own supervisor handles that
            fail_envelopes(link.leftovers, f"its supervisor {self.id!r} is gone")

    def _stop_child(self, child: _Child, *, restarting: bool = False) -> None:
        """Stop one child: ask it, wait up to its shutdown time, then kill it."""
        stopping = self._begin_stop(child, restarting=restarting)
        if stopping is not None:
            self._finish_stop(stopping)

    def _stop_children(self, *, restarting: bool = False) -> None:
        """Stop every child, one at a time, last started first (as OTP does:
        later children may depend on earlier ones)."""
        for child in reversed(list(self._children.values())):
            self._stop_child(child, restarting=restarting)

    def _begin_stop(self, child: _Child, *, restarting: bool) -> _Stopping | None:
        """Send the stop (or kill) without waiting; None if it was not running.
        When `restarting`, sends to its name are held rather than refused."""
        if restarting:
            self._suspend(child)
        else:
            self._unregister(child)
        link, ref = child.link, child.ref
        if link is None or ref is None:
            return None
        link.mute()
        self._by_link.pop(link, None)
        child.ref = child.link = None
        shutdown = child.spec.shutdown
        if shutdown is Shutdown.BRUTAL_KILL:
            link.kill(KILLED)
            return _Stopping(child, link, restarting, deadline=None)
        link.mark_shutdown()
        ref.stop(block=False)
        deadline = None if shutdown is Shutdown.INFINITY else time.monotonic() + float(shutdown)
        return _Stopping(child, link, restarting, deadline)

    def _finish_stop(self, stopping: _Stopping) -> None:
        """Wait for a stopping child until its deadline, then kill it."""
        child, link = stopping.child, stopping.link
        remaining = None if stopping.deadline is None else stopping.deadline - time.monotonic()
        if not link.exited.wait(None if remaining is None else max(0.0, remaining)):
            logger.warning(
                "%s: child %r did not stop within %s s; killing it",
                self.id,
                child.id,
                child.spec.shutdown,
            )
            link.kill(KILLED)
        if stopping.restarting:
            self._suspend(child, link.leftovers)
        else:
            fail_envelopes(link.leftovers, f"{child.id!r} was stopped by {self.id!r}")
        self._events.publish(self.id, child.id, EventKind.EXITED, str(link.exit or SHUTDOWN))

    def _kill(self, exit: Exit) -> list[Envelope[Any]]:
        # A supervisor killed outright cannot stop its children itself; as an
        # Erlang link would, the kill reaches them too, so none is orphaned.
        leftovers = super()._kill(exit)
        for child in reversed(list(self._children.values())):  # a snapshot, taken atomically
            link = child.link
            if link is not None:
                link.mute()
                link.kill(KILLED)
                self._suspend(child, link.leftovers)
        return leftovers

    # -- the client API, on our side ----------------------------------------------------

    def _start_new(self, spec: ChildSpec | Callable[[], pykka.ActorRef[Any]]) -> Any:
        if not isinstance(spec, ChildSpec):
            raise InvalidChildSpecError(
                f"supervisor {self.id!r}: start_child takes a ChildSpec, got {spec!r}"
            )
        child = self._add(spec)
        try:
            return self._start_child(child)
        except StartChildError:
            del self._children[spec.id]
            raise

    def _terminate(self, child_id: str) -> None:
        child = self._get(child_id)
        self._stop_child(child)

    def _restart_terminated(self, child_id: str) -> pykka.ActorRef[Any]:
        child = self._get(child_id)
        if child.ref is not None:
            raise ChildRunningError(
                f"{self.id!r}: child {child_id!r} is running; terminate it first"
            )
        return self._start_child(child)

    def _delete(self, child_id: str) -> None:
        child = self._get(child_id)
        if child.ref is not None:
            raise ChildRunningError(
                f"{self.id!r}: child {child_id!r} is running; terminate it before deleting"
            )
        del self._children[child_id]

    def _count(self) -> ChildCounts:
        children = self._children.values()
        return ChildCounts(
            specs=len(self._children),
            active=sum(1 for c in children if c.ref is not None and c.ref.is_alive()),
            supervisors=sum(1 for c in children if c.spec.kind is ChildKind.SUPERVISOR),
            workers=sum(1 for c in children if c.spec.kind is ChildKind.WORKER),
        )

    # -- bookkeeping ---------------------------------------------------------------------

    def _add(self, spec: ChildSpec) -> _Child:
        if not isinstance(spec, ChildSpec):
            raise InvalidChildSpecError(
                f"supervisor {self.id!r}: expected a ChildSpec, got {spec!r}"
            )
        if spec.id in self._children:
            raise DuplicateChildError(f"supervisor {self.id!r} already has a child {spec.id!r}")
        if spec.name is not None and self._registry is None:
            raise InvalidChildSpecError(
                f"child {spec.id!r} is to be registered as {spec.name!r}, "
                f"but supervisor {self.id!r} was given no registry"
            )
        child = self._children[spec.id] = _Child(spec)
        return child

    def _get(self, child_id: str) -> _Child:
        try:
            return self._children[child_id]
        except KeyError:
            raise ChildNotFoundError(f"supervisor {self.id!r} has no child {child_id!r}") from None

    def _registry_for(self, child: _Child) -> Registry:
        assert self._registry is not None, "checked when the child was added"
        return self._registry

    def _suspend(self, child: _Child, leftovers: list[Envelope[Any]] | None = None) -> None:
        """Hold sends to the child's name for its next incarnation, leftovers first."""
        if child.spec.name is not None:
            self._registry_for(child).suspend(child.spec.name, leftovers or ())
        else:
            fail_envelopes(leftovers or [], f"{child.id!r} exited before handling it")

    def _unregister(self, child: _Child, leftovers: list[Envelope[Any]] | None = None) -> None:
        if child.spec.name is not None:
            self._registry_for(child).unregister(child.spec.name)
        fail_envelopes(leftovers or [], f"{child.id!r} exited before handling it")
