"""The dynamic supervisor: children added and removed while it runs.

A `Supervisor` is given its children up front, in an order that means
something. A `DynamicSupervisor` starts empty and takes children one at a time
(one per connection, say), all alike, so its only strategy is one_for_one. As
in Elixir, it differs from a supervisor in four ways: a child may be given as
a bare start function (it then gets a generated id and the restart type
temporary, so its crash never spends the supervisor's restart budget; this
is the library's own shorthand, Elixir always takes a child spec); it refuses a
child beyond ``max_children`` with `MaxChildrenError`; terminating a child
forgets it; and on shutdown it stops all its children at once, since none
depends on another, instead of one after the other.

Starting is synchronous, as in OTP: a caller of `start_child` is answered once
its child's ``on_start`` has returned. When several callers ask at about the
same time, the requests queued behind the first are started in the same round:
every child is constructed first, then each one's ``on_start`` is waited for.
For loop actors that share a busy event loop (a crowd of connections arriving)
the round costs one turn of the loop instead of one turn per child. Each
caller's answer, and each child's failure, is still its own.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka

from supervision import _pykka
from supervision._link import Link, await_started, spawn_linked
from supervision.child_spec import ChildKind, ChildSpec, Restart
from supervision.client import StartChild
from supervision.errors import ChildNotFoundError, Ignore, MaxChildrenError, StartChildError
from supervision.strategy import Strategy
from supervision.supervisor import Supervisor, _Child

__all__ = ["DynamicSupervisor"]


@dataclass(frozen=True)
class _Starting:
    """A child constructed in a round of starts, its ``on_start`` not yet awaited."""

    child_id: str
    ref: pykka.ActorRef[Any]
    link: Link
    deadline: float


class DynamicSupervisor(Supervisor):
    """A one_for_one supervisor of children started at run time."""

    def __init__(self, *, max_children: int | None = None, **options: Any) -> None:
        if max_children is not None and max_children < 0:
            raise ValueError(f"max_children must be None or >= 0, got {max_children!r}")
        super().__init__((), strategy=Strategy.ONE_FOR_ONE, **options)
        self.max_children = max_children
        self._ids = itertools.count(1)

    @classmethod
    def child_spec(  # type: ignore[override]
        cls,
        id: str,
        *,
        restart: Restart = Restart.PERMANENT,
        name: str | None = None,
        **options: Any,
    ) -> ChildSpec:
        """A spec for this dynamic supervisor as the child of another."""
        return ChildSpec(
            id=id,
            start=lambda: cls.start(name=id, **options),
            restart=restart,
            kind=ChildKind.SUPERVISOR,
            name=name,
        )

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, StartChild):
            return self._start_together(message)
        return super().on_receive(message)

    def _start_together(self, first: StartChild) -> Any:
        """Start `first`'s child and those of the `StartChild` requests queued
        right behind it in one round; answer each request with its own outcome
        (the first through our return value, as any message). A child counts
        towards ``max_children`` from the moment it is asked for: when the round
        is full, the children already constructed are waited for (one that
        fails to start frees its place) before the next request is looked at,
        so every request meets the same limit it would meet alone."""
        queued = _pykka.take_queued(self, lambda message: isinstance(message, StartChild))
        requests = [first, *(_pykka.message_of(envelope) for envelope in queued)]
        outcomes: list[pykka.ActorRef[Any] | BaseException | None] = [None] * len(requests)
        starting: list[tuple[int, _Starting]] = []

        def finish_round() -> None:
            for index, one in starting:
                outcomes[index] = self._await_new(one)
            starting.clear()

        for index, request in enumerate(requests):
            if starting and self._full():
                finish_round()
            try:
                starting.append((index, self._spawn_new(request.spec)))
            except Ignore:
                outcomes[index] = None  # declined: nothing is added
            except Exception as error:
                outcomes[index] = error
        finish_round()
        for envelope, outcome in zip(queued, outcomes[1:], strict=True):
            if isinstance(outcome, BaseException):
                _pykka.reply_error(envelope, outcome)
            else:
                _pykka.reply(envelope, outcome)
        if isinstance(outcomes[0], BaseException):
            raise outcomes[0]
        return outcomes[0]

    def _full(self) -> bool:
        """Whether ``max_children`` are running or starting already."""
        return self.max_children is not None and len(self._children) >= self.max_children

    def _spawn_new(self, spec: ChildSpec | Callable[[], pykka.ActorRef[Any]]) -> _Starting:
        """Add the child and construct it, not waiting for its ``on_start``."""
        spec = self._spec_for(spec)
        child = self._add(spec)
        try:
            ref, link = spawn_linked(child.id, spec.start, self._tell_exited)
        except (StartChildError, Ignore):
            del self._children[child.id]
            raise
        return _Starting(child.id, ref, link, time.monotonic() + self._start_timeout_s)

    def _await_new(self, starting: _Starting) -> pykka.ActorRef[Any] | BaseException | None:
        """The started child's ref, or why it did not start, or None if it
        declined (`Ignore`); a child that does not run is forgotten."""
        try:
            await_started(
                starting.child_id, starting.ref, starting.link, starting.deadline - time.monotonic()
            )
            return self._started(self._children[starting.child_id], starting.ref, starting.link)
        except StartChildError as error:
            del self._children[starting.child_id]
            return error
        except Ignore:
            del self._children[starting.child_id]
            return None

    def _adopt(self, spec: ChildSpec, ref: pykka.ActorRef[Any], link: Link) -> None:
        self._check_room()
        super()._adopt(spec, ref, link)

    def _check_room(self) -> None:
        if self._full():
            raise MaxChildrenError(
                f"dynamic supervisor {self.id!r} already runs its {self.max_children} children"
            )

    def _spec_for(self, spec: ChildSpec | Callable[[], pykka.ActorRef[Any]]) -> ChildSpec:
        """Check ``max_children``; turn a bare start function into a temporary child."""
        self._check_room()
        if not isinstance(spec, ChildSpec):
            spec = ChildSpec(
                id=f"{self.id}-{next(self._ids)}", start=spec, restart=Restart.TEMPORARY
            )
        return spec

    def _stop_children(self, *, restarting: bool = False) -> None:
        """Stop every child at once: none depends on another."""
        self._stop_together(reversed(list(self._children.values())), restarting=restarting)

    def _keeps_spec_of_stopped(self, child: _Child) -> bool:
        """None: a child that exits and is not restarted (a transient one
        that exits normally or with reason shutdown, any temporary one) is
        forgotten and gives its place back, as in OTP's simple_one_for_one."""
        return False

    def _terminate(self, child_id: str | pykka.ActorRef[Any]) -> None:
        """Stop the child, named by its id or by its ref, and forget it. A ref
        that is none of our children's is not found, and left alone."""
        super()._terminate(child_id if isinstance(child_id, str) else self._id_of(child_id))

    def _id_of(self, ref: pykka.ActorRef[Any]) -> str:
        for child in self._children.values():
            if child.ref is not None and child.ref.actor_urn == ref.actor_urn:
                return child.id
        raise ChildNotFoundError(f"dynamic supervisor {self.id!r} has no child {ref}")
