"""The cases of OTP's ``supervisor_SUITE`` (and Elixir's ``supervisor_test.exs``
and ``dynamic_supervisor_test.exs``) where this library once differed, ported
as behaviour, not as code. Each test names its OTP (or Elixir) case in its
docstring; where children are involved it runs on both runtimes (thread and
loop actors, the `runtime` fixture)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import pykka
import pytest

from supervision import (
    AlreadyPresentError,
    AlreadyStartedError,
    ChildCounts,
    ChildNotFoundError,
    ChildSpec,
    DuplicateChildError,
    DynamicSupervisor,
    EventKind,
    EventStream,
    Exit,
    ExitReason,
    Ignore,
    NameNotRegisteredError,
    NameTakenError,
    Registry,
    Restart,
    RestartCount,
    RestartIntensityExceededError,
    StartChildError,
    Strategy,
    SupervisedActor,
    Supervisor,
    count_children,
    count_restarts,
    delete_child,
    inject_crash,
    start_child,
    start_link,
    terminate_child,
    which_children,
)
from tests.conftest import EventLog
from tests.unit._clock import FakeClock
from tests.unit._runtimes import (  # noqa: F401  (fixtures)
    TIMEOUT_S,
    Block,
    Gate,
    Journal,
    Recorder,
    RootExit,
    Runtime,
    journal_fixture,
    registered_urns,
    runtime_fixture,
)

# -- the child every case starts ----------------------------------------------------------


class StopNormally:
    """The child stops itself with plain ``stop()``: reason normal."""


class Child(pykka.Actor):
    """A child on either runtime: answers 'ping' with its label, stops itself
    on `StopNormally`."""

    def __init__(self, label: str, **runtime_kwargs: Any) -> None:
        super().__init__(**runtime_kwargs)
        self.label = label

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, StopNormally):
            self.stop()
            return None
        if message == "ping":
            return self.label
        return None


def spec(runtime: Runtime, child_id: str, **options: Any) -> ChildSpec:
    """A spec for a `Child` labelled `child_id`, on `runtime`."""
    return ChildSpec(child_id, lambda: runtime.start(Child, child_id), **options)


def inbox_of_ref(ref: pykka.ActorRef[Any]) -> Any:
    """The actor's inbox, as its ref holds it (it has ``qsize()`` on both runtimes)."""
    return ref.actor_inbox


def ids(supervisor: pykka.ActorRef[Any]) -> list[str]:
    return [info.id for info in which_children(supervisor).get(timeout=TIMEOUT_S)]


def counts(supervisor: pykka.ActorRef[Any]) -> tuple[int, int, int, int]:
    """count_children as OTP's test reads it: [specs, active, supervisors, workers]."""
    return counts_of(count_children(supervisor).get(timeout=TIMEOUT_S))


def counts_of(c: ChildCounts) -> tuple[int, int, int, int]:
    return (c.specs, c.active, c.supervisors, c.workers)


def until(holds: Callable[[], bool], what: str) -> None:
    """Return once `holds()`, looked at again every millisecond: for a state
    nothing announces (how many messages wait in an inbox)."""
    deadline = time.monotonic() + TIMEOUT_S
    while not holds():
        assert time.monotonic() < deadline, f"not within {TIMEOUT_S} s: {what}"
        time.sleep(0.001)


# -- a dynamic supervisor forgets a child it does not restart ----------------------------


def test_transient_normal_simple_one_for_one_forgets_the_child(
    runtime: Runtime, events: EventStream, event_log: EventLog
) -> None:
    """OTP: ``transient_normal`` under simple_one_for_one (and Elixir's
    "restarts transient children only on abnormal exit"): a transient child of
    a dynamic supervisor that exits normally is not restarted and is forgotten,
    so that with max_children its place is given back."""
    sup = start_link(DynamicSupervisor.child_spec("dyn", max_children=1, events=events))
    ref = start_child(sup, spec(runtime, "job", restart=Restart.TRANSIENT)).get(timeout=TIMEOUT_S)
    ref.tell(StopNormally())
    event_log.wait(EventKind.EXITED, "job")

    assert ids(sup) == []
    assert counts(sup) == (0, 0, 0, 0)
    again = start_child(sup, spec(runtime, "job", restart=Restart.TRANSIENT))
    assert again.get(timeout=TIMEOUT_S).ask("ping") == "job"


def test_transient_normal_one_for_one_keeps_the_spec(
    runtime: Runtime, events: EventStream, event_log: EventLog
) -> None:
    """OTP: ``transient_normal``: under a static supervisor the spec of a
    transient child that exited normally is kept, not running."""
    sup = start_link(
        Supervisor.child_spec(
            "root", [spec(runtime, "job", restart=Restart.TRANSIENT)], events=events
        )
    )
    which_children(sup).get(timeout=TIMEOUT_S)[0].ref.tell(StopNormally())  # type: ignore[union-attr]
    event_log.wait(EventKind.EXITED, "job")
    [info] = which_children(sup).get(timeout=TIMEOUT_S)
    assert (info.id, info.alive, info.ref) == ("job", False, None)


