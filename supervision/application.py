"""The top of a tree: starting a root supervisor and running until it ends.

A supervisor that gives up hands the decision to its own supervisor. The root
has none, so the decision leaves the program: `run` logs a clear line and
returns a non-zero exit status, for an outside restarter (systemd, a container
runtime, a shell loop) to bring the whole program back, as Erlang's ``heart``
would.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

import pykka

from supervision._link import Link, start_linked
from supervision._pykka import fail_envelopes
from supervision.child_spec import ChildSpec
from supervision.exits import Exit
from supervision.supervisor import DEFAULT_START_TIMEOUT_S

__all__ = ["EXIT_GAVE_UP", "run", "start_link"]

logger = logging.getLogger(__name__)

EXIT_GAVE_UP = 1
"""The process exit status when the root supervisor gave up."""


def start_link(
    spec: ChildSpec,
    *,
    on_exit: Callable[[Exit], None] | None = None,
    timeout_s: float = DEFAULT_START_TIMEOUT_S,
) -> pykka.ActorRef[Any]:
    """Start `spec` linked to `on_exit` (called once, in the actor's thread, when
    it exits) and return its ref once it has started; raise `StartChildError`
    when it does not, and `Ignore` when it declines to start (OTP's
    ``ignore``). Blocks: call it from a plain thread, not from an actor."""

    def notify(link: Link, exit: Exit) -> None:
        fail_envelopes(link.take_leftovers(), f"{spec.id!r} exited ({exit})")
        if on_exit is not None:
            on_exit(exit)

    ref, _ = start_linked(spec.id, spec.start, notify, timeout_s)
    return ref


def run(
    spec: ChildSpec,
    *,
    stop_signals: Sequence[signal.Signals] = (signal.SIGINT, signal.SIGTERM),
) -> int:
    """Start the root `spec` and block until it exits; return the exit status.

    A stop signal stops the tree in order (children in reverse) and returns 0,
    as does a root that stops normally. A root that gives up after too many
    restarts (`Exit.gave_up`), or exits abnormally, is logged at CRITICAL with
    its reason and `EXIT_GAVE_UP` is returned. Raises `StartChildError` if the root does
    not start. Call it from the main thread (it installs signal handlers).
    """
    done = threading.Event()
    outcome: list[Exit] = []
    stopping = threading.Event()
    roots: list[pykka.ActorRef[Any]] = []

    def on_exit(exit: Exit) -> None:
        outcome.append(exit)
        done.set()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("Received %s: stopping the tree", signal.Signals(signum).name)
        stopping.set()
        for root in roots:
            root.stop(block=False)

    # Handlers go in first: a signal that arrives while the tree starts stops it
    # as soon as it has started.
    previous = {sig: signal.signal(sig, on_signal) for sig in stop_signals}
    try:
        roots.append(start_link(spec, on_exit=on_exit))
        if stopping.is_set():
            roots[0].stop(block=False)
        done.wait()  # interruptible: signal handlers run while it waits
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    exit = outcome[0]
    if stopping.is_set() or not (exit.abnormal or exit.gave_up):
        logger.info("Root supervisor %r stopped (%s)", spec.id, exit)
        return 0
    logger.critical(
        "Root supervisor %r exited (%s); exiting with status %d for an outside "
        "restarter to start it again",
        spec.id,
        exit,
        EXIT_GAVE_UP,
    )
    return EXIT_GAVE_UP
