"""Restart strategies as pure functions: given the children and the one that
exited, which children to stop, which to start again, and which to forget.

The supervisor actor only carries out the plan; everything decided here can be
tested without starting a single actor.

    one_for_one   only the child that exited is restarted
                  [a][B][c]  ->  [a][B'][c]
    one_for_all   every child is stopped (in reverse order) and all are restarted
                  [a][B][c]  ->  [a'][B'][c']
    rest_for_one  the child and those started after it are stopped and restarted
                  [a][B][c]  ->  [a][B'][c']
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from supervision.child_spec import Restart

__all__ = ["RestartPlan", "Strategy", "plan_restart", "should_restart"]


class Strategy(enum.Enum):
    """How a supervisor reacts to one child's exit. The values are OTP's words."""

    ONE_FOR_ONE = "one_for_one"
    """Restart only the child that exited. For independent children."""

    ONE_FOR_ALL = "one_for_all"
    """Stop all children and restart them all. For children that only work together."""

    REST_FOR_ONE = "rest_for_one"
    """Stop and restart the child and every child started after it. For children
    where each depends on those started before it."""


@dataclass(frozen=True)
class RestartPlan:
    """What a supervisor does after a child exits, in three ordered lists of ids."""

    stop: tuple[str, ...]
    """Siblings to stop, in the order to stop them (reverse start order)."""

    restart: tuple[str, ...]
    """Children to start again, in start order; includes the child that exited."""

    remove: tuple[str, ...]
    """Children to forget: temporary ones that are not started again."""


def should_restart(restart: Restart, *, crashed: bool) -> bool:
    """Whether a child with this restart type is started again after it exited."""
    if restart is Restart.PERMANENT:
        return True
    if restart is Restart.TRANSIENT:
        return crashed
    return False


def plan_restart(
    strategy: Strategy,
    children: Sequence[tuple[str, Restart]],
    exited: str,
    *,
    crashed: bool,
) -> RestartPlan:
    """Plan the supervisor's reaction to `exited` leaving, given every child as
    ``(id, restart)`` in start order.

    When the exited child is not to be restarted, its siblings are untouched
    whatever the strategy, as in OTP: only a restart disturbs them.
    """
    ids = [child_id for child_id, _ in children]
    restart_of = dict(children)
    if exited not in restart_of:
        raise ValueError(f"{exited!r} is not among the children {ids}")

    if not should_restart(restart_of[exited], crashed=crashed):
        removed = (exited,) if restart_of[exited] is Restart.TEMPORARY else ()
        return RestartPlan(stop=(), restart=(), remove=removed)

    affected = _affected(strategy, ids, exited)
    siblings = [child_id for child_id in affected if child_id != exited]
    return RestartPlan(
        stop=tuple(reversed(siblings)),
        restart=tuple(c for c in affected if restart_of[c] is not Restart.TEMPORARY),
        remove=tuple(c for c in siblings if restart_of[c] is Restart.TEMPORARY),
    )


def _affected(strategy: Strategy, ids: list[str], exited: str) -> list[str]:
    if strategy is Strategy.ONE_FOR_ONE:
        return [exited]
    if strategy is Strategy.ONE_FOR_ALL:
        return ids
    return ids[ids.index(exited) :]
