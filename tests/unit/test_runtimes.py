"""The two actor runtimes, `ThreadActor` and `LoopActor`, keep pykka's semantics:
order, asks and tells, stops, proxies, pykka's registry, futures, threads.

Every test runs on both runtimes through the `runtime` fixture. How each way
of dying is reported is `test_supervised`'s; the loop runtime's own promises
are `test_loop_actor`'s.
"""

from __future__ import annotations

import asyncio
import collections
import threading

import pykka
import pytest

from supervision import (
    BlockingCallOnLoopError,
    Future,
)
from supervision._pykka import deliver, envelope
from tests.unit._runtimes import (
    TIMEOUT_S,
    AskWithCallback,
    Block,
    Double,
    Gate,
    GetReceived,
    Journal,
    Note,
    Quiet,
    Raise,
    Recorder,
    Runtime,
    Waiting,
    ask,
    journal_fixture,  # noqa: F401  (a fixture)
    loop_runtime,
    loop_thread_ident,
    on_loop,
    registered_urns,
    runtime_fixture,  # noqa: F401  (a fixture)
    thread_runtime,
    wait_exited,
)


def test_on_start_runs_before_messages_told_while_it_runs(
    runtime: Runtime, journal: Journal
) -> None:
    gate = Gate()
    ref = runtime.start(Recorder, journal, start_gate=gate)
    assert gate.entered.wait(TIMEOUT_S)

    for value in range(5):
        ref.tell(Note(value))  # told while on_start has not returned
    asked = ref.ask(Double(1), block=False)
    gate.release.set()

    assert asked.get(timeout=TIMEOUT_S) == 2
    assert journal.whats() == ["on_start", "note", "note", "note", "note", "note", "double"]
    assert journal.details("note") == [0, 1, 2, 3, 4]


def test_messages_are_handled_in_the_order_told(runtime: Runtime, journal: Journal) -> None:
    ref = runtime.start(Recorder, journal)

    for value in range(200):
        ref.tell(Note(value))

    assert ask(ref, GetReceived()) == list(range(200))


def test_ask_returns_the_handlers_value(runtime: Runtime, journal: Journal) -> None:
    ref = runtime.start(Recorder, journal)

    assert ask(ref, Double(21)) == 42
    assert ref.ask(Note("x"), block=False).get(timeout=TIMEOUT_S) == "x"


def test_tells_from_many_threads_are_each_handled_exactly_once(
    runtime: Runtime, journal: Journal
) -> None:
    senders, per_sender = 8, 250
    ref = runtime.start(Recorder, journal)
    barrier = threading.Barrier(senders)

    def send(sender: int) -> None:
        barrier.wait(TIMEOUT_S)
        for index in range(per_sender):
            ref.tell(Note((sender, index)))

    threads = [threading.Thread(target=send, args=(n,)) for n in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT_S)

    received: list[tuple[int, int]] = ask(ref, GetReceived())
    counts = collections.Counter(received)
    assert len(received) == senders * per_sender
    assert set(counts.values()) == {1}
    for sender in range(senders):  # each sender's messages stay in its order
        assert [i for s, i in received if s == sender] == list(range(per_sender))


def test_proxy_calls_methods_and_gets_and_sets_attributes(
    runtime: Runtime, journal: Journal
) -> None:
    ref = runtime.start(Recorder, journal)
    proxy = ref.proxy()

    call = proxy.add(2, 3)
    assert isinstance(call, Future)
    assert call.get(timeout=TIMEOUT_S) == 5
    assert proxy.label.get(timeout=TIMEOUT_S) == "recorder"
    proxy.label = "renamed"
    assert proxy.label.get(timeout=TIMEOUT_S) == "renamed"
    with pytest.raises(LookupError, match="proxy call failed"):
        proxy.fail().get(timeout=TIMEOUT_S)
    assert ref.is_alive()  # a failing proxy call is an ask, not a crash
    assert journal.details("add") == [(2, 3)]


def test_registry_lists_the_actor_while_alive_and_not_after(
    runtime: Runtime, journal: Journal
) -> None:
    ref = runtime.start(Recorder, journal)
    actor_class = runtime.actor_class(Recorder)

    assert pykka.ActorRegistry.get_by_urn(ref.actor_urn) is ref
    assert ref in pykka.ActorRegistry.get_by_class(actor_class)
    assert ref.actor_urn in registered_urns()

    ref.stop(timeout=TIMEOUT_S)

    assert pykka.ActorRegistry.get_by_urn(ref.actor_urn) is None
    assert ref not in pykka.ActorRegistry.get_by_class(actor_class)
    assert ref.actor_urn not in registered_urns()


def test_ask_future_is_a_supervision_future_whose_callback_runs_once_with_the_result(
    runtime: Runtime, journal: Journal
) -> None:
    ref = runtime.start(Recorder, journal)
    gate = Gate()
    ref.tell(Block(gate))
    assert gate.entered.wait(TIMEOUT_S)
    results: list[int] = []
    called = threading.Event()

    def on_done(done: Future[int]) -> None:
        results.append(done.get())
        called.set()

    future = ref.ask(Double(5), block=False)
    assert isinstance(future, Future)
    future.add_done_callback(on_done)  # before the reply: the actor is held
    assert results == []
    gate.release.set()

    assert called.wait(TIMEOUT_S)
    assert ask(ref, Double(0)) == 0  # one more round trip: no second call came
    assert results == [10]
    future.add_done_callback(on_done)  # after the reply: at once, once
    assert results == [10, 10]


