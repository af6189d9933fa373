"""Looking at a running tree: `describe_tree`, `TreeNode.find`, `find_actor` and
`render_tree`."""

from __future__ import annotations

from typing import Any

import pykka
import pytest

from supervision import (
    ChildKind,
    Restart,
    Strategy,
    Supervisor,
    ThreadActor,
    describe_tree,
    find_actor,
    inject_crash,
    render_tree,
    start_link,
    terminate_child,
    which_children,
)
from supervision.client import ChildInfo, Describe, SupervisorInfo
from tests.unit._actors import Journal, wait_until_dead, worker


def _start(journal: Journal, **inner_options: Any) -> pykka.ActorRef[Any]:
    """root (one_for_one) with a worker `a` and a supervisor `inner` over `x`."""
    inner = Supervisor.child_spec("inner", [worker("x", journal)], **inner_options)
    return start_link(Supervisor.child_spec("root", [worker("a", journal), inner]))


def _child(supervisor: pykka.ActorRef[Any], child_id: str) -> pykka.ActorRef[Any]:
    for info in which_children(supervisor).get(timeout=5):
        if info.id == child_id and info.ref is not None:
            return info.ref
    raise AssertionError(f"no running child {child_id!r}")


def test_tree_describes_kinds_strategies_and_restarts() -> None:
    journal = Journal()
    root = _start(journal, strategy=Strategy.REST_FOR_ONE)
    inject_crash(_child(root, "a"))
    journal.wait_for("a", "start", count=2)
    tree = describe_tree(root).to_dict()
    # Each supervisor says its intensity and the restarts counting against it, with their ages.
    root_intensity = tree.pop("intensity")
    assert root_intensity["restarts"] == 1, root_intensity
    assert (root_intensity["max_restarts"], root_intensity["max_seconds"]) == (3, 5.0)
    ((age,),) = [root_intensity["ages_s"]]
    assert 0 <= age < 5.0
    assert tree["children"][1].pop("intensity") == {
        "restarts": 0,
        "max_restarts": 3,
        "max_seconds": 5.0,
        "ages_s": [],
    }
    assert tree == {
        "id": "root",
        "kind": "supervisor",
        "strategy": "one_for_one",
        "restarts": 0,
        "alive": True,
        "children": [
            {"id": "a", "kind": "worker", "restart": "permanent", "restarts": 1, "alive": True},
            {
                "id": "inner",
                "kind": "supervisor",
                "restart": "permanent",
                "strategy": "rest_for_one",
                "restarts": 0,
                "alive": True,
                "children": [
                    {
                        "id": "x",
                        "kind": "worker",
                        "restart": "permanent",
                        "restarts": 0,
                        "alive": True,
                    }
                ],
            },
        ],
    }
    assert ChildKind.SUPERVISOR.value == tree["children"][1]["kind"]


def test_a_node_is_found_by_id_in_its_subtree() -> None:
    tree = describe_tree(_start(Journal()))
    inner = tree.find("inner")
    assert inner is not None
    assert inner.find("x") is tree.find("x")
    assert inner.find("a") is None
    assert tree.find("root") is tree


def test_a_terminated_child_supervisor_shows_as_down_with_no_children() -> None:
    root = _start(Journal())
    terminate_child(root, "inner").get(timeout=5)
    inner = describe_tree(root).find("inner")
    assert inner is not None
    assert (inner.alive, inner.children) == (False, ())


class _Looking(ThreadActor):
    """A stand-in supervisor that describes a child supervisor which is dead by
    the time it is asked, as one that dies while the tree is read."""

    def __init__(self, dead: pykka.ActorRef[Any]) -> None:
        super().__init__()
        self.dead = dead

    def on_receive(self, message: Any) -> Any:
        assert isinstance(message, Describe)
        child = ChildInfo("inner", ChildKind.SUPERVISOR, Restart.PERMANENT, True, 0, self.dead)
        return SupervisorInfo("root", Strategy.ONE_FOR_ONE, (child,))


def test_a_child_supervisor_that_dies_while_the_tree_is_read_shows_as_down() -> None:
    dead = Supervisor.start(name="inner")
    dead.stop()
    wait_until_dead(dead)
    tree = describe_tree(_Looking.start(dead))
    inner = tree.find("inner")
    assert inner is not None
    assert (inner.alive, inner.children) == (False, ())


def test_find_actor_finds_any_running_node_by_id() -> None:
    root = _start(Journal())
    inner = _child(root, "inner")
    assert find_actor(root, "root") is root
    assert find_actor(root, "a") is _child(root, "a")
    assert find_actor(root, "inner") is inner
    assert find_actor(root, "x") is _child(inner, "x")
    assert find_actor(root, "nobody") is None
    terminate_child(inner, "x").get(timeout=5)
    assert find_actor(root, "x") is None  # known, but not running


def test_the_tree_renders_as_text() -> None:
    journal = Journal()
    root = _start(journal)
    inject_crash(_child(root, "a"))
    journal.wait_for("a", "start", count=2)
    assert render_tree(describe_tree(root)) == "\n".join(
        [
            "root  supervisor one_for_one  alive",
            "├─ a  worker permanent  alive  restarts 1",
            "└─ inner  supervisor one_for_one permanent  alive",
            "   └─ x  worker permanent  alive",
        ]
    )


@pytest.mark.parametrize("max_children", [1, 2])
def test_a_supervisor_with_more_children_than_shown_says_how_many_more(max_children: int) -> None:
    journal = Journal()
    root = start_link(Supervisor.child_spec("root", [worker(n, journal) for n in "abc"]))
    lines = render_tree(describe_tree(root), max_children=max_children).split("\n")
    assert lines[1:] == [
        *(f"├─ {n}  worker permanent  alive" for n in "abc"[:max_children]),
        f"└─ … {3 - max_children} more",
    ]
