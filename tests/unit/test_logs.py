"""Log lines: JSON in prod, one line per lifecycle event, session churn kept quiet."""

from __future__ import annotations

import json
import logging
from typing import Any

import pykka
import pytest

from chatter.logs import JsonFormatter, log_supervision_event, quiet_injected_crashes
from supervision import (
    ChildSpec,
    EventKind,
    EventStream,
    SupervisionEvent,
    Supervisor,
    ThreadActor,
    inject_crash,
    start_link,
    which_children,
)
from tests.harness.waiting import EventLog


def test_json_lines_carry_time_level_logger_and_message() -> None:
    record = logging.LogRecord(
        "chatter.server", logging.INFO, __file__, 1, "up on %s", ("x",), None
    )
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "info"
    assert line["logger"] == "chatter.server"
    assert line["message"] == "up on x"
    assert line["time"].endswith("+00:00")


@pytest.mark.parametrize(
    ("event", "logged"),
    [
        (SupervisionEvent(0, "root", "room", EventKind.RESTARTED), "root/room restarted"),
        (
            SupervisionEvent(0, "root", "room", EventKind.EXITED, "crashed: ValueError: x"),
            "root/room exited (crashed: ValueError: x)",
        ),
        (
            SupervisionEvent(0, "root", None, EventKind.GAVE_UP, "too many"),
            "root gave up (too many)",
        ),
        (SupervisionEvent(0, "sessions.0", "session-1", EventKind.STARTED), None),
        (SupervisionEvent(0, "sessions.1", "session-1", EventKind.EXITED, "normal"), None),
        (
            SupervisionEvent(0, "sessions.3", "session-2", EventKind.EXITED, "crashed: E: boom"),
            "sessions.3/session-2 exited (crashed: E: boom)",
        ),
        (
            SupervisionEvent(0, "sessions", "sessions.1", EventKind.RESTARTED),
            "sessions/sessions.1 restarted",
        ),
        (
            SupervisionEvent(
                0,
                "root",
                "room",
                EventKind.EXITED,
                "crashed: InjectedCrash: asked by the supervision page from 127.0.0.1",
            ),
            "root/room killed on purpose, asked by the supervision page from 127.0.0.1",
        ),
        (
            SupervisionEvent(
                0, "sessions.2", "session-4", EventKind.EXITED, "crashed: InjectedCrash: asked by x"
            ),
            "sessions.2/session-4 killed on purpose, asked by x",
        ),
    ],
)
def test_supervision_events_become_one_line_each(
    event: SupervisionEvent, logged: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="chatter.supervision"):
        log_supervision_event(event)
    assert [r.getMessage() for r in caplog.records] == ([logged] if logged else [])


class _Buggy(ThreadActor):
    """Crashes on any message told to it: a real bug."""

    def on_receive(self, message: Any) -> Any:
        raise ValueError(f"a real bug handling {message!r}")


def test_a_kill_asked_for_is_one_warning_line_and_a_real_crash_keeps_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With `quiet_injected_crashes`, as the chat tree runs: an injected crash
    logs no traceback, only the WARNING line naming who asked; a crash of the
    actor's own still has pykka's ERROR with its traceback."""
    quiet_injected_crashes()
    quiet_injected_crashes()  # once is enough, twice does no harm
    events = EventStream()
    events.subscribe(log_supervision_event)
    log = EventLog(events)
    root = start_link(Supervisor.child_spec("root", [ChildSpec("a", _Buggy.start)], events=events))

    def child() -> pykka.ActorRef[Any]:
        (ref,) = [info.ref for info in which_children(root).get(timeout=5) if info.id == "a"]
        assert ref is not None
        return ref

    try:
        with caplog.at_level(logging.INFO):
            inject_crash(child(), "asked by chatter chaos")
            log.wait(EventKind.RESTARTED, "a")
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert warnings == ["root/a killed on purpose, asked by chatter chaos"]
        assert [r for r in caplog.records if r.exc_info] == []

        caplog.clear()
        with caplog.at_level(logging.INFO):
            child().tell("hello")
            log.wait_for(lambda e: e.kind is EventKind.EXITED and "a real bug" in (e.reason or ""))
            log.wait_until(lambda: log.count(EventKind.RESTARTED, child="a") == 2, "restart 2")
        (error,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert "Unhandled exception" in error.getMessage()
        assert error.exc_info is not None
        assert isinstance(error.exc_info[1], ValueError)
    finally:
        root.stop()
