"""Property tests: random crash sequences driven through a real two-level tree.

The tree is a root supervisor (one_for_one) over one or two workers and a
sub-supervisor with two or three workers of its own::

    root (one_for_one)
    ├── r1            worker
    ├── sub           supervisor (strategy drawn)
    │   ├── w1        worker
    │   ├── w2        worker
    │   └── w3        worker (sometimes)
    └── r2            worker (sometimes)

Hypothesis draws the shape (positions, restart types, strategies, intensities)
and a sequence of crashes, each after a gap on a fake clock shared by both
supervisors, so that restart intensity is exact and nothing sleeps. A crash
may also make one worker of the sub-supervisor that its restart starts fail
that start once: the supervisor then tries again by a message to itself,
restarting that worker by its strategy (under one_for_all the whole group
again), each attempt one more restart against the intensity. A small
reference model in plain Python predicts, for every crash, the supervision
events it causes (in order) and the tree it leaves; the real tree is driven one
crash at a time, waited on through its events until it has settled, and then
compared with the model through `describe_tree`, and each supervisor's restart
count in its current window (`count_restarts`) with the model's.

Events are stamped with the number of the step that caused them (the event
stream's clock is the step counter), so a step waits only for its own events.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pykka
from hypothesis import event, given, settings
from hypothesis import strategies as st

from supervision import (
    ChildKind,
    ChildSpec,
    EventKind,
    EventStream,
    ExitReason,
    Restart,
    RestartIntensityExceededError,
    Strategy,
    SupervisionEvent,
    Supervisor,
    ThreadActor,
    TreeNode,
    count_restarts,
    describe_tree,
    inject_crash,
    start_link,
    which_children,
)
from tests.conftest import EventLog
from tests.unit._runtimes import RootExit

ROOT = "root"
SUB = "sub"
SETTLE_TIMEOUT_S = 5.0

EventKey = tuple[str, str | None, EventKind]
"""An event as the model predicts it: (supervisor, child, kind)."""

Row = tuple[str, ChildKind, Restart | None, Strategy | None, bool, int]
"""One node of a tree, flattened: (path, kind, restart, strategy, alive, restarts)."""


class Worker(ThreadActor):
    """A worker that does nothing but live, until it is made to crash."""


class FailNext:
    """The workers whose next start fails (once each): set by the test before a
    crash, taken by the start function, in the supervisor's thread."""

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._lock = threading.Lock()

    def add(self, worker_id: str) -> None:
        with self._lock:
            self._ids.add(worker_id)

    def start(self, worker_id: str) -> pykka.ActorRef[Any]:
        """Start the worker, unless its start is to fail this once."""
        with self._lock:
            failing = worker_id in self._ids
            self._ids.discard(worker_id)
        if failing:
            raise RuntimeError(f"{worker_id} cannot start this time")
        return Worker.start()


# -- driving the real tree ---------------------------------------------------------------


class FakeClock:
    """The supervisors' intensity clock; only the test moves it, between steps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class SteppedEvents:
    """An event stream whose events are stamped with the step that caused them."""

    def __init__(self) -> None:
        self.step = 0
        self.stream = EventStream(clock=lambda: float(self.step))
        self.log = EventLog(self.stream)

    def of_step(self, step: int) -> list[EventKey]:
        return [_key(e) for e in list(self.log.events) if e.time == step]

    def settle(self, step: int, last: EventKey) -> list[EventKey]:
        """Wait for the step's last expected event; return the step's events.

        Every expected event is caused by the one before it, so once the last
        one is in, all are. If it never comes, the caller's comparison of the
        step's events with the model's says what happened instead.
        """
        with contextlib.suppress(AssertionError):
            self.log.wait_for(lambda e: e.time == step and _key(e) == last, SETTLE_TIMEOUT_S)
        return self.of_step(step)


def _key(e: SupervisionEvent) -> EventKey:
    return (e.supervisor, e.child, e.kind)


def child_ref(supervisor: pykka.ActorRef[Any], child_id: str) -> pykka.ActorRef[Any]:
    for info in which_children(supervisor).get(timeout=SETTLE_TIMEOUT_S):
        if info.id == child_id and info.ref is not None:
            return info.ref
    raise AssertionError(f"{child_id!r} is not running under its supervisor")


def recent_restarts(root: pykka.ActorRef[Any], model: TreeModel) -> dict[str, int]:
    """Each supervisor's restarts in its current window, as `count_restarts` reads them."""
    counts = {ROOT: count_restarts(root).get(timeout=SETTLE_TIMEOUT_S).restarts}
    if model.sub is not None:
        sub = child_ref(root, SUB)
        counts[SUB] = count_restarts(sub).get(timeout=SETTLE_TIMEOUT_S).restarts
    return counts


