"""Where supervision reaches into pykka: the one module that uses what pykka
does not document as public.

pykka's public API (`Actor.start`, the ``on_*`` hooks, `ActorRef`, `Future`,
`ActorRegistry`) is enough to write actors but not to supervise them. It does
not say how an actor died, it fails what was left in a dead actor's inbox,
and it runs actors on threads only. So supervision hooks into pykka's
internals, and does so here and nowhere else:

===================================  ===============================================
pykka internal                       what supervision uses it for
===================================  ===============================================
``Actor._actor_loop_setup``          to learn whether ``on_start`` returned or raised,
                                     and to stop an actor that declined its start
                                     (`supervision.Ignore`) without an error log
``Actor._handle_receive``            to raise `InjectedCrash` before the handler runs,
                                     and to pass over the no-op that wakes a killed
                                     thread
``Actor._handle_failure``            to hear of an exception pykka is about to log
``Actor._stop``                      to hear of a stop (or of a ``BaseException``)
``Actor._actor_loop_teardown``       to hand the inbox's leftovers over instead of
                                     failing them
``Actor._actor_loop_running``        its body, copied for one message at a time,
                                     by the loop runtime (`DrivenActor`)
``Actor._create_actor_inbox``,       each runtime's own inbox and future; the loop
``_create_future``,                  runtime's own way of running the actor
``_start_actor_loop``
``Actor.actor_inbox``,               the inbox a registry puts held messages into,
``ActorRef.actor_inbox``             and that is closed when the actor dies
``Actor.actor_stopped.set()``        a kill: the actor is dead without ``stop()``
``Actor.__init__``                   done by `HookedActor` itself, setting the same
                                     four fields (``actor_urn``, ``actor_inbox``,
                                     ``actor_stopped``, ``_actor_ref``), two of them
                                     cheaper: ``actor_stopped`` is a
                                     `supervision._flag.Flag` (pykka only calls
                                     ``set`` and ``is_set`` on it), so an idle actor
                                     holds no `threading.Condition`; the URN is a
                                     UUID4 whose last field counts (`_next_urn`)
``pykka._envelope.Envelope``         a message together with the future to answer
``pykka.messages._ActorStop``        a stop request found among the leftovers
``Actor._stop``, called for a        a stop request that carries its reason
`StopWith`                           (`StopWith`), handled as pykka's own
``Future._get_hook``, ``Future.get`` a future that pykka computes only on ``get()``
===================================  ===============================================

An inbox is any object with ``put(envelope)``, which `ActorRef.tell` and
``ask`` call; pykka's thread loop also calls ``get()``, blocking.

Checked against pykka 4.1.0 to 4.5.0 (pyproject.toml allows ``>=4.1,<5``;
requirements.lock pins 4.5.0): every internal above is the same in each of
them. ``tests/unit/test_pykka_internals.py`` asserts each one, so an upgrade
that changes one fails there, naming it, rather than deep in a supervisor.
"""

from __future__ import annotations

import abc
import collections
import itertools
import logging
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeAlias, cast

import pykka
from pykka._envelope import Envelope as _PykkaEnvelope
from pykka.messages import _ActorStop

from supervision._flag import Flag

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "CHECKED_VERSIONS",
    "DrivenActor",
    "Envelope",
    "HookedActor",
    "Inbox",
    "StopWith",
    "ThreadInbox",
    "computes_on_get",
    "deliver",
    "envelope",
    "fail_envelopes",
    "get_computed",
    "inbox_of",
    "mark_dead",
    "message_of",
    "reply",
    "reply_error",
    "take_queued",
]

CHECKED_VERSIONS = "4.1.0 to 4.5.0"
"""The pykka releases whose internals this module was checked against."""

logger = logging.getLogger("pykka")  # pykka's own logger, as its loop logs


_URN_BASE = uuid.uuid4().urn[:-12]
_urn_numbers = itertools.count()


