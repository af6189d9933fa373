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
to take it over: one message, and no wait. On an event loop, the children
adopted during one turn of the loop go to each supervisor in one message at
the end of the turn, so that a crowd wakes the supervisor's thread once a turn.
From then on the supervisor treats each like any child it started: it hears of
its exit, lists and counts it, and stops it when asked or when it stops itself.

Only temporary children are adopted. A supervisor restarts a permanent or
transient child by calling its start function again, in its own thread; a
child it never started, whose start nobody waited for, is not one it should
have to repeat. OTP has no adoption: it is this library's, for the one case
where the synchronous start is the cost that matters.

A child whose supervisor cannot take it (the supervisor is dead or stopping,
already has a child of that id, finds its registered name taken, or is a
dynamic supervisor at ``max_children``) is stopped, so that no child is left
running unsupervised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from dataclasses import dataclass
from typing import Any

import pykka

from supervision._link import ExitReporter, Link, spawn_linked
from supervision.child_spec import ChildSpec, Restart
from supervision.errors import InvalidChildSpecError
from supervision.future import Future

__all__ = ["AdoptChild", "AdoptChildren", "adopt_child"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AdoptChild:
    """One child to take over: `ref`, started by the caller from `spec` and linked by `link`."""

    spec: ChildSpec
    ref: pykka.ActorRef[Any]
    link: Link


@dataclass(frozen=True, slots=True)
class AdoptChildren:
    """Take over these children; answered with one outcome each, in order: None
    for a child taken, the error for one turned down."""

    children: tuple[AdoptChild, ...]


def adopt_child(supervisor: pykka.ActorRef[Any], spec: ChildSpec) -> pykka.ActorRef[Any]:
    """Start `spec`'s child here, in the caller, and give it to `supervisor`;
    its ref, at once (messages sent to it wait for its ``on_start``).
    `StartChildError` if its start function fails; `InvalidChildSpecError` if
    `spec` is not temporary; `pykka.ActorDeadError` if the supervisor is not
    running (the child is stopped). If the supervisor turns it down later, the
    child is stopped then (see the module's documentation).

    On an event loop's thread the children adopted during one turn of the loop
    go to their supervisor together, in one message at the end of the turn: a
    crowd of connections wakes the supervisor's thread once per turn, not once
    per child."""
    if spec.restart is not Restart.TEMPORARY:
        raise InvalidChildSpecError(
            f"child {spec.id!r}: only a temporary child is adopted, not a {spec.restart.value} one"
        )
    ref, link = spawn_linked(spec.id, spec.start, ExitReporter(supervisor))
    child = AdoptChild(spec, ref, link)
    if not supervisor.is_alive():
        _turned_down(child, "its supervisor is not running")
        raise pykka.ActorDeadError(f"{supervisor} is not running: {spec.id!r} was not adopted")
    loop = asyncio._get_running_loop()
    if loop is None:
        _hand_over(supervisor, [child])
    else:
        _Batches.of(loop).add(supervisor, child)
    return ref


class _Batches:
    """The children adopted on one event loop during its current turn, by
    supervisor; handed over by one callback at the end of the turn. Touched
    only on the loop's thread."""

    _of_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batches] = (
        weakref.WeakKeyDictionary()
    )

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> _Batches:
        batches = cls._of_loop.get(loop)
        if batches is None:
            batches = cls._of_loop[loop] = cls(loop)
        return batches

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiting: dict[str, tuple[pykka.ActorRef[Any], list[AdoptChild]]] = {}

    def add(self, supervisor: pykka.ActorRef[Any], child: AdoptChild) -> None:
        if not self._waiting:
            self._loop.call_soon(self._hand_over)
        self._waiting.setdefault(supervisor.actor_urn, (supervisor, []))[1].append(child)

    def _hand_over(self) -> None:
        waiting, self._waiting = self._waiting, {}
        for supervisor, children in waiting.values():
            _hand_over(supervisor, children)


def _hand_over(supervisor: pykka.ActorRef[Any], children: list[AdoptChild]) -> None:
    """Send `children` to `supervisor` in one message; stop those it turns down."""
    answer = supervisor.ask(AdoptChildren(tuple(children)), block=False)
    assert isinstance(answer, Future), "a supervisor is a ThreadActor, whose futures call back"
    answer.add_done_callback(_Answer(children))


class _Answer:
    """What happens once the supervisor answers: nothing for a child it took;
    a child it did not take is stopped."""

    __slots__ = ("_children",)

    def __init__(self, children: list[AdoptChild]) -> None:
        self._children = children

    def __call__(self, answer: Future[list[BaseException | None]]) -> None:
        try:
            outcomes: list[BaseException | None] = answer.get()
        except Exception as error:  # the supervisor died before answering
            outcomes = [error] * len(self._children)
        for child, outcome in zip(self._children, outcomes, strict=True):
            if outcome is not None:
                _turned_down(child, str(outcome))


def _turned_down(child: AdoptChild, why: str) -> None:
    logger.warning("Child %r stopped: its supervisor did not adopt it (%s)", child.spec.id, why)
    child.link.mute()
    with contextlib.suppress(pykka.ActorDeadError):
        child.ref.stop(block=False)
