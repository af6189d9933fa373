"""The two actor runtimes, `ThreadActor` and `LoopActor`, keep pykka's semantics.

Every behaviour test runs on both runtimes through the `runtime` fixture; the
loop runtime's own promises (no blocking on the loop, batching, no threads) are
tested after them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import types
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import pykka
import pytest

from supervision import (
    BlockingCallOnLoopError,
    ExitReason,
    Future,
    InjectedCrash,
    LoopActor,
    NoEventLoopError,
    ThreadActor,
    inject_crash,
)
from supervision._link import Link, linked
from supervision._pykka import message_of
from supervision.loop_actor import MAX_BATCH
from supervision.supervised import SupervisedActor

TIMEOUT_S = 5.0

R = TypeVar("R")


# -- journal, gates and messages ---------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One thing an actor did, and on which thread."""

    what: str
    detail: Any = None
    thread: int = field(default_factory=threading.get_ident)


class Journal:
    """A thread-safe record of what actors did, in order, with waits."""

    def __init__(self) -> None:
        self._entries: list[Entry] = []
        self._condition = threading.Condition()

    def add(self, what: str, detail: Any = None) -> None:
        with self._condition:
            self._entries.append(Entry(what, detail))
            self._condition.notify_all()

    @property
    def entries(self) -> list[Entry]:
        with self._condition:
            return list(self._entries)

    def whats(self) -> list[str]:
        return [entry.what for entry in self.entries]

    def details(self, what: str) -> list[Any]:
        return [entry.detail for entry in self.entries if entry.what == what]

    def wait_for(self, what: str, count: int = 1) -> None:
        with self._condition:
            seen = self._condition.wait_for(
                lambda: sum(e.what == what for e in self._entries) >= count, TIMEOUT_S
            )
        assert seen, f"no {count} x {what!r} in {TIMEOUT_S} s; journal: {self.whats()}"


