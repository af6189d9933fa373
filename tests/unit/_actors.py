"""Small actors for supervision tests: each records its life in a journal."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pykka

from supervision import ChildSpec, Restart, Shutdown, ThreadActor
from tests.unit._runtimes import Gate


class Journal:
    """A thread-safe record of (actor name, what happened), in order."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str]] = []
        self._condition = threading.Condition()

    def add(self, name: str, what: str) -> None:
        with self._condition:
            self.entries.append((name, what))
            self._condition.notify_all()

    def of(self, what: str) -> list[str]:
        with self._condition:
            return [name for name, happened in self.entries if happened == what]

    def wait_for(self, name: str, what: str, count: int = 1, timeout_s: float = 5.0) -> None:
        with self._condition:
            ok = self._condition.wait_for(
                lambda: self.entries.count((name, what)) >= count, timeout_s
            )
        assert ok, f"{name} did not {what} {count} time(s); journal: {self.entries}"


class Worker(ThreadActor):
    """Answers 'ping' with its name, stops itself on 'exit', is held by a `Gate`
    sent to it; `hold_start` and `hold_stop` hold its on_start or on_stop."""

    def __init__(
        self,
        name: str,
        journal: Journal,
        fail_start: bool = False,
        *,
        hold_start: Gate | None = None,
        hold_stop: Gate | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.journal = journal
        self.fail_start = fail_start
        self.hold_start = hold_start
        self.hold_stop = hold_stop

    def on_start(self) -> None:
        if self.hold_start is not None:
            self.hold_start.hold()
        if self.fail_start:
            self.journal.add(self.name, "failed start")
            raise RuntimeError(f"{self.name} cannot start")
        self.journal.add(self.name, "start")

    def on_stop(self) -> None:
        if self.hold_stop is not None:
            self.hold_stop.hold()
        self.journal.add(self.name, "stop")

    def on_failure(self, *_: Any) -> None:
        self.journal.add(self.name, "crash")

    def on_receive(self, message: Any) -> Any:
        if message == "ping":
            return self.name
        if message == "exit":
            self.stop()
        elif isinstance(message, Gate):
            message.hold()
        return None


def worker(
    name: str,
    journal: Journal,
    restart: Restart = Restart.PERMANENT,
    shutdown: float | Shutdown = 5.0,
    registered: bool = False,
    fail_start: Callable[[], bool] = lambda: False,
    **holds: Gate,
) -> ChildSpec:
    """A child spec for a `Worker`; `fail_start` is asked at every start;
    `holds` are its `hold_start` and `hold_stop`."""
    return ChildSpec(
        id=name,
        start=lambda: Worker.start(name, journal, fail_start(), **holds),
        restart=restart,
        shutdown=shutdown,
        name=name if registered else None,
    )


def wait_until_dead(ref: pykka.ActorRef[Any], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    stopped = ref.actor_stopped
    assert stopped.wait(max(0.0, deadline - time.monotonic())), f"{ref} still alive"