def rows(node: TreeNode, parent: str = "") -> list[Row]:
    path = f"{parent}/{node.id}"
    here: list[Row] = [(path, node.kind, node.restart, node.strategy, node.alive, node.restarts)]
    return here + [row for child in node.children or () for row in rows(child, path)]


def stop_tree(root: pykka.ActorRef[Any]) -> None:
    """Leave no actor of an example behind, even when it failed half-way."""
    if root.is_alive():
        root.stop(block=True, timeout=SETTLE_TIMEOUT_S)
    pykka.ActorRegistry.stop_all(block=True, timeout=SETTLE_TIMEOUT_S)


# -- the plan hypothesis draws -------------------------------------------------------------


@dataclass(frozen=True)
class SupervisorPlan:
    strategy: Strategy
    max_restarts: int
    max_seconds: int


@dataclass(frozen=True)
class TreePlan:
    root: SupervisorPlan
    root_children: tuple[tuple[str, Restart], ...]
    """In start order; `SUB` is among them."""
    sub: SupervisorPlan
    sub_workers: tuple[tuple[str, Restart], ...]

    def spec(
        self, clock: FakeClock, events: EventStream, fail_next: FailNext | None = None
    ) -> ChildSpec:
        failing = fail_next if fail_next is not None else FailNext()
        workers = [
            ChildSpec(w, functools.partial(failing.start, w), restart=r)
            for w, r in self.sub_workers
        ]
        children = [
            Supervisor.child_spec(
                SUB,
                workers,
                restart=r,
                strategy=self.sub.strategy,
                max_restarts=self.sub.max_restarts,
                max_seconds=float(self.sub.max_seconds),
                events=events,
                clock=clock,
            )
            if c == SUB
            else ChildSpec(c, Worker.start, restart=r)
            for c, r in self.root_children
        ]
        return Supervisor.child_spec(
            ROOT,
            children,
            strategy=self.root.strategy,
            max_restarts=self.root.max_restarts,
            max_seconds=float(self.root.max_seconds),
            events=events,
            clock=clock,
        )


@dataclass(frozen=True)
class Crash:
    gap: int
    """Seconds the clock moves on before the crash."""
    in_sub: bool
    """Whether a worker of the sub-supervisor crashes, if it has any, or a root child."""
    target: int
    """Which of those children running at that moment (modulo their number)."""
    failing: int | None = None
    """If a worker of the sub-supervisor is restarted by this crash, which of
    those it restarts (modulo their number) fails that start once; None: none."""


# Mostly children that come back, so that crashes pile up against the intensity.
restart_types = st.sampled_from(
    [Restart.PERMANENT, Restart.TRANSIENT, Restart.PERMANENT, Restart.TEMPORARY]
)
# (max_restarts, max_seconds); sampled, so that every value is as likely as the least.
root_intensities = st.tuples(st.sampled_from([1, 2, 3, 4]), st.sampled_from([1, 2, 3]))
sub_intensities = st.tuples(st.sampled_from([0, 1, 2, 3]), st.sampled_from([1, 2, 3]))


