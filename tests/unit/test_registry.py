"""The registry: names reach the current incarnation; sends to a restarting name
are held in order, for a bounded time."""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest

from supervision import (
    Future,
    NameNotRegisteredError,
    NameTakenError,
    NameUnavailableError,
    Registry,
)
from supervision._pykka import deliver, envelope
from tests.unit._actors import Journal, Worker


class Recorder(Worker):
    """Records every message it is told, in order."""

    def __init__(self, name: str, journal: Journal) -> None:
        super().__init__(name, journal)
        self.seen: list[Any] = []
        self.done = threading.Event()

    def on_receive(self, message: Any) -> Any:
        if message == "seen":
            return list(self.seen)
        self.seen.append(message)
        return super().on_receive(message)


def test_unknown_name_raises_at_once() -> None:
    registry = Registry()
    with pytest.raises(NameNotRegisteredError, match="no actor is registered as 'room'"):
        registry.tell("room", "hello")
    with pytest.raises(NameNotRegisteredError):
        registry.ask("room", "ping")


def test_registered_name_reaches_the_actor() -> None:
    registry = Registry()
    ref = Recorder.start("room", Journal())
    registry.register("room", ref)
    assert registry.whereis("room") is ref
    assert registry.ask("room", "ping").get(timeout=5) == "room"
    assert registry.names() == ["room"]


def test_sends_to_a_suspended_name_are_held_and_delivered_in_order() -> None:
    registry = Registry()
    registry.suspend("room")
    for n in range(100):
        registry.tell("room", n)
    reply = registry.ask("room", "ping")
    assert not reply.done()

    ref = Recorder.start("room", Journal())
    registry.register("room", ref)
    assert reply.get(timeout=5) == "room"
    assert ref.ask("seen") == [*list(range(100)), "ping"]


def test_leftovers_of_a_dead_incarnation_go_before_later_sends() -> None:
    registry = Registry()
    registry.suspend("room")
    registry.tell("room", "later")
    registry.suspend("room", [envelope("earlier-1"), envelope("earlier-2")])
    ref = Recorder.start("room", Journal())
    registry.register("room", ref)
    assert ref.ask("seen") == ["earlier-1", "earlier-2", "later"]


def test_a_dead_but_not_yet_suspended_actor_has_its_messages_held() -> None:
    registry = Registry()
    first = Recorder.start("room", Journal())
    registry.register("room", first)
    first.stop()
    registry.tell("room", "while nobody is there")  # the supervisor has not suspended yet
    second = Recorder.start("room", Journal())
    registry.register("room", second)
    assert second.ask("seen") == ["while nobody is there"]


def test_held_sends_fail_when_no_incarnation_comes_back_in_time() -> None:
    registry = Registry(restart_wait_s=0.05)
    registry.suspend("room")
    reply = registry.ask("room", "ping")
    with pytest.raises(NameUnavailableError, match=r"did not come back in 0\.05 s"):
        reply.get(timeout=5)
    with pytest.raises(NameUnavailableError, match="has not come back"):
        registry.tell("room", "too late")
    registry.register("room", Recorder.start("room", Journal()))
    assert registry.ask("room", "ping").get(timeout=5) == "room"


def test_held_sends_are_bounded() -> None:
    registry = Registry(max_held=3)
    registry.suspend("room")
    for n in range(3):
        registry.tell("room", n)
    with pytest.raises(NameUnavailableError, match="with 3 held"):
        registry.tell("room", 3)


def test_a_timer_that_fires_after_the_name_came_back_changes_nothing() -> None:
    registry = Registry(restart_wait_s=60)
    registry.suspend("room")
    ref = Recorder.start("room", Journal())
    registry.register("room", ref)
    registry._expire("room", generation=1)  # as if its timer fired just as it came back
    assert registry.ask("room", "ping").get(timeout=5) == "room"
    registry.unregister("room")
    registry._expire("room", generation=1)  # or just as it was unregistered
    assert registry.names() == []


def test_unregistering_fails_held_asks() -> None:
    registry = Registry()
    registry.suspend("room")
    reply = registry.ask("room", "ping")
    registry.unregister("room")
    with pytest.raises(NameNotRegisteredError, match="was unregistered"):
        reply.get(timeout=5)
    with pytest.raises(NameNotRegisteredError):
        registry.tell("room", "gone")
    registry.unregister("room")  # a name not registered: nothing to do


def test_a_name_held_by_a_live_actor_cannot_be_taken() -> None:
    registry = Registry()
    registry.register("room", Recorder.start("room", Journal()))
    with pytest.raises(NameTakenError, match="'room' is already registered"):
        registry.register("room", Recorder.start("other", Journal()))


def test_concurrent_senders_during_a_restart_lose_nothing() -> None:
    registry = Registry()
    first = Recorder.start("room", Journal())
    registry.register("room", first)
    per_sender, senders = 500, 4
    go = threading.Event()

    def send(sender: int) -> None:
        go.wait()
        for n in range(per_sender):
            registry.tell("room", (sender, n))

    threads = [threading.Thread(target=send, args=(s,)) for s in range(senders)]
    for thread in threads:
        thread.start()
    go.set()
    registry.suspend("room")  # as a supervisor would, mid-stream
    second = Recorder.start("room", Journal())
    registry.register("room", second)
    for thread in threads:
        thread.join(10)

    seen: list[tuple[int, int]] = [*first.ask("seen"), *second.ask("seen")]
    assert sorted(seen) == sorted((s, n) for s in range(senders) for n in range(per_sender))
    for sender in range(senders):  # and each sender's messages stay in order
        mine = [n for s, n in seen if s == sender]
        assert mine == sorted(mine)
    assert all(isinstance(r, pykka.ActorRef) for r in (first, second))


def test_a_message_put_into_a_dead_actors_inbox_fails_at_once() -> None:
    ref = Recorder.start("room", Journal())
    ref.stop()
    reply: Future[Any] = Future()
    deliver(ref, envelope("ping", reply_to=reply))  # as a racing sender would
    with pytest.raises(pykka.ActorDeadError):
        reply.get(timeout=1)


def test_group_members_are_listed_in_join_order_until_they_leave() -> None:
    registry = Registry()
    refs = [Recorder.start(f"s{n}", Journal()) for n in range(3)]
    for ref in refs:
        registry.join("sessions", ref)
    registry.join("sessions", refs[0])  # joining twice changes nothing
    assert registry.members("sessions") == tuple(refs)
    registry.leave("sessions", refs[1])
    registry.leave("sessions", refs[1])  # leaving twice changes nothing
    registry.leave("nobody", refs[1])
    assert registry.members("sessions") == (refs[0], refs[2])
    assert registry.members("sessions") is registry.members("sessions")  # kept until it changes
    assert registry.members("nobody") == ()