class Gate:
    """Holds whoever waits on it until released: `entered` says it is held."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def hold(self) -> None:
        self.entered.set()
        assert self.release.wait(TIMEOUT_S), "gate never released"


@dataclass(frozen=True)
class Note:
    """Recorded as received; answered with its value."""

    value: Any


@dataclass(frozen=True)
class Double:
    """Answered with twice its value."""

    value: int


@dataclass(frozen=True)
class Raise:
    """Raises `error` in the handler."""

    error: BaseException


@dataclass(frozen=True)
class Block:
    """Keeps the actor busy on `gate` (on a loop actor, the whole loop)."""

    gate: Gate


class GetReceived:
    """Answered with the values of the notes received so far, in order."""


class StopYourself:
    """The actor calls its own `stop()`."""


@dataclass(frozen=True)
class AskBlocking:
    """The actor asks `other` for `message` and blocks on the reply."""

    other: pykka.ActorRef[Any]
    message: Any


@dataclass(frozen=True)
class AskWithCallback:
    """The actor asks `other` for `message` without blocking; the reply comes
    back to it as a `Note`, told by a done-callback."""

    other: pykka.ActorRef[Any]
    message: Any


# -- behaviours, combined with either runtime ------------------------------------------


class Recorder(pykka.Actor):
    """Records its hooks and messages in a journal; the behaviour most tests use."""

    def __init__(
        self,
        journal: Journal,
        *,
        start_gate: Gate | None = None,
        fail_start: bool = False,
        fail_stop: bool = False,
        fail_failure: bool = False,
        **runtime_kwargs: Any,
    ) -> None:
        super().__init__(**runtime_kwargs)
        self.journal = journal
        self.start_gate = start_gate
        self.fail_start = fail_start
        self.fail_stop = fail_stop
        self.fail_failure = fail_failure
        self.received: list[Any] = []
        self.label = "recorder"

    def on_start(self) -> None:
        self.journal.add("on_start")
        if self.start_gate is not None:
            self.start_gate.hold()
        if self.fail_start:
            raise RuntimeError("cannot start")

    def on_stop(self) -> None:
        self.journal.add("on_stop")
        if self.fail_stop:
            raise RuntimeError("cannot stop cleanly")

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        self.journal.add("on_failure", exception_value)
        if self.fail_failure:
            raise RuntimeError("on_failure failed too")

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Note):
            self.received.append(message.value)
            self.journal.add("note", message.value)
            return message.value
        if isinstance(message, Double):
            self.journal.add("double", message.value)
            return message.value * 2
        if isinstance(message, Raise):
            raise message.error
        if isinstance(message, Block):
            message.gate.hold()
            return None
        if isinstance(message, GetReceived):
            return list(self.received)
        if isinstance(message, StopYourself):
            self.stop()
            return None
        if isinstance(message, AskBlocking):
            return message.other.ask(message.message, timeout=TIMEOUT_S)
        if isinstance(message, AskWithCallback):
            reply = message.other.ask(message.message, block=False)
            assert isinstance(reply, Future)
            me = self.actor_ref
            reply.add_done_callback(lambda done: me.tell(Note(("reply", done.get()))))
            return None
        return super().on_receive(message)

    # For proxies.
    def add(self, a: int, b: int) -> int:
        self.journal.add("add", (a, b))
        return a + b

    def fail(self) -> None:
        raise LookupError("proxy call failed")


class Quiet(pykka.Actor):
    """Does nothing but answer: for starting many actors."""

    def on_receive(self, message: Any) -> Any:
        return message


Behaviour = type[object]
"""A behaviour class such as `Recorder`: abstract, it gets its runtime from `_combine`."""


_combined: dict[tuple[Behaviour, type[SupervisedActor]], type[pykka.Actor]] = {}


def _combine(behaviour: Behaviour, base: type[SupervisedActor]) -> type[pykka.Actor]:
    """The actor class with `behaviour` on runtime `base`; one class per pair."""
    key = (behaviour, base)
    if key not in _combined:
        combined = types.new_class(f"{behaviour.__name__}On{base.__name__}", (behaviour, base))
        _combined[key] = cast("type[pykka.Actor]", combined)
    return _combined[key]


@dataclass(frozen=True)
class Runtime:
    """One of the two runtimes, and how to start a behaviour on it."""

    name: str
    base: type[SupervisedActor]
    loop: asyncio.AbstractEventLoop | None = None

    def actor_class(self, behaviour: Behaviour) -> type[pykka.Actor]:
        return _combine(behaviour, self.base)

    def start(self, behaviour: Behaviour, *args: Any, **kwargs: Any) -> pykka.ActorRef[Any]:
        if self.loop is not None:
            kwargs["loop"] = self.loop
        return self.actor_class(behaviour).start(*args, **kwargs)

    def start_linked(
        self, behaviour: Behaviour, *args: Any, **kwargs: Any
    ) -> tuple[pykka.ActorRef[Any], Link]:
        """Start it linked, to see its exit reason (a linked actor's leftover
        messages go to the link instead of being failed)."""
        link = Link()
        with linked(link):
            ref = self.start(behaviour, *args, **kwargs)
        return ref, link


def thread_runtime() -> Runtime:
    return Runtime("thread", ThreadActor)


def loop_runtime(loop: asyncio.AbstractEventLoop) -> Runtime:
    return Runtime("loop", LoopActor, loop)


@pytest.fixture(params=["thread", "loop"])
def runtime(request: pytest.FixtureRequest) -> Runtime:
    if request.param == "thread":
        return thread_runtime()
    loop: asyncio.AbstractEventLoop = request.getfixturevalue("loop")
    return loop_runtime(loop)


@pytest.fixture
def journal() -> Journal:
    return Journal()


# -- helpers ------------------------------------------------------------------------


def ask(ref: pykka.ActorRef[Any], message: Any) -> Any:
    return ref.ask(message, timeout=TIMEOUT_S)


def wait_exited(link: Link) -> None:
    assert link.exited.wait(TIMEOUT_S), "the actor did not exit"


def on_loop(loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, R]) -> R:
    """Run `coroutine` on the loop's thread and wait for its result."""
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result(TIMEOUT_S)


def loop_thread_ident(loop: asyncio.AbstractEventLoop) -> int:
    async def ident() -> int:
        return threading.get_ident()

    return on_loop(loop, ident())