@st.composite
def tree_plans(draw: st.DrawFn) -> TreePlan:
    root_workers = draw(st.lists(restart_types, min_size=1, max_size=2))
    root_children = [(f"r{i}", r) for i, r in enumerate(root_workers, start=1)]
    root_children.insert(draw(st.integers(0, len(root_workers))), (SUB, draw(restart_types)))
    sub_workers = draw(st.lists(restart_types, min_size=2, max_size=3))
    root_max_restarts, root_max_seconds = draw(root_intensities)
    sub_max_restarts, sub_max_seconds = draw(sub_intensities)
    return TreePlan(
        root=SupervisorPlan(Strategy.ONE_FOR_ONE, root_max_restarts, root_max_seconds),
        root_children=tuple(root_children),
        sub=SupervisorPlan(
            draw(st.sampled_from(list(Strategy))), sub_max_restarts, sub_max_seconds
        ),
        sub_workers=tuple((f"w{i}", r) for i, r in enumerate(sub_workers, start=1)),
    )


crash_sequences = st.lists(
    st.builds(
        Crash,
        gap=st.sampled_from([0, 1, 1, 2, 3, 4]),
        in_sub=st.integers(0, 3).map(bool),  # three times in four, a worker of the sub
        target=st.integers(0, 5),
        failing=st.one_of(st.none(), st.none(), st.integers(0, 2)),
    ),
    min_size=1,
    max_size=8,
)


# -- the reference model -----------------------------------------------------------------


@dataclass
class ChildModel:
    id: str
    restart: Restart
    restarts: int = 0
    running: bool = True


@dataclass
class SupervisorModel:
    id: str
    plan: SupervisorPlan
    specs: tuple[tuple[str, Restart], ...]
    children: list[ChildModel] = field(init=False)
    restart_times: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.children = [ChildModel(c, r) for c, r in self.specs]

    def child(self, child_id: str) -> ChildModel:
        return next(c for c in self.children if c.id == child_id)

    def recent_at(self, now: float) -> int:
        """The restarts that still count at `now` (at most max_seconds old)."""
        return sum(1 for t in self.restart_times if now - t <= self.plan.max_seconds)

    def restart_allowed_at(self, now: float) -> bool:
        """Count one restart at `now`. A restart still counts while it is at
        most max_seconds old; more than max_restarts of them is too many."""
        self.restart_times = [t for t in self.restart_times if now - t <= self.plan.max_seconds]
        self.restart_times.append(now)
        return len(self.restart_times) <= self.plan.max_restarts

    def affected_by(self, child_id: str) -> list[ChildModel]:
        """The children a restart of `child_id` takes down with it, in start order."""
        ids = [c.id for c in self.children]
        if self.plan.strategy is Strategy.ONE_FOR_ONE:
            return [self.child(child_id)]
        if self.plan.strategy is Strategy.ONE_FOR_ALL:
            return list(self.children)
        return self.children[ids.index(child_id) :]


