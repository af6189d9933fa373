"""Adoption: a temporary child started by its caller, then handed to a supervisor.

`start_child` is OTP's way: the supervisor starts the child in its own thread
and answers once the child's ``on_start`` has returned. That costs the caller
two hops between threads and a wait, which is nothing for the few long-lived
children of a tree and most of the price of a short-lived one started by the
thousand, such as a session per WebSocket connection, whose caller is the very
event loop the child runs on.

`adopt_child` starts the child where the caller is (a `LoopActor` on the
caller's loop, whose ``on_start`` then runs on the loop's next turn), linked to
the supervisor as if the supervisor had started it, and tells the supervisor
to take it over: one message, and no wait. From then on the supervisor treats
it like any child it started: it hears of its exit, lists and counts it, and
stops it when asked or when it stops itself.

Only temporary children are adopted. A supervisor restarts a permanent or
transient child by calling its start function again, in its own thread; a
child it never started, whose start nobody waited for, is not one it should
have to repeat. OTP has no adoption: it is this library's, for the one case
where the synchronous start is the cost that matters.

A child whose supervisor cannot take it (the supervisor is dead or stopping,
already has a child of that id, or is a dynamic supervisor at ``max_children``)
is stopped, so that no child is left running unsupervised.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import pykka

from supervision._link import ExitReporter, Link, spawn_linked
from supervision.child_spec import ChildSpec, Restart
from supervision.errors import InvalidChildSpecError
from supervision.future import Future

__all__ = ["AdoptChild", "adopt_child"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AdoptChild:
    """Take over `ref`, started by the caller from `spec` and linked by `link`."""

    spec: ChildSpec
    ref: pykka.ActorRef[Any]
    link: Link


def adopt_child(supervisor: pykka.ActorRef[Any], spec: ChildSpec) -> pykka.ActorRef[Any]:
    """Start `spec`'s child here, in the caller, and give it to `supervisor`;
    its ref, at once (messages sent to it wait for its ``on_start``).
    `StartChildError` if its start function fails; `InvalidChildSpecError` if
    `spec` is not temporary; `pykka.ActorDeadError` if the supervisor is not
    running (the child is stopped). If the supervisor turns it down later, the
    child is stopped then (see the module's documentation)."""
    if spec.restart is not Restart.TEMPORARY:
        raise InvalidChildSpecError(
            f"child {spec.id!r}: only a temporary child is adopted, not a {spec.restart.value} one"
        )
    ref, link = spawn_linked(spec.id, spec.start, ExitReporter(supervisor))
    taken = supervisor.ask(AdoptChild(spec, ref, link), block=False)
    assert isinstance(taken, Future), "a supervisor is a ThreadActor, whose futures call back"
    taken.add_done_callback(_AdoptionAnswer(spec, ref, link))
    if taken.done():  # the supervisor was dead already: the child is stopped; say why
        taken.get()
    return ref


class _AdoptionAnswer:
    """What happens once the supervisor answers: nothing when it took the
    child; the child stopped when it did not."""

    __slots__ = ("_link", "_ref", "_spec")

    def __init__(self, spec: ChildSpec, ref: pykka.ActorRef[Any], link: Link) -> None:
        self._spec, self._ref, self._link = spec, ref, link

    def __call__(self, answer: Future[None]) -> None:
        try:
            answer.get()
        except Exception as error:
            _turned_down(self._spec, self._ref, self._link, str(error))


def _turned_down(spec: ChildSpec, ref: pykka.ActorRef[Any], link: Link, why: str) -> None:
    logger.warning("Child %r stopped: its supervisor did not adopt it (%s)", spec.id, why)
    link.mute()
    with contextlib.suppress(pykka.ActorDeadError):
        ref.stop(block=False)
