"""The supervisor: an actor that starts children, watches them, and restarts them.

A supervisor is given its children as `ChildSpec`s. It starts them in order,
each only once the one before has started; if one fails to start, the ones
already running are stopped in reverse order and the supervisor fails to start,
naming the child. While running, it hears of each child's exit as a message
(see `supervision.supervised`), and reacts by its `Strategy` and the child's
`Restart` type, as long as its restart intensity allows: at most
``max_restarts`` restarts in ``max_seconds``. One more, and it gives up: it
stops its children in reverse order and exits, crashed, so that its own
supervisor decides. A restart whose start fails is tried again by a message
the supervisor sends itself (OTP's ``try_again_restart``), each attempt
counting as a restart: between attempts it serves its calls, and a stop.
When it is stopped, it stops its children in reverse order (a
`DynamicSupervisor`: all at once), each within its shutdown time, then killed.

The decisions live elsewhere, and this actor only carries them out: which
children a restart takes is `supervision.strategy`'s, whether one more restart
is allowed `supervision.intensity`'s, how a child is stopped and what becomes
of its name `supervision._shutdown`'s. Its client API (`start_child` and the
rest) is in `supervision.client`.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pykka

from supervision._link import ChildExited, ExitReporter, Link, await_started, spawn_linked
from supervision._pykka import fail_envelopes
from supervision._shutdown import Stopping, begin_stop, finish_stop, hold_name, release_name
from supervision.adoption import AdoptChild, AdoptChildren
from supervision.child_spec import ChildKind, ChildSpec, Restart
from supervision.client import (
    ChildCounts,
    ChildFound,
    ChildInfo,
    CountChildren,
    CountRestarts,
    DeleteChild,
    Describe,
    FindChild,
    RestartChild,
    RestartCount,
    StartChild,
    SupervisorInfo,
    TerminateChild,
    WhichChildren,
)
from supervision.errors import (
    AlreadyPresentError,
    AlreadyStartedError,
    ChildNotFoundError,
    ChildRestartingError,
    ChildRunningError,
    DuplicateChildError,
    Ignore,
    InvalidChildSpecError,
    NameTakenError,
    RestartIntensityExceededError,
    StartChildError,
    SupervisionError,
)
from supervision.events import EventKind, EventStream
from supervision.exits import KILLED, Exit, ExitReason
from supervision.intensity import DEFAULT_MAX_RESTARTS, DEFAULT_MAX_SECONDS, RestartIntensity
from supervision.registry import Registry
from supervision.strategy import Strategy, plan_restart, should_restart
from supervision.thread_actor import ThreadActor

if TYPE_CHECKING:
    from types import TracebackType

    from supervision._pykka import Envelope

__all__ = ["DEFAULT_START_TIMEOUT_S", "Supervisor"]

logger = logging.getLogger(__name__)

DEFAULT_START_TIMEOUT_S = 5.0
"""How long a child's ``on_start`` may take before the start counts as failed."""


@dataclass(slots=True)
class _Child:
    """The supervisor's record of one child: its spec, and its running incarnation."""

    spec: ChildSpec
    ref: pykka.ActorRef[Any] | None = None
    link: Link | None = None
    restarts: int = 0
    restarting: bool = False
    """A restart of it failed and is to be tried again (`_TryAgainRestart`)."""

    @property
    def id(self) -> str:
        return self.spec.id

    def info(self) -> ChildInfo:
        alive = self.ref is not None and self.ref.is_alive()
        return ChildInfo(
            self.id,
            self.spec.kind,
            self.spec.restart,
            alive,
            self.restarts,
            self.ref,
            self.restarting,
        )