class TreeModel:
    """What the tree should look like, and say, after each crash."""

    def __init__(self, plan: TreePlan) -> None:
        self.plan = plan
        self.root = SupervisorModel(ROOT, plan.root, plan.root_children)
        self.sub: SupervisorModel | None = SupervisorModel(SUB, plan.sub, plan.sub_workers)
        self.root_alive = True
        self.failing: str | None = None
        """The worker whose next start fails, chosen during a crash."""
        self._to_fail: str | None = None
        self._failing_pick: int | None = None
        self.outcomes: list[str] = []
        """What happened, for hypothesis's statistics."""

    def supervisor(self, supervisor_id: str) -> SupervisorModel:
        if supervisor_id == ROOT:
            return self.root
        assert self.sub is not None
        return self.sub

    def targets(self, in_sub: bool) -> list[tuple[str, str]]:
        """The running children that can be crashed, as (supervisor, child): the
        sub-supervisor's workers if asked for and there are any, else the root's
        children."""
        if in_sub and self.sub is not None and self.sub.children:
            return [(SUB, c.id) for c in self.sub.children]
        return [(ROOT, c.id) for c in self.root.children if c.running]

    # -- events ----------------------------------------------------------------------

    def start_events(self) -> list[EventKey]:
        return [e for c in self.root.children for e in self._started(ROOT, c.id, EventKind.STARTED)]

    def stop_events(self) -> list[EventKey]:
        """Stopping the root stops its children in reverse order, each subtree bottom-up."""
        return [
            e for c in reversed(self.root.children) if c.running for e in self._stopped(ROOT, c.id)
        ]

    def crash(
        self, supervisor_id: str, child_id: str, now: float, failing: int | None = None
    ) -> tuple[list[EventKey], str | None]:
        """Crash one child at `now`; return the events it causes, in order, and
        the worker of the sub-supervisor whose next start is to fail (`failing`
        picks it among those the crash restarts, if any), or None."""
        self.failing = self._to_fail = None
        self._failing_pick = failing
        if child_id == SUB:
            # A crashing supervisor stops its own children before it exits.
            assert self.sub is not None
            stopped = [(SUB, c.id, EventKind.EXITED) for c in reversed(self.sub.children)]
            return stopped + self._exited(self.root, SUB, now), None
        events = self._exited(self.supervisor(supervisor_id), child_id, now)
        return events, self.failing

    def _exited(
        self, sup: SupervisorModel, child_id: str, now: float, *, gave_up: bool = False
    ) -> list[EventKey]:
        """A child crashed, or (`gave_up`) the sub-supervisor gave up: it exits
        shutdown, a normal exit, after which a transient child is not restarted."""
        events: list[EventKey] = [(sup.id, child_id, EventKind.EXITED)]
        crashed = sup.child(child_id)
        crashed.running = False
        if crashed.restart is Restart.TEMPORARY:
            sup.children.remove(crashed)
            if child_id == SUB:
                self.sub = None
            self.outcomes.append(f"a temporary child of {sup.id} was removed")
            return events
        if gave_up and crashed.restart is Restart.TRANSIENT:
            self.sub = None  # its spec is kept, not running: no workers
            self.outcomes.append("a transient supervisor that gave up was not restarted")
            return events
        return events + self._restart(sup, crashed, now)

    def _restart(self, sup: SupervisorModel, child: ChildModel, now: float) -> list[EventKey]:
        """OTP's restart/2: count the restart (or give up), stop the siblings the
        strategy takes down, start them in order; a start that fails is tried
        again as a restart of that child, by the same strategy."""
        events: list[EventKey] = []
        allowed = sup.restart_allowed_at(now)
        if any(now - t == sup.plan.max_seconds for t in sup.restart_times):
            self.outcomes.append("a restart exactly max_seconds old still counted")
        if not allowed:
            events.append((sup.id, None, EventKind.GAVE_UP))
            for sibling in reversed(sup.children):
                if sibling.running:
                    events += self._stopped(sup.id, sibling.id)
            self.outcomes.append(f"{sup.id} gave up after {sup.plan.max_restarts} restarts")
            if sup is self.root:
                self.root_alive = False
                return events
            return events + self._exited(self.root, SUB, now, gave_up=True)
        affected = sup.affected_by(child.id)
        for sibling in reversed(affected):
            if sibling.id != child.id and sibling.running:
                events += self._stopped(sup.id, sibling.id)
            sibling.running = False
        for sibling in affected:
            if sibling.restart is Restart.TEMPORARY:
                sup.children.remove(sibling)
        starting = [c for c in affected if c.restart is not Restart.TEMPORARY]
        if sup is self.sub and self._failing_pick is not None and starting:
            self.failing = self._to_fail = starting[self._failing_pick % len(starting)].id
            self._failing_pick = None
        for one in starting:
            if one.id == self._to_fail:
                self._to_fail = None  # it fails this once
                events.append((sup.id, one.id, EventKind.EXITED))  # its start failed
                self.outcomes.append(f"a start failed under {sup.plan.strategy.value}")
                return events + self._restart(sup, one, now)
            events += self._started(sup.id, one.id, EventKind.RESTARTED)
            one.running = True
            one.restarts += 1
        self.outcomes.append(f"{sup.id} ({sup.plan.strategy.value}) restarted {len(affected)}")
        return events

    def _started(self, sup_id: str, child_id: str, kind: EventKind) -> list[EventKey]:
        """A child starts; a supervisor child starts its own children first, afresh."""
        events: list[EventKey] = []
        if child_id == SUB:
            self.sub = SupervisorModel(SUB, self.plan.sub, self.plan.sub_workers)
            events += [(SUB, c.id, EventKind.STARTED) for c in self.sub.children]
            if kind is EventKind.RESTARTED:
                self.outcomes.append("root restarted the sub-supervisor afresh")
        return [*events, (sup_id, child_id, kind)]

    def _stopped(self, sup_id: str, child_id: str) -> list[EventKey]:
        """A child is stopped; a supervisor child stops its own children first."""
        events: list[EventKey] = []
        if child_id == SUB:
            assert self.sub is not None
            events += [
                (SUB, c.id, EventKind.EXITED) for c in reversed(self.sub.children) if c.running
            ]
        return [*events, (sup_id, child_id, EventKind.EXITED)]

    # -- the tree ------------------------------------------------------------------

    def recent_restarts(self, now: float) -> dict[str, int]:
        """Each supervisor's restarts that still count at `now`."""
        counts = {ROOT: self.root.recent_at(now)}
        if self.sub is not None:
            counts[SUB] = self.sub.recent_at(now)
        return counts

    def tree(self) -> TreeNode:
        """The tree `describe_tree` should show: every child still known is alive
        but a transient sub-supervisor that gave up."""

        def node(child: ChildModel) -> TreeNode:
            if child.id != SUB:
                return TreeNode(child.id, ChildKind.WORKER, True, child.restarts, child.restart)
            if not child.running:  # a transient supervisor that gave up: kept, not running
                return TreeNode(
                    SUB, ChildKind.SUPERVISOR, False, child.restarts, child.restart, children=()
                )
            assert self.sub is not None
            return TreeNode(
                SUB,
                ChildKind.SUPERVISOR,
                True,
                child.restarts,
                child.restart,
                strategy=self.plan.sub.strategy,
                children=tuple(node(c) for c in self.sub.children),
            )

        return TreeNode(
            ROOT,
            ChildKind.SUPERVISOR,
            True,
            0,
            strategy=self.plan.root.strategy,
            children=tuple(node(c) for c in self.root.children),
        )


