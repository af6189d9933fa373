"""Child specifications: how a supervisor starts, restarts and stops one child.

A child spec is to a supervisor what a recipe is to a cook. It does not hold a
running actor; it says how to make one, when to make it again, and how long to
wait when asking it to stop. The fields mirror the keys of an OTP child spec map:

    id        the child's name among its siblings (OTP ``id``)
    start     a callable that starts the actor and returns its ref (``start``)
    restart   when a child that exited is started again (``restart``)
    shutdown  how long a stop may take before the child is killed (``shutdown``)
    kind      whether the child is a worker or a supervisor (``type``)
    name      the name it is registered under, if any (the ``name`` of start_link)
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka

from supervision.errors import InvalidChildSpecError

__all__ = ["ChildKind", "ChildSpec", "Restart", "Shutdown"]


class Restart(enum.Enum):
    """When a child that exited is started again. The values are OTP's words."""

    PERMANENT = "permanent"
    """Always restarted, whatever the reason it exited. For long-lived services."""

    TRANSIENT = "transient"
    """Restarted only after a crash; a normal stop is final. For jobs that finish."""

    TEMPORARY = "temporary"
    """Never restarted, and its exits never count against the restart intensity."""


class Shutdown(enum.Enum):
    """The two shutdown values that are not a number of seconds."""

    BRUTAL_KILL = "brutal_kill"
    """Kill the child at once, without asking it to stop."""

    INFINITY = "infinity"
    """Wait as long as the child takes: the right choice for a supervisor, whose
    own children each have a bounded shutdown, and the default of a child of
    kind supervisor."""


class ChildKind(enum.Enum):
    """Whether a child is a worker or a supervisor (OTP's ``type``)."""

    WORKER = "worker"
    SUPERVISOR = "supervisor"


DEFAULT_WORKER_SHUTDOWN_S = 5.0
"""OTP's default for workers: five seconds to stop before being killed."""

DEFAULT_SUPERVISOR_SHUTDOWN = Shutdown.INFINITY
"""OTP's default for supervisors: all the time its own children take to stop,
each within its own shutdown."""


@dataclass(frozen=True)
class ChildSpec:
    """How to start, restart and stop one child of a supervisor."""

    id: str
    """Unique among the supervisor's children; names the child in logs, events
    and the introspected tree."""

    start: Callable[[], pykka.ActorRef[Any]]
    """Starts the child and returns its ref, as ``SomeActor.start(...)`` does.
    Called again, with no arguments, for every restart. The actor must derive
    from `supervision.ThreadActor` or `supervision.LoopActor`, which tell the
    supervisor when it has started and when it exits."""

    restart: Restart = Restart.PERMANENT
    """When the child is started again after it exits. Default: permanent."""

    shutdown: float | Shutdown | None = None
    """Seconds the child may take to stop before it is killed (0: none, it is
    killed at once, as with `Shutdown.BRUTAL_KILL`), or `Shutdown.BRUTAL_KILL`,
    or `Shutdown.INFINITY`. Default (None, replaced when the spec is made): 5 s
    for a worker, `Shutdown.INFINITY` for a supervisor, as in OTP."""

    kind: ChildKind = ChildKind.WORKER
    """Worker or supervisor. Default: worker."""

    name: str | None = None
    """The name to register the child under in the supervisor's registry, so
    others reach the current incarnation by name. Default: not registered."""

    def __post_init__(self) -> None:
        # The annotations are promises to the type checker; these checks keep
        # them for callers that have none, and name the field that broke one.
        fields: dict[str, object] = vars(self)
        if not isinstance(fields["id"], str) or not fields["id"]:
            self._refuse("id", fields["id"], "a non-empty string")
        if not callable(fields["start"]):
            self._refuse("start", fields["start"], "a callable returning an ActorRef")
        if not isinstance(fields["restart"], Restart):
            self._refuse("restart", fields["restart"], "Restart.PERMANENT, TRANSIENT or TEMPORARY")
        if not isinstance(fields["kind"], ChildKind):
            self._refuse("kind", fields["kind"], "ChildKind.WORKER or ChildKind.SUPERVISOR")
        shutdown = fields["shutdown"]
        if shutdown is None:
            shutdown = (
                DEFAULT_SUPERVISOR_SHUTDOWN
                if fields["kind"] is ChildKind.SUPERVISOR
                else DEFAULT_WORKER_SHUTDOWN_S
            )
            object.__setattr__(self, "shutdown", shutdown)
        if not isinstance(shutdown, Shutdown) and not _is_seconds(shutdown):
            self._refuse(
                "shutdown",
                shutdown,
                "a number of seconds >= 0, Shutdown.BRUTAL_KILL or Shutdown.INFINITY",
            )
        name = fields["name"]
        if name is not None and (not isinstance(name, str) or not name):
            self._refuse("name", name, "None or a non-empty string")

    def _refuse(self, field: str, value: object, expected: str) -> None:
        raise InvalidChildSpecError(
            f"invalid child spec {self.id!r}: {field} must be {expected}, got {value!r}"
        )


def _is_seconds(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )
