"""The partition supervisor: alike partitions, a key picking one, each partition
supervised and read on its own; children on both runtimes."""

from __future__ import annotations

import functools
import re
from typing import Any

import pykka
import pytest

from supervision import (
    ChildSpec,
    DynamicSupervisor,
    EventKind,
    EventStream,
    InvalidChildSpecError,
    Partitions,
    PartitionSupervisor,
    Registry,
    Restart,
    StartChildError,
    Strategy,
    describe_children,
    describe_tree,
    find_actor,
    inject_crash,
    partition_index,
    render_tree,
    start_child,
    start_link,
    which_children,
)
from tests.conftest import EventLog
from tests.unit._runtimes import (  # noqa: F401
    TIMEOUT_S,
    Quiet,
    Runtime,
    journal_fixture,
    runtime_fixture,
    thread_runtime,
)


def _partition(registry: Registry, events: EventStream, partition_id: str) -> ChildSpec:
    return DynamicSupervisor.child_spec(
        partition_id, name=partition_id, registry=registry, events=events
    )


def _start(
    registry: Registry, events: EventStream, count: int
) -> tuple[pykka.ActorRef[Any], Partitions]:
    """A partition supervisor "sessions" of `count` dynamic supervisors, each
    registered under its id; and where its partitions are."""
    spec = PartitionSupervisor.child_spec(
        "sessions",
        functools.partial(_partition, registry, events),
        partitions=count,
        registry=registry,
        events=events,
    )
    return start_link(spec), Partitions("sessions", count)


def _start_by_key(registry: Registry, layout: Partitions, key: str, runtime: Runtime) -> None:
    """Start a child with id `key` in the partition the key picks, found by name."""
    partition = registry.whereis(layout.id_for(key))
    assert partition is not None
    spec = ChildSpec(key, lambda: runtime.start(Quiet), restart=Restart.TEMPORARY)
    start_child(partition, spec).get(timeout=TIMEOUT_S)


def test_a_key_always_picks_the_same_partition_and_integers_take_turns() -> None:
    assert [partition_index(n, 3) for n in range(6)] == [0, 1, 2, 0, 1, 2]
    assert partition_index("session-7", 4) == partition_index(b"session-7", 4)
    spread = {partition_index(f"session-{n}", 4) for n in range(100)}
    assert spread == {0, 1, 2, 3}
    layout = Partitions("sessions", 4)
    assert layout.ids() == ("sessions.0", "sessions.1", "sessions.2", "sessions.3")
    assert layout.id_for(6) == "sessions.2"
    assert layout.holds("sessions.3")
    assert not layout.holds("sessions")
    assert not layout.holds(None)


@pytest.mark.parametrize("key", [1.5, None, True, ("a",)])
def test_a_key_that_is_not_an_int_a_str_or_bytes_is_refused_by_name(key: object) -> None:
    with pytest.raises(TypeError, match=re.escape(f"must be an int, a str or bytes, got {key!r}")):
        partition_index(key, 2)  # type: ignore[arg-type]


@pytest.mark.parametrize("count", [0, -1, 1.0, True])
def test_partitions_must_be_at_least_one(count: object) -> None:
    with pytest.raises(ValueError, match=re.escape(f"at least 1, got {count!r}")):
        Partitions("sessions", count)  # type: ignore[arg-type]


def test_each_partition_is_a_child_under_its_id_and_registered_name(
    registry: Registry, events: EventStream
) -> None:
    root, layout = _start(registry, events, 3)
    tree = describe_tree(root)
    assert tree.id == "sessions"
    assert tree.strategy is Strategy.ONE_FOR_ONE
    assert [(c.id, c.kind.value) for c in tree.children or ()] == [
        ("sessions.0", "supervisor"),
        ("sessions.1", "supervisor"),
        ("sessions.2", "supervisor"),
    ]
    assert all(registry.whereis(partition_id) is not None for partition_id in layout.ids())


def test_children_started_by_key_run_in_their_partition_on_either_runtime(
    registry: Registry, events: EventStream, runtime: Runtime
) -> None:
    root, layout = _start(registry, events, 2)
    keys = [f"session-{n}" for n in range(1, 9)]
    for key in keys:
        _start_by_key(registry, layout, key, runtime)
    for index, partition_id in enumerate(layout.ids()):
        partition = registry.whereis(partition_id)
        assert partition is not None
        ids = [info.id for info in which_children(partition).get(timeout=TIMEOUT_S)]
        assert ids == [key for key in keys if partition_index(key, 2) == index]
    assert find_actor(root, "session-5") is not None
    assert find_actor(root, "sessions.1") is registry.whereis("sessions.1")


def test_a_crashed_partition_is_restarted_alone_and_its_siblings_keep_their_children(
    registry: Registry, events: EventStream, event_log: EventLog, runtime: Runtime
) -> None:
    _, layout = _start(registry, events, 2)
    keys = [f"session-{n}" for n in range(1, 9)]
    for key in keys:
        _start_by_key(registry, layout, key, runtime)
    crashed = registry.whereis("sessions.0")
    assert crashed is not None
    inject_crash(crashed)
    event_log.wait(EventKind.RESTARTED, "sessions.0")
    again = registry.whereis("sessions.0")
    assert again is not None
    assert again is not crashed
    assert which_children(again).get(timeout=TIMEOUT_S) == []  # temporary: not restarted
    kept = registry.whereis("sessions.1")
    assert kept is not None
    survivors = [info.id for info in which_children(kept).get(timeout=TIMEOUT_S)]
    assert survivors == [key for key in keys if partition_index(key, 2) == 1]
    assert all(info.alive for info in which_children(kept).get(timeout=TIMEOUT_S))


def test_a_partition_spec_must_carry_the_id_it_is_given(
    registry: Registry, events: EventStream
) -> None:
    spec = PartitionSupervisor.child_spec(
        "sessions", lambda _id: DynamicSupervisor.child_spec("other"), partitions=2
    )
    with pytest.raises(StartChildError) as refused:
        start_link(spec)
    assert isinstance(refused.value.__cause__, InvalidChildSpecError)
    assert "must return a ChildSpec with id 'sessions.0'" in str(refused.value.__cause__)


def test_thousands_of_children_are_read_a_page_at_a_time(
    registry: Registry, events: EventStream, runtime: Runtime
) -> None:
    root, layout = _start(registry, events, 2)
    partition = registry.whereis(layout.id_of(0))
    assert partition is not None
    for _ in range(30):
        start_child(partition, lambda: runtime.start(Quiet)).get(timeout=TIMEOUT_S)
    tree = describe_tree(root, max_children=5)
    first = tree.find("sessions.0")
    assert first is not None
    assert (len(first.children or ()), first.count, first.unlisted) == (5, 30, 25)
    assert first.to_dict()["count"] == 30
    page = describe_children(partition, offset=25, limit=10)
    assert [child.id for child in page.children or ()] == [f"sessions.0-{n}" for n in range(26, 31)]
    assert page.count == 30


def test_a_rendered_tree_counts_the_children_it_was_not_given(
    registry: Registry, events: EventStream
) -> None:
    root, layout = _start(registry, events, 1)
    partition = registry.whereis(layout.id_of(0))
    assert partition is not None
    for _ in range(5):
        start_child(partition, lambda: thread_runtime().start(Quiet)).get(timeout=TIMEOUT_S)
    lines = render_tree(describe_tree(root, max_children=2), max_children=3).split("\n")
    assert lines[-3:] == [
        "   ├─ sessions.0-1  worker temporary  alive",
        "   ├─ sessions.0-2  worker temporary  alive",
        "   └─ … 3 more",
    ]