def _next_urn() -> str:
    """An actor's URN: a random UUID4 made once per process, whose last field
    (48 bits) counts the actors. Unique, as pykka's own are, for a fraction of
    the cost of a random UUID per actor."""
    return f"{_URN_BASE}{next(_urn_numbers):012x}"


Envelope: TypeAlias = _PykkaEnvelope[Any]
"""A message and the future to answer it with (None for a tell). Other modules
hold envelopes without looking inside; the functions below do the looking."""


# -- envelopes ---------------------------------------------------------------------------


def envelope(message: Any, reply_to: pykka.Future[Any] | None = None) -> Envelope:
    """Wrap `message` as `ActorRef.tell` (no `reply_to`) or ``ask`` would."""
    return _PykkaEnvelope(message, reply_to=reply_to)


def message_of(envelope: Envelope) -> Any:
    """The message in `envelope`."""
    return envelope.message


def reply(envelope: Envelope, value: Any) -> None:
    """Answer the ask in `envelope` with `value`; a tell needs no answer."""
    if envelope.reply_to is not None:
        envelope.reply_to.set(value)


def reply_error(envelope: Envelope, error: BaseException) -> bool:
    """Fail the ask in `envelope` with `error`; False if it was a tell."""
    if envelope.reply_to is None:
        return False
    envelope.reply_to.set_exception((type(error), error, error.__traceback__))
    return True


def fail_envelopes(envelopes: list[Envelope], why: str) -> None:
    """Fail every ask among `envelopes` with `ActorDeadError`; drop the tells."""
    for one in envelopes:
        reply_error(one, pykka.ActorDeadError(why))


def deliver(ref: pykka.ActorRef[Any], envelope: Envelope) -> None:
    """Put `envelope` into the actor's inbox, as `ActorRef.tell` would, but
    with the envelope (and the future in it) made by the caller."""
    ref.actor_inbox.put(envelope)


# -- inboxes -----------------------------------------------------------------------------


class Inbox(Protocol):
    """What supervision needs of an actor's inbox: pykka's ``put``, and more."""

    def put(self, envelope: Envelope, /) -> None:
        """Add a message (`ActorRef.tell` and ``ask`` call it); once the inbox
        is closed, fail it at once instead."""
        ...

    def qsize(self) -> int:
        """How many messages wait (what Chatter's metrics read)."""
        ...

    def close(self) -> list[Envelope]:
        """Refuse further messages; return those still waiting, oldest first."""
        ...


class _NoOp:
    """Handed to a thread blocked on a closed inbox, so that pykka's loop turns
    once more, sees that the actor was stopped, and ends."""


_NO_OP = _PykkaEnvelope(_NoOp())


class ThreadInbox:
    """The thread runtime's inbox: a queue that pykka's thread loop blocks on,
    closed when the actor dies (a message put after that fails at once instead
    of waiting for ever in a dead inbox)."""

    def __init__(self) -> None:
        self._queue: collections.deque[Envelope] = collections.deque()
        self._changed = threading.Condition()
        self._closed = False

    def put(self, envelope: Envelope, /) -> None:
        with self._changed:
            if not self._closed:
                self._queue.append(envelope)
                self._changed.notify()
                return
        fail_envelopes([envelope], "the actor stopped before handling the message")

    def get(self) -> Envelope:
        """The oldest message, waiting for one; a no-op once the inbox is closed."""
        with self._changed:
            self._changed.wait_for(lambda: self._queue or self._closed)
            return self._queue.popleft() if self._queue else _NO_OP

    def qsize(self) -> int:
        """How many messages wait (the name `queue.Queue` gives it)."""
        with self._changed:
            return len(self._queue)

    def take_while(self, wanted: Callable[[Any], bool]) -> list[Envelope]:
        """Remove and return the envelopes at the head whose message is
        `wanted`, oldest first: for an actor that handles a run of like
        messages together."""
        taken: list[Envelope] = []
        with self._changed:
            while self._queue and wanted(self._queue[0].message):
                taken.append(self._queue.popleft())
        return taken

    def close(self) -> list[Envelope]:
        with self._changed:
            self._closed = True
            waiting = list(self._queue)
            self._queue.clear()
            self._changed.notify_all()
            return waiting


