"""`adopt_child`: a temporary child started by its caller (a loop actor on the
caller's loop) and handed to a supervisor, which from then on supervises it as
one it started; a child it cannot take is stopped, never left unsupervised.
On both runtimes."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pykka
import pytest

from supervision import (
    ChildSpec,
    DynamicSupervisor,
    EventKind,
    EventStream,
    InvalidChildSpecError,
    Registry,
    Restart,
    Supervisor,
    adopt_child,
    count_children,
    start_child,
    start_link,
    terminate_child,
    which_children,
)
from tests.conftest import EventLog
from tests.unit._runtimes import (  # noqa: F401
    TIMEOUT_S,
    Gate,
    Journal,
    Note,
    Raise,
    Recorder,
    Runtime,
    StopYourself,
    ask,
    journal_fixture,
    loop_runtime,
    loop_thread_ident,
    on_loop,
    runtime_fixture,
    thread_runtime,
)


def _spec(runtime: Runtime, child_id: str, journal: Journal, **options: Any) -> ChildSpec:
    return ChildSpec(
        id=child_id,
        start=lambda: runtime.start(Recorder, journal, **options),
        restart=Restart.TEMPORARY,
    )


def _adopt(
    runtime: Runtime, supervisor: pykka.ActorRef[Any], spec: ChildSpec
) -> pykka.ActorRef[Any]:
    """`adopt_child` called where a caller of that runtime would call it: a
    loop actor's caller is its loop."""
    if runtime.loop is None:
        return adopt_child(supervisor, spec)

    async def on_the_loop() -> pykka.ActorRef[Any]:
        return adopt_child(supervisor, spec)

    return on_loop(runtime.loop, on_the_loop())


def _sessions(events: EventStream, **options: Any) -> pykka.ActorRef[Any]:
    return start_link(DynamicSupervisor.child_spec("sessions", events=events, **options))


def _ids(supervisor: pykka.ActorRef[Any]) -> list[str]:
    return [info.id for info in which_children(supervisor).get(timeout=TIMEOUT_S)]


def test_an_adopted_child_is_supervised_as_one_the_supervisor_started(
    runtime: Runtime, journal: Journal, events: EventStream, event_log: EventLog
) -> None:
    sup = _sessions(events)
    ref = _adopt(runtime, sup, _spec(runtime, "s1", journal))

    assert ask(ref, Note("hello")) == "hello"
    assert _ids(sup) == ["s1"]
    counts = count_children(sup).get(timeout=TIMEOUT_S)
    assert (counts.specs, counts.active, counts.workers) == (1, 1, 1)
    assert event_log.wait(EventKind.STARTED, "s1").supervisor == "sessions"


def test_an_adopted_loop_actor_starts_on_its_callers_loop_without_a_supervisor_thread(
    loop: asyncio.AbstractEventLoop, journal: Journal, events: EventStream
) -> None:
    runtime = loop_runtime(loop)
    sup = _sessions(events)
    _adopt(runtime, sup, _spec(runtime, "s1", journal))
    journal.wait_for("on_start")
    assert journal.entries[0].thread == loop_thread_ident(loop)


def test_frames_sent_before_on_start_ran_are_handled_after_it_in_order(
    runtime: Runtime, journal: Journal, events: EventStream
) -> None:
    gate = Gate()
    sup = _sessions(events)
    if runtime.loop is None:
        ref = _adopt(runtime, sup, _spec(runtime, "s1", journal, start_gate=gate))
        ref.tell(Note(1))
        ref.tell(Note(2))
    else:  # on the loop, the child's on_start runs on the loop's next turn, after this call
        loop = runtime.loop

        async def adopt_and_send() -> pykka.ActorRef[Any]:
            ref = adopt_child(sup, _spec(runtime, "s1", journal))
            ref.tell(Note(1))
            ref.tell(Note(2))
            return ref

        ref = on_loop(loop, adopt_and_send())
    gate.release.set()
    journal.wait_for("note", 2)
    assert journal.whats()[:3] == ["on_start", "note", "note"]
    assert journal.details("note") == [1, 2]


