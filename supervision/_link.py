"""The bond between an actor and whoever started it.

OTP's ``start_link`` links a new process to the one that called it. Here the
starter opens a `Link` around its start call; the first supervised actor
constructed inside claims it, and through it reports twice: once when its
``on_start`` has returned (or failed), once when it has exited, with the reason.
The second report is how a supervisor learns of a death: a plain callback,
run in the dying actor's thread, with no polling anywhere.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pykka

from supervision._flag import Flag
from supervision._pykka import Envelope, fail_envelopes
from supervision.errors import Ignore, StartChildError
from supervision.exits import KILLED, Exit
from supervision.future import Future

if TYPE_CHECKING:
    from supervision.supervised import SupervisedActor


__all__ = [
    "ChildExited",
    "ExitReporter",
    "Link",
    "await_started",
    "claim",
    "linked",
    "spawn_linked",
    "start_linked",
]

_opening: contextvars.ContextVar[Link | None] = contextvars.ContextVar(
    "supervision_opening_link", default=None
)


class Link:
    """One incarnation's bond to its starter. Reports are one-shot."""

    __slots__ = (
        "__weakref__",
        "_actor",
        "_leftovers",
        "_lock",
        "_muted",
        "_on_exit",
        "_start_reported",
        "exit",
        "exited",
        "started",
        "urn",
    )

    def __init__(self, on_exit: Callable[[Link, Exit], None] | None = None) -> None:
        self.started: Future[pykka.ActorRef[Any]] = Future()
        """Resolves with the ref once ``on_start`` returned; fails with its error."""
        self.exited = Flag()
        """Set once the actor has exited and its inbox is closed."""
        self.exit: Exit | None = None
        """The exit, once `exited` is set."""
        self._leftovers: list[Envelope] = []
        self._on_exit = on_exit
        self._muted = False
        self._start_reported = False
        self._lock = threading.Lock()
        self._actor: weakref.ref[SupervisedActor] | None = None
        self.urn: str | None = None
        """The URN of the actor that claimed this link, once one has."""

    def take_leftovers(self) -> list[Envelope]:
        """What was left in the actor's inbox when it exited, oldest first; the
        first caller takes them, so that each is answered once."""
        with self._lock:
            leftovers, self._leftovers = self._leftovers, []
        return leftovers

    def mute(self) -> None:
        """Stop the exit callback: the starter is stopping the actor itself and
        waits on `exited` instead of hearing about it as news."""
        with self._lock:
            self._muted = True

    def kill(self, exit: Exit) -> None:
        """Kill the linked actor at once (a brutal kill); it exits with `exit`."""
        actor = self._claimant()
        leftovers = actor._kill(exit) if actor is not None else []
        self.report_exit(exit, leftovers)

    def report_started(self, ref: pykka.ActorRef[Any]) -> None:
        """``on_start`` returned. Too late if the actor was killed meanwhile (a
        start that timed out): its start has failed already."""
        if self._first_start_report():
            self.started.set(ref)

    def report_start_failed(self, error: BaseException) -> None:
        if self._first_start_report():
            self.started.set_exception((type(error), error, error.__traceback__))

    def report_exit(self, exit: Exit, leftovers: list[Envelope] | None = None) -> None:
        with self._lock:
            if self.exit is not None:
                late = leftovers or []
                fail_envelopes(late, f"the actor exited ({self.exit}) before handling it")
                return
            self.exit = exit
            self._leftovers = leftovers or []
            notify = self._on_exit if not self._muted else None
        self.exited.set()
        self.report_start_failed(
            exit.error or pykka.ActorDeadError(f"exited before it started: {exit}")
        )
        if notify is not None:
            notify(self, exit)

    def _first_start_report(self) -> bool:
        with self._lock:
            first, self._start_reported = not self._start_reported, True
        return first

    def _claimant(self) -> SupervisedActor | None:
        """The actor that claimed this link, if one did and it still exists."""
        return self._actor() if self._actor is not None else None

    def _claim(self, actor: SupervisedActor) -> bool:
        with self._lock:
            if self._actor is not None:
                return False
            self._actor = weakref.ref(actor)
            self.urn = actor.actor_urn
            return True


