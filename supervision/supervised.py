"""The base of every supervised actor: it turns its own death into a message.

pykka has no links or monitors. What it has are rules for what an exception
does to an actor, and this module hooks into the places where pykka applies
them, so that each exit is reported, with its reason, to the actor's starter
(see `supervision._link`). The rules, and what a supervisor makes of each:

=============================================  ==============================  ==============
what happens in the actor                      what pykka does                 exit reported
=============================================  ==============================  ==============
``stop()`` / ``ActorRef.stop()``               runs ``on_stop``, stops         normal
its supervisor stops it                        runs ``on_stop``, stops         shutdown
``on_start`` raises an ``Exception``           logs, stops; no ``on_failure``  crashed
a ``tell``'s handler raises an ``Exception``   logs, runs ``on_failure``,      crashed
                                               stops
an ``ask``'s handler raises an ``Exception``   hands it to the asker;          (none: it is
                                               the actor lives on              not a crash)
``on_stop`` or ``on_failure`` raises           logs; the actor stops anyway    unchanged
a handler raises a ``BaseException``           runs ``on_stop``, then stops    (not meaningful:
(``SystemExit``, ``KeyboardInterrupt``)        **every** actor in the process  the whole tree
                                                                               goes down)
its supervisor kills it (brutal kill, or a     marks it dead at once: nothing  killed
stop that outlived its shutdown timeout)       more is handled, asks fail
``inject_crash(ref)``                          a ``tell`` that raises          crashed
=============================================  ==============================  ==============

What was still in the inbox when an actor exits is not failed, as pykka would,
but handed to its supervisor with the exit: a child that is restarted under a
registered name receives it, before anything sent later (see
`supervision.registry`). So a message sent by name to an actor that crashes
before reaching it is handled by the next incarnation instead of being lost;
only the message that caused the crash is gone with it.

A ``BaseException`` is not a fault to recover from but the end of the program:
pykka stops every actor, supervisors included, and the exits reported while
that happens say little (a thread actor raising it blocks in pykka's
``stop_all`` and may be killed by its supervisor's shutdown timeout). Don't
raise one in an actor.

So a *crash* is an ``Exception`` escaping ``on_start`` or a message that was
told, never one that was asked: an asker gets its exception back and the actor
goes on, exactly as in pykka. A brutal kill cannot interrupt Python code that
is running: a thread actor stuck inside a call is marked dead, handles nothing
more and ends when that call returns.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pykka
from pykka._envelope import Envelope
from pykka.messages import _ActorStop

from supervision import _link
from supervision._link import fail_envelopes
from supervision.exits import NORMAL, Exit, ExitReason

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["InjectedCrash", "SupervisedActor", "inject_crash"]


class InjectedCrash(Exception):  # noqa: N818  (it is a crash, not an error in the caller)
    """Raised inside an actor by `inject_crash`: a fault put there on purpose."""


@dataclass(frozen=True)
class _Crash:
    reason: str


class _Wake:
    """Wakes a killed thread actor blocked on its inbox so that its thread ends."""


_WAKE = _Wake()


def inject_crash(ref: pykka.ActorRef[Any], reason: str = "crash injected") -> None:
    """Make the actor crash from inside, as a fault would: it raises
    `InjectedCrash` when it handles this message, after those already queued."""
    ref.tell(_Crash(reason))


class SupervisedActor(pykka.Actor):
    """An actor that reports its start and its exit to the one that started it.

    Subclass a runtime, `supervision.ThreadActor` or `supervision.LoopActor`,
    rather than this class. Everything else works as in pykka.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._exit: Exit | None = None
        self._exit_lock = threading.Lock()
        self._link = _link.claim(self)

    # -- pykka's internal hooks for actor runtimes -------------------------------

    def _actor_loop_setup(self) -> None:
        try:
            self.on_start()
        except Exception:
            error = sys.exc_info()[1]
            self._handle_failure(*sys.exc_info())
            if self._link is not None and error is not None:
                self._link.report_start_failed(error)
        else:
            if self._link is not None:
                self._link.report_started(self.actor_ref)

    def _handle_receive(self, message: Any) -> Any:
        if isinstance(message, _Crash):
            raise InjectedCrash(message.reason)
        if message is _WAKE:
            return None
        return super()._handle_receive(message)

    def _handle_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._record_exit(Exit(ExitReason.CRASHED, exception_value))
        super()._handle_failure(exception_type, exception_value, traceback)

    def _stop(self) -> None:
        # pykka calls _stop both for a stop message and, while handling a
        # BaseException, to take the whole system down: tell them apart.
        error = sys.exc_info()[1]
        self._record_exit(NORMAL if error is None else Exit(ExitReason.CRASHED, error))
        super()._stop()

    def _actor_loop_teardown(self) -> None:
        # pykka fails what is left in the inbox; a linked actor hands it to its
        # starter instead, which may pass it on to the next incarnation.
        leftovers = self._take_leftovers()
        if self._link is not None:
            self._link.report_exit(self._exit or NORMAL, leftovers)
        else:
            fail_envelopes(leftovers, f"{self.actor_ref} stopped before handling the message")

    # -- for supervisors -----------------------------------------------------------

    def _record_exit(self, exit: Exit) -> None:
        with self._exit_lock:
            if self._exit is None:
                self._exit = exit

    def _mark_shutdown(self) -> None:
        """Its supervisor is about to stop it: a stop is then `shutdown`."""
        self._record_exit(Exit(ExitReason.SHUTDOWN))

    def _kill(self, exit: Exit) -> list[Envelope[Any]]:
        """Mark the actor dead at once, from any thread, and return what was
        left in its inbox. Code it is running cannot be interrupted."""
        self._record_exit(exit)
        pykka.ActorRegistry.unregister(self.actor_ref)
        self.actor_stopped.set()
        leftovers = self._take_leftovers()
        self._wake_after_kill()
        return leftovers

    def _take_leftovers(self) -> list[Envelope[Any]]:
        """Close the inbox (a later send fails at once, instead of waiting in a
        dead inbox) and return what it held; stop requests are answered."""
        leftovers: list[Envelope[Any]] = []
        for envelope in self.actor_inbox.close():  # type: ignore[attr-defined]
            if isinstance(envelope.message, _ActorStop | _Wake):
                if envelope.reply_to is not None:
                    envelope.reply_to.set(None)
            else:
                leftovers.append(envelope)
        return leftovers

    def _wake_after_kill(self) -> None:
        """Let the runtime notice that the actor was killed. Runtimes override."""