@dataclass(frozen=True, slots=True)
class _TryAgainRestart:
    """Sent by a supervisor to itself when a restart failed: OTP's
    ``{try_again_restart, Id}``. Queued behind what it has received meanwhile,
    so that calls and a stop are served before the next attempt."""

    child_id: str


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
        restart_delay_s: float = 0.0,
    ) -> None:
        """`restart_delay_s` is not OTP's: a pause before each restart, for
        teaching (a restart is otherwise over before anyone sees it). Leave it
        0 anywhere but a lesson."""
        super().__init__()
        if not isinstance(restart_delay_s, int | float) or restart_delay_s < 0:
            raise ValueError(
                f"supervisor {name!r}: restart_delay_s must be a number >= 0, "
                f"got {restart_delay_s!r}"
            )
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
        self._restart_delay_s = float(restart_delay_s)
        self._children: dict[str, _Child] = {}
        self._by_link: dict[Link, _Child] = {}
        for spec in children:
            if isinstance(spec, ChildSpec) and spec.id in self._children:
                raise DuplicateChildError(f"supervisor {name!r} already has a child {spec.id!r}")
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
        ``child_spec/1``: kind supervisor (so shutdown infinity), its id as its name."""
        return ChildSpec(
            id=id,
            start=lambda: cls.start(children, name=id, **options),
            restart=restart,
            kind=ChildKind.SUPERVISOR,
            name=name,
        )

    # -- lifecycle -------------------------------------------------------------------

    def on_start(self) -> None:
        for child in list(self._children.values()):
            try:
                started = self._start_child(child)
            except StartChildError:
                self._stop_children()
                raise
            if started is None:
                self._declined(child)

    def on_stop(self) -> None:
        # Stopped as a whole. For good (stop(), terminate_child, our own
        # supervisor shutting down): our children's names are released, and a
        # send to one fails at once. By our supervisor, to start us again with
        # a sibling (one_for_all, rest_for_one): they are held for our next
        # incarnation's children, as for a restart of one of them.
        self._stop_children(restarting=self._stopped_to_restart)

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop_children(restarting=True)

    def on_receive(self, message: Any) -> Any:
        match message:
            case ChildExited(link, exit):
                return self._child_exited(link, exit)
            case _TryAgainRestart(child_id):
                return self._try_again(child_id)
            case StartChild(spec):
                return self._start_new(spec)
            case AdoptChildren(children):
                return [self._try_adopt(child) for child in children]
            case TerminateChild(child_id):
                return self._terminate(child_id)
            case RestartChild(child_id):
                return self._restart_terminated(child_id)
            case DeleteChild(child_id):
                return self._delete(child_id)
            case WhichChildren():
                return [child.info() for child in self._children.values()]
            case CountChildren():
                return self._count()
            case CountRestarts():
                return self._restart_count()
            case Describe(limit=limit, offset=offset):
                return self._describe(limit, offset)
            case FindChild(child_id):
                return self._find(child_id)
        return super().on_receive(message)

    # -- reacting to an exit ---------------------------------------------------------

    def _child_exited(self, link: Link, exit: Exit) -> None:
        child = self._by_link.pop(link, None)
        if child is None:
            # One we stopped ourselves (its leftovers are dealt with), or one
            # that never started.
            fail_envelopes(
                link.take_leftovers(), f"{self.id!r}: the child exited before handling it"
            )
            return
        child.ref = child.link = None
        self._events.publish(self.id, child.id, EventKind.EXITED, str(exit))
        if not should_restart(child.spec.restart, crashed=exit.abnormal):
            release_name(self._registry, child.spec, link.take_leftovers())
            if not self._keeps_spec_of_stopped(child):
                del self._children[child.id]
            return
        hold_name(self._registry, child.spec, link.take_leftovers())
        if self._restart_delay_s > 0:
            self._restart_later(child)
        else:
            self._restart(child)

    def _keeps_spec_of_stopped(self, child: _Child) -> bool:
        """Whether a child that exited and is not restarted stays known, as
        not running: a supervisor keeps every spec but a temporary one's (so
        `restart_child` can start it again); a dynamic supervisor keeps none."""
        return child.spec.restart is not Restart.TEMPORARY

    def _restart(self, child: _Child) -> None:
        """OTP's ``restart/2``: count one restart (past the intensity, give
        up), then carry out the strategy's plan for `child`: stop the siblings
        it takes down, forget the temporary ones, start the rest in order.

        If a start fails, the plan stops there. The child that failed is marked
        restarting and the supervisor tells itself to try again; that attempt
        is a new restart of *that* child, by the same strategy: under
        one_for_all every child (the ones just started too) is stopped and
        started again, under rest_for_one it and those after it, under
        one_for_one it alone. Meanwhile the supervisor handles what is in its
        inbox: calls are answered and a stop stops it. A child of the plan that
        declines to start (`Ignore`) is left not running, and the plan goes on.
        """
        if not self._intensity.add_restart():
            self._give_up()
            return
        plan = plan_restart(
            self.strategy,
            [(c.id, c.spec.restart) for c in self._children.values()],
            child.id,
            crashed=True,  # it is to be restarted: _child_exited has checked its restart type
        )
        for sibling_id in plan.stop:
            self._stop_child(self._children[sibling_id], restarting=sibling_id in plan.restart)
        for removed_id in plan.remove:
            del self._children[removed_id]
        for restart_id in plan.restart:
            one = self._children[restart_id]
            one.restarting = False
            try:
                started = self._start_child(one, restarting=True)
            except StartChildError as error:
                self._events.publish(self.id, one.id, EventKind.EXITED, error.reason)
                one.restarting = True
                self.actor_ref.tell(_TryAgainRestart(one.id))
                return
            if started is None:
                self._declined(one)
            else:
                one.restarts += 1

    def _restart_later(self, child: _Child) -> None:
        """Restart `child` after `restart_delay_s` (not OTP's: for teaching).
        Meanwhile it is restarting, as between the attempts of a failed
        restart: not running, its name held, and the supervisor serving its
        calls; the restart is counted against the intensity when it happens."""
        child.restarting = True
        timer = threading.Timer(
            self._restart_delay_s, self._tell_self, (_TryAgainRestart(child.id),)
        )
        timer.daemon = True
        timer.start()

    def _tell_self(self, message: Any) -> None:
        """From a timer's thread: a supervisor that stopped meanwhile hears nothing."""
        with contextlib.suppress(pykka.ActorDeadError):
            self.actor_ref.tell(message)

    def _try_again(self, child_id: str) -> None:
        """Try a failed restart again, unless the child was terminated (or
        restarted with a sibling) since."""
        child = self._children.get(child_id)
        if child is not None and child.restarting:
            self._restart(child)

    def _declined(self, child: _Child) -> None:
        """A start of `child` declined (`Ignore`): it does not run, and its spec
        is kept as for a child that exited for good (OTP: a temporary child's
        is not, nor is any child's of a dynamic supervisor)."""
        if self._holds_its_name(child):
            release_name(self._registry, child.spec)
        if not self._keeps_spec_of_stopped(child):
            del self._children[child.id]

    def _give_up(self) -> None:
        intensity = self._intensity
        error = RestartIntensityExceededError(
            self.id, intensity.max_restarts, intensity.max_seconds
        )
        logger.error("%s; stopping its children", error)
        self._events.publish(self.id, None, EventKind.GAVE_UP, str(error))
        # Our own supervisor may restart us: hold sends to our children's names.
        self._stop_children(restarting=True)
        # OTP's {shutdown, reached_max_restart_intensity}, at once: no message
        # waiting in the inbox is handled by a supervisor that gave up.
        self._record_exit(Exit(ExitReason.SHUTDOWN, info=error))
        self._stopped_to_restart = True
        self._stop()

    # -- starting children -------------------------------------------------------------

    def _start_child(
        self, child: _Child, *, restarting: bool = False
    ) -> pykka.ActorRef[Any] | None:
        """Start the child and wait for its ``on_start``: its ref, or None if
        it declined (`Ignore`); `StartChildError` if it failed."""
        try:
            ref, link = spawn_linked(child.id, child.spec.start, self._tell_exited)
            await_started(child.id, ref, link, self._start_timeout_s)
        except Ignore:
            return None
        return self._started(child, ref, link, restarting=restarting)

    def _started(
        self, child: _Child, ref: pykka.ActorRef[Any], link: Link, *, restarting: bool = False
    ) -> pykka.ActorRef[Any]:
        """Record a child whose ``on_start`` has returned: name, link, event.
        If its name is held by another live actor, the child is not ours after
        all: it is stopped, and its start fails naming the holder (OTP's
        ``{already_started, Pid}`` from the child's ``start_link``)."""
        if child.spec.name is not None:
            assert self._registry is not None, "checked when the child was added"
            try:
                self._registry.register(child.spec.name, ref)
            except NameTakenError as taken:
                self._turn_down(child, ref, link)
                raise StartChildError(child.id, taken) from taken
        child.ref, child.link = ref, link
        self._by_link[link] = child
        kind = EventKind.RESTARTED if restarting else EventKind.STARTED
        self._events.publish(self.id, child.id, kind)
        return ref

    def _turn_down(self, child: _Child, ref: pykka.ActorRef[Any], link: Link) -> None:
        """Stop a started child that cannot be ours, within its shutdown; what
        it was sent meanwhile fails (its name, held by another, is left alone)."""
        finish_stop(begin_stop(child.id, ref, link, child.spec.shutdown), self.id)
        fail_envelopes(link.take_leftovers(), f"{child.id!r} was turned down before handling it")

    @functools.cached_property
    def _tell_exited(self) -> ExitReporter:
        """Our children's exit callback: run in the dying child's thread, it
        hands the news to our own thread as a `ChildExited` message."""
        return ExitReporter(self.actor_ref)

    # -- stopping children (see supervision._shutdown) --------------------------------

    def _stop_child(self, child: _Child, *, restarting: bool = False) -> None:
        """Stop one child within its shutdown time."""
        self._stop_together([child], restarting=restarting)

    def _stop_children(self, *, restarting: bool = False) -> None:
        """Stop every child, one at a time, last started first (as OTP does:
        later children may depend on earlier ones)."""
        for child in reversed(list(self._children.values())):
            self._stop_child(child, restarting=restarting)

    def _stop_together(self, children: Iterable[_Child], *, restarting: bool) -> None:
        """Ask each child to stop (or kill it), then wait for each in turn. When
        `restarting`, sends to its name are held for the next incarnation
        rather than refused, from before it is asked to stop."""
        keep_name = hold_name if restarting else release_name
        stopping: list[tuple[_Child, Stopping]] = []
        for child in children:
            link, ref = child.link, child.ref
            child.restarting = False  # stopped: a pending try_again_restart finds it so
            if self._holds_its_name(child):
                keep_name(self._registry, child.spec)
            if link is None or ref is None:
                continue
            self._by_link.pop(link, None)
            child.ref = child.link = None
            stopping.append(
                (child, begin_stop(child.id, ref, link, child.spec.shutdown, to_restart=restarting))
            )
        for child, one in stopping:
            exit = finish_stop(one, self.id)
            keep_name(self._registry, child.spec, one.link.take_leftovers())
            self._events.publish(self.id, child.id, EventKind.EXITED, str(exit))

    def _holds_its_name(self, child: _Child) -> bool:
        """Whether the child's name, if it has one, is the child's to give up:
        registered to it, or held for its next incarnation, not another's (as
        when its start failed because another actor holds the name)."""
        if child.spec.name is None or self._registry is None:
            return True
        holder = self._registry.whereis(child.spec.name)
        return holder is None or holder is child.ref

    def _kill(self, exit: Exit) -> list[Envelope]:
        # A supervisor killed outright cannot stop its children itself; as an
        # Erlang link would, the kill reaches them too, so none is orphaned.
        # Their names are held, as for any exit of ours: our supervisor may
        # start us again.
        leftovers = super()._kill(exit)
        for child in reversed(list(self._children.values())):  # a snapshot, taken atomically
            link = child.link
            if link is not None:
                link.mute()
                link.kill(KILLED)
                hold_name(self._registry, child.spec, link.take_leftovers())
        return leftovers

    # -- the client API, on our side ----------------------------------------------------

    def _start_new(self, spec: ChildSpec | Callable[[], pykka.ActorRef[Any]]) -> Any:
        child = self._add(spec)
        try:
            started = self._start_child(child)
        except StartChildError:
            del self._children[child.id]
            raise
        if started is None:
            self._declined(child)
        return started

    def _try_adopt(self, child: AdoptChild) -> SupervisionError | None:
        """`_adopt`, its refusal as a value: the others of the batch go on."""
        try:
            self._adopt(child.spec, child.ref, child.link)
        except SupervisionError as refused:
            return refused
        return None

    def _adopt(self, spec: ChildSpec, ref: pykka.ActorRef[Any], link: Link) -> None:
        """Take over a temporary child its caller started (`adopt_child`). If
        it has exited already, its exit news came before it was ours and was
        dropped as a stranger's: it is handled now instead."""
        child = self._add(spec)
        try:
            self._started(child, ref, link)
        except SupervisionError:  # its name is taken: it is not ours after all
            del self._children[child.id]
            self._by_link.pop(link, None)
            raise
        if link.exit is not None:
            self._child_exited(link, link.exit)

    def _terminate(self, child_id: str | pykka.ActorRef[Any]) -> None:
        """Stop the child for good. Its spec is kept, for `restart_child`,
        unless it is temporary: OTP forgets a temporary child as soon as it
        terminates (and a dynamic supervisor keeps no spec of a stopped child)."""
        child = self._get(child_id)
        self._stop_child(child)
        if not self._keeps_spec_of_stopped(child):
            del self._children[child.id]

    def _restart_terminated(self, child_id: str) -> pykka.ActorRef[Any] | None:
        child = self._get(child_id)
        self._refuse_restarting(child)
        if child.ref is not None:
            raise ChildRunningError(
                f"{self.id!r}: child {child_id!r} is running; terminate it first"
            )
        return self._start_child(child)

    def _delete(self, child_id: str) -> None:
        child = self._get(child_id)
        self._refuse_restarting(child)
        if child.ref is not None:
            raise ChildRunningError(
                f"{self.id!r}: child {child_id!r} is running; terminate it before deleting"
            )
        del self._children[child_id]

    def _refuse_restarting(self, child: _Child) -> None:
        if child.restarting:
            raise ChildRestartingError(
                f"{self.id!r}: child {child.id!r} is restarting; terminate it first"
            )

    def _describe(self, limit: int | None, offset: int) -> SupervisorInfo:
        """A page of the children's infos: only the page is built."""
        stop = None if limit is None else offset + max(0, limit)
        page = itertools.islice(self._children.values(), max(0, offset), stop)
        children = tuple(child.info() for child in page)
        return SupervisorInfo(
            self.id, self.strategy, children, len(self._children), self._restart_count()
        )

    def _restart_count(self) -> RestartCount:
        intensity = self._intensity
        ages = intensity.ages()
        return RestartCount(len(ages), intensity.max_restarts, intensity.max_seconds, ages)

    def _find(self, child_id: str) -> ChildFound:
        child = self._children.get(child_id)
        supervisors = tuple(
            c.ref
            for c in self._children.values()
            if c.spec.kind is ChildKind.SUPERVISOR and c.ref is not None
        )
        return ChildFound(child.info() if child is not None else None, supervisors)

    def _count(self) -> ChildCounts:
        children = self._children.values()
        return ChildCounts(
            specs=len(self._children),
            active=sum(1 for c in children if c.ref is not None and c.ref.is_alive()),
            supervisors=sum(1 for c in children if c.spec.kind is ChildKind.SUPERVISOR),
            workers=sum(1 for c in children if c.spec.kind is ChildKind.WORKER),
        )

    # -- bookkeeping ---------------------------------------------------------------------

    def _add(self, spec: object) -> _Child:
        if not isinstance(spec, ChildSpec):
            raise InvalidChildSpecError(
                f"supervisor {self.id!r}: expected a ChildSpec, got {spec!r}"
            )
        existing = self._children.get(spec.id)
        if existing is not None and existing.ref is not None:
            raise AlreadyStartedError(self.id, spec.id, existing.ref)
        if existing is not None:
            raise AlreadyPresentError(
                f"supervisor {self.id!r} already has a child {spec.id!r}, not running: "
                "restart_child starts it, delete_child forgets it"
            )
        if spec.name is not None and self._registry is None:
            raise InvalidChildSpecError(
                f"child {spec.id!r} is to be registered as {spec.name!r}, "
                f"but supervisor {self.id!r} was given no registry"
            )
        child = self._children[spec.id] = _Child(spec)
        return child

    def _get(self, child_id: str | pykka.ActorRef[Any]) -> _Child:
        child = self._children.get(child_id) if isinstance(child_id, str) else None
        if child is None:
            raise ChildNotFoundError(f"supervisor {self.id!r} has no child {child_id!r}")
        return child