def test_an_adopted_childs_exit_is_heard_and_the_temporary_child_forgotten(
    runtime: Runtime, journal: Journal, events: EventStream, event_log: EventLog
) -> None:
    sup = _sessions(events, max_restarts=0)
    crashing = _adopt(runtime, sup, _spec(runtime, "crashes", journal))
    stopping = _adopt(runtime, sup, _spec(runtime, "stops", journal))
    crashing.tell(Raise(RuntimeError("boom")))
    stopping.tell(StopYourself())

    assert (event_log.wait(EventKind.EXITED, "crashes").reason or "").startswith("crashed")
    assert event_log.wait(EventKind.EXITED, "stops").reason == "normal"
    event_log.wait_until(lambda: _ids(sup) == [], "both forgotten")
    assert sup.is_alive()  # a temporary child's crash spends no restart


def test_an_adopted_child_that_fails_in_on_start_is_forgotten(
    runtime: Runtime, journal: Journal, events: EventStream, event_log: EventLog
) -> None:
    sup = _sessions(events, max_restarts=0)
    _adopt(runtime, sup, _spec(runtime, "s1", journal, fail_start=True))

    event_log.wait(EventKind.EXITED, "s1")
    event_log.wait_until(lambda: _ids(sup) == [], "the child forgotten")
    assert event_log.count(EventKind.RESTARTED) == 0
    assert sup.is_alive()


def test_terminate_child_stops_an_adopted_child(
    runtime: Runtime, journal: Journal, events: EventStream
) -> None:
    sup = _sessions(events)
    ref = _adopt(runtime, sup, _spec(runtime, "s1", journal))
    journal.wait_for("on_start")

    terminate_child(sup, "s1").get(timeout=TIMEOUT_S)
    assert ref.actor_stopped.wait(TIMEOUT_S)
    assert "on_stop" in journal.whats()
    assert _ids(sup) == []


def test_a_stopping_supervisor_stops_its_adopted_children(
    runtime: Runtime, journal: Journal, events: EventStream
) -> None:
    sup = _sessions(events)
    refs = [_adopt(runtime, sup, _spec(runtime, f"s{n}", journal)) for n in range(3)]
    journal.wait_for("on_start", 3)

    sup.stop(timeout=TIMEOUT_S)
    assert all(ref.actor_stopped.wait(TIMEOUT_S) for ref in refs)
    assert journal.whats().count("on_stop") == 3


def test_only_a_temporary_child_is_adopted(
    runtime: Runtime, journal: Journal, events: EventStream
) -> None:
    sup = _sessions(events)
    for restart in (Restart.PERMANENT, Restart.TRANSIENT):
        spec = ChildSpec(id="s1", start=lambda: runtime.start(Recorder, journal), restart=restart)
        with pytest.raises(InvalidChildSpecError, match="only a temporary child is adopted"):
            _adopt(runtime, sup, spec)
    assert journal.whats() == []  # nothing was started
    assert _ids(sup) == []


def test_a_child_whose_id_is_taken_is_stopped_not_left_unsupervised(
    runtime: Runtime, journal: Journal, events: EventStream
) -> None:
    sup = _sessions(events)
    first = _adopt(runtime, sup, _spec(runtime, "s1", journal))
    second = _adopt(runtime, sup, _spec(runtime, "s1", journal))

    assert second.actor_stopped.wait(TIMEOUT_S)
    assert first.is_alive()
    assert _ids(sup) == ["s1"]
    assert ask(first, Note("still here")) == "still here"


def test_a_dynamic_supervisor_at_max_children_turns_an_adopted_child_down(
    runtime: Runtime, journal: Journal, events: EventStream
) -> None:
    sup = _sessions(events, max_children=1)
    kept = _adopt(runtime, sup, _spec(runtime, "s1", journal))
    refused = _adopt(runtime, sup, _spec(runtime, "s2", journal))

    assert refused.actor_stopped.wait(TIMEOUT_S)
    assert kept.is_alive()
    assert _ids(sup) == ["s1"]


