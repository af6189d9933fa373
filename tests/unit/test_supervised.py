"""A supervised actor reports how it ended: pykka's failure rules, each turned
into an exit (the table in `supervision.supervised`), on both runtimes.

Each test starts its actor inside a `Link`, as a supervisor would, to see the
exit it reports and what it left in its inbox.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pykka
import pytest

from supervision import ExitReason, Future, InjectedCrash, inject_crash
from supervision._link import Link, linked
from supervision._pykka import message_of
from supervision.exits import KILLED
from tests.unit._runtimes import (
    TIMEOUT_S,
    Block,
    Double,
    Gate,
    Journal,
    Note,
    Raise,
    Recorder,
    Runtime,
    StopYourself,
    ask,
    journal_fixture,  # noqa: F401  (a fixture)
    loop_runtime,
    registered_urns,
    runtime_fixture,  # noqa: F401  (a fixture)
    thread_runtime,
    wait_exited,
)


def held(ref: pykka.ActorRef[Any]) -> Gate:
    """`ref` kept busy on a gate, so that what is sent to it next queues; the
    gate, to release it."""
    gate = Gate()
    ref.tell(Block(gate))
    assert gate.entered.wait(TIMEOUT_S)
    return gate


def held_in_a_link(runtime: Runtime, journal: Journal) -> tuple[pykka.ActorRef[Any], Link, Gate]:
    """A `Recorder` started in a link and `held`; its link and gate."""
    ref, link = runtime.start_linked(Recorder, journal)
    return ref, link, held(ref)


def test_failing_tell_stops_actor_and_runs_on_failure(runtime: Runtime, journal: Journal) -> None:
    ref, link = runtime.start_linked(Recorder, journal)
    error = ValueError("bad message")

    ref.tell(Raise(error))
    wait_exited(link)

    assert journal.whats() == ["on_start", "on_failure"]  # on_stop is not run on a crash
    assert journal.details("on_failure") == [error]
    assert not ref.is_alive()
    assert ref.actor_urn not in registered_urns()
    assert link.exit is not None
    assert link.exit.reason is ExitReason.CRASHED
    assert link.exit.error is error
    with pytest.raises(pykka.ActorDeadError):
        ref.tell(Note(1))
    with pytest.raises(pykka.ActorDeadError):
        ask(ref, Double(1))


def test_failing_on_failure_still_stops_the_actor_with_the_first_error(
    runtime: Runtime, journal: Journal
) -> None:
    ref, link = runtime.start_linked(Recorder, journal, fail_failure=True)
    error = ValueError("bad message")

    ref.tell(Raise(error))
    wait_exited(link)

    assert journal.whats() == ["on_start", "on_failure"]
    assert not ref.is_alive()
    assert link.exit is not None
    assert link.exit.reason is ExitReason.CRASHED
    assert link.exit.error is error


def test_failing_ask_returns_the_exception_and_the_actor_lives_on(
    runtime: Runtime, journal: Journal
) -> None:
    ref = runtime.start(Recorder, journal)

    with pytest.raises(ValueError, match="asked wrong"):
        ask(ref, Raise(ValueError("asked wrong")))
    future = ref.ask(Raise(KeyError("again")), block=False)
    with pytest.raises(KeyError):
        future.get(timeout=TIMEOUT_S)

    assert ref.is_alive()
    assert ask(ref, Double(4)) == 8
    assert "on_failure" not in journal.whats()
    assert ref.actor_urn in registered_urns()


def test_failing_on_start_stops_the_actor_without_on_failure(
    runtime: Runtime, journal: Journal
) -> None:
    ref, link = runtime.start_linked(Recorder, journal, fail_start=True)

    wait_exited(link)

    assert journal.whats() == ["on_start"]  # neither on_failure nor on_stop
    assert not ref.is_alive()
    assert ref.actor_urn not in registered_urns()
    assert link.exit is not None
    assert link.exit.reason is ExitReason.CRASHED
    assert isinstance(link.exit.error, RuntimeError)
    with pytest.raises(RuntimeError, match="cannot start"):
        link.started.get(timeout=TIMEOUT_S)
    with pytest.raises(pykka.ActorDeadError):
        ref.tell(Note(1))


def test_asks_queued_before_a_failing_on_start_get_actor_dead_error(
    runtime: Runtime, journal: Journal
) -> None:
    gate = Gate()
    ref = runtime.start(Recorder, journal, start_gate=gate, fail_start=True)
    assert gate.entered.wait(TIMEOUT_S)
    queued = ref.ask(Double(1), block=False)

    gate.release.set()

    with pytest.raises(pykka.ActorDeadError):
        queued.get(timeout=TIMEOUT_S)
    assert "double" not in journal.whats()


def test_stop_runs_on_stop_and_refuses_later_messages(runtime: Runtime, journal: Journal) -> None:
    ref, link = runtime.start_linked(Recorder, journal)
    ref.tell(Note(1))

    assert ref.stop(timeout=TIMEOUT_S) is True

    assert journal.whats() == ["on_start", "note", "on_stop"]
    assert not ref.is_alive()
    with pytest.raises(pykka.ActorDeadError):
        ref.tell(Note(2))
    with pytest.raises(pykka.ActorDeadError):
        ask(ref, Double(2))
    assert ref.stop(timeout=TIMEOUT_S) is False  # pykka: already dead
    wait_exited(link)
    assert link.exit is not None
    assert link.exit.reason is ExitReason.NORMAL


def test_actor_stopping_itself_runs_on_stop(runtime: Runtime, journal: Journal) -> None:
    ref, link = runtime.start_linked(Recorder, journal)

    ref.tell(StopYourself())
    wait_exited(link)

    assert journal.whats() == ["on_start", "on_stop"]
    assert not ref.is_alive()
    assert link.exit is not None
    assert link.exit.reason is ExitReason.NORMAL


def test_failing_on_stop_still_stops_the_actor_normally(runtime: Runtime, journal: Journal) -> None:
    ref, link = runtime.start_linked(Recorder, journal, fail_stop=True)

    assert ref.stop(timeout=TIMEOUT_S) is True
    wait_exited(link)

    assert journal.whats() == ["on_start", "on_stop"]
    assert not ref.is_alive()
    assert ref.actor_urn not in registered_urns()
    assert link.exit is not None
    assert link.exit.reason is ExitReason.NORMAL


def test_stop_answers_asks_ahead_of_it_and_fails_asks_behind_it(
    runtime: Runtime, journal: Journal
) -> None:
    ref = runtime.start(Recorder, journal)
    gate = held(ref)

    ahead = ref.ask(Double(1), block=False)
    stopping = ref.stop(block=False)
    behind = ref.ask(Double(2), block=False)
    ref.tell(Note("behind"))
    gate.release.set()

    assert ahead.get(timeout=TIMEOUT_S) == 2
    assert stopping.get(timeout=TIMEOUT_S) is True  # the stop's own future resolves
    with pytest.raises(pykka.ActorDeadError):
        behind.get(timeout=TIMEOUT_S)
    assert journal.whats() == ["on_start", "double", "on_stop"]


def test_base_exception_in_a_handler_stops_every_actor_of_both_runtimes(
    runtime: Runtime, journal: Journal, loop: asyncio.AbstractEventLoop
) -> None:
    thread_journal, loop_journal = Journal(), Journal()
    raiser, raiser_link = runtime.start_linked(Recorder, journal)
    on_thread, thread_link = thread_runtime().start_linked(Recorder, thread_journal)
    on_loop_, loop_link = loop_runtime(loop).start_linked(Recorder, loop_journal)
    assert ask(on_thread, Double(1)) == 2
    assert ask(on_loop_, Double(1)) == 2

    raiser.tell(Raise(SystemExit(3)))
    for link in (raiser_link, thread_link, loop_link):
        wait_exited(link)

    assert journal.whats() == ["on_start", "on_stop"]  # pykka runs on_stop, not on_failure
    assert thread_journal.whats() == ["on_start", "double", "on_stop"]
    assert loop_journal.whats() == ["on_start", "double", "on_stop"]
    for ref in (raiser, on_thread, on_loop_):
        assert not ref.is_alive()
    assert pykka.ActorRegistry.get_all() == []
    assert raiser_link.exit is not None
    assert raiser_link.exit.reason is ExitReason.CRASHED
    assert isinstance(raiser_link.exit.error, SystemExit)
    assert thread_link.exit is not None
    assert thread_link.exit.reason is ExitReason.NORMAL
    assert loop_link.exit is not None
    assert loop_link.exit.reason is ExitReason.NORMAL


def test_inject_crash_crashes_the_actor_after_messages_already_queued(
    runtime: Runtime, journal: Journal
) -> None:
    ref, link, gate = held_in_a_link(runtime, journal)

    ref.tell(Note("before"))
    inject_crash(ref, "on purpose")
    ref.tell(Note("after"))
    gate.release.set()
    wait_exited(link)

    assert journal.whats() == ["on_start", "note", "on_failure"]
    assert journal.details("note") == ["before"]
    assert link.exit is not None
    assert link.exit.reason is ExitReason.CRASHED
    assert isinstance(link.exit.error, InjectedCrash)
    assert str(link.exit.error) == "on purpose"
    assert journal.details("on_failure") == [link.exit.error]
    assert not ref.is_alive()
    # What was still queued goes to the link, for a next incarnation.
    assert [message_of(envelope) for envelope in link.take_leftovers()] == [Note("after")]


def test_a_killed_actor_handles_nothing_more_and_hands_over_its_inbox(
    runtime: Runtime, journal: Journal
) -> None:
    ref, link, gate = held_in_a_link(runtime, journal)
    ref.tell(Note("queued"))
    asked = ref.ask(Double(1), block=False)

    link.kill(KILLED)  # from this thread, while the actor is busy

    assert link.exit == KILLED
    assert not ref.is_alive()
    assert ref.actor_urn not in registered_urns()
    assert [message_of(e) for e in link.take_leftovers()] == [Note("queued"), Double(1)]
    assert isinstance(asked, Future)
    assert not asked.done()  # handed over, for the supervisor to pass on or fail
    with pytest.raises(pykka.ActorDeadError):
        ref.tell(Note("later"))
    gate.release.set()  # the code it was running cannot be interrupted: it returns now
    assert ref.stop(timeout=TIMEOUT_S) is False  # already dead
    assert journal.whats() == ["on_start"]  # no on_stop, nothing more handled


def test_the_first_supervised_actor_constructed_in_a_link_claims_it(
    runtime: Runtime, journal: Journal
) -> None:
    link = Link()
    with linked(link):
        first = runtime.start(Recorder, journal)
        second = runtime.start(Recorder, Journal())
    assert link.urn == first.actor_urn
    assert link.started.get(timeout=TIMEOUT_S) is first
    second.stop(timeout=TIMEOUT_S)
    assert not link.exited.is_set()  # the second is not linked: its stop is no news
    first.stop(timeout=TIMEOUT_S)
    wait_exited(link)


def test_a_link_that_no_actor_claimed_reports_a_kill_all_the_same() -> None:
    link = Link()
    link.kill(KILLED)
    assert link.exit == KILLED
    assert link.take_leftovers() == []
    with pytest.raises(pykka.ActorDeadError, match="exited before it started: killed"):
        link.started.get(timeout=TIMEOUT_S)
