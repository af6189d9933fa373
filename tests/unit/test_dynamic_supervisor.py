"""The dynamic supervisor: children added at run time, temporary by default,
bounded by max_children, forgotten when terminated."""

from __future__ import annotations

import functools
import threading

import pytest

from supervision import (
    DynamicSupervisor,
    EventKind,
    EventStream,
    MaxChildrenError,
    Restart,
    StartChildError,
    Supervisor,
    ThreadActor,
    count_children,
    describe_tree,
    inject_crash,
    start_child,
    start_link,
    terminate_child,
    which_children,
)
from tests.conftest import EventLog
from tests.unit._actors import Journal, Worker, wait_until_dead, worker


def test_bare_start_functions_become_temporary_children_with_generated_ids(
    events: EventStream,
) -> None:
    journal = Journal()
    sup = start_link(DynamicSupervisor.child_spec("sessions", events=events))
    refs = [
        start_child(sup, functools.partial(Worker.start, f"s{n}", journal)).get(timeout=5)
        for n in range(3)
    ]
    infos = which_children(sup).get(timeout=5)
    assert [i.id for i in infos] == ["sessions-1", "sessions-2", "sessions-3"]
    assert {i.restart for i in infos} == {Restart.TEMPORARY}
    assert [r.ask("ping") for r in refs] == ["s0", "s1", "s2"]


def test_a_crashed_temporary_child_is_forgotten_and_spends_no_restart_budget(
    events: EventStream, event_log: EventLog
) -> None:
    journal = Journal()
    sup = start_link(DynamicSupervisor.child_spec("sessions", events=events, max_restarts=0))
    refs = [start_child(sup, lambda: Worker.start("s", journal)).get(timeout=5) for _ in range(5)]
    for ref in refs[:4]:
        inject_crash(ref)
    for n in range(1, 5):
        event_log.wait(EventKind.EXITED, f"sessions-{n}")
    assert [i.id for i in which_children(sup).get(timeout=5)] == ["sessions-5"]
    assert sup.is_alive()  # max_restarts=0, yet four crashes cost nothing


def test_permanent_dynamic_children_are_restarted(events: EventStream, event_log: EventLog) -> None:
    journal = Journal()
    sup = start_link(DynamicSupervisor.child_spec("pool", events=events))
    ref = start_child(sup, worker("w", journal)).get(timeout=5)
    inject_crash(ref)
    event_log.wait_for(lambda e: e.child == "w" and e.kind is EventKind.RESTARTED)
    assert [i.restarts for i in which_children(sup).get(timeout=5)] == [1]


def test_max_children_is_enforced(events: EventStream) -> None:
    journal = Journal()
    sup = start_link(DynamicSupervisor.child_spec("sessions", events=events, max_children=2))
    for _ in range(2):
        start_child(sup, lambda: Worker.start("s", journal)).get(timeout=5)
    with pytest.raises(MaxChildrenError, match="already runs its 2 children"):
        start_child(sup, lambda: Worker.start("s", journal)).get(timeout=5)
    first = which_children(sup).get(timeout=5)[0]
    terminate_child(sup, first.id).get(timeout=5)
    start_child(sup, lambda: Worker.start("s", journal)).get(timeout=5)
    assert count_children(sup).get(timeout=5).active == 2


def test_max_children_cannot_be_negative() -> None:
    with pytest.raises(StartChildError) as refused:
        start_link(DynamicSupervisor.child_spec("sessions", max_children=-1))
    assert str(refused.value.__cause__) == "max_children must be None or >= 0, got -1"


def test_a_child_stopped_for_good_is_passed_over_when_the_supervisor_stops(
    events: EventStream, event_log: EventLog
) -> None:
    journal = Journal()
    sup = start_link(DynamicSupervisor.child_spec("pool", events=events))
    done = start_child(sup, worker("done", journal, Restart.TRANSIENT)).get(timeout=5)
    start_child(sup, worker("busy", journal)).get(timeout=5)
    done.tell("exit")  # a transient child that stops normally is kept, not running
    event_log.wait(EventKind.EXITED, "done")
    sup.stop(timeout=5)
    assert journal.of("stop") == ["done", "busy"]
    assert [e.reason for e in events.recent() if e.kind is EventKind.EXITED] == [
        "normal",
        "shutdown",
    ]


def test_terminating_a_child_forgets_it(events: EventStream) -> None:
    journal = Journal()
    sup = start_link(DynamicSupervisor.child_spec("sessions", events=events))
    ref = start_child(sup, lambda: Worker.start("s", journal)).get(timeout=5)
    terminate_child(sup, "sessions-1").get(timeout=5)
    wait_until_dead(ref)
    assert journal.of("stop") == ["s"]
    assert which_children(sup).get(timeout=5) == []