# -- already started, already present ------------------------------------------------------


def test_child_adm_already_started_and_already_present(
    runtime: Runtime, events: EventStream
) -> None:
    """OTP: ``child_adm``: starting an id whose child runs is
    ``{error, {already_started, Pid}}``, with the running child's pid; once it
    is terminated (its spec kept), starting it again is ``{error,
    already_present}``; deleted, it starts."""
    sup = start_link(Supervisor.child_spec("root", [spec(runtime, "a")], events=events))
    [running] = which_children(sup).get(timeout=TIMEOUT_S)

    with pytest.raises(AlreadyStartedError) as started:
        start_child(sup, spec(runtime, "a")).get(timeout=TIMEOUT_S)
    assert started.value.child_id == "a"
    assert started.value.ref == running.ref
    assert isinstance(started.value, DuplicateChildError)

    terminate_child(sup, "a").get(timeout=TIMEOUT_S)
    with pytest.raises(AlreadyPresentError, match="'a', not running"):
        start_child(sup, spec(runtime, "a")).get(timeout=TIMEOUT_S)

    delete_child(sup, "a").get(timeout=TIMEOUT_S)
    assert start_child(sup, spec(runtime, "a")).get(timeout=TIMEOUT_S).ask("ping") == "a"


def test_child_adm_simple_already_started(runtime: Runtime, events: EventStream) -> None:
    """OTP: ``child_adm`` (the dynamic supervisor takes ids here, as Elixir's
    ``Supervisor`` does): an id that runs is already started, with its ref."""
    sup = start_link(DynamicSupervisor.child_spec("dyn", events=events))
    ref = start_child(sup, spec(runtime, "a")).get(timeout=TIMEOUT_S)
    with pytest.raises(AlreadyStartedError) as started:
        start_child(sup, spec(runtime, "a")).get(timeout=TIMEOUT_S)
    assert started.value.ref == ref
    assert ids(sup) == ["a"]


# -- shutdown values ---------------------------------------------------------------------


def test_sup_stop_shutdown_0_kills_at_once(
    runtime: Runtime, journal: Journal, events: EventStream, event_log: EventLog
) -> None:
    """OTP: ``sup_stop_brutal_kill``, with a shutdown of 0 (valid in OTP: the
    child is given no time): the child is killed at once, its ``on_stop`` not run."""
    child = ChildSpec("a", lambda: runtime.start(Recorder, journal), shutdown=0)
    sup = start_link(Supervisor.child_spec("root", [child], events=events))
    sup.stop(timeout=TIMEOUT_S)
    assert event_log.wait(EventKind.EXITED, "a").reason == "killed"
    assert "on_stop" not in journal.whats()


# -- each child's own exit reason, while its supervisor shuts down -----------------------


@pytest.mark.parametrize("kind", [Supervisor, DynamicSupervisor])
def test_simple_one_for_one_shutdown_keeps_each_childs_own_exit(
    kind: type[Supervisor],
    runtime: Runtime,
    journal: Journal,
    events: EventStream,
    event_log: EventLog,
) -> None:
    """OTP: ``simple_one_for_one_shutdown`` (and ``sup_stop_*``: the supervisor
    learns each child's own exit reason): a child that was already stopping
    normally when its supervisor's shutdown request came exits ``normal``, one
    that crashed first exits crashed, the others ``shutdown``."""
    children = [
        ChildSpec(c, lambda: runtime.start(Recorder, journal), restart=Restart.TEMPORARY)
        for c in ("bystander", "done")  # done is stopped first, or with the others
    ]
    options: dict[str, Any] = {"events": events}
    sup = start_link(
        DynamicSupervisor.child_spec("sup", **options)
        if kind is DynamicSupervisor
        else Supervisor.child_spec("sup", children, **options)
    )
    if kind is DynamicSupervisor:
        for child in children:
            start_child(sup, child).get(timeout=TIMEOUT_S)
    done = {i.id: i.ref for i in which_children(sup).get(timeout=TIMEOUT_S)}["done"]
    assert done is not None
    gate = Gate()
    done.tell(Block(gate))
    assert gate.entered.wait(TIMEOUT_S)
    done.stop(block=False)  # its own stop, queued before its supervisor's
    stopped = sup.stop(block=False)
    until(lambda: inbox_of_ref(done).qsize() >= 2, "the supervisor's stop request queued")
    gate.release.set()
    stopped.get(timeout=TIMEOUT_S)

    assert event_log.wait(EventKind.EXITED, "done").reason == "normal"
    assert event_log.wait(EventKind.EXITED, "bystander").reason == "shutdown"


# -- a name held outside the tree ------------------------------------------------------------


