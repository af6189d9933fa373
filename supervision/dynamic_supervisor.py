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
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pykka

from supervision.child_spec import ChildKind, ChildSpec, Restart, Shutdown
from supervision.errors import MaxChildrenError
from supervision.strategy import Strategy
from supervision.supervisor import Supervisor

__all__ = ["DynamicSupervisor"]


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
            shutdown=Shutdown.INFINITY,
            kind=ChildKind.SUPERVISOR,
            name=name,
        )

    def _start_new(self, spec: ChildSpec | Callable[[], pykka.ActorRef[Any]]) -> Any:
        if self.max_children is not None and len(self._children) >= self.max_children:
            raise MaxChildrenError(
                f"dynamic supervisor {self.id!r} already runs its {self.max_children} children"
            )
        if not isinstance(spec, ChildSpec):
            spec = ChildSpec(
                id=f"{self.id}-{next(self._ids)}", start=spec, restart=Restart.TEMPORARY
            )
        return super()._start_new(spec)

    def _stop_children(self, *, restarting: bool = False) -> None:
        children = reversed(list(self._children.values()))
        stopping = [self._begin_stop(child, restarting=restarting) for child in children]
        for one in stopping:
            if one is not None:
                self._finish_stop(one)

    def _terminate(self, child_id: str) -> None:
        super()._terminate(child_id)
        del self._children[child_id]
