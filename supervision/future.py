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
import logging
import queue
import sys
import threading
from collections.abc import Callable, Generator
from typing import Any, TypeVar

import pykka

from supervision.errors import BlockingCallOnLoopError

__all__ = ["Future"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_ExcInfo = tuple[type[BaseException], BaseException, Any]


class Future(pykka.Future[T]):
    """A thread-safe, awaitable future with completion callbacks."""

    def __init__(self) -> None:
        super().__init__()
        self._condition = threading.Condition()
        self._done = False
        self._value: Any = None
        self._exc_info: _ExcInfo | None = None
        self._callbacks: list[Callable[[Future[T]], None]] = []

    def done(self) -> bool:
        """Whether a value or an exception has been set."""
        return self._done

    def get(self, *, timeout: float | None = None) -> T:
        try:
            return super().get(timeout=timeout)  # a map/join/filter hook, if any
        except NotImplementedError:
            pass
        with self._condition:
            if not self._done:
                if asyncio._get_running_loop() is not None:
                    raise BlockingCallOnLoopError(
                        "Future.get() would block the event loop running on this thread; "
                        "use 'await future' or future.add_done_callback(...) instead"
                    )
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
        thread-safe (tell an actor, or hand over with ``call_soon_threadsafe``)."""
        with self._condition:
            if not self._done:
                self._callbacks.append(callback)
                return
        self._run_callback(callback)

    def __await__(self) -> Generator[Any, None, T]:
        loop = asyncio.get_running_loop()
        if self._get_hook is not None:
            # Futures made by map/join/filter only compute on get(): wait off-loop.
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
        with self._condition:
            if self._done or self._get_hook is not None:
                raise queue.Full  # pykka's signal for a future set twice
            self._value = value
            self._exc_info = exc_info
            self._done = True
            callbacks, self._callbacks = self._callbacks, []
            self._condition.notify_all()
        for callback in callbacks:
            self._run_callback(callback)

    def _run_callback(self, callback: Callable[[Future[T]], None]) -> None:
        try:
            callback(self)
        except Exception:
            logger.exception("Future callback %r failed", callback)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
