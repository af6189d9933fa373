"""How a supervisor stops a child, and what becomes of the child's name and mail.

Stopping is OTP's ``shutdown/2``, in three steps:

1. a child whose shutdown is ``Shutdown.BRUTAL_KILL``, or 0 seconds, is
   killed at once (OTP's 0 ms leave a child no time to act on the request);
2. any other is asked to stop (the request queues behind what the child has
   already received, which it handles first), and its exit is waited for: up
   to its shutdown time in seconds, or for ever with ``Shutdown.INFINITY``;
3. a child that has not exited by then is logged and killed; its ``on_stop``,
   already running, runs on to its end unwatched.

`begin_stop` takes steps 1 and 2 without waiting, and `finish_stop` waits and
takes step 3, so that a dynamic supervisor can ask every child to stop before
it waits for any, and stopping takes as long as the slowest child, not the sum.
Before asking, the supervisor mutes the child's link: it is stopping the child
itself and waits for the exit here, so the exit must not come back as news.

A child that is gone, whether it exited or was stopped, leaves two things
behind: its registered name, and what was still waiting in its inbox (its
*leftovers*). Which way they go depends on whether the child will be started
again:

=====================  ========================================  ================================
the child              its name (in the `Registry`)              its leftovers
=====================  ========================================  ================================
will be started again  suspended: sends are held for the next    held too, ahead of later sends
(`hold_name`)          incarnation, up to ``restart_wait_s``     (unnamed: asks fail, tells are
                                                                 dropped)
is gone for good       unregistered: held sends fail, later      asks fail with ``ActorDeadError``,
(`release_name`)       ones raise ``NameNotRegisteredError``     tells are dropped
=====================  ========================================  ================================
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pykka

from supervision._link import Link
from supervision._pykka import Envelope, fail_envelopes
from supervision.child_spec import ChildSpec, Shutdown
from supervision.exits import KILLED, SHUTDOWN, Exit
from supervision.registry import Registry
from supervision.supervised import StopReason, request_stop

__all__ = ["Stopping", "begin_stop", "finish_stop", "hold_name", "release_name"]

logger = logging.getLogger("supervision.supervisor")


@dataclass(frozen=True)
class Stopping:
    """A child asked to stop (or killed), and until when it may take."""

    child_id: str
    link: Link
    shutdown: float | Shutdown
    deadline: float | None
    """When to kill it, by ``time.monotonic()``; None to wait as long as it takes."""


def begin_stop(
    child_id: str,
    ref: pykka.ActorRef[Any],
    link: Link,
    shutdown: float | Shutdown | None,
    *,
    to_restart: bool = False,
) -> Stopping:
    """Kill the child (brutal kill, or no time at all) or ask it to stop,
    without waiting. The request says shutdown, and whether the child is to be
    started again (`to_restart`: a supervisor child then holds its own
    children's names); a child that exits before it handles the request
    reports its own reason."""
    assert shutdown is not None, "a ChildSpec's default shutdown is filled in when it is made"
    link.mute()
    if shutdown is Shutdown.BRUTAL_KILL or shutdown == 0:
        link.kill(KILLED)
        return Stopping(child_id, link, shutdown, deadline=None)
    request_stop(ref, StopReason(SHUTDOWN, to_restart=to_restart))
    deadline = None if shutdown is Shutdown.INFINITY else time.monotonic() + float(shutdown)
    return Stopping(child_id, link, shutdown, deadline)


def finish_stop(stopping: Stopping, supervisor_id: str) -> Exit:
    """Wait for the child's exit until its deadline, kill it then, and return
    how it exited. Its leftovers are in ``stopping.link.leftovers``."""
    link = stopping.link
    remaining = None if stopping.deadline is None else stopping.deadline - time.monotonic()
    if not link.exited.wait(None if remaining is None else max(0.0, remaining)):
        logger.warning(
            "%s: child %r did not stop within %s s; killing it",
            supervisor_id,
            stopping.child_id,
            stopping.shutdown,
        )
        link.kill(KILLED)
    return link.exit or SHUTDOWN


def hold_name(
    registry: Registry | None, spec: ChildSpec, leftovers: Sequence[Envelope] = ()
) -> None:
    """The child will be started again: hold sends to its name, its leftovers first."""
    if spec.name is not None:
        assert registry is not None, "checked when the child was added"
        registry.suspend(spec.name, leftovers)
    else:
        fail_envelopes(list(leftovers), f"{spec.id!r} exited before handling it")


def release_name(
    registry: Registry | None, spec: ChildSpec, leftovers: Sequence[Envelope] = ()
) -> None:
    """The child is gone for good: unregister its name and fail its leftovers."""
    if spec.name is not None:
        assert registry is not None, "checked when the child was added"
        registry.unregister(spec.name)
    fail_envelopes(list(leftovers), f"{spec.id!r} exited before handling it")
