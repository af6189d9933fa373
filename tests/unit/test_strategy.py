"""Restart plans are pure: strategy x restart type x how the child exited."""

from __future__ import annotations

import pytest

from supervision import Restart, RestartPlan, Strategy, plan_restart, should_restart

P, T, X = Restart.PERMANENT, Restart.TRANSIENT, Restart.TEMPORARY


@pytest.mark.parametrize(
    ("restart", "crashed", "expected"),
    [(P, True, True), (P, False, True), (T, True, True), (T, False, False), (X, True, False)],
)
def test_should_restart_by_type_and_exit(restart: Restart, crashed: bool, expected: bool) -> None:
    assert should_restart(restart, crashed=crashed) is expected


def test_one_for_one_restarts_only_the_exited_child() -> None:
    plan = plan_restart(Strategy.ONE_FOR_ONE, [("a", P), ("b", P), ("c", P)], "b", crashed=True)
    assert plan == RestartPlan(stop=(), restart=("b",), remove=())


def test_one_for_all_stops_siblings_in_reverse_and_restarts_all_in_order() -> None:
    plan = plan_restart(Strategy.ONE_FOR_ALL, [("a", P), ("b", P), ("c", P)], "b", crashed=True)
    assert plan == RestartPlan(stop=("c", "a"), restart=("a", "b", "c"), remove=())


def test_rest_for_one_stops_and_restarts_the_child_and_those_after_it() -> None:
    children = [("a", P), ("b", P), ("c", P), ("d", P)]
    plan = plan_restart(Strategy.REST_FOR_ONE, children, "b", crashed=True)
    assert plan == RestartPlan(stop=("d", "c"), restart=("b", "c", "d"), remove=())


@pytest.mark.parametrize("strategy", list(Strategy))
def test_temporary_siblings_are_stopped_and_forgotten_not_restarted(strategy: Strategy) -> None:
    plan = plan_restart(strategy, [("a", P), ("b", X), ("c", T)], "a", crashed=True)
    assert "b" not in plan.restart
    if strategy is Strategy.ONE_FOR_ONE:
        assert plan == RestartPlan(stop=(), restart=("a",), remove=())
    else:
        assert plan.remove == ("b",)
        assert "b" in plan.stop


@pytest.mark.parametrize("strategy", list(Strategy))
@pytest.mark.parametrize(
    ("restart", "crashed"),
    [(T, False), (X, True), (X, False)],
    ids=["transient-normal", "temporary-crash", "temporary-normal"],
)
def test_exit_without_restart_leaves_siblings_alone(
    strategy: Strategy, restart: Restart, crashed: bool
) -> None:
    plan = plan_restart(strategy, [("a", P), ("b", restart), ("c", P)], "b", crashed=crashed)
    assert plan.stop == ()
    assert plan.restart == ()
    assert plan.remove == (("b",) if restart is X else ())


def test_unknown_child_is_refused() -> None:
    with pytest.raises(ValueError, match="'z' is not among the children"):
        plan_restart(Strategy.ONE_FOR_ONE, [("a", P)], "z", crashed=True)
