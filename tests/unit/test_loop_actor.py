"""The loop runtime's own promises: no blocking on the loop, a burst handled in
one wake-up but no more than `MAX_BATCH` at once, a loop found or refused, no
threads, and an actor whose loop is closed exits crashed."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pykka
import pytest

from supervision import (
    BlockingCallOnLoopError,
    ExitReason,
    Future,
    LoopActor,
    NoEventLoopError,
)
from supervision._pykka import message_of
from supervision.loop_actor import MAX_BATCH
from tests.unit._runtimes import (
    TIMEOUT_S,
    AskBlocking,
    Double,
    GetReceived,
    Journal,
    Note,
    Quiet,
    Recorder,
    _combine,
    ask,
    journal_fixture,  # noqa: F401  (a fixture)
    loop_held,
    loop_runtime,
    loop_thread_ident,
    on_loop,
    wait_exited,
)


def test_blocking_ask_in_a_loop_actor_to_another_on_its_loop_raises_instead_of_deadlocking(
    journal: Journal, loop: asyncio.AbstractEventLoop
) -> None:
    runtime = loop_runtime(loop)
    asker = runtime.start(Recorder, journal)
    other_journal = Journal()
    other = runtime.start(Recorder, other_journal)

    with pytest.raises(BlockingCallOnLoopError):
        ask(asker, AskBlocking(other, Double(3)))

    assert asker.is_alive()  # it was an ask: the error went back to the caller
    other_journal.wait_for("double")  # the message was sent all the same
    assert ask(other, Double(1)) == 2


class DrainCounter(LoopActor):
    """Records which messages each loop wake-up (each `_drain`) handled."""

    def __init__(self, name: str, order: list[tuple[str, int]], *, loop: Any) -> None:
        super().__init__(loop=loop)
        self.name = name
        self.order = order
        self.batches: list[list[int]] = []

    def _drain(self) -> None:
        self.batches.append([])
        super()._drain()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Note):
            self.batches[-1].append(message.value)
            self.order.append((self.name, message.value))
            return None
        if isinstance(message, GetReceived):
            return [batch for batch in self.batches if batch]
        return None


def test_burst_told_to_an_idle_loop_actor_is_handled_in_one_wake_up(
    loop: asyncio.AbstractEventLoop,
) -> None:
    ref = DrainCounter.start("a", [], loop=loop)
    assert ask(ref, GetReceived()) == []  # started, idle: nothing queued or scheduled
    told = threading.Event()

    def tell_burst() -> None:
        for value in range(50):
            ref.tell(Note(value))
        told.set()

    with loop_held(loop):  # the burst arrives faster than the loop could wake up
        teller = threading.Thread(target=tell_burst)
        teller.start()
        assert told.wait(TIMEOUT_S)
    teller.join(TIMEOUT_S)

    batches: list[list[int]] = ask(ref, GetReceived())
    assert [value for batch in batches for value in batch] == list(range(50))
    assert len(batches) == 1  # one wake-up handled the whole burst


def test_burst_larger_than_max_batch_is_split_and_lets_other_actors_run(
    loop: asyncio.AbstractEventLoop,
) -> None:
    order: list[tuple[str, int]] = []
    busy = DrainCounter.start("busy", order, loop=loop)
    other = DrainCounter.start("other", order, loop=loop)
    assert ask(busy, GetReceived()) == []
    assert ask(other, GetReceived()) == []
    total = 2 * MAX_BATCH + 10

    with loop_held(loop):
        for value in range(total):
            busy.tell(Note(value))
        other.tell(Note(0))

    batches: list[list[int]] = ask(busy, GetReceived())
    assert [len(batch) for batch in batches] == [MAX_BATCH, MAX_BATCH, 10]
    assert ask(other, GetReceived()) == [[0]]
    # The other actor ran between the busy one's first and second batch.
    assert order.index(("other", 0)) == MAX_BATCH


def test_actors_woken_together_are_served_in_one_loop_callback(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """The loop's run queue: a callback another piece of code queues between
    two actors' wake-ups runs after both, since one callback serves them all."""
    order: list[tuple[str, int]] = []
    actors = [DrainCounter.start(f"actor {i}", order, loop=loop) for i in range(1000)]
    for actor in actors:
        assert ask(actor, GetReceived()) == []

    with loop_held(loop):
        for actor in actors[:500]:
            actor.tell(Note(0))
        loop.call_soon_threadsafe(order.append, ("callback", 0))
        for actor in actors[500:]:
            actor.tell(Note(0))

    for actor in actors:
        assert ask(actor, GetReceived()) == [[0]]
    assert order[-1] == ("callback", 0)
    assert len(order) == 1001