def test_start_child_whose_name_is_taken_leaves_nothing_running(
    runtime: Runtime, events: EventStream, registry: Registry
) -> None:
    """OTP: ``child_adm``'s ``{error, {already_started, Pid}}`` from the child's
    own ``start_link`` when its registered name is taken: the start fails,
    naming the holder, and nothing is left running."""
    outsider = runtime.start(Child, "outsider")
    registry.register("taken", outsider)
    sup = start_link(Supervisor.child_spec("root", registry=registry, events=events))
    before = registered_urns()

    with pytest.raises(StartChildError) as failed:
        start_child(sup, spec(runtime, "a", name="taken")).get(timeout=TIMEOUT_S)
    taken = failed.value.__cause__
    assert isinstance(taken, NameTakenError)
    assert taken.holder == outsider
    assert str(outsider) in str(failed.value)
    assert ids(sup) == []
    assert registered_urns() == before
    assert registry.whereis("taken") == outsider


def test_sup_start_fail_on_a_taken_name_stops_the_children_started(
    runtime: Runtime, journal: Journal, events: EventStream, registry: Registry
) -> None:
    """OTP: ``sup_start_fail`` for a child whose name is taken: the supervisor
    fails to start, naming the child and the holder, and the children it had
    started are stopped, last started first."""
    outsider = runtime.start(Child, "outsider")
    registry.register("taken", outsider)
    first = ChildSpec("first", lambda: runtime.start(Recorder, journal))
    second = ChildSpec("second", lambda: runtime.start(Child, "second"), name="taken")
    before = registered_urns()
    with pytest.raises(StartChildError, match="'second' failed to start: NameTakenError"):
        start_link(Supervisor.child_spec("root", [first, second], registry=registry, events=events))
    assert journal.whats() == ["on_start", "on_stop"]
    assert registered_urns() <= before
    assert registry.whereis("taken") == outsider


# -- names are released when the tree stops --------------------------------------------------


@pytest.mark.parametrize("how", ["stopped", "terminated"])
def test_names_are_released_when_the_tree_stops(
    how: str, runtime: Runtime, events: EventStream, registry: Registry
) -> None:
    """OTP: a registered name goes with its process (``erlang:register/2``;
    ``sup_stop_infinity`` and its neighbours): once a supervisor is stopped for
    good, a send to its children's names fails at once, not registered."""
    inner = Supervisor.child_spec(
        "inner", [spec(runtime, "echo", name="echo")], registry=registry, events=events
    )
    root = start_link(Supervisor.child_spec("root", [inner], events=events))
    assert registry.ask("echo", "ping").get(timeout=TIMEOUT_S) == "echo"
    if how == "stopped":
        root.stop(timeout=TIMEOUT_S)
    else:
        terminate_child(root, "inner").get(timeout=TIMEOUT_S)
    assert registry.names() == []
    with pytest.raises(NameNotRegisteredError):
        registry.tell("echo", "ping")


def test_one_for_all_restart_holds_a_sub_supervisors_names(
    runtime: Runtime, events: EventStream, event_log: EventLog, registry: Registry
) -> None:
    """OTP: ``one_for_all``, with a supervisor among the siblings: stopped to be
    started again, it holds its children's names for the next incarnation, so a
    send meanwhile reaches the new child."""
    inner = Supervisor.child_spec(
        "inner", [spec(runtime, "echo", name="echo")], registry=registry, events=events
    )
    crasher = spec(runtime, "crasher")
    root = start_link(
        Supervisor.child_spec(
            "root", [inner, crasher], strategy=Strategy.ONE_FOR_ALL, events=events
        )
    )
    old = registry.whereis("echo")
    crasher_ref = {i.id: i.ref for i in which_children(root).get(timeout=TIMEOUT_S)}["crasher"]
    assert crasher_ref is not None
    inject_crash(crasher_ref)
    event_log.wait(EventKind.EXITED, "echo")
    reply = registry.ask("echo", "ping")  # held while inner is restarted
    assert reply.get(timeout=TIMEOUT_S) == "echo"
    event_log.wait(EventKind.RESTARTED, "inner")
    assert registry.whereis("echo") not in (None, old)


# -- a child ending itself with reason shutdown --------------------------------------------


@dataclass(frozen=True)
class StopWithReason:
    """The child stops itself with `reason`, and `info` if any."""

    reason: ExitReason
    info: Any = None


class Stopper(Child):
    """A `Child` that also stops itself with a reason."""

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, StopWithReason):
            cast("SupervisedActor", self).stop(message.reason, message.info)
            return None
        return super().on_receive(message)