# -- the properties -------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(plan=tree_plans(), crashes=crash_sequences)
def test_random_crash_sequences_leave_the_tree_as_strategy_and_intensity_dictate(
    plan: TreePlan, crashes: Sequence[Crash]
) -> None:
    """After every crash the tree emits exactly the events the model predicts, and
    shows exactly the children it predicts, all alive, with its restart counts
    (a restart that failed once having been tried again by the strategy);
    a supervisor that exceeds its intensity gives up and exits shutdown (OTP's
    ``{shutdown, reached_max_restart_intensity}``): the sub-supervisor is then
    restarted by the root (one root restart) unless it is transient, and a root
    that gives up says so through its on_exit callback, leaving no actor running."""
    clock, events, root_exit, fail_next = FakeClock(), SteppedEvents(), RootExit(), FailNext()
    model = TreeModel(plan)
    root = start_link(plan.spec(clock, events.stream, fail_next), on_exit=root_exit)
    try:
        assert events.of_step(0) == model.start_events()
        assert rows(describe_tree(root)) == rows(model.tree())

        for step, crash in enumerate(crashes, start=1):
            targets = model.targets(crash.in_sub)
            if not targets:  # every child was temporary, and has crashed
                break
            supervisor_id, child_id = targets[crash.target % len(targets)]
            clock.advance(crash.gap)
            events.step = step
            expected, failing = model.crash(supervisor_id, child_id, clock.now, crash.failing)
            parent = root if supervisor_id == ROOT else child_ref(root, SUB)
            if failing is not None:
                fail_next.add(failing)
            inject_crash(child_ref(parent, child_id))

            seen = events.settle(step, expected[-1])
            if not model.root_alive:
                assert seen == expected
                exit = root_exit.wait()
                assert exit.gave_up
                assert isinstance(exit.info, RestartIntensityExceededError)
                assert pykka.ActorRegistry.get_all() == []
                break
            tree = describe_tree(root)  # also lets both supervisors finish the step
            assert seen == expected
            assert events.of_step(step) == expected
            assert rows(tree) == rows(model.tree())
            assert recent_restarts(root, model) == model.recent_restarts(clock.now)

        if model.root_alive:  # stopping the tree stops it all, in order, normally
            events.step = len(crashes) + 1
            root.stop(block=True, timeout=SETTLE_TIMEOUT_S)
            assert root_exit.wait().reason is ExitReason.NORMAL
            assert events.of_step(events.step) == model.stop_events()
            assert pykka.ActorRegistry.get_all() == []
    finally:
        stop_tree(root)
    for outcome in model.outcomes:
        event(outcome)