def test_loop_actor_without_a_loop_off_the_loop_thread_raises_no_event_loop_error(
    journal: Journal,
) -> None:
    actor_class = _combine(Recorder, LoopActor)

    with pytest.raises(NoEventLoopError):
        actor_class.start(journal)

    assert pykka.ActorRegistry.get_by_class(actor_class) == []
    assert journal.whats() == []


def test_loop_actor_created_on_the_loop_thread_uses_the_running_loop(
    journal: Journal, loop: asyncio.AbstractEventLoop
) -> None:
    actor_class = _combine(Recorder, LoopActor)

    async def start_here() -> pykka.ActorRef[Any]:
        return actor_class.start(journal)

    ref = on_loop(loop, start_here())

    assert ask(ref, Double(3)) == 6
    assert {entry.thread for entry in journal.entries} == {loop_thread_ident(loop)}


def test_a_thousand_loop_actors_start_and_stop_without_creating_threads(
    loop: asyncio.AbstractEventLoop,
) -> None:
    before = set(threading.enumerate())
    actor_class = _combine(Quiet, LoopActor)

    refs = [actor_class.start(loop=loop) for _ in range(1000)]
    replies = [ref.ask(index, block=False) for index, ref in enumerate(refs)]
    assert [reply.get(timeout=TIMEOUT_S) for reply in replies] == list(range(1000))
    assert not set(threading.enumerate()) - before
    assert len(pykka.ActorRegistry.get_by_class(actor_class)) == 1000

    stops = [ref.stop(block=False) for ref in refs]
    assert all(stop.get(timeout=TIMEOUT_S) for stop in stops)

    assert not set(threading.enumerate()) - before
    assert pykka.ActorRegistry.get_by_class(actor_class) == []


def test_loop_actor_callbacks_of_an_ask_from_the_loop_run_on_the_loop(
    journal: Journal, loop: asyncio.AbstractEventLoop
) -> None:
    ref = loop_runtime(loop).start(Recorder, journal)
    threads: list[int] = []

    async def ask_with_callback() -> int:
        got: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def on_done(done: Future[int]) -> None:
            threads.append(threading.get_ident())
            got.set_result(done.get())

        future = ref.ask(Double(7), block=False)
        assert isinstance(future, Future)
        future.add_done_callback(on_done)
        return await asyncio.wait_for(got, TIMEOUT_S)

    assert on_loop(loop, ask_with_callback()) == 14


def test_a_loop_actor_whose_loop_is_closed_exits_crashed_before_it_starts(
    journal: Journal,
) -> None:
    closed = asyncio.new_event_loop()
    closed.close()

    ref, link = loop_runtime(closed).start_linked(Recorder, journal)

    wait_exited(link)
    assert link.exit is not None
    assert link.exit.reason is ExitReason.CRASHED
    assert str(link.exit.error) == f"the event loop of {ref} is closed"
    with pytest.raises(RuntimeError, match="is closed"):
        link.started.get(timeout=TIMEOUT_S)
    assert journal.whats() == []  # on_start never ran
    assert not ref.is_alive()


def test_a_loop_actor_whose_loop_closed_under_it_exits_crashed_when_a_message_comes(
    journal: Journal,
) -> None:
    own = asyncio.new_event_loop()
    thread = threading.Thread(target=own.run_forever)
    thread.start()
    ref, link = loop_runtime(own).start_linked(Recorder, journal)
    assert ask(ref, Double(1)) == 2
    own.call_soon_threadsafe(own.stop)
    thread.join(TIMEOUT_S)
    own.close()

    ref.tell(Note("after the loop closed"))

    wait_exited(link)
    assert link.exit is not None
    assert link.exit.reason is ExitReason.CRASHED
    assert [message_of(e) for e in link.take_leftovers()] == [Note("after the loop closed")]
    with pytest.raises(pykka.ActorDeadError):
        ref.tell(Note("later"))
