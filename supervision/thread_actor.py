"""The thread runtime: pykka's `ThreadingActor`, supervised.

Each actor is a thread of its own blocked on a queue. That is simple and lets an
actor block (on a database call, say) without holding anyone else up, at the
price of a thread per actor and a thread wake-up per message: right for a few
long-lived services, wrong for one actor per connection (see `LoopActor`).
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Any

import pykka
from pykka._envelope import Envelope

from supervision._link import fail_envelopes
from supervision.future import Future
from supervision.supervised import _WAKE, SupervisedActor

__all__ = ["ThreadActor"]


class ThreadActor(SupervisedActor, pykka.ThreadingActor):
    """A supervised actor running on a thread of its own.

    Its futures are `supervision.Future`: awaitable on an event loop, with
    completion callbacks, and refusing to block a loop's thread.
    """

    @staticmethod
    def _create_actor_inbox() -> Any:
        return _ThreadInbox()

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return Future()

    def _wake_after_kill(self) -> None:
        # The thread may be waiting on its (now closed) inbox: hand it a no-op
        # so that it sees it was stopped and ends.
        self.actor_inbox.wake()  # type: ignore[attr-defined]


class _ThreadInbox(queue.Queue[Envelope[Any]]):
    """pykka's queue, closed when the actor dies: a message put into it after
    that fails at once instead of waiting forever in a dead inbox."""

    def __init__(self) -> None:
        super().__init__()
        self._closed = False

    def put(self, item: Envelope[Any], block: bool = True, timeout: float | None = None) -> None:
        with self.not_full:
            if not self._closed:
                self._put(item)
                self.unfinished_tasks += 1
                self.not_empty.notify()
                return
        fail_envelopes([item], "the actor stopped before handling the message")

    def take_while(self, wanted: Callable[[Any], bool]) -> list[Envelope[Any]]:
        """Remove and return the envelopes at the head of the queue whose message
        is `wanted`, oldest first: for an actor that handles a run of like
        messages together."""
        taken: list[Envelope[Any]] = []
        with self.mutex:
            while self.queue and wanted(self.queue[0].message):
                taken.append(self.queue.popleft())
        return taken

    def close(self) -> list[Envelope[Any]]:
        """Refuse further messages; return those still waiting, oldest first."""
        with self.mutex:
            self._closed = True
            waiting = list(self.queue)
            self.queue.clear()
            return waiting

    def wake(self) -> None:
        """Wake a reader blocked on the closed inbox."""
        with self.mutex:
            self.queue.append(Envelope(_WAKE))
            self.not_empty.notify()