def queued(ref: pykka.ActorRef[Any]) -> int:
    """How many messages wait in the inbox behind `ref` (both runtimes' inboxes have ``qsize``)."""
    qsize = getattr(ref.actor_inbox, "qsize", None)
    return int(qsize()) if callable(qsize) else 0


def inbox_of(actor: pykka.Actor) -> Any:
    """The actor's inbox, as its runtime created it (`HookedActor._inbox_class`)."""
    return actor.actor_inbox


def take_queued(actor: pykka.Actor, wanted: Callable[[Any], bool]) -> list[Envelope]:
    """Take from a thread actor's own inbox the run of messages at its head
    that are `wanted` (see `ThreadInbox.take_while`)."""
    inbox = actor.actor_inbox
    assert isinstance(inbox, ThreadInbox), "only thread actors take runs of messages"
    return inbox.take_while(wanted)


def _close_inbox(actor: pykka.Actor) -> list[Envelope]:
    """Close the actor's inbox and return what it held, stop requests answered
    (as pykka's teardown answers them)."""
    leftovers: list[Envelope] = []
    for one in cast("Inbox", actor.actor_inbox).close():
        if isinstance(one.message, _ActorStop | StopWith):
            reply(one, None)
        else:
            leftovers.append(one)
    return leftovers


def mark_dead(actor: pykka.Actor) -> list[Envelope]:
    """Kill `actor` from any thread: unregister it, mark it stopped (so it
    handles nothing more), close its inbox and return what that held. Code it
    is running cannot be interrupted; a thread blocked on the inbox wakes."""
    pykka.ActorRegistry.unregister(actor.actor_ref)
    actor.actor_stopped.set()
    return _close_inbox(actor)


# -- the steps of an actor's life, as hooks ------------------------------------------------


@dataclass(frozen=True, slots=True)
class StopWith:
    """A stop request that says why: handled as pykka's own (``on_stop`` runs,
    the actor stops), in its place in the inbox, after the actor has been given
    `reason` (`HookedActor._on_stop_requested`). Among the leftovers it is
    answered, as pykka's is, never passed on."""

    reason: Any


