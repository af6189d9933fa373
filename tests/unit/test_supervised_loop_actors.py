"""A supervisor supervises loop actors exactly as it does thread actors."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pykka

from supervision import (
    ChildSpec,
    EventKind,
    EventStream,
    LoopActor,
    Registry,
    Shutdown,
    Supervisor,
    inject_crash,
    start_link,
    which_children,
)
from tests.conftest import EventLog


class Echo(LoopActor):
    """Answers with what it was sent, and the thread it ran on."""

    def __init__(self, stopped: list[str], *, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop=loop)
        self.stopped = stopped

    def on_stop(self) -> None:
        self.stopped.append("echo")

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, threading.Event):
            message.wait(10)  # blocks the loop: what a loop actor must never do
            return None
        return (message, threading.get_ident())


def _tree(
    loop: asyncio.AbstractEventLoop,
    events: EventStream,
    registry: Registry,
    stopped: list[str],
    shutdown: float | Shutdown = 5.0,
) -> pykka.ActorRef[Any]:
    echo = ChildSpec("echo", lambda: Echo.start(stopped, loop=loop), name="echo", shutdown=shutdown)
    spec = Supervisor.child_spec("root", [echo], registry=registry, events=events)
    return start_link(spec)


def test_crashed_loop_actor_is_restarted_and_reached_by_name(
    loop: asyncio.AbstractEventLoop, events: EventStream, event_log: EventLog, registry: Registry
) -> None:
    root = _tree(loop, events, registry, [])
    loop_thread = registry.ask("echo", "hi").get(timeout=5)[1]
    first = registry.whereis("echo")
    assert first is not None
    inject_crash(first)
    reply, thread = registry.ask("echo", "again").get(timeout=5)
    assert (reply, thread) == ("again", loop_thread)
    event_log.wait(EventKind.RESTARTED, "echo")
    assert [i.restarts for i in which_children(root).get(timeout=5)] == [1]
    assert registry.whereis("echo") is not first


def test_stopping_the_tree_runs_the_loop_actors_on_stop(
    loop: asyncio.AbstractEventLoop, events: EventStream, registry: Registry
) -> None:
    stopped: list[str] = []
    root = _tree(loop, events, registry, stopped)
    root.stop(timeout=5)
    assert stopped == ["echo"]


def test_a_loop_actor_that_blocks_its_loop_is_killed_after_its_shutdown(
    loop: asyncio.AbstractEventLoop, events: EventStream, event_log: EventLog, registry: Registry
) -> None:
    stopped: list[str] = []
    root = _tree(loop, events, registry, stopped, shutdown=0.2)
    ref = registry.whereis("echo")
    assert ref is not None
    blocker = threading.Event()
    ref.tell(blocker)
    root.stop(timeout=5)
    assert event_log.wait(EventKind.EXITED, "echo").reason == "killed"
    assert not ref.is_alive()
    blocker.set()
    assert stopped == []