@pytest.mark.parametrize(
    ("restart", "reason", "info", "restarted"),
    [
        (Restart.TRANSIENT, ExitReason.SHUTDOWN, None, False),
        (Restart.TRANSIENT, ExitReason.SHUTDOWN, "user left", False),
        (Restart.PERMANENT, ExitReason.SHUTDOWN, None, True),
        (Restart.TRANSIENT, ExitReason.NORMAL, None, False),
    ],
)
def test_transient_shutdown_is_not_restarted_nor_logged(
    restart: Restart,
    reason: ExitReason,
    info: Any,
    restarted: bool,
    runtime: Runtime,
    events: EventStream,
    event_log: EventLog,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """OTP: ``transient_shutdown``, ``permanent_shutdown`` and
    ``transient_normal`` (Elixir: "restarts transient children on abnormal exit
    only", with ``{:shutdown, term}``): a child that stops itself with reason
    shutdown, with or without info, exits normally: a transient one is not
    restarted, a permanent one is, and nothing is logged as an error."""
    child = ChildSpec(
        "job", lambda: runtime.start(Stopper, "job"), restart=restart, shutdown=TIMEOUT_S
    )
    sup = start_link(Supervisor.child_spec("root", [child], events=events))
    [running] = which_children(sup).get(timeout=TIMEOUT_S)
    assert running.ref is not None
    running.ref.tell(StopWithReason(reason, info))

    exited = event_log.wait(EventKind.EXITED, "job")
    assert exited.reason == (f"{reason.value}: {info}" if info else reason.value)
    if restarted:
        event_log.wait(EventKind.RESTARTED, "job")
    [after] = which_children(sup).get(timeout=TIMEOUT_S)
    assert after.alive is restarted
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_stop_takes_only_normal_or_shutdown(runtime: Runtime) -> None:
    """A crash is not a reason to stop with (raise instead), and info goes with
    shutdown only: asked, the refusal goes back to the asker."""
    ref, _ = runtime.start_linked(Stopper, "a")
    with pytest.raises(ValueError, match=r"ExitReason\.NORMAL or SHUTDOWN"):
        ref.ask(StopWithReason(ExitReason.CRASHED), timeout=TIMEOUT_S)
    with pytest.raises(ValueError, match="only a shutdown carries info"):
        ref.ask(StopWithReason(ExitReason.NORMAL, "why"), timeout=TIMEOUT_S)
    assert ref.is_alive()


# -- a start that declines (ignore) --------------------------------------------------------


class Decliner(Child):
    """A `Child` whose ``on_start`` declines (`Ignore`) when `declines()` says so."""

    def __init__(self, label: str, declines: Callable[[], bool], **runtime_kwargs: Any) -> None:
        super().__init__(label, **runtime_kwargs)
        self.declines = declines

    def on_start(self) -> None:
        if self.declines():
            raise Ignore


def declining(runtime: Runtime, child_id: str, **options: Any) -> ChildSpec:
    return ChildSpec(child_id, lambda: runtime.start(Decliner, child_id, lambda: True), **options)


def test_sup_start_ignore_child(
    runtime: Runtime, events: EventStream, caplog: pytest.LogCaptureFixture
) -> None:
    """OTP: ``sup_start_ignore_child``: start_child of a permanent child that
    declines answers ``{ok, undefined}`` (None) and keeps its spec, not running;
    so does a start function that declines itself."""
    sup = start_link(Supervisor.child_spec("root", events=events))
    assert start_child(sup, declining(runtime, "child1")).get(timeout=TIMEOUT_S) is None
    assert start_child(sup, spec(runtime, "child2")).get(timeout=TIMEOUT_S) is not None

    def start_declines() -> pykka.ActorRef[Any]:
        raise Ignore

    assert start_child(sup, ChildSpec("child3", start_declines)).get(timeout=TIMEOUT_S) is None
    infos = which_children(sup).get(timeout=TIMEOUT_S)
    assert [(i.id, i.alive) for i in infos] == [
        ("child1", False),
        ("child2", True),
        ("child3", False),
    ]
    assert counts(sup) == (3, 1, 0, 3)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_sup_start_ignore_temporary_child(runtime: Runtime, events: EventStream) -> None:
    """OTP: ``sup_start_ignore_temporary_child``: a temporary child that declines
    at the supervisor's start leaves no spec behind."""
    children = [
        declining(runtime, "child1", restart=Restart.TEMPORARY),
        spec(runtime, "child2", restart=Restart.TEMPORARY),
    ]
    sup = start_link(Supervisor.child_spec("root", children, events=events))
    assert ids(sup) == ["child2"]
    assert counts(sup) == (1, 1, 0, 1)


def test_sup_start_ignore_temporary_child_start_child(
    runtime: Runtime, events: EventStream
) -> None:
    """OTP: ``sup_start_ignore_temporary_child_start_child``: start_child of a
    temporary child that declines answers None and keeps no spec."""
    sup = start_link(Supervisor.child_spec("root", events=events))
    child1 = declining(runtime, "child1", restart=Restart.TEMPORARY)
    assert start_child(sup, child1).get(timeout=TIMEOUT_S) is None
    start_child(sup, spec(runtime, "child2", restart=Restart.TEMPORARY)).get(timeout=TIMEOUT_S)
    assert ids(sup) == ["child2"]
    assert counts(sup) == (1, 1, 0, 1)


def test_sup_start_ignore_permanent_child_start_child_simple(
    runtime: Runtime, events: EventStream
) -> None:
    """OTP: ``sup_start_ignore_permanent_child_start_child_simple``: a dynamic
    supervisor adds nothing for a permanent child that declines, and stops
    cleanly afterwards."""
    sup = start_link(DynamicSupervisor.child_spec("dyn", events=events))
    assert start_child(sup, declining(runtime, "child1")).get(timeout=TIMEOUT_S) is None
    start_child(sup, spec(runtime, "child2")).get(timeout=TIMEOUT_S)
    assert ids(sup) == ["child2"]
    assert counts(sup) == (1, 1, 0, 1)
    assert sup.stop(timeout=TIMEOUT_S) is True


@pytest.mark.parametrize("kind", [Supervisor, DynamicSupervisor])
def test_restart_ignored_drops_the_child_quietly(
    kind: type[Supervisor], runtime: Runtime, events: EventStream, event_log: EventLog
) -> None:
    """OTP: ``restart/2`` taking a restart's ``{ok, undefined}`` (``ignore``): the
    child is not running and no attempt follows; a supervisor keeps the spec
    (not running), a dynamic supervisor forgets the child. Nothing counts as a
    failed attempt."""
    starts = iter([False, True])  # started once, then declines
    child = ChildSpec("job", lambda: runtime.start(Decliner, "job", lambda: next(starts)))
    sup = start_link(
        DynamicSupervisor.child_spec("sup", events=events)
        if kind is DynamicSupervisor
        else Supervisor.child_spec("sup", [child], events=events)
    )
    if kind is DynamicSupervisor:
        start_child(sup, child).get(timeout=TIMEOUT_S)
    [running] = which_children(sup).get(timeout=TIMEOUT_S)
    assert running.ref is not None
    inject_crash(running.ref)
    event_log.wait(EventKind.EXITED, "job")

    infos = which_children(sup).get(timeout=TIMEOUT_S)
    if kind is DynamicSupervisor:
        assert infos == []
    else:
        assert [(i.id, i.alive, i.restarts) for i in infos] == [("job", False, 0)]
    assert [e.kind for e in event_log.events if e.child == "job"] == [
        EventKind.STARTED,
        EventKind.EXITED,
    ]
    assert sup.is_alive()


# -- terminate_child of a dynamic supervisor by ref ---------------------------------------


def test_terminate_child_by_pid_dynamic(runtime: Runtime, events: EventStream) -> None:
    """OTP: ``child_adm_simple`` (``terminate_child(Sup, Pid)``), Elixir:
    ``DynamicSupervisor.terminate_child/2``: a dynamic supervisor terminates a
    child named by the ref start_child returned, and forgets it; a ref that is
    none of its children's is not found, and that actor is left alone."""
    sup = start_link(DynamicSupervisor.child_spec("dyn", events=events))
    a = start_child(sup, spec(runtime, "a")).get(timeout=TIMEOUT_S)
    b = start_child(sup, spec(runtime, "b")).get(timeout=TIMEOUT_S)
    terminate_child(sup, a).get(timeout=TIMEOUT_S)
    assert not a.is_alive()
    assert ids(sup) == ["b"]

    outsider = runtime.start(Child, "outsider")
    for stranger in (outsider, a):
        with pytest.raises(ChildNotFoundError, match="has no child"):
            terminate_child(sup, stranger).get(timeout=TIMEOUT_S)
    assert outsider.is_alive()
    assert b.is_alive()
    assert ids(sup) == ["b"]


# -- the restart count in the current window -------------------------------------------------


def test_count_restarts_reads_the_restarts_in_the_window(
    runtime: Runtime, events: EventStream, event_log: EventLog
) -> None:
    """OTP: the suite reads the supervisor's restart list with ``sys:get_state``
    (``multiple_restarts``, ``hanging_restart_loop``): here `count_restarts`
    answers how many restarts count against the intensity, as of now."""
    clock = FakeClock()
    sup = start_link(
        Supervisor.child_spec(
            "root",
            [spec(runtime, "a")],
            max_restarts=5,
            max_seconds=10,
            events=events,
            clock=clock,
        )
    )
    assert count_restarts(sup).get(timeout=TIMEOUT_S) == RestartCount(0, 5, 10.0)
    for n in (1, 2):
        [info] = which_children(sup).get(timeout=TIMEOUT_S)
        assert info.ref is not None
        inject_crash(info.ref)
        event_log.wait_until(
            lambda n=n: [e.kind for e in event_log.events].count(EventKind.RESTARTED) >= n,  # type: ignore[misc]
            f"restart {n}",
        )
        clock.now += 4
    assert count_restarts(sup).get(timeout=TIMEOUT_S).restarts == 2
    clock.now += 3  # the first restart is 11 s old now
    assert count_restarts(sup).get(timeout=TIMEOUT_S).restarts == 1


# -- a failed restart is tried again by a message, the supervisor responsive meanwhile ------


class Attempts:
    """The restart attempts of a child that cannot start again: each says it
    has begun, then waits for its turn (`release`) before it fails."""

    def __init__(self) -> None:
        self.begun = 0
        self._condition = threading.Condition()
        self._turns = threading.Semaphore(0)

    def attempt(self) -> None:
        with self._condition:
            self.begun += 1
            self._condition.notify_all()
        assert self._turns.acquire(timeout=TIMEOUT_S), "attempt never released"
        raise RuntimeError("cannot start again")

    def wait_begun(self, count: int) -> None:
        with self._condition:
            assert self._condition.wait_for(lambda: self.begun >= count, TIMEOUT_S), (
                f"attempt {count} did not begin; {self.begun} did"
            )

    def release(self) -> None:
        self._turns.release()


class Failing(Child):
    """A `Child` whose ``on_start`` runs `fails`, when given: it raises."""

    def __init__(
        self, label: str, fails: Callable[[], None] | None = None, **runtime_kwargs: Any
    ) -> None:
        super().__init__(label, **runtime_kwargs)
        self.fails = fails

    def on_start(self) -> None:
        if self.fails is not None:
            self.fails()


def flaky(runtime: Runtime, child_id: str, attempts: Attempts, **options: Any) -> ChildSpec:
    """Starts once; every later start is an attempt of `attempts`."""
    starts = iter(range(1_000))
    return ChildSpec(
        child_id,
        lambda: runtime.start(Failing, child_id, attempts.attempt if next(starts) else None),
        **options,
    )


def test_try_again_restart_keeps_supervisor_responsive(
    runtime: Runtime, events: EventStream, event_log: EventLog
) -> None:
    """OTP: ``hanging_restart_loop``: a child whose restart keeps failing (each
    attempt slow) under a generous intensity. The supervisor tries again by a
    message to itself (``try_again_restart``), so between attempts it answers
    which_children (the child ``restarting``), count_children, count_restarts
    and start_child; and a terminate_child ends the loop."""
    attempts = Attempts()
    sup = start_link(
        Supervisor.child_spec(
            "root",
            [flaky(runtime, "flaky", attempts), spec(runtime, "steady")],
            max_restarts=8,
            max_seconds=10,
            events=events,
        )
    )
    inject_crash({i.id: i.ref for i in which_children(sup).get(timeout=TIMEOUT_S)}["flaky"])  # type: ignore[arg-type]
    attempts.wait_begun(1)
    listed = which_children(sup)  # asked during attempt 1
    counted = count_children(sup)
    restarts = count_restarts(sup)
    late = start_child(sup, spec(runtime, "late"))
    attempts.release()  # attempt 1 fails; attempt 2 waits behind these calls
    attempts.wait_begun(2)

    infos = {i.id: i for i in listed.get(timeout=TIMEOUT_S)}
    assert (infos["flaky"].restarting, infos["flaky"].alive, infos["flaky"].ref) == (
        True,
        False,
        None,
    )
    assert infos["steady"].alive
    assert (counted.get(timeout=TIMEOUT_S).specs, counted.get(timeout=TIMEOUT_S).active) == (2, 1)
    assert restarts.get(timeout=TIMEOUT_S).restarts == 1
    assert late.get(timeout=TIMEOUT_S).is_alive()  # (not asked: a loop is held by attempt 2)

    terminated = terminate_child(sup, "flaky")  # asked during attempt 2
    attempts.release()
    terminated.get(timeout=TIMEOUT_S)
    infos = {i.id: i for i in which_children(sup).get(timeout=TIMEOUT_S)}
    assert (infos["flaky"].restarting, infos["flaky"].alive) == (False, False)
    assert attempts.begun == 2  # the try_again_restart after attempt 2 found it terminated
    assert [e.reason for e in event_log.events if e.child == "flaky"][-2:] == [
        "RuntimeError: cannot start again",
        "RuntimeError: cannot start again",
    ]
    assert sup.is_alive()


def test_try_again_restart_lets_a_stop_through(
    runtime: Runtime, journal: Journal, events: EventStream
) -> None:
    """OTP: ``hanging_restart_loop`` (the supervisor is shut down during the
    loop): a stop asked for during a failing restart is served after the
    attempt; the other children are stopped, and no attempt follows."""
    attempts = Attempts()
    steady = ChildSpec("steady", lambda: runtime.start(Recorder, journal))
    exits = RootExit()
    sup = start_link(
        Supervisor.child_spec(
            "root", [steady, flaky(runtime, "flaky", attempts)], max_restarts=8, events=events
        ),
        on_exit=exits,
    )
    inject_crash({i.id: i.ref for i in which_children(sup).get(timeout=TIMEOUT_S)}["flaky"])  # type: ignore[arg-type]
    attempts.wait_begun(1)
    sup.stop(block=False)
    attempts.release()
    assert exits.wait() == Exit(ExitReason.NORMAL)
    assert journal.whats() == ["on_start", "on_stop"]
    assert attempts.begun == 1


def test_hanging_restart_loop_simple(
    runtime: Runtime, events: EventStream, event_log: EventLog
) -> None:
    """OTP: ``hanging_restart_loop_simple``: the same loop in a dynamic
    supervisor; count_children counts the restarting child among the workers,
    not among the active, as OTP's dynamic_restarts."""
    attempts = Attempts()
    sup = start_link(DynamicSupervisor.child_spec("dyn", max_restarts=8, events=events))
    ref = start_child(sup, flaky(runtime, "flaky", attempts)).get(timeout=TIMEOUT_S)
    start_child(sup, spec(runtime, "steady")).get(timeout=TIMEOUT_S)
    inject_crash(ref)
    attempts.wait_begun(1)
    counted = count_children(sup)
    listed = which_children(sup)
    attempts.release()
    attempts.wait_begun(2)
    assert counts_of(counted.get(timeout=TIMEOUT_S)) == (2, 1, 0, 2)
    assert [(i.id, i.restarting) for i in listed.get(timeout=TIMEOUT_S)] == [
        ("flaky", True),
        ("steady", False),
    ]
    terminated = terminate_child(sup, "flaky")
    attempts.release()
    terminated.get(timeout=TIMEOUT_S)
    assert ids(sup) == ["steady"]
    assert attempts.begun == 2


def test_restart_attempts_count_against_the_intensity(
    runtime: Runtime, events: EventStream, event_log: EventLog
) -> None:
    """OTP: ``restart/2`` counts each attempt (``add_restart``) before making
    it: a child that never starts again uses the intensity up, and the
    supervisor gives up (``hanging_restart_loop``'s end)."""
    attempts = Attempts()
    for _ in range(3):
        attempts.release()  # no attempt waits
    exits = RootExit()
    sup = start_link(
        Supervisor.child_spec(
            "root", [flaky(runtime, "flaky", attempts)], max_restarts=2, events=events
        ),
        on_exit=exits,
    )
    inject_crash({i.id: i.ref for i in which_children(sup).get(timeout=TIMEOUT_S)}["flaky"])  # type: ignore[arg-type]
    exit = exits.wait()
    assert exit.gave_up
    assert isinstance(exit.info, RestartIntensityExceededError)
    assert attempts.begun == 2  # the third restart is one too many: not attempted
    event_log.wait(EventKind.GAVE_UP, None)


# -- a group restart whose later child fails: the group again ---------------------------------


def failing_once_on(runtime: Runtime, child_id: str, failing_start: int) -> ChildSpec:
    """A child whose `failing_start`-th start (0: the first) fails."""
    starts = iter(range(1_000))

    def fail() -> None:
        raise RuntimeError(f"{child_id} cannot start this time")

    return ChildSpec(
        child_id,
        lambda: runtime.start(Failing, child_id, fail if next(starts) == failing_start else None),
    )


def group_events(event_log: EventLog) -> list[tuple[str | None, str]]:
    return [
        (e.child, e.kind.value if e.kind is not EventKind.EXITED else f"exited {e.reason}")
        for e in event_log.events
        if e.kind is not EventKind.STARTED
    ]


def test_one_for_all_other_child_fails_restart(
    runtime: Runtime, events: EventStream, event_log: EventLog
) -> None:
    """OTP: ``one_for_all_other_child_fails_restart``: a restarts after a crash;
    in the group restart c fails to start; the freshly started a and b are
    stopped and the whole group is started again, a second restart."""
    children = [
        spec(runtime, "a"),
        spec(runtime, "b"),
        failing_once_on(runtime, "c", failing_start=1),
    ]
    sup = start_link(
        Supervisor.child_spec("root", children, strategy=Strategy.ONE_FOR_ALL, events=events)
    )
    inject_crash({i.id: i.ref for i in which_children(sup).get(timeout=TIMEOUT_S)}["a"])  # type: ignore[arg-type]
    event_log.wait_until(
        lambda: [e.kind for e in event_log.events].count(EventKind.RESTARTED) == 5, "5 restarts"
    )
    assert group_events(event_log) == [
        ("a", "exited crashed: InjectedCrash: crash injected"),
        ("c", "exited shutdown"),
        ("b", "exited shutdown"),
        ("a", "restarted"),
        ("b", "restarted"),
        ("c", "exited RuntimeError: c cannot start this time"),
        ("b", "exited shutdown"),
        ("a", "exited shutdown"),
        ("a", "restarted"),
        ("b", "restarted"),
        ("c", "restarted"),
    ]
    assert count_restarts(sup).get(timeout=TIMEOUT_S).restarts == 2
    assert all(i.alive for i in which_children(sup).get(timeout=TIMEOUT_S))


def test_rest_for_one_other_child_fails_restart(
    runtime: Runtime, events: EventStream, event_log: EventLog
) -> None:
    """OTP: ``rest_for_one_other_child_fails_restart``: b crashes; in the
    restart of b and c, c fails to start; the next attempt restarts c and
    those after it (none), leaving the freshly started b, and a, alone."""
    children = [
        spec(runtime, "a"),
        spec(runtime, "b"),
        failing_once_on(runtime, "c", failing_start=1),
    ]
    sup = start_link(
        Supervisor.child_spec("root", children, strategy=Strategy.REST_FOR_ONE, events=events)
    )
    inject_crash({i.id: i.ref for i in which_children(sup).get(timeout=TIMEOUT_S)}["b"])  # type: ignore[arg-type]
    event_log.wait(EventKind.RESTARTED, "c")
    assert group_events(event_log) == [
        ("b", "exited crashed: InjectedCrash: crash injected"),
        ("c", "exited shutdown"),
        ("b", "restarted"),
        ("c", "exited RuntimeError: c cannot start this time"),
        ("c", "restarted"),
    ]
    assert count_restarts(sup).get(timeout=TIMEOUT_S).restarts == 2
    assert {i.id: i.restarts for i in which_children(sup).get(timeout=TIMEOUT_S)} == {
        "a": 0,
        "b": 1,
        "c": 1,
    }


# -- a temporary child's spec is not kept ----------------------------------------------------


def test_do_not_save_child_specs_for_temporary_children(
    runtime: Runtime, events: EventStream, event_log: EventLog
) -> None:
    """OTP: ``do_not_save_child_specs_for_temporary_children``: a temporary
    child's spec goes as soon as it terminates, whether it is terminated
    (``terminate_child``), exits normally or crashes; a permanent child's is
    kept when it is terminated."""
    children = [
        spec(runtime, "terminated", restart=Restart.TEMPORARY),
        spec(runtime, "normal", restart=Restart.TEMPORARY),
        spec(runtime, "crashed", restart=Restart.TEMPORARY),
        spec(runtime, "kept"),
    ]
    sup = start_link(Supervisor.child_spec("root", children, events=events))
    refs = {i.id: i.ref for i in which_children(sup).get(timeout=TIMEOUT_S)}
    terminate_child(sup, "terminated").get(timeout=TIMEOUT_S)
    refs["normal"].tell(StopNormally())  # type: ignore[union-attr]
    inject_crash(refs["crashed"])  # type: ignore[arg-type]
    event_log.wait(EventKind.EXITED, "normal")
    event_log.wait(EventKind.EXITED, "crashed")
    terminate_child(sup, "kept").get(timeout=TIMEOUT_S)

    assert [(i.id, i.alive) for i in which_children(sup).get(timeout=TIMEOUT_S)] == [
        ("kept", False)
    ]
    assert counts(sup) == (1, 0, 0, 1)


# -- a supervisor that gives up exits shutdown ---------------------------------------------


@pytest.mark.parametrize("restart", [Restart.TRANSIENT, Restart.PERMANENT])
def test_a_supervisor_that_gives_up_exits_shutdown(
    restart: Restart, runtime: Runtime, events: EventStream, event_log: EventLog
) -> None:
    """OTP: ``supervisor:restart/2`` past the intensity reports
    ``reached_max_restart_intensity`` and the supervisor exits ``shutdown``
    (its neighbours ``one_for_one_escalation`` and ``one_for_all_escalation``).
    A normal exit: under its own supervisor a transient supervisor that gave up
    is not restarted (kept, not running), a permanent one is."""
    inner = Supervisor.child_spec(
        "inner", [spec(runtime, "w")], max_restarts=0, restart=restart, events=events
    )
    root = start_link(Supervisor.child_spec("root", [inner], events=events))
    inner_ref = {i.id: i.ref for i in which_children(root).get(timeout=TIMEOUT_S)}["inner"]
    assert inner_ref is not None
    w = {i.id: i.ref for i in which_children(inner_ref).get(timeout=TIMEOUT_S)}["w"]
    inject_crash(w)  # type: ignore[arg-type]
    exited = event_log.wait(EventKind.EXITED, "inner")
    assert exited.reason is not None
    assert exited.reason.startswith("shutdown: supervisor 'inner' gave up"), exited.reason
    if restart is Restart.TRANSIENT:
        assert [(i.id, i.alive) for i in which_children(root).get(timeout=TIMEOUT_S)] == [
            ("inner", False)
        ]
        assert count_restarts(root).get(timeout=TIMEOUT_S).restarts == 0
    else:
        event_log.wait(EventKind.RESTARTED, "inner")
        assert count_restarts(root).get(timeout=TIMEOUT_S).restarts == 1
    root.stop(timeout=TIMEOUT_S)
