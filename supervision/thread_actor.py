"""The thread runtime: pykka's `ThreadingActor`, supervised.

Each actor is a thread of its own blocked on its inbox. That is simple and lets
an actor block (on a database call, say) without holding anyone else up, at the
price of a thread per actor and a thread wake-up per message: right for a few
long-lived services, wrong for one actor per connection (see `LoopActor`).

Its inbox (`supervision._pykka.ThreadInbox`) is closed when the actor dies, so
that a message sent to a dead actor fails at once instead of waiting for ever.
"""

from __future__ import annotations

import pykka

from supervision._pykka import ThreadInbox
from supervision.future import Future
from supervision.supervised import SupervisedActor

__all__ = ["ThreadActor"]


class ThreadActor(SupervisedActor, pykka.ThreadingActor):
    """A supervised actor running on a thread of its own.

    Its futures are `supervision.Future`: awaitable on an event loop, with
    completion callbacks, and refusing to block a loop's thread.
    """

    _inbox_class = ThreadInbox
    _future_class = Future
