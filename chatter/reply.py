"""Answers as messages: how an actor asks another for something and hears back.

An actor never blocks waiting for an answer and never hands another actor code
to run for it. It sends a request naming where the answer goes (`reply_to`,
usually its own ``actor_ref``) and a `tag` of its own choosing, and the answer
comes back as a typed message in its inbox, carrying that tag: the session
that asks persistence to store a post gets `Stored` or `StoreFailed`, as a
gen_server gets its reply in ``handle_info``. The tag is plain data (which
post, which history frame), so the asker's clause for the answer knows what it
was for without keeping a table of pending requests.

Every request is a `Request`: it carries `reply_to` and `tag`, and knows the
`Failed` answer that says it could not be served. A `ServerClient` reaches a
server actor by its registered name and answers that failure itself when the
server cannot be reached (it is restarting), so an asker always hears back.

A caller that is not an actor (a test, a health check, the command line) uses
a `FutureRecipient`: it takes the answer message like an actor would and
settles a future with it, failing the future when the answer is a `Failed`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import pykka

from supervision import Future, NameNotRegisteredError, NameUnavailableError, Registry

__all__ = [
    "Failed",
    "FutureRecipient",
    "Named",
    "Recipient",
    "Request",
    "ServerClient",
    "tell_quietly",
]

logger = logging.getLogger(__name__)


class Recipient(Protocol):
    """Where an answer goes: an actor's ref, or a `FutureRecipient`."""

    def tell(self, message: Any) -> None:
        """Deliver the answer; must not block."""


@dataclass(frozen=True)
class Failed:
    """The answer that says a request failed: `error` says why. Each request
    has its own subclass (`StoreFailed`, `ClaimFailed`, ...) to match on."""

    tag: Any
    error: Exception


@dataclass(frozen=True, kw_only=True)
class Request:
    """A request that is answered: the answer goes to `reply_to` carrying
    `tag`. A subclass names its failure answer in `failed`."""

    failed: ClassVar[type[Failed]]
    reply_to: Recipient = field(compare=False)
    tag: Any = None

    def failure(self, error: Exception) -> Failed:
        """The answer saying this request failed with `error`."""
        return self.failed(self.tag, error)


class FutureRecipient:
    """Lets a caller that is not an actor wait for a typed answer: `future`
    holds the answer message, or fails with the error of a failure answer
    (one whose ``error`` is an exception)."""

    def __init__(self) -> None:
        self.future: Future[Any] = Future()

    def tell(self, message: Any) -> None:
        if isinstance(message, Failed):
            error = message.error
            self.future.set_exception((type(error), error, error.__traceback__))
        else:
            self.future.set(message)


class ServerClient:
    """Reaches a server actor by its registered name, whichever incarnation
    runs. A request it cannot deliver (the server is restarting) is answered
    at once with the request's failure, an `unavailable` error."""

    unavailable: ClassVar[type[Exception]]
    """The error a request fails with when the server cannot be reached."""

    def __init__(self, registry: Registry, name: str) -> None:
        self._registry = registry
        self._name = name

    def tell(self, request: Request) -> None:
        """Send a request; its answer, or its failure, goes to its `reply_to`."""
        try:
            self._registry.tell(self._name, request)
        except (NameNotRegisteredError, NameUnavailableError) as error:
            failure = self.unavailable(f"{self._name} is not available: {error}")
            tell_quietly(request.reply_to, request.failure(failure))

    def cast(self, message: Any) -> bool:
        """Send a message that is not answered; False when the server cannot
        be reached now (the caller says what that costs)."""
        try:
            self._registry.tell(self._name, message)
        except (NameNotRegisteredError, NameUnavailableError):
            return False
        return True


class Named:
    """A `Recipient` by registered name: whichever incarnation runs gets it.
    For notices whose loss costs nothing but a moment (a wake-up that a tick
    repeats): one the name cannot take now is dropped."""

    def __init__(self, registry: Registry, name: str) -> None:
        self._registry = registry
        self._name = name

    def tell(self, message: Any) -> None:
        try:
            self._registry.tell(self._name, message)
        except (NameNotRegisteredError, NameUnavailableError):
            logger.debug("%s unavailable; dropped %r", self._name, message)


def tell_quietly(recipient: Recipient, message: Any) -> None:
    """Send an answer to an asker that may have stopped meanwhile (its client
    went away): then nobody is left to hear it, and that is no fault."""
    try:
        recipient.tell(message)
    except pykka.ActorDeadError:
        logger.debug("%s is gone; dropped %s", recipient, type(message).__name__)
