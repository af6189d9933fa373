"""The supervisor: start order, strategies x restart types, intensity, escalation,
failed starts, shutdown order and timeouts, and the child API."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pykka
import pytest

from supervision import (
    ChildNotFoundError,
    ChildRunningError,
    ChildSpec,
    DuplicateChildError,
    EventKind,
    EventStream,
    Exit,
    ExitReason,
    InvalidChildSpecError,
    NameNotRegisteredError,
    Registry,
    Restart,
    RestartIntensityExceededError,
    Shutdown,
    StartChildError,
    Strategy,
    Supervisor,
    count_children,
    delete_child,
    describe_tree,
    inject_crash,
    restart_child,
    start_child,
    start_link,
    terminate_child,
    which_children,
)
from tests.conftest import EventLog
from tests.unit._actors import Journal, Worker, wait_until_dead, worker
from tests.unit._clock import FakeClock
from tests.unit._runtimes import Gate

P, T, X = Restart.PERMANENT, Restart.TRANSIENT, Restart.TEMPORARY


class Root:
    """A root supervisor started with `start_link`, and how it ended."""

    def __init__(
        self,
        children: Sequence[ChildSpec],
        events: EventStream,
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        registry: Registry | None = None,
        clock: FakeClock | None = None,
        max_restarts: int = 3,
        start_timeout_s: float = 5.0,
    ) -> None:
        self.exited = threading.Event()
        self.exit: Exit | None = None
        options: dict[str, Any] = {"strategy": strategy, "events": events}
        options["max_restarts"] = max_restarts
        options["start_timeout_s"] = start_timeout_s
        if registry is not None:
            options["registry"] = registry
        if clock is not None:
            options["clock"] = clock
        spec = Supervisor.child_spec("root", children, **options)
        self.ref = start_link(spec, on_exit=self._on_exit)

    def _on_exit(self, exit: Exit) -> None:
        self.exit = exit
        self.exited.set()

    def child(self, child_id: str) -> pykka.ActorRef[Any]:
        for info in which_children(self.ref).get(timeout=5):
            if info.id == child_id and info.ref is not None:
                return info.ref
        raise AssertionError(f"no running child {child_id!r}")

    def restarts(self) -> dict[str, int]:
        return {info.id: info.restarts for info in which_children(self.ref).get(timeout=5)}


def test_children_start_in_order_and_stop_in_reverse(events: EventStream) -> None:
    journal = Journal()
    root = Root([worker(n, journal) for n in "abc"], events)
    assert journal.of("start") == ["a", "b", "c"]
    root.ref.stop(timeout=5)
    assert journal.of("stop") == ["c", "b", "a"]
    assert root.exit == Exit(ExitReason.NORMAL)


# -- strategy x restart type -----------------------------------------------------------

EXPECTED_AFTER_CRASH_OF_B = {
    # (strategy, b's restart type): (restarted ids, is b still a child)
    (Strategy.ONE_FOR_ONE, P): ({"b"}, True),
    (Strategy.ONE_FOR_ONE, T): ({"b"}, True),
    (Strategy.ONE_FOR_ONE, X): (set(), False),
    (Strategy.ONE_FOR_ALL, P): ({"a", "b", "c"}, True),
    (Strategy.ONE_FOR_ALL, T): ({"a", "b", "c"}, True),
    (Strategy.ONE_FOR_ALL, X): (set(), False),
    (Strategy.REST_FOR_ONE, P): ({"b", "c"}, True),
    (Strategy.REST_FOR_ONE, T): ({"b", "c"}, True),
    (Strategy.REST_FOR_ONE, X): (set(), False),
}


@dataclass(frozen=True)
class ThreeChildren:
    """a, b and c started under a root of `strategy`: b of `restart` type, a and
    c permanent."""

    strategy: Strategy
    restart: Restart
    journal: Journal
    root: Root


@pytest.fixture(
    params=[(strategy, restart) for strategy in Strategy for restart in (P, T, X)],
    ids=lambda param: f"{param[0].value}-{param[1].value}",
)
def b_among_three(request: pytest.FixtureRequest, events: EventStream) -> ThreeChildren:
    """`ThreeChildren` for every strategy and every restart type of b."""
    strategy, restart = request.param
    journal = Journal()
    children = [worker("a", journal), worker("b", journal, restart), worker("c", journal)]
    return ThreeChildren(strategy, restart, journal, Root(children, events, strategy=strategy))


def test_crash_is_handled_by_strategy_and_restart_type(
    b_among_three: ThreeChildren, event_log: EventLog
) -> None:
    strategy, journal, root = b_among_three.strategy, b_among_three.journal, b_among_three.root
    restarted, b_kept = EXPECTED_AFTER_CRASH_OF_B[(strategy, b_among_three.restart)]

    inject_crash(root.child("b"))

    event_log.wait_for(lambda e: e.child == "b" and e.kind is EventKind.EXITED)
    for child_id in restarted:
        event_log.wait(EventKind.RESTARTED, child_id)
    counts = root.restarts()
    assert ("b" in counts) is b_kept
    assert {c for c, n in counts.items() if n == 1} == restarted
    assert all(info.alive for info in which_children(root.ref).get(timeout=5))
    if strategy is not Strategy.ONE_FOR_ONE and restarted:
        # Siblings are stopped in reverse start order, then all start in order.
        affected = sorted(restarted)
        stops = [c for c in journal.of("stop") if c in affected]
        assert stops == sorted((c for c in affected if c != "b"), reverse=True)
        assert journal.of("start")[3:] == affected


def test_a_temporary_sibling_stopped_by_a_restart_is_forgotten(
    events: EventStream, event_log: EventLog
) -> None:
    journal = Journal()
    children = [worker("a", journal), worker("t", journal, X), worker("c", journal)]
    root = Root(children, events, strategy=Strategy.ONE_FOR_ALL)
    inject_crash(root.child("a"))
    event_log.wait(EventKind.RESTARTED, "c")
    assert root.restarts() == {"a": 1, "c": 1}
    assert journal.of("stop") == ["c", "t"]


def test_normal_exit_restarts_only_permanent_children(
    b_among_three: ThreeChildren, event_log: EventLog
) -> None:
    restart, root = b_among_three.restart, b_among_three.root

    root.child("b").tell("exit")

    exited = event_log.wait_for(lambda e: e.child == "b" and e.kind is EventKind.EXITED)
    assert exited.reason == "normal"
    if restart is P:
        event_log.wait_for(lambda e: e.child == "b" and e.kind is EventKind.RESTARTED)
        assert root.restarts()["b"] == 1
    else:
        infos = {i.id: i for i in which_children(root.ref).get(timeout=5)}
        assert ("b" in infos) is (restart is T)  # a transient spec stays, not running
        if restart is T:
            assert not infos["b"].alive
        assert all(infos[c].alive and infos[c].restarts == 0 for c in "ac")


def test_death_is_detected_within_50_ms(events: EventStream) -> None:
    journal = Journal()
    root = Root([worker("a", journal)], events)
    seen = threading.Event()
    timings: dict[str, float] = {}

    def on_event(event: Any) -> None:
        if event.kind is EventKind.EXITED and "exited" not in timings:
            timings["exited"] = time.perf_counter()
            seen.set()

    events.subscribe(on_event)
    ref = root.child("a")
    ref.tell(pykka.messages.ProxyCall(attr_path=("on_receive",), args=("ping",), kwargs={}))
    timings["crash"] = time.perf_counter()
    inject_crash(ref)
    assert seen.wait(5)
    assert timings["exited"] - timings["crash"] < 0.050


# -- intensity and escalation ------------------------------------------------------------


def test_max_restarts_within_the_period_are_carried_out(
    events: EventStream, event_log: EventLog
) -> None:
    journal, clock = Journal(), FakeClock()
    root = Root([worker("a", journal)], events, clock=clock)
    for n in range(1, 4):
        inject_crash(root.child("a"))
        journal.wait_for("a", "start", count=n + 1)
        clock.now += 1.0
    assert root.restarts()["a"] == 3
    assert not root.exited.is_set()


def test_one_restart_too_many_makes_the_supervisor_give_up(
    events: EventStream, event_log: EventLog
) -> None:
    journal, clock = Journal(), FakeClock()
    root = Root([worker("a", journal), worker("b", journal)], events, clock=clock)
    for n in range(1, 4):
        inject_crash(root.child("b"))
        journal.wait_for("b", "start", count=n + 1)
    inject_crash(root.child("b"))

    assert root.exited.wait(5)
    assert root.exit is not None
    assert root.exit.reason is ExitReason.SHUTDOWN  # OTP: {shutdown, reached_max_restart_intensity}
    assert isinstance(root.exit.info, RestartIntensityExceededError)
    assert root.exit.gave_up
    assert journal.of("stop") == ["a"]  # b had crashed; a was stopped on the way out
    gave_up = event_log.wait_for(lambda e: e.kind is EventKind.GAVE_UP)
    assert gave_up.supervisor == "root"
    assert gave_up.reason is not None
    assert "more than 3 restarts in 5 s" in gave_up.reason


def test_restarts_older_than_the_period_no_longer_count(events: EventStream) -> None:
    journal, clock = Journal(), FakeClock()
    root = Root([worker("a", journal)], events, clock=clock)
    for n in range(1, 7):
        inject_crash(root.child("a"))
        journal.wait_for("a", "start", count=n + 1)
        clock.now += 2.0  # never more than 3 restarts inside 5 s
    assert root.restarts()["a"] == 6
    assert not root.exited.is_set()


def test_escalation_goes_through_two_levels(events: EventStream, event_log: EventLog) -> None:
    journal, clock = Journal(), FakeClock()
    inner = Supervisor.child_spec(
        "inner",
        [worker("w", journal), worker("v", journal)],
        max_restarts=1,
        events=events,
        clock=clock,
    )
    root = Root([worker("a", journal), inner], events, clock=clock, max_restarts=1)

    def w_ref() -> pykka.ActorRef[Any]:
        return next(
            i.ref
            for i in which_children(root.child("inner")).get(timeout=5)
            if i.id == "w" and i.ref is not None
        )

    inject_crash(w_ref())
    journal.wait_for("w", "start", count=2)
    inject_crash(w_ref())  # inner gives up; the root restarts inner, and w and v afresh
    event_log.wait_for(lambda e: e.child == "inner" and e.kind is EventKind.RESTARTED)
    assert root.restarts() == {"a": 0, "inner": 1}
    tree = describe_tree(root.ref)
    assert [c.restarts for c in tree.find("inner").children or ()] == [0, 0]  # type: ignore[union-attr]
    assert journal.of("stop")[:1] == ["v"]  # inner stopped its last child first

    inject_crash(w_ref())
    journal.wait_for("w", "start", count=4)
    inject_crash(w_ref())  # inner gives up again: a second root restart is one too many
    assert root.exited.wait(5)
    assert isinstance(root.exit and root.exit.info, RestartIntensityExceededError)
    assert [e.supervisor for e in events.recent() if e.kind is EventKind.GAVE_UP] == [
        "inner",
        "inner",
        "root",
    ]
    assert journal.of("stop")[-1] == "a"


def test_a_child_that_cannot_be_restarted_spends_the_intensity(
    events: EventStream, event_log: EventLog
) -> None:
    journal = Journal()
    attempts = iter([False] + [True] * 10)  # starts once, then never again
    root = Root([worker("a", journal, fail_start=lambda: next(attempts))], events)
    inject_crash(root.child("a"))
    assert root.exited.wait(5)
    assert journal.of("failed start") == ["a"] * 3
    event_log.wait_for(lambda e: e.kind is EventKind.GAVE_UP)


# -- failing to start ---------------------------------------------------------------------


def test_a_child_failing_to_start_fails_the_supervisor_naming_it(events: EventStream) -> None:
    journal = Journal()
    children = [
        worker("a", journal),
        worker("b", journal),
        worker("c", journal, fail_start=lambda: True),
    ]
    with pytest.raises(StartChildError) as raised:
        Root(children, events)
    assert "child 'root' failed to start" in str(raised.value)
    assert "child 'c' failed to start: RuntimeError: c cannot start" in str(raised.value)
    assert journal.of("stop") == ["b", "a"]


def test_start_function_that_raises_is_a_failed_start(events: EventStream) -> None:
    def broken() -> pykka.ActorRef[Any]:
        raise OSError("no such device")

    with pytest.raises(StartChildError, match="'x' failed to start: OSError: no such device"):
        Root([ChildSpec("x", broken)], events)


def test_a_child_whose_on_start_does_not_return_in_time_is_killed_and_fails_the_start(
    events: EventStream, event_log: EventLog
) -> None:
    journal, held = Journal(), Gate()
    root = Root([worker("a", journal)], events, start_timeout_s=0.2)
    starting = start_child(root.ref, worker("slow", journal, hold_start=held))
    with pytest.raises(StartChildError, match=r"'slow' failed to start: on_start did not return"):
        starting.get(timeout=5)
    assert [i.id for i in which_children(root.ref).get(timeout=5)] == ["a"]
    assert event_log.kinds("slow") == []  # never a child: no event
    assert pykka.ActorRegistry.get_by_class(Worker) == [root.child("a")]  # killed
    held.release.set()  # its on_start, already running, runs on to its end unwatched
    journal.wait_for("slow", "start")


def test_start_function_must_return_the_first_supervised_actor_it_started(
    events: EventStream,
) -> None:
    journal = Journal()
    started: list[pykka.ActorRef[Any]] = []

    def start_two() -> pykka.ActorRef[Any]:
        started.extend([Worker.start("first", journal), Worker.start("second", journal)])
        return started[1]

    root = Root([], events)
    with pytest.raises(StartChildError, match="returned another actor than the first one"):
        start_child(root.ref, ChildSpec("two", start_two)).get(timeout=5)
    wait_until_dead(started[0])  # the one linked, the child, is killed
    assert started[1].is_alive()  # the helper was never the child: it is not supervised
    started[1].stop()


def test_start_function_must_start_a_supervised_actor(events: EventStream) -> None:
    class Plain(pykka.ThreadingActor):
        pass

    with pytest.raises(StartChildError, match=r"derive from supervision\.ThreadActor"):
        Root([ChildSpec("plain", Plain.start)], events)


# -- shutdown -----------------------------------------------------------------------------------


def test_a_child_that_ignores_stop_is_killed_after_its_timeout(
    events: EventStream, event_log: EventLog
) -> None:
    journal = Journal()
    root = Root([worker("a", journal), worker("stuck", journal, shutdown=0.2)], events)
    gate = Gate()
    stuck = root.child("stuck")
    stuck.tell(gate)
    assert gate.entered.wait(5)

    started = time.monotonic()
    root.ref.stop(timeout=5)
    took = time.monotonic() - started

    assert 0.2 <= took < 2.0
    assert journal.of("stop") == ["a"]  # stuck never ran on_stop; a was stopped after it
    killed = event_log.wait_for(lambda e: e.child == "stuck" and e.kind is EventKind.EXITED)
    assert killed.reason == "killed"
    assert not stuck.is_alive()
    gate.release.set()
    wait_until_dead(stuck)


def test_brutal_kill_does_not_run_on_stop(events: EventStream, event_log: EventLog) -> None:
    journal = Journal()
    root = Root([worker("a", journal, shutdown=Shutdown.BRUTAL_KILL)], events)
    ref = root.child("a")
    root.ref.stop(timeout=5)
    wait_until_dead(ref)
    assert journal.of("stop") == []
    assert event_log.wait_for(lambda e: e.child == "a" and e.kind is EventKind.EXITED).reason == (
        "killed"
    )


def test_sub_supervisor_stops_its_children_before_its_parent_goes_on(events: EventStream) -> None:
    journal = Journal()
    inner = Supervisor.child_spec("inner", [worker("x", journal), worker("y", journal)])
    root = Root([worker("a", journal), inner, worker("z", journal)], events)
    root.ref.stop(timeout=5)
    assert journal.of("stop") == ["z", "y", "x", "a"]


# -- the registry across restarts ------------------------------------------------------------------


def test_name_reaches_the_new_incarnation_after_a_restart(
    events: EventStream, registry: Registry
) -> None:
    journal = Journal()
    root = Root([worker("room", journal, registered=True)], events, registry=registry)
    first = registry.whereis("room")
    inject_crash(root.child("room"))
    # Sent right behind the crash: held during the restart, answered by the new one.
    assert registry.ask("room", "ping").get(timeout=5) == "room"
    assert registry.whereis("room") not in (None, first)


def test_messages_queued_behind_a_crash_go_to_the_next_incarnation(
    events: EventStream, registry: Registry
) -> None:
    journal = Journal()
    root = Root([worker("room", journal, registered=True)], events, registry=registry)
    gate = Gate()
    registry.tell("room", gate)
    assert gate.entered.wait(5)
    inject_crash(root.child("room"))
    replies = [registry.ask("room", "ping") for _ in range(3)]
    gate.release.set()
    assert [r.get(timeout=5) for r in replies] == ["room"] * 3
    assert journal.of("start") == ["room", "room"]


def test_a_name_whose_child_is_gone_for_good_is_unregistered(
    events: EventStream, registry: Registry, event_log: EventLog
) -> None:
    journal = Journal()
    root = Root([worker("job", journal, T, registered=True)], events, registry=registry)
    registry.tell("job", "exit")
    event_log.wait_for(lambda e: e.child == "job" and e.kind is EventKind.EXITED)
    assert registry.whereis("job") is None
    assert "job" not in registry.names()
    assert root.ref.is_alive()


# -- the child API ---------------------------------------------------------------------------------


def test_children_can_be_added_terminated_restarted_and_deleted(events: EventStream) -> None:
    journal = Journal()
    root = Root([worker("a", journal)], events)
    ref = start_child(root.ref, worker("b", journal)).get(timeout=5)
    assert ref.ask("ping") == "b"
    assert count_children(root.ref).get(timeout=5).active == 2

    terminate_child(root.ref, "b").get(timeout=5)
    assert journal.of("stop") == ["b"]
    counts = count_children(root.ref).get(timeout=5)
    assert (counts.specs, counts.active) == (2, 1)

    assert restart_child(root.ref, "b").get(timeout=5).ask("ping") == "b"
    terminate_child(root.ref, "b").get(timeout=5)
    delete_child(root.ref, "b").get(timeout=5)
    assert [i.id for i in which_children(root.ref).get(timeout=5)] == ["a"]


def test_child_api_errors_are_typed(events: EventStream) -> None:
    journal = Journal()
    root = Root([worker("a", journal)], events)
    with pytest.raises(DuplicateChildError, match="child 'a' is already started"):
        start_child(root.ref, worker("a", journal)).get(timeout=5)
    with pytest.raises(InvalidChildSpecError, match="expected a ChildSpec, got <function"):
        start_child(root.ref, lambda: Worker.start("bare", journal)).get(timeout=5)
    with pytest.raises(ChildNotFoundError, match="has no child 'zz'"):
        terminate_child(root.ref, "zz").get(timeout=5)
    with pytest.raises(ChildRunningError, match="'a' is running; terminate it first"):
        restart_child(root.ref, "a").get(timeout=5)
    with pytest.raises(ChildRunningError, match="'a' is running"):
        delete_child(root.ref, "a").get(timeout=5)
    with pytest.raises(StartChildError, match="'bad' failed to start"):
        start_child(root.ref, worker("bad", journal, fail_start=lambda: True)).get(timeout=5)
    assert [i.id for i in which_children(root.ref).get(timeout=5)] == ["a"]
    assert root.ref.is_alive()


def test_named_child_needs_a_registry(events: EventStream) -> None:
    with pytest.raises(InvalidChildSpecError, match="was given no registry"):
        Supervisor([worker("a", Journal(), registered=True)], events=events)


def test_a_supervisor_refuses_what_is_not_a_child_spec_or_a_strategy(events: EventStream) -> None:
    with pytest.raises(StartChildError) as refused:
        start_link(Supervisor.child_spec("root", [worker("a", Journal()), "b"], events=events))  # type: ignore[list-item]
    assert isinstance(refused.value.__cause__, InvalidChildSpecError)
    assert "expected a ChildSpec, got 'b'" in str(refused.value.__cause__)
    with pytest.raises(StartChildError) as refused:
        start_link(Supervisor.child_spec("root", strategy="one_for_one"))
    assert isinstance(refused.value.__cause__, TypeError)
    assert str(refused.value.__cause__) == (
        "supervisor 'root': strategy must be Strategy.ONE_FOR_ONE, ONE_FOR_ALL "
        "or REST_FOR_ONE, got 'one_for_one'"
    )


def test_an_unknown_message_is_logged_and_the_supervisor_goes_on(
    events: EventStream, caplog: pytest.LogCaptureFixture
) -> None:
    root = Root([worker("a", Journal())], events)
    root.ref.tell("what is this?")
    assert [i.id for i in which_children(root.ref).get(timeout=5)] == ["a"]
    assert "Unexpected message received by Supervisor" in caplog.text


def test_a_supervisor_killed_outright_takes_its_children_with_it(
    events: EventStream, registry: Registry
) -> None:
    journal = Journal()
    children = [worker("x", journal, registered=True), worker("y", journal), worker("z", journal)]
    inner = Supervisor.child_spec("inner", children, registry=registry)
    inner = ChildSpec(
        inner.id, inner.start, kind=inner.kind, shutdown=Shutdown.BRUTAL_KILL
    )  # a supervisor is normally given infinity; here it is killed
    root = Root([inner], events)
    inner_ref = root.child("inner")
    terminate_child(inner_ref, "z").get(timeout=5)  # not running when the kill comes
    running = [i.ref for i in which_children(inner_ref).get(timeout=5) if i.ref is not None]
    gate = Gate()
    registry.tell("x", gate)
    assert gate.entered.wait(5)
    held = registry.ask("x", "ping")  # waits in x's inbox behind the gate
    root.ref.stop(timeout=5)
    for ref in [inner_ref, *running]:
        wait_until_dead(ref)
    assert journal.of("stop") == ["z"]  # the others were killed, not stopped: no on_stop ran
    # Like any exit of a supervisor, the kill holds its children's names, with
    # what they left unhandled, for an incarnation that never comes here.
    assert registry.whereis("x") is None
    assert not held.done()
    gate.release.set()


def test_a_child_that_dies_while_its_supervisor_stops_leaves_no_ask_unanswered(
    events: EventStream,
) -> None:
    journal, busy, stopping = Journal(), Gate(), Gate()
    root = Root([worker("a", journal), worker("b", journal, hold_stop=stopping)], events)
    a = root.child("a")
    a.tell(busy)
    assert busy.entered.wait(5)
    inject_crash(a)
    pending = a.ask("ping", block=False)  # queued behind the crash
    root.ref.stop(block=False)
    assert stopping.entered.wait(5)  # the root waits for b, the last started
    busy.release.set()  # a crashes now, while the root is stopping
    journal.wait_for("a", "crash")
    stopping.release.set()
    with pytest.raises(pykka.ActorDeadError, match="'a' exited before handling it"):
        pending.get(timeout=5)
    assert root.exited.wait(5)


def test_sends_to_a_restarting_subtree_are_held_until_it_is_back(
    events: EventStream, event_log: EventLog, registry: Registry
) -> None:
    journal = Journal()
    inner = Supervisor.child_spec(
        "inner",
        [worker("w", journal, registered=True), worker("v", journal, registered=True)],
        max_restarts=0,
        registry=registry,
        events=events,
    )
    root = Root([inner], events, registry=registry)
    inject_crash(registry.whereis("w"))  # type: ignore[arg-type]
    # inner gives up at once (max_restarts=0); the root restarts it, and its
    # children come back under the same names: sends in between are held.
    replies = [registry.ask("v", "ping") for _ in range(20)]
    assert [r.get(timeout=5) for r in replies] == ["v"] * 20
    event_log.wait(EventKind.RESTARTED, "inner")
    assert root.restarts() == {"inner": 1}


@pytest.mark.parametrize("how", ["terminated", "stopped"])
def test_a_supervisor_stopped_for_good_releases_its_childrens_names(
    how: str, events: EventStream
) -> None:
    registry = Registry()
    journal = Journal()
    inner = Supervisor.child_spec(
        "inner", [worker("w", journal, registered=True)], registry=registry
    )
    root = Root([inner], events)
    if how == "terminated":
        terminate_child(root.ref, "inner").get(timeout=5)
    else:
        root.ref.stop(timeout=5)
    assert registry.names() == []
    with pytest.raises(NameNotRegisteredError, match="no actor is registered as 'w'"):
        registry.tell("w", "later")


def test_a_restart_delay_keeps_the_child_restarting_for_that_long_and_counts_it_when_it_restarts(
    events: EventStream, event_log: EventLog
) -> None:
    """Not OTP's: the lesson's slow restart. Meanwhile the supervisor answers
    (the child shows as restarting, not alive) and nothing counts against the
    intensity until the restart happens."""
    journal = Journal()
    spec = Supervisor.child_spec("root", [worker("a", journal)], events=events, restart_delay_s=0.5)
    root = start_link(spec)
    inject_crash(_child_ref(root, "a"))
    exited = event_log.wait_for(lambda e: e.child == "a" and e.kind is EventKind.EXITED)
    tree = describe_tree(root)
    node = tree.find("a")
    assert node is not None
    assert (node.restarting, node.alive) == (True, False)
    assert tree.intensity is not None
    assert tree.intensity.restarts == 0
    restarted = event_log.wait(EventKind.RESTARTED, "a")
    assert restarted.time - exited.time >= 0.5
    after = describe_tree(root)
    assert after.intensity is not None
    assert after.intensity.restarts == 1
    node = after.find("a")
    assert node is not None
    assert (node.alive, node.restarting, node.restarts) == (True, False, 1)


def _child_ref(root: pykka.ActorRef[Any], child_id: str) -> pykka.ActorRef[Any]:
    (ref,) = [i.ref for i in which_children(root).get(timeout=5) if i.id == child_id]
    assert ref is not None
    return ref


@pytest.mark.parametrize("delay", [-1, "1"])
def test_a_restart_delay_must_be_a_number_at_least_zero(delay: Any) -> None:
    with pytest.raises(ValueError, match="restart_delay_s must be a number >= 0"):
        Supervisor(restart_delay_s=delay)
