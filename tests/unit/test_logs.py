"""Log lines: JSON in prod, one line per lifecycle event, session churn kept quiet."""

from __future__ import annotations

import json
import logging

import pytest

from chatter.logs import JsonFormatter, log_supervision_event
from supervision import EventKind, SupervisionEvent


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
    ],
)
def test_supervision_events_become_one_line_each(
    event: SupervisionEvent, logged: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="chatter.supervision"):
        log_supervision_event(event)
    assert [r.getMessage() for r in caplog.records] == ([logged] if logged else [])