class HookedActor(pykka.Actor):
    """pykka's `Actor`, with the steps of its life that pykka keeps to itself
    turned into hooks. `supervision.SupervisedActor` implements them; each
    runs in the actor's own thread (or, for a loop actor, on its loop)."""

    _inbox_class: ClassVar[type[Inbox]]
    """The runtime's inbox; each runtime sets it."""

    _future_class: ClassVar[type[pykka.Future[Any]]]
    """The runtime's future, which its asks return; each runtime sets it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # pykka's own __init__, with two of its parts made cheaper (an actor is
        # started per connection): its stopped event, shared by the actor and
        # its ref, is only ever set and tested, which a Flag does without a
        # Condition; and its URN is unique without 16 random bytes from the OS.
        self.actor_urn = _next_urn()
        self.actor_inbox = self._create_actor_inbox()
        self.actor_stopped = Flag()  # type: ignore[assignment]
        self._actor_ref = pykka.ActorRef(self)

    def _on_start_returned(self) -> None:
        """``on_start`` returned: the actor now handles messages."""

    def _on_start_raised(self, error: Exception) -> None:
        """``on_start`` raised `error`; pykka has logged it (unless it
        `_declines_start`) and stops the actor."""

    def _declines_start(self, error: Exception) -> bool:
        """Whether `error`, raised by ``on_start``, declines the start rather
        than fails it: the actor then stops without a log line or a crash."""
        return False

    def _before_message(self, message: Any) -> None:
        """A message is about to be handled; raising here is raising in the handler."""

    def _on_stop_requested(self, reason: Any) -> None:
        """A `StopWith` is handled: the actor stops next, for `reason`."""

    def _on_uncaught(self, error: BaseException | None) -> None:
        """An exception escaped ``on_start``, a told message's handler,
        ``on_stop`` or ``on_failure``; pykka is about to log it and stop the actor."""

    def _on_stopping(self, error: BaseException | None) -> None:
        """pykka is stopping the actor: for a stop request (`error` None), or,
        while handling a ``BaseException`` (`error`), to stop every actor."""

    def _on_exited(self, leftovers: list[Envelope]) -> None:
        """The actor has stopped and its inbox is closed; `leftovers` were
        still waiting in it, oldest first. By default their asks fail."""
        fail_envelopes(leftovers, f"{self.actor_ref} stopped before handling the message")

    # pykka's internals, calling the hooks above.

    @classmethod
    def _create_actor_inbox(cls) -> Any:
        return cls._inbox_class()

    @classmethod
    def _create_future(cls) -> pykka.Future[Any]:
        return cls._future_class()

    def _actor_loop_setup(self) -> None:
        try:
            self.on_start()
        except Exception as error:
            if self._declines_start(error):
                # Stopped as pykka stops a failed actor, but not logged.
                pykka.ActorRegistry.unregister(self.actor_ref)
                self.actor_stopped.set()
            else:
                self._handle_failure(*sys.exc_info())
            self._on_start_raised(error)
        else:
            self._on_start_returned()

    def _handle_receive(self, message: Any) -> Any:
        if isinstance(message, _NoOp):
            return None
        if isinstance(message, StopWith):
            self._on_stop_requested(message.reason)
            return self._stop()
        self._before_message(message)
        return super()._handle_receive(message)

    def _handle_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._on_uncaught(exception_value)
        super()._handle_failure(exception_type, exception_value, traceback)

    def _stop(self) -> None:
        # pykka calls _stop for a stop request and, while handling a
        # BaseException, to take every actor down: the exception tells them apart.
        self._on_stopping(sys.exc_info()[1])
        super()._stop()

    def _actor_loop_teardown(self) -> None:
        self._on_exited(_close_inbox(self))


class DrivenActor(HookedActor):
    """An actor that its runtime drives one message at a time, instead of
    pykka's loop blocking on the inbox: the loop runtime's base."""

    @abc.abstractmethod
    def _launch(self) -> None:
        """Begin running the actor: call `_run_setup`, then `_run_message` for
        each message, then `_run_teardown`. The runtime implements it."""

    def _run_setup(self) -> None:
        """Run ``on_start``; the actor is stopped afterwards if it raised."""
        self._actor_loop_setup()

    def _run_message(self, envelope: Envelope) -> None:
        """Handle one message as pykka's loop does (the body of its
        ``_actor_loop_running``), but on a ``BaseException`` do not wait for
        every actor to stop: a loop actor must never block its loop."""
        try:
            response = self._handle_receive(envelope.message)
            reply(envelope, response)
        except Exception:
            if envelope.reply_to is not None:
                logger.info("Exception returned from %s to caller:", self, exc_info=True)
                envelope.reply_to.set_exception()
            else:
                self._handle_failure(*sys.exc_info())
                try:
                    self.on_failure(*sys.exc_info())
                except Exception:
                    self._handle_failure(*sys.exc_info())
        except BaseException:
            logger.debug("%r in %s. Stopping all actors.", sys.exc_info()[1], self)
            self._stop()
            pykka.ActorRegistry.stop_all(block=False)

    def _run_teardown(self) -> None:
        """Close the inbox and hand over what it held (`_on_exited`)."""
        self._actor_loop_teardown()

    def _start_actor_loop(self) -> None:
        self._launch()


# -- futures -----------------------------------------------------------------------------


def computes_on_get(future: pykka.Future[Any]) -> bool:
    """Whether pykka gave `future` a get hook (as ``ActorRef.stop(block=False)``
    does): it then has no value of its own and computes one on ``get()``."""
    return future._get_hook is not None


def get_computed(future: pykka.Future[Any], timeout: float | None) -> Any:
    """Run the get hook of a future that `computes_on_get` (once; pykka keeps
    the result)."""
    return pykka.Future.get(future, timeout=timeout)