ONE_FOR_ONE_TREE = TreePlan(
    root=SupervisorPlan(Strategy.ONE_FOR_ONE, max_restarts=100, max_seconds=5),
    root_children=(("r1", Restart.PERMANENT), (SUB, Restart.PERMANENT), ("r2", Restart.PERMANENT)),
    sub=SupervisorPlan(Strategy.ONE_FOR_ONE, max_restarts=100, max_seconds=5),
    sub_workers=(("w1", Restart.PERMANENT), ("w2", Restart.PERMANENT), ("w3", Restart.PERMANENT)),
)
PARENT_OF = {"r1": ROOT, SUB: ROOT, "r2": ROOT, "w1": SUB, "w2": SUB, "w3": SUB}


@settings(max_examples=30, deadline=None)
@given(targets=st.lists(st.sampled_from(sorted(PARENT_OF)), min_size=1, max_size=8))
def test_one_for_one_restarts_each_permanent_child_once_per_injected_crash(
    targets: Sequence[str],
) -> None:
    """Without the reference model: under one_for_one, with the intensity never
    reached, each permanent child's restart count is the number of crashes
    injected into it (since its supervisor last started), and all stay alive."""
    events, root_exit = SteppedEvents(), RootExit()
    root = start_link(ONE_FOR_ONE_TREE.spec(FakeClock(), events.stream), on_exit=root_exit)
    injected: Counter[str] = Counter()
    try:
        for step, target in enumerate(targets, start=1):
            events.step = step
            parent = root if PARENT_OF[target] == ROOT else child_ref(root, SUB)
            inject_crash(child_ref(parent, target))
            events.settle(step, (PARENT_OF[target], target, EventKind.RESTARTED))
            injected[target] += 1
            if target == SUB:  # a fresh sub-supervisor starts fresh children
                for worker in ("w1", "w2", "w3"):
                    del injected[worker]

            tree = describe_tree(root)
            counts = {path.rsplit("/", 1)[1]: restarts for path, *_, restarts in rows(tree)}
            assert counts == {node_id: injected[node_id] for node_id in [ROOT, *PARENT_OF]}
            assert all(alive for *_, alive, _ in rows(tree))
        assert not root_exit.exits
    finally:
        stop_tree(root)
