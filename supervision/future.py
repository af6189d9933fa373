"""A pykka future that works from threads and from an asyncio loop alike.

pykka's `ThreadingFuture` can only be waited on by blocking, which on an event
loop's thread stops every actor and socket the loop serves. This future keeps
pykka's API (`get`, `set`, `set_exception`, `map`, `join`...) and adds:

- `add_done_callback`, so an actor can be answered by a message instead of a
  blocking wait;
- `await future` on any asyncio loop, which suspends instead of blocking;
- a guard: `get()` on a thread that runs an event loop, before the value is
  there, raises `BlockingCallOnLoopError` instead of deadlocking the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import sys
import threading
from collections.abc import Callable, Generator, Iterable
from typing import Any, TypeVar

import pykka

from supervision import _pykka
from supervision.errors import BlockingCallOnLoopError

__all__ = ["Future"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
J = TypeVar("J")
M = TypeVar("M")
R = TypeVar("R")

_ExcInfo = tuple[type[BaseException], BaseException, Any]


class Future(pykka.Future[T]):
    """A thread-safe, awaitable future with completion callbacks."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._condition: threading.Condition | None = None
        """Made for the first `get` that has to wait: most futures are
        answered before anyone waits, or only ever called back."""
        self._done = False
        self._value: Any = None
        self._exc_info: _ExcInfo | None = None
        self._callbacks: list[Callable[[Future[T]], None]] = []

    def done(self) -> bool:
        """Whether a value or an exception has been set."""
        return self._done

    def get(self, *, timeout: float | None = None) -> T:
        if _pykka.computes_on_get(self):
            computed: T = _pykka.get_computed(self, timeout)
            return computed
        with self._lock:
            if not self._done:
                if asyncio._get_running_loop() is not None:
                    raise BlockingCallOnLoopError(
                        "Future.get() would block the event loop running on this thread; "
                        "use 'await future' or future.add_done_callback(...) instead"
                    )
                if self._condition is None:
                    self._condition = threading.Condition(self._lock)
                if not self._condition.wait_for(lambda: self._done, timeout):
                    raise pykka.Timeout(f"{timeout} seconds")
        if self._exc_info is not None:
            _, error, traceback = self._exc_info
            raise error.with_traceback(traceback)
        value: T = self._value
        return value

    def set(self, value: T | None = None) -> None:
        self._settle(value, None)

    def set_exception(self, exc_info: Any = None) -> None:
        if exc_info is None:
            exc_info = sys.exc_info()
        error_type, error, traceback = exc_info
        if error is None:
            error = error_type()
        self._settle(None, (error_type, error, traceback))

    def add_done_callback(self, callback: Callable[[Future[T]], None]) -> None:
        """Call `callback(self)` once the future is done: at once if it already
        is, else in the thread that sets it. Keep callbacks short and
        thread-safe (tell an actor, or hand over with ``call_soon_threadsafe``).

        A future given a get hook (pykka's own ``ActorRef.stop`` makes one)
        computes its value only when asked and so is never "done": it raises
        `TypeError` here rather than never calling back."""
        if _pykka.computes_on_get(self):
            raise TypeError(
                "this future computes its value only on get(); it cannot call back when done"
            )
        with self._lock:
            if not self._done:
                self._callbacks.append(callback)
                return
        self._run_callback(callback)

    # pykka derives futures lazily, computing on get(); these derive eagerly,
    # settling as soon as their sources are done, so they can call back and be
    # awaited without a thread.

    def map(self, func: Callable[[T], M]) -> Future[M]:
        derived: Future[M] = Future()
        self.add_done_callback(lambda source: _settle_from(derived, lambda: func(source.get())))
        return derived

    def filter(self: Future[Iterable[J]], func: Callable[[J], bool]) -> Future[Iterable[J]]:
        return self.map(lambda items: list(filter(func, items)))

    def reduce(self: Future[Iterable[J]], func: Callable[[R, J], R], *args: R) -> Future[R]:
        return self.map(lambda items: functools.reduce(func, items, *args))

    def join(self: Future[Any], *futures: pykka.Future[Any]) -> Future[Iterable[Any]]:
        everything = [self, *futures]
        derived: Future[Iterable[Any]] = Future()
        remaining = [len(everything)]
        lock = threading.Lock()

        def one_done(_: Any) -> None:
            with lock:
                remaining[0] -= 1
                last = remaining[0] == 0
            if last:
                _settle_from(derived, lambda: [f.get() for f in everything])

        for future in everything:
            if not isinstance(future, Future):
                raise TypeError(f"can only join supervision futures, got {future!r}")
            future.add_done_callback(one_done)
        return derived

    def __await__(self) -> Generator[Any, None, T]:
        loop = asyncio.get_running_loop()
        if _pykka.computes_on_get(self):
            # A future with a get hook computes only on get(): wait for it off-loop.
            result: T = yield from loop.run_in_executor(None, self.get).__await__()
            return result
        if not self._done:
            waiter: asyncio.Future[None] = loop.create_future()

            def wake(_: Future[T]) -> None:
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(_resolve, waiter)

            self.add_done_callback(wake)
            yield from waiter.__await__()
        return self.get()

    __iter__ = __await__

    def _settle(self, value: Any, exc_info: _ExcInfo | None) -> None:
        with self._lock:
            if self._done or _pykka.computes_on_get(self):
                raise queue.Full  # pykka's signal for a future set twice
            self._value = value
            self._exc_info = exc_info
            self._done = True
            callbacks, self._callbacks = self._callbacks, []
            # Waiters hold the condition while they wait; the future need not
            # keep it once done (a start future lives as long as its child).
            condition, self._condition = self._condition, None
            if condition is not None:
                condition.notify_all()
        for callback in callbacks:
            self._run_callback(callback)

    def _run_callback(self, callback: Callable[[Future[T]], None]) -> None:
        try:
            callback(self)
        except Exception:
            logger.exception("Future callback %r failed", callback)


def _settle_from(future: Future[T], compute: Callable[[], T]) -> None:
    try:
        value = compute()
    except Exception:
        future.set_exception()
    else:
        future.set(value)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
