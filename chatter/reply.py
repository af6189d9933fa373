"""Answers as messages: how an actor asks another for something and hears back.

An actor never blocks waiting for an answer and never hands another actor code
to run for it. It sends a request naming where the answer goes (`reply_to`,
usually its own ``actor_ref``) and a `tag` of its own choosing, and the answer
comes back as a typed message in its inbox, carrying that tag: the session
that asks persistence to store a post gets `Stored` or `StoreFailed`, as a
gen_server gets its reply in ``handle_info``. The tag is plain data (which
post, which history frame), so the asker's clause for the answer knows what it
was for without keeping a table of pending requests.

A caller that is not an actor (a test, a health check, the command line) uses
a `FutureRecipient`: it takes the answer message like an actor would and
settles a future with it, failing the future when the answer is a failure.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import pykka

from supervision import Future

__all__ = ["Failure", "FutureRecipient", "Recipient", "tell_quietly"]

logger = logging.getLogger(__name__)


class Recipient(Protocol):
    """Where an answer goes: an actor's ref, or a `FutureRecipient`."""

    def tell(self, message: Any) -> None:
        """Deliver the answer; must not block."""


class Failure(Protocol):
    """An answer that says the request failed, and why."""

    error: Exception


class FutureRecipient:
    """Lets a caller that is not an actor wait for a typed answer: `future`
    holds the answer message, or fails with the error of a failure answer
    (one whose ``error`` is an exception)."""

    def __init__(self) -> None:
        self.future: Future[Any] = Future()

    def tell(self, message: Any) -> None:
        error = getattr(message, "error", None)
        if isinstance(error, BaseException):
            self.future.set_exception((type(error), error, error.__traceback__))
        else:
            self.future.set(message)


def tell_quietly(recipient: Recipient, message: Any) -> None:
    """Send an answer to an asker that may have stopped meanwhile (its client
    went away): then nobody is left to hear it, and that is no fault."""
    try:
        recipient.tell(message)
    except pykka.ActorDeadError:
        logger.debug("%s is gone; dropped %s", recipient, type(message).__name__)