def test_children_started_concurrently_all_run(events: EventStream) -> None:
    journal = Journal()
    sup = start_link(DynamicSupervisor.child_spec("sessions", events=events))
    results: list[object] = []
    lock = threading.Lock()

    def add(n: int) -> None:
        ref = start_child(sup, lambda: Worker.start(f"s{n}", journal)).get(timeout=10)
        with lock:
            results.append(ref.ask("ping"))

    threads = [threading.Thread(target=add, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(results) == sorted(f"s{n}" for n in range(50))  # type: ignore[type-var]


class Meeting(ThreadActor):
    """Starts only once `barrier` has every party: when its siblings start too."""

    def __init__(self, barrier: threading.Barrier) -> None:
        super().__init__()
        self.barrier = barrier

    def on_start(self) -> None:
        self.barrier.wait(timeout=5)


class Gate(ThreadActor):
    """Starts once `opened` is set: holds its supervisor in a start."""

    def __init__(self, opened: threading.Event) -> None:
        super().__init__()
        self.opened = opened

    def on_start(self) -> None:
        assert self.opened.wait(timeout=5)


def test_children_asked_for_while_it_is_busy_start_together_each_answered_alone(
    events: EventStream,
) -> None:
    sup = start_link(DynamicSupervisor.child_spec("sessions", events=events, max_children=6))
    opened = threading.Event()
    first = start_child(sup, lambda: Gate.start(opened))  # the supervisor waits on it
    meeting = threading.Barrier(3)
    together = [start_child(sup, lambda: Meeting.start(meeting)) for _ in range(3)]
    failing = start_child(sup, lambda: Worker.start("broken", Journal(), fail_start=True))
    no_actor = start_child(sup, lambda: 42)  # type: ignore[arg-type, return-value]
    too_many = [start_child(sup, lambda: Worker.start("w", Journal())) for _ in range(3)]
    opened.set()
    first.get(timeout=5)
    # One after the other, the first meeting would wait for the others forever.
    refs = [future.get(timeout=10) for future in together]
    assert len({ref.actor_urn for ref in refs}) == 3
    with pytest.raises(StartChildError, match="broken cannot start"):
        failing.get(timeout=5)
    with pytest.raises(StartChildError, match="did not start a supervised actor"):
        no_actor.get(timeout=5)
    # The broken child's place is free again for the next one, as it would be
    # one start at a time.
    assert too_many[0].get(timeout=5).is_alive()
    assert too_many[1].get(timeout=5).is_alive()
    with pytest.raises(MaxChildrenError):
        too_many[2].get(timeout=5)
    assert count_children(sup).get(timeout=5).active == 6
    assert [e.kind for e in events.recent() if e.supervisor == "sessions"].count(
        EventKind.STARTED
    ) == 6


def test_dynamic_supervisor_sits_in_a_tree_and_stops_its_children(events: EventStream) -> None:
    journal = Journal()
    root = start_link(
        Supervisor.child_spec(
            "root",
            [worker("room", journal), DynamicSupervisor.child_spec("sessions", events=events)],
        )
    )
    sessions = next(i.ref for i in which_children(root).get(timeout=5) if i.id == "sessions")
    assert sessions is not None
    for n in range(3):
        start_child(sessions, functools.partial(Worker.start, f"s{n}", journal)).get(timeout=5)
    tree = describe_tree(root)
    node = tree.find("sessions")
    assert node is not None
    assert [c.id for c in node.children or ()] == [
        "sessions-1",
        "sessions-2",
        "sessions-3",
    ]
    root.stop(timeout=5)
    stops = journal.of("stop")
    assert sorted(stops[:3]) == ["s0", "s1", "s2"]  # the sessions, stopped all at once
    assert stops[3:] == ["room"]  # and only then the children started before them


class Slow(Worker):
    """Waits in on_stop until every sibling is stopping too."""

    def __init__(self, name: str, journal: Journal, barrier: threading.Barrier) -> None:
        super().__init__(name, journal)
        self.barrier = barrier

    def on_stop(self) -> None:
        self.barrier.wait(timeout=5)  # broken if the siblings are stopped one by one
        super().on_stop()


def test_children_of_a_dynamic_supervisor_are_stopped_all_at_once(events: EventStream) -> None:
    journal = Journal()
    barrier = threading.Barrier(4)
    sup = start_link(DynamicSupervisor.child_spec("sessions", events=events))
    for n in range(4):
        start_child(sup, functools.partial(Slow.start, f"s{n}", journal, barrier)).get(timeout=5)
    sup.stop(timeout=10)
    assert sorted(journal.of("stop")) == ["s0", "s1", "s2", "s3"]
    assert not barrier.broken
