"""OTP-style supervision trees on pykka.

Actors crash. A supervision tree decides, ahead of time and in one place, what
happens when they do: a `Supervisor` starts its children from `ChildSpec`s,
hears of each exit as a message, and restarts by a `Strategy` within a restart
intensity, handing the problem up the tree when restarting does not help.

Actors run on threads (`ThreadActor`) or on an asyncio event loop
(`LoopActor`); a `Registry` gives them names that survive restarts, and
`describe_tree` and `EventStream` let you watch the tree work. This package
knows nothing of chat, and imports neither Tornado nor a database driver.

Everything public is imported from here. The modules, in reading order:

- what is decided, as pure code: `child_spec`, `strategy`, `intensity`, `exits`;
- actors, and how their death becomes a message: `supervised`, `thread_actor`,
  `loop_actor`, `future`;
- supervisors: `client` (the functions that manage one), `supervisor` (the
  actor), `dynamic_supervisor`, `adoption` (a temporary child its caller
  starts and hands over, with no wait), `partition_supervisor` (one supervisor's work
  spread over several, by key), `application` (the top of a tree);
- names and watching: `registry`, `events`, `introspection`; and `errors`.

The modules whose names start with ``_`` are plumbing: `_link` (how a starter
hears of its child's start and exit), `_shutdown` (how a child is stopped) and
`_pykka` (the one place that touches pykka's internals).
"""

from supervision.adoption import adopt_child
from supervision.application import EXIT_GAVE_UP, run, start_link
from supervision.child_spec import ChildKind, ChildSpec, Restart, Shutdown
from supervision.client import (
    ChildCounts,
    ChildInfo,
    RestartCount,
    count_children,
    count_restarts,
    delete_child,
    restart_child,
    start_child,
    terminate_child,
    which_children,
)
from supervision.dynamic_supervisor import DynamicSupervisor
from supervision.errors import (
    AlreadyPresentError,
    AlreadyStartedError,
    BlockingCallOnLoopError,
    ChildNotFoundError,
    ChildRestartingError,
    ChildRunningError,
    DuplicateChildError,
    Ignore,
    InjectedCrash,
    InvalidChildSpecError,
    MaxChildrenError,
    NameNotRegisteredError,
    NameTakenError,
    NameUnavailableError,
    NoEventLoopError,
    RestartIntensityExceededError,
    StartChildError,
    SupervisionError,
)
from supervision.events import EventKind, EventStream, SupervisionEvent
from supervision.exits import Exit, ExitReason
from supervision.future import Future
from supervision.intensity import RestartIntensity
from supervision.introspection import (
    TreeNode,
    describe_child,
    describe_children,
    describe_tree,
    find_actor,
    mailbox_depth,
    render_tree,
)
from supervision.loop_actor import LoopActor, run_on_loop
from supervision.partition_supervisor import (
    Partitions,
    PartitionSupervisor,
    default_partitions,
    partition_index,
)
from supervision.registry import Registry
from supervision.strategy import RestartPlan, Strategy, plan_restart, should_restart
from supervision.supervised import SupervisedActor, inject_crash
from supervision.supervisor import Supervisor
from supervision.thread_actor import ThreadActor

__all__ = [
    "EXIT_GAVE_UP",
    "AlreadyPresentError",
    "AlreadyStartedError",
    "BlockingCallOnLoopError",
    "ChildCounts",
    "ChildInfo",
    "ChildKind",
    "ChildNotFoundError",
    "ChildRestartingError",
    "ChildRunningError",
    "ChildSpec",
    "DuplicateChildError",
    "DynamicSupervisor",
    "EventKind",
    "EventStream",
    "Exit",
    "ExitReason",
    "Future",
    "Ignore",
    "InjectedCrash",
    "InvalidChildSpecError",
    "LoopActor",
    "MaxChildrenError",
    "NameNotRegisteredError",
    "NameTakenError",
    "NameUnavailableError",
    "NoEventLoopError",
    "PartitionSupervisor",
    "Partitions",
    "Registry",
    "Restart",
    "RestartCount",
    "RestartIntensity",
    "RestartIntensityExceededError",
    "RestartPlan",
    "Shutdown",
    "StartChildError",
    "Strategy",
    "SupervisedActor",
    "SupervisionError",
    "SupervisionEvent",
    "Supervisor",
    "ThreadActor",
    "TreeNode",
    "adopt_child",
    "count_children",
    "count_restarts",
    "default_partitions",
    "delete_child",
    "describe_child",
    "describe_children",
    "describe_tree",
    "find_actor",
    "inject_crash",
    "mailbox_depth",
    "partition_index",
    "plan_restart",
    "render_tree",
    "restart_child",
    "run",
    "run_on_loop",
    "should_restart",
    "start_child",
    "start_link",
    "terminate_child",
    "which_children",
]