@contextlib.contextmanager
def loop_held(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """Keep the loop's thread busy for the duration: nothing on it runs."""
    gate = Gate()
    loop.call_soon_threadsafe(gate.hold)
    assert gate.entered.wait(TIMEOUT_S)
    try:
        yield
    finally:
        gate.release.set()


def registered_urns() -> set[str]:
    return {ref.actor_urn for ref in pykka.ActorRegistry.get_all()}


# -- the same semantics on both runtimes -----------------------------------------------


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


def test_failing_tell_stops_actor_and_runs_on_failure(runtime: Runtime, journal: Journal) -> None:
    ref, link = runtime.start_linked(Recorder, journal)
    error = ValueError("bad message")

    ref.tell(Raise(error))
    wait_exited(link)

    assert journal.whats() == ["on_start", "on_failure"]  # on_stop is not run on a crash
    assert journal.details("on_failure") == [error]
    assert not ref.is_alive()
    assert ref.actor_urn not in registered_urns()
    assert link.exit is not None
    assert link.exit.reason is ExitReason.CRASHED
    assert link.exit.error is error
    with pytest.raises(pykka.ActorDeadError):
        ref.tell(Note(1))
    with pytest.raises(pykka.ActorDeadError):
        ask(ref, Double(1))


def test_failing_on_failure_still_stops_the_actor_with_the_first_error(
    runtime: Runtime, journal: Journal
) -> None:
    ref, link = runtime.start_linked(Recorder, journal, fail_failure=True)
    error = ValueError("bad message")

    ref.tell(Raise(error))
    wait_exited(link)

    assert journal.whats() == ["on_start", "on_failure"]
    assert not ref.is_alive()
    assert link.exit is not None
    assert link.exit.reason is ExitReason.CRASHED
    assert link.exit.error is error


def test_failing_ask_returns_the_exception_and_the_actor_lives_on(
    runtime: Runtime, journal: Journal
) -> None:
    ref = runtime.start(Recorder, journal)

    with pytest.raises(ValueError, match="asked wrong"):
        ask(ref, Raise(ValueError("asked wrong")))
    future = ref.ask(Raise(KeyError("again")), block=False)
    with pytest.raises(KeyError):
        future.get(timeout=TIMEOUT_S)

    assert ref.is_alive()
    assert ask(ref, Double(4)) == 8
    assert "on_failure" not in journal.whats()
    assert ref.actor_urn in registered_urns()


def test_failing_on_start_stops_the_actor_without_on_failure(
    runtime: Runtime, journal: Journal
) -> None:
    ref, link = runtime.start_linked(Recorder, journal, fail_start=True)

    wait_exited(link)

    assert journal.whats() == ["on_start"]  # neither on_failure nor on_stop
    assert not ref.is_alive()
    assert ref.actor_urn not in registered_urns()
    assert link.exit is not None
    assert link.exit.reason is ExitReason.CRASHED
    assert isinstance(link.exit.error, RuntimeError)
    with pytest.raises(RuntimeError, match="cannot start"):
        link.started.get(timeout=TIMEOUT_S)
    with pytest.raises(pykka.ActorDeadError):
        ref.tell(Note(1))


def test_asks_queued_before_a_failing_on_start_get_actor_dead_error(
    runtime: Runtime, journal: Journal
) -> None:
    gate = Gate()
    ref = runtime.start(Recorder, journal, start_gate=gate, fail_start=True)
    assert gate.entered.wait(TIMEOUT_S)
    queued = ref.ask(Double(1), block=False)

    gate.release.set()

    with pytest.raises(pykka.ActorDeadError):
        queued.get(timeout=TIMEOUT_S)
    assert "double" not in journal.whats()


def test_stop_runs_on_stop_and_refuses_later_messages(runtime: Runtime, journal: Journal) -> None:
    ref, link = runtime.start_linked(Recorder, journal)
    ref.tell(Note(1))

    assert ref.stop(timeout=TIMEOUT_S) is True

    assert journal.whats() == ["on_start", "note", "on_stop"]
    assert not ref.is_alive()
    with pytest.raises(pykka.ActorDeadError):
        ref.tell(Note(2))
    with pytest.raises(pykka.ActorDeadError):
        ask(ref, Double(2))
    assert ref.stop(timeout=TIMEOUT_S) is False  # pykka: already dead
    wait_exited(link)
    assert link.exit is not None
    assert link.exit.reason is ExitReason.NORMAL


def test_actor_stopping_itself_runs_on_stop(runtime: Runtime, journal: Journal) -> None:
    ref, link = runtime.start_linked(Recorder, journal)

    ref.tell(StopYourself())
    wait_exited(link)

    assert journal.whats() == ["on_start", "on_stop"]
    assert not ref.is_alive()
    assert link.exit is not None
    assert link.exit.reason is ExitReason.NORMAL


def test_failing_on_stop_still_stops_the_actor_normally(runtime: Runtime, journal: Journal) -> None:
    ref, link = runtime.start_linked(Recorder, journal, fail_stop=True)

    assert ref.stop(timeout=TIMEOUT_S) is True
    wait_exited(link)

    assert journal.whats() == ["on_start", "on_stop"]
    assert not ref.is_alive()
    assert ref.actor_urn not in registered_urns()
    assert link.exit is not None
    assert link.exit.reason is ExitReason.NORMAL


def test_stop_answers_asks_ahead_of_it_and_fails_asks_behind_it(
    runtime: Runtime, journal: Journal
) -> None:
    ref = runtime.start(Recorder, journal)
    gate = Gate()
    ref.tell(Block(gate))
    assert gate.entered.wait(TIMEOUT_S)

    ahead = ref.ask(Double(1), block=False)
    stopping = ref.stop(block=False)
    behind = ref.ask(Double(2), block=False)
    ref.tell(Note("behind"))
    gate.release.set()

    assert ahead.get(timeout=TIMEOUT_S) == 2
    assert stopping.get(timeout=TIMEOUT_S) is True  # the stop's own future resolves
    with pytest.raises(pykka.ActorDeadError):
        behind.get(timeout=TIMEOUT_S)
    assert journal.whats() == ["on_start", "double", "on_stop"]


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


def test_base_exception_in_a_handler_stops_every_actor_of_both_runtimes(
    runtime: Runtime, journal: Journal, loop: asyncio.AbstractEventLoop
) -> None:
    thread_journal, loop_journal = Journal(), Journal()
    raiser, raiser_link = runtime.start_linked(Recorder, journal)
    on_thread, thread_link = thread_runtime().start_linked(Recorder, thread_journal)
    on_loop_, loop_link = loop_runtime(loop).start_linked(Recorder, loop_journal)
    assert ask(on_thread, Double(1)) == 2
    assert ask(on_loop_, Double(1)) == 2

    raiser.tell(Raise(SystemExit(3)))
    for link in (raiser_link, thread_link, loop_link):
        wait_exited(link)

    assert journal.whats() == ["on_start", "on_stop"]  # pykka runs on_stop, not on_failure
    assert thread_journal.whats() == ["on_start", "double", "on_stop"]
    assert loop_journal.whats() == ["on_start", "double", "on_stop"]
    for ref in (raiser, on_thread, on_loop_):
        assert not ref.is_alive()
    assert pykka.ActorRegistry.get_all() == []
    assert raiser_link.exit is not None
    assert raiser_link.exit.reason is ExitReason.CRASHED
    assert isinstance(raiser_link.exit.error, SystemExit)
    assert thread_link.exit is not None
    assert thread_link.exit.reason is ExitReason.NORMAL
    assert loop_link.exit is not None
    assert loop_link.exit.reason is ExitReason.NORMAL


def test_inject_crash_crashes_the_actor_after_messages_already_queued(
    runtime: Runtime, journal: Journal
) -> None:
    ref, link = runtime.start_linked(Recorder, journal)
    gate = Gate()
    ref.tell(Block(gate))
    assert gate.entered.wait(TIMEOUT_S)

    ref.tell(Note("before"))
    inject_crash(ref, "on purpose")
    ref.tell(Note("after"))
    gate.release.set()
    wait_exited(link)

    assert journal.whats() == ["on_start", "note", "on_failure"]
    assert journal.details("note") == ["before"]
    assert link.exit is not None
    assert link.exit.reason is ExitReason.CRASHED
    assert isinstance(link.exit.error, InjectedCrash)
    assert str(link.exit.error) == "on purpose"
    assert journal.details("on_failure") == [link.exit.error]
    assert not ref.is_alive()
    # What was still queued goes to the link, for a next incarnation.
    assert [message_of(envelope) for envelope in link.take_leftovers()] == [Note("after")]


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


# -- the loop runtime's own promises --------------------------------------------------


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
    assert threads == [loop_thread_ident(loop)]