def test_adopting_into_a_stopped_supervisor_fails_and_leaves_nothing_running(
    runtime: Runtime, journal: Journal, events: EventStream
) -> None:
    sup = _sessions(events)
    sup.stop(timeout=TIMEOUT_S)
    started: list[pykka.ActorRef[Any]] = []

    def start() -> pykka.ActorRef[Any]:
        started.append(runtime.start(Recorder, journal))
        return started[-1]

    spec = ChildSpec(id="s1", start=start, restart=Restart.TEMPORARY)
    with pytest.raises(pykka.ActorDeadError):
        _adopt(runtime, sup, spec)
    assert started[0].actor_stopped.wait(TIMEOUT_S)


def test_a_child_adopted_while_its_supervisor_stops_is_stopped_with_it(
    runtime: Runtime, journal: Journal, events: EventStream
) -> None:
    # The supervisor is kept busy starting a child whose on_start waits on a
    # gate; meanwhile a stop is queued, and then the adoption behind it.
    sup = _sessions(events)
    gate = Gate()
    slow = ChildSpec(
        id="slow",
        start=lambda: thread_runtime().start(Recorder, Journal(), start_gate=gate),
        restart=Restart.TEMPORARY,
    )
    starting = start_child(sup, slow)
    assert gate.entered.wait(TIMEOUT_S)
    stopped = threading.Thread(target=lambda: sup.stop(timeout=TIMEOUT_S))
    stopped.start()
    ref = _adopt(runtime, sup, _spec(runtime, "late", journal))
    gate.release.set()
    starting.get(timeout=TIMEOUT_S)
    stopped.join(TIMEOUT_S)

    assert not sup.is_alive()
    assert ref.actor_stopped.wait(TIMEOUT_S)


def test_a_static_supervisor_adopts_too(journal: Journal, events: EventStream) -> None:
    runtime = thread_runtime()
    sup = start_link(Supervisor.child_spec("root", [], events=events))
    ref = _adopt(runtime, sup, _spec(runtime, "helper", journal))
    assert ask(ref, Note(1)) == 1
    assert _ids(sup) == ["helper"]


def test_children_adopted_in_one_turn_of_the_loop_go_over_together_each_with_its_own_outcome(
    loop: asyncio.AbstractEventLoop, journal: Journal, events: EventStream
) -> None:
    runtime = loop_runtime(loop)
    sup = _sessions(events, max_children=48)
    ids = [*(f"s{n}" for n in range(45)), "s0", *(f"s{n}" for n in range(45, 49))]

    async def a_crowd() -> list[pykka.ActorRef[Any]]:  # all 50 in one turn of the loop
        return [adopt_child(sup, _spec(runtime, child_id, journal)) for child_id in ids]

    refs = on_loop(loop, a_crowd())
    duplicate, over_the_limit = refs[45], refs[49]
    assert duplicate.actor_stopped.wait(TIMEOUT_S)
    assert over_the_limit.actor_stopped.wait(TIMEOUT_S)
    taken = [ref for ref in refs if ref not in (duplicate, over_the_limit)]
    assert all(ref.is_alive() for ref in taken)
    assert _ids(sup) == [f"s{n}" for n in range(48)]


def test_a_child_whose_name_is_taken_is_turned_down_and_stopped(
    journal: Journal, events: EventStream, registry: Registry
) -> None:
    runtime = thread_runtime()
    holder = runtime.start(Recorder, Journal())
    registry.register("alice", holder)
    sup = start_link(Supervisor.child_spec("root", [], events=events, registry=registry))
    spec = ChildSpec(
        id="alice",
        start=lambda: runtime.start(Recorder, journal),
        restart=Restart.TEMPORARY,
        name="alice",
    )
    ref = _adopt(runtime, sup, spec)

    assert ref.actor_stopped.wait(TIMEOUT_S)
    assert _ids(sup) == []
    assert registry.whereis("alice") == holder
