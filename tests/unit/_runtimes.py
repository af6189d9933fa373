"""What the runtime tests share: a journal of what actors did, gates, messages,
a `Recorder` behaviour, and the `runtime` fixture that runs a test on both
runtimes (`ThreadActor` and `LoopActor`).

A test module takes the fixtures with
``from tests.unit._runtimes import journal_fixture, runtime_fixture  # noqa: F401``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import types
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import pykka
import pytest

from supervision import (
    Future,
    LoopActor,
    ThreadActor,
)
from supervision._link import Link, linked
from supervision._pykka import inbox_of
from supervision.exits import Exit
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


class Waiting:
    """Answered with how many messages wait in the inbox behind it."""


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
        if isinstance(message, Waiting):
            return inbox_of(self).qsize()
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


@pytest.fixture(name="runtime", params=["thread", "loop"])
def runtime_fixture(request: pytest.FixtureRequest) -> Runtime:
    """Each test taking it runs twice: on the thread runtime and on the loop runtime."""
    if request.param == "thread":
        return thread_runtime()
    loop: asyncio.AbstractEventLoop = request.getfixturevalue("loop")
    return loop_runtime(loop)


@pytest.fixture(name="journal")
def journal_fixture() -> Journal:
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


class RootExit:
    """The root's `start_link` exit callback, waited on without sleeping."""

    def __init__(self) -> None:
        self.exits: list[Exit] = []
        self._done = threading.Event()

    def __call__(self, exit: Exit) -> None:
        self.exits.append(exit)
        self._done.set()

    def wait(self) -> Exit:
        assert self._done.wait(TIMEOUT_S), "the root never exited"
        assert len(self.exits) == 1, f"on_exit was called more than once: {self.exits}"
        return self.exits[0]