@dataclass(frozen=True, slots=True)
class ChildExited:
    """A child's link reports its exit to its supervisor: OTP's ``{'EXIT', Pid, Reason}``."""

    link: Link
    exit: Exit


class ExitReporter:
    """A link's exit callback that tells `supervisor` (`ChildExited`). If the
    supervisor is gone too, its own shutdown reached the child and dealt with
    its leftovers: nothing is lost by dropping the news."""

    __slots__ = ("_supervisor",)

    def __init__(self, supervisor: pykka.ActorRef[Any]) -> None:
        self._supervisor = supervisor

    def __call__(self, link: Link, exit: Exit) -> None:
        with contextlib.suppress(pykka.ActorDeadError):
            self._supervisor.tell(ChildExited(link, exit))


@contextlib.contextmanager
def linked(link: Link) -> Iterator[Link]:
    """Run a start function inside ``with linked(link):`` to link what it starts."""
    token = _opening.set(link)
    try:
        yield link
    finally:
        _opening.reset(token)


def claim(actor: SupervisedActor) -> Link | None:
    """Called by every supervised actor as it is constructed: the first one
    constructed inside `linked` becomes the linked child."""
    link = _opening.get()
    if link is not None and link._claim(actor):
        return link
    return None


def start_linked(
    child_id: str,
    start: Callable[[], pykka.ActorRef[Any]],
    on_exit: Callable[[Link, Exit], None] | None,
    timeout_s: float,
) -> tuple[pykka.ActorRef[Any], Link]:
    """Start an actor linked to `on_exit` and return once its ``on_start`` has
    returned. Raises `StartChildError`, naming `child_id`, when it does not
    start, and `Ignore` when it declines; an actor that does not start in
    `timeout_s` is killed. Blocks."""
    ref, link = spawn_linked(child_id, start, on_exit)
    await_started(child_id, ref, link, timeout_s)
    return ref, link


def spawn_linked(
    child_id: str,
    start: Callable[[], pykka.ActorRef[Any]],
    on_exit: Callable[[Link, Exit], None] | None,
) -> tuple[pykka.ActorRef[Any], Link]:
    """The first half of `start_linked`: construct the actor, linked, without
    waiting for its ``on_start`` (which runs on the actor's own thread or loop)."""
    link = Link(on_exit)
    with linked(link):
        try:
            ref = start()
        except Ignore:
            link.mute()
            link.kill(KILLED)  # if it had constructed an actor before declining
            raise
        except Exception as error:
            raise StartChildError(child_id, error) from error
    if link.urn is None:
        raise StartChildError(
            child_id,
            f"{start!r} did not start a supervised actor "
            "(derive from supervision.ThreadActor or supervision.LoopActor)",
        )
    return ref, link


def await_started(child_id: str, ref: pykka.ActorRef[Any], link: Link, timeout_s: float) -> None:
    """The second half of `start_linked`: wait until the actor's ``on_start``
    has returned; kill it if that takes longer than `timeout_s`. `Ignore`
    passes through: the start was declined (the actor has stopped)."""
    try:
        link.started.get(timeout=max(0.0, timeout_s))
    except pykka.Timeout:
        link.kill(KILLED)
        raise StartChildError(child_id, f"on_start did not return in {timeout_s:g} s") from None
    except Ignore:
        raise
    except Exception as error:
        raise StartChildError(child_id, error) from error
    if ref.actor_urn != link.urn:
        link.kill(KILLED)
        raise StartChildError(
            child_id,
            "the start function returned another actor than the first one it "
            "constructed; start helper actors in the child's on_start instead",
        )