def test_handlers_run_on_the_runtimes_thread(
    runtime: Runtime, journal: Journal, loop: asyncio.AbstractEventLoop
) -> None:
    stopped, stopped_link = runtime.start_linked(Recorder, journal)
    crashed_journal = Journal()
    crashed, crashed_link = runtime.start_linked(Recorder, crashed_journal)

    stopped.tell(Note(1))
    assert ask(stopped, Double(1)) == 2
    assert stopped.proxy().add(1, 1).get(timeout=TIMEOUT_S) == 2
    stopped.stop(timeout=TIMEOUT_S)
    crashed.tell(Raise(ValueError("crash")))
    wait_exited(stopped_link)
    wait_exited(crashed_link)

    entries = journal.entries + crashed_journal.entries
    assert {e.what for e in entries} == {
        "on_start",
        "note",
        "double",
        "add",
        "on_stop",
        "on_failure",
    }
    if runtime.name == "loop":
        assert {e.thread for e in entries} == {loop_thread_ident(loop)}
    else:
        # Each actor has a thread of its own, neither this one nor the loop's.
        threads = {e.thread for e in journal.entries}
        crashed_threads = {e.thread for e in crashed_journal.entries}
        assert len(threads) == 1
        assert len(crashed_threads) == 1
        assert threads != crashed_threads
        others = {threading.get_ident(), loop_thread_ident(loop)}
        assert not (threads | crashed_threads) & others


def test_blocking_get_on_a_loop_thread_raises_and_await_gets_the_reply(
    runtime: Runtime, journal: Journal, loop: asyncio.AbstractEventLoop
) -> None:
    ref = runtime.start(Recorder, journal)
    assert ask(ref, Double(0)) == 0  # started

    async def on_the_loop() -> tuple[bool, int]:
        # The actor is held until this coroutine lets it go, so no reply can
        # be there yet (a loop actor cannot run before this coroutine yields).
        gate = Gate()
        ref.tell(Block(gate))
        future = ref.ask(Double(4), block=False)
        assert isinstance(future, Future)
        with pytest.raises(BlockingCallOnLoopError):
            future.get()
        with pytest.raises(BlockingCallOnLoopError):
            future.get(timeout=1.0)
        with pytest.raises(BlockingCallOnLoopError):
            ref.ask(Double(5))  # a blocking ask, too
        done_before = future.done()
        gate.release.set()
        value: int = await ref.ask(Double(6), block=False)
        assert future.done()
        return done_before, value + await future

    done_before, total = on_loop(loop, on_the_loop())

    assert done_before is False
    assert total == 12 + 8


def test_blocking_stop_on_a_loop_thread_raises_instead_of_deadlocking(
    runtime: Runtime, journal: Journal, loop: asyncio.AbstractEventLoop
) -> None:
    ref = runtime.start(Recorder, journal)
    assert ask(ref, Double(0)) == 0

    async def on_the_loop() -> pykka.Future[bool]:
        gate = Gate()
        ref.tell(Block(gate))  # held: the stop below cannot be done yet
        stopping = ref.stop(block=False)
        with pytest.raises(BlockingCallOnLoopError):
            stopping.get()
        with pytest.raises(BlockingCallOnLoopError):
            ref.stop()
        gate.release.set()
        return stopping

    stopping = on_loop(loop, on_the_loop())

    assert stopping.get(timeout=TIMEOUT_S) is True
    journal.wait_for("on_stop")
    assert not ref.is_alive()


def test_actor_gets_a_reply_by_done_callback_without_blocking(
    runtime: Runtime, journal: Journal, loop: asyncio.AbstractEventLoop
) -> None:
    other_journal = Journal()
    asker = runtime.start(Recorder, journal)
    for value, other_runtime in enumerate((thread_runtime(), loop_runtime(loop))):
        other = other_runtime.start(Recorder, other_journal)
        asker.tell(AskWithCallback(other, Double(value)))

    journal.wait_for("note", count=2)
    assert sorted(journal.details("note")) == [("reply", 0), ("reply", 2)]
    assert asker.is_alive()


def test_starting_and_stopping_200_actors_leaves_no_thread_behind(runtime: Runtime) -> None:
    before = set(threading.enumerate())

    refs = [runtime.start(Quiet) for _ in range(200)]
    replies = [ref.ask(index, block=False) for index, ref in enumerate(refs)]
    assert [reply.get(timeout=TIMEOUT_S) for reply in replies] == list(range(200))
    created = set(threading.enumerate()) - before
    assert len(created) == (200 if runtime.name == "thread" else 0)

    stops = [ref.stop(block=False) for ref in refs]
    assert all(stop.get(timeout=TIMEOUT_S) for stop in stops)
    for thread in created:
        thread.join(TIMEOUT_S)  # an actor's thread ends just after its stop is answered
        assert not thread.is_alive()

    assert not set(threading.enumerate()) - before
    assert threading.active_count() <= len(before)


def test_the_inbox_counts_the_messages_waiting(runtime: Runtime, journal: Journal) -> None:
    ref = runtime.start(Recorder, journal)
    gate = Gate()
    ref.tell(Block(gate))
    assert gate.entered.wait(TIMEOUT_S)
    waiting = ref.ask(Waiting(), block=False)
    for value in range(3):
        ref.tell(Note(value))
    gate.release.set()
    assert waiting.get(timeout=TIMEOUT_S) == 3  # what chatter's metrics read as queue length


def test_a_message_put_into_a_dead_actors_inbox_fails_at_once(
    runtime: Runtime, journal: Journal
) -> None:
    ref = runtime.start(Recorder, journal)
    ref.stop(timeout=TIMEOUT_S)
    reply: Future[str] = Future()
    deliver(ref, envelope(Note("late"), reply_to=reply))  # as a sender racing the stop would
    with pytest.raises(pykka.ActorDeadError):
        reply.get(timeout=TIMEOUT_S)
    assert journal.details("note") == []
