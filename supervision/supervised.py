"""The base of every supervised actor: it turns its own death into a message.

pykka has no links or monitors. What it has are rules for what an exception
does to an actor, and this module hooks into the places where pykka applies
them, so that each exit is reported, with its reason, to the actor's starter
(see `supervision._link`). The rules, and what a supervisor makes of each:

=============================================  ==============================  ==============
what happens in the actor                      what pykka does                 exit reported
=============================================  ==============================  ==============
``stop()`` / ``ActorRef.stop()``               runs ``on_stop``, stops         normal
``stop(ExitReason.SHUTDOWN, info)``            runs ``on_stop``, stops         shutdown (with
                                                                               its info)
its supervisor stops it                        runs ``on_stop``, stops         shutdown
``on_start`` raises an ``Exception``           logs, stops; no ``on_failure``  crashed
``on_start`` raises `Ignore` (declines)        stops, not logged; no           normal
                                               ``on_failure``
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

pykka applies these rules in methods it keeps to itself; `supervision._pykka`
turns those into the hooks implemented here (``_on_start_returned``,
``_on_uncaught``, ``_on_stopping``, ``_on_exited``...), so that this module
uses nothing of pykka's but its public API.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Any

import pykka

from supervision import _link, _pykka
from supervision._pykka import Envelope
from supervision.errors import Ignore, InjectedCrash
from supervision.exits import NORMAL, Exit, ExitReason

__all__ = ["InjectedCrash", "StopReason", "SupervisedActor", "inject_crash", "request_stop"]


@dataclass(frozen=True)
class _Crash:
    reason: str


@dataclass(frozen=True)
class StopReason:
    """Why a stop request stops an actor. Given to the actor when it handles
    the request, in its place in the inbox, so a child that exited by itself
    (or crashed) before its supervisor's request came keeps its own reason."""

    exit: Exit
    """The exit it is to report."""

    to_restart: bool = False
    """Whether its supervisor means to start it again (a sibling's restart):
    a supervisor so stopped holds its own children's names for its next
    incarnation instead of releasing them."""


def request_stop(ref: pykka.ActorRef[Any], reason: StopReason) -> None:
    """Ask the actor to stop for `reason`, without waiting (no-op if it is dead)."""
    with contextlib.suppress(pykka.ActorDeadError):
        ref.tell(_pykka.StopWith(reason))


def inject_crash(ref: pykka.ActorRef[Any], reason: str = "crash injected") -> None:
    """Make the actor crash from inside, as a fault would: it raises
    `InjectedCrash` when it handles this message, after those already queued."""
    ref.tell(_Crash(reason))


class SupervisedActor(_pykka.HookedActor):
    """An actor that reports its start and its exit to the one that started it.

    Subclass a runtime, `supervision.ThreadActor` or `supervision.LoopActor`,
    rather than this class. Everything else works as in pykka.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._exit: Exit | None = None
        self._exit_lock = threading.Lock()
        self._stopped_to_restart = False
        self._link = _link.claim(self)

    def stop(self, reason: ExitReason = ExitReason.NORMAL, info: Any = None) -> None:
        """Stop, as pykka's ``stop()``: after the messages already received.
        The exit is `reason`: normal (the default), or shutdown, as OTP's
        ``exit(shutdown)``, with `info` if given (``{shutdown, Info}``). Both
        are normal exits: a transient child is not restarted, and neither is
        reported as a crash."""
        if reason not in (ExitReason.NORMAL, ExitReason.SHUTDOWN):
            raise ValueError(
                f"an actor stops itself with ExitReason.NORMAL or SHUTDOWN, got {reason!r}"
            )
        if info is not None and reason is not ExitReason.SHUTDOWN:
            raise ValueError(f"only a shutdown carries info, not {reason.value!r}")
        self.actor_ref.tell(_pykka.StopWith(StopReason(Exit(reason, info=info))))

    # -- the hooks, as pykka applies its rules --------------------------------------

    def _on_start_returned(self) -> None:
        if self._link is not None:
            self._link.report_started(self.actor_ref)

    def _on_start_raised(self, error: Exception) -> None:
        if self._link is not None:
            self._link.report_start_failed(error)

    def _declines_start(self, error: Exception) -> bool:
        return isinstance(error, Ignore)

    def _before_message(self, message: Any) -> None:
        if isinstance(message, _Crash):
            raise InjectedCrash(message.reason)

    def _on_stop_requested(self, reason: Any) -> None:
        if isinstance(reason, StopReason):
            self._record_exit(reason.exit)
            self._stopped_to_restart = reason.to_restart

    def _on_uncaught(self, error: BaseException | None) -> None:
        self._record_exit(Exit(ExitReason.CRASHED, error))

    def _on_stopping(self, error: BaseException | None) -> None:
        self._record_exit(NORMAL if error is None else Exit(ExitReason.CRASHED, error))

    def _on_exited(self, leftovers: list[Envelope]) -> None:
        # pykka would fail the leftovers; a linked actor hands them to its
        # starter instead, which may pass them on to the next incarnation.
        if self._link is not None:
            self._link.report_exit(self._exit or NORMAL, leftovers)
        else:
            super()._on_exited(leftovers)

    # -- for supervisors --------------------------------------------------------------

    def _record_exit(self, exit: Exit) -> None:
        """Remember how the actor exits; the first reason recorded stands."""
        with self._exit_lock:
            if self._exit is None:
                self._exit = exit

    def _kill(self, exit: Exit) -> list[Envelope]:
        """Mark the actor dead at once, from any thread, and return what was
        left in its inbox. Code it is running cannot be interrupted."""
        self._record_exit(exit)
        leftovers = _pykka.mark_dead(self)
        self._wake_after_kill()
        return leftovers

    def _wake_after_kill(self) -> None:
        """Let the runtime notice that the actor was killed. A thread blocked on
        its inbox wakes by itself (the inbox is closed); the loop runtime
        overrides this."""
