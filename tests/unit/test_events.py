"""The event stream: subscribers hear every event in order, a failing one is
logged and kept, and the last events are remembered."""

from __future__ import annotations

import pytest

from supervision import EventKind, EventStream, SupervisionEvent


def test_subscribers_hear_each_event_in_order_until_they_unsubscribe() -> None:
    stream = EventStream(clock=lambda: 12.5)
    heard: list[SupervisionEvent] = []
    unsubscribe = stream.subscribe(heard.append)
    started = stream.publish("root", "a", EventKind.STARTED)
    exited = stream.publish("root", "a", EventKind.EXITED, "crashed: ValueError: bad")
    unsubscribe()
    unsubscribe()  # a second time changes nothing
    stream.publish("root", None, EventKind.GAVE_UP, "too many restarts")
    assert heard == [started, exited]
    assert exited == SupervisionEvent(
        12.5, "root", "a", EventKind.EXITED, "crashed: ValueError: bad"
    )


def test_an_event_reads_as_json() -> None:
    stream = EventStream(clock=lambda: 12.5)
    event = stream.publish("root", None, EventKind.GAVE_UP, "too many restarts")
    assert event.to_dict() == {
        "time": 12.5,
        "supervisor": "root",
        "child": None,
        "kind": "gave_up",
        "reason": "too many restarts",
    }


def test_a_subscriber_that_raises_is_logged_and_kept(caplog: pytest.LogCaptureFixture) -> None:
    stream = EventStream()
    heard: list[str | None] = []

    def failing(event: SupervisionEvent) -> None:
        heard.append(event.child)
        raise RuntimeError("subscriber bug")

    stream.subscribe(failing)
    stream.subscribe(lambda event: heard.append(f"next heard {event.child}"))
    stream.publish("root", "a", EventKind.STARTED)
    stream.publish("root", "b", EventKind.STARTED)
    assert heard == ["a", "next heard a", "b", "next heard b"]
    assert caplog.text.count("Supervision event subscriber") == 2
    assert "RuntimeError: subscriber bug" in caplog.text


def test_the_stream_remembers_the_last_events_oldest_first() -> None:
    stream = EventStream(keep=3)
    for child in "abcde":
        stream.publish("root", child, EventKind.STARTED)
    assert [event.child for event in stream.recent()] == ["c", "d", "e"]
