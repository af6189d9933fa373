"""The thread runtime: pykka's `ThreadingActor`, supervised.

Each actor is a thread of its own blocked on a queue. That is simple and lets an
actor block (on a database call, say) without holding anyone else up, at the
price of a thread per actor and a thread wake-up per message: right for a few
long-lived services, wrong for one actor per connection (see `LoopActor`).
"""

from __future__ import annotations

from typing import Any

import pykka
from pykka._envelope import Envelope

from supervision.future import Future
from supervision.supervised import _WAKE, SupervisedActor

__all__ = ["ThreadActor"]


class ThreadActor(SupervisedActor, pykka.ThreadingActor):
    """A supervised actor running on a thread of its own.

    Its futures are `supervision.Future`: awaitable on an event loop, with
    completion callbacks, and refusing to block a loop's thread.
    """

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return Future()

    def _wake_after_kill(self) -> None:
        # The thread may be waiting on its inbox: hand it a no-op so that it
        # sees it was stopped and ends.
        self.actor_inbox.put(Envelope(_WAKE))
