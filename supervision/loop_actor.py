"""The loop runtime: pykka actors hosted on an asyncio event loop.

A thread per actor costs a thread's stack and a thread wake-up per message; a
thousand of them cannot carry a chat room. A `LoopActor` has no thread: its
inbox is a deque, and a message put into an idle inbox puts the actor on its
loop's run queue, as an Erlang scheduler keeps one. One loop callback serves
the run queue: each actor on it handles everything that has arrived by then,
up to `MAX_BATCH`, and one with more goes to the back of the queue (a burst
costs one wake-up, a thousand actors woken at once cost one callback, and one
busy actor cannot starve the others).

pykka's rules hold unchanged: ``on_start`` runs before the first message, a
failing ``tell`` stops the actor and runs ``on_failure``, a failing ``ask``
goes back to the caller, ``on_stop`` runs on stop, proxies and pykka's
`ActorRegistry` work, and the supervisor supervises it like any other.

Everything the actor does runs on the loop's thread, so it may touch objects
that belong to the loop (a Tornado WebSocket, say) directly, and it must never
block: ``ask`` returns a `supervision.Future` to ``await`` or to give a
callback, and a blocking ``get()`` on the loop raises `BlockingCallOnLoopError`.
``tell`` and ``ask`` are safe from any thread.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import weakref
from collections.abc import Callable
from typing import Any

from supervision import _pykka
from supervision._pykka import Envelope
from supervision.errors import NoEventLoopError
from supervision.exits import Exit, ExitReason
from supervision.future import Future
from supervision.supervised import SupervisedActor

__all__ = ["MAX_BATCH", "LoopActor", "run_on_loop"]

MAX_BATCH = 256
"""Most messages one actor handles per loop wake-up before yielding the loop."""


class _LoopInbox:
    """A thread-safe queue that asks for a drain when it stops being empty.

    A list, not a deque: a deque costs over half a kilobyte even empty, and
    an idle loop actor's inbox is empty nearly always; a drain takes the whole
    list at once, and only a backlog beyond `MAX_BATCH` is sliced."""

    __slots__ = ("_closed", "_lock", "_queue", "_schedule", "_scheduled", "in_hand")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[Envelope] = []
        self._schedule: Callable[[], None] | None = None
        self._scheduled = False
        self._closed = False
        self.in_hand = 0
        """Messages taken by the drain running now and not yet handled."""

    def put(self, envelope: Envelope, /) -> None:
        with self._lock:
            if self._closed:
                schedule = None
            else:
                self._queue.append(envelope)
                if self._scheduled or self._schedule is None:
                    return
                self._scheduled = True
                schedule = self._schedule
        if schedule is None:
            _pykka.fail_envelopes([envelope], "the actor stopped before handling the message")
            return
        schedule()

    def take(self, most: int) -> list[Envelope]:
        """The oldest messages waiting, up to `most`."""
        with self._lock:
            queue = self._queue
            if len(queue) <= most:
                self._queue = []
                return queue
            taken = queue[:most]
            del queue[:most]
            return taken

    def put_back(self, envelopes: list[Envelope]) -> None:
        """Return messages taken but not handled to the front, in their order."""
        with self._lock:
            self._queue[:0] = envelopes
            self.in_hand = 0

    def qsize(self) -> int:
        """How many messages wait, as `queue.Queue.qsize` says for a thread's
        inbox: those in the queue and those taken but not yet handled."""
        with self._lock:
            return len(self._queue) + self.in_hand

    def open(self, schedule: Callable[[], None]) -> None:
        """Start asking for drains through `schedule`, now if messages wait."""
        with self._lock:
            self._schedule = schedule
            if not self._queue or self._scheduled:
                return
            self._scheduled = True
        schedule()

    def drained(self) -> bool:
        """Called after a batch: True if more arrived and another drain is due."""
        with self._lock:
            if self._queue:
                return True
            self._scheduled = False
            return False

    def close(self) -> list[Envelope]:
        """Refuse further messages (an ask put after this fails at once); return
        those still waiting, oldest first."""
        with self._lock:
            self._closed = True
            waiting, self._queue = self._queue, []
            return waiting


class _RunQueue:
    """The loop actors of one event loop that have messages waiting, served in
    turn by one loop callback at a time."""

    _of_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _RunQueue] = (
        weakref.WeakKeyDictionary()
    )
    _of_loop_lock = threading.Lock()

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> _RunQueue:
        """The run queue of `loop`, made on first use."""
        queue = cls._of_loop.get(loop)  # a dict read is safe without the lock
        if queue is not None:
            return queue
        with cls._of_loop_lock:
            queue = cls._of_loop.get(loop)
            if queue is None:
                queue = cls._of_loop[loop] = cls(loop)
            return queue

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._ready: collections.deque[Callable[[], None]] = collections.deque()
        self._scheduled = False

    def wake(self, drain: Callable[[], None]) -> None:
        """Queue `drain` to run on the loop; from any thread. RuntimeError if
        the loop is closed: nothing will ever run there again."""
        if self._loop.is_closed():
            raise RuntimeError("the event loop is closed")
        with self._lock:
            self._ready.append(drain)
            if self._scheduled:
                return
            self._scheduled = True
        try:
            if asyncio._get_running_loop() is self._loop:
                self._loop.call_soon(self._serve)
            else:
                self._loop.call_soon_threadsafe(self._serve)
        except RuntimeError:
            with self._lock:
                self._scheduled = False
            raise

    def _serve(self) -> None:
        """Run the drains queued by now; those queued meanwhile, next loop turn."""
        with self._lock:
            ready, self._ready = self._ready, collections.deque()
        try:
            while ready:
                drain = ready.popleft()
                try:
                    drain()
                except Exception as error:  # as the loop reports a failed callback
                    self._loop.call_exception_handler(
                        {"message": f"Exception in {drain!r}", "exception": error}
                    )
        finally:
            with self._lock:
                self._ready.extendleft(reversed(ready))  # left by a BaseException
                again = self._scheduled = bool(self._ready)
            if again:
                self._loop.call_soon(self._serve)


def run_on_loop(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    """Run `callback` on `loop`'s thread soon, after the loop actors' work
    queued before it; from any thread. Calls made while the loop is busy share
    one wake-up of it (``call_soon_threadsafe`` wakes it every time: a write to
    its self-pipe, and the thread that makes it waits for the interpreter lock
    to come back). RuntimeError if the loop is closed."""
    _RunQueue.of(loop).wake(callback)


class LoopActor(SupervisedActor, _pykka.DrivenActor):
    """A supervised actor hosted on an asyncio event loop.

    Pass the loop as ``loop=`` (subclasses forward it to ``super().__init__``),
    or create the actor on the loop's own thread to use the running loop::

        class Session(LoopActor):
            def __init__(self, socket, *, loop=None):
                super().__init__(loop=loop)
                self.socket = socket
    """

    actor_loop: asyncio.AbstractEventLoop
    """The loop that runs this actor."""

    _inbox_class = _LoopInbox
    _future_class = Future

    def __init__(
        self, *args: Any, loop: asyncio.AbstractEventLoop | None = None, **kwargs: Any
    ) -> None:
        if loop is None:
            loop = asyncio._get_running_loop()
        if loop is None:
            raise NoEventLoopError(
                f"{type(self).__name__} needs an event loop: pass loop=..., "
                "or create it on the thread that runs the loop"
            )
        self.actor_loop = loop
        self._run_queue = _RunQueue.of(loop)
        self._torn_down = False
        super().__init__(*args, **kwargs)
        self._inbox: _LoopInbox = _pykka.inbox_of(self)

    def _launch(self) -> None:
        # Through the run queue: a supervisor starting a crowd of loop actors
        # from its thread wakes the loop once, not once per actor.
        try:
            self._run_queue.wake(self._loop_start)
        except RuntimeError:  # the loop is closed: nothing will ever run here again
            self._abandon()

    # -- on the loop ---------------------------------------------------------------

    def _loop_start(self) -> None:
        self._run_setup()
        if self.actor_stopped.is_set():
            self._loop_teardown()
        else:
            self._inbox.open(self._schedule_drain)

    def _drain(self) -> None:
        taken = self._inbox.take(MAX_BATCH)
        inbox, left = self._inbox, len(taken)
        for envelope in taken:
            if self.actor_stopped.is_set():
                # The rest stay in the inbox, which the teardown closes.
                inbox.put_back(taken[len(taken) - left :])
                break
            left -= 1
            inbox.in_hand = left
            self._run_message(envelope)
        if self.actor_stopped.is_set():
            self._loop_teardown()
        elif self._inbox.drained():
            self._run_queue.wake(self._drain)

    def _loop_teardown(self) -> None:
        if self._torn_down:
            return
        self._torn_down = True
        self._run_teardown()

    # -- from any thread -----------------------------------------------------------

    def _schedule_drain(self) -> None:
        try:
            self._run_queue.wake(self._drain)
        except RuntimeError:  # the loop is closed: nothing will ever run here again
            self._abandon()

    def _wake_after_kill(self) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop runs nothing anyway
            self.actor_loop.call_soon_threadsafe(self._loop_teardown)

    def _abandon(self) -> None:
        # Nothing will ever run on a closed loop, so no teardown either: the
        # actor is killed here, and reports its exit from this thread.
        error = RuntimeError(f"the event loop of {self} is closed")
        self._on_exited(self._kill(Exit(ExitReason.CRASHED, error)))
