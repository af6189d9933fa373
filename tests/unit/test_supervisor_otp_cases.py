"""The cases of OTP's ``supervisor_SUITE`` (and Elixir's ``supervisor_test.exs``
and ``dynamic_supervisor_test.exs``) where this library once differed, ported
as behaviour, not as code. Each test names its OTP (or Elixir) case in its
docstring; where children are involved it runs on both runtimes (thread and
loop actors, the `runtime` fixture)."""

from __future__ import annotations

from typing import Any

import pykka
import pytest

from supervision import (
    AlreadyPresentError,
    AlreadyStartedError,
    ChildSpec,
    DuplicateChildError,
    DynamicSupervisor,
    EventKind,
    EventStream,
    Restart,
    Supervisor,
    count_children,
    delete_child,
    start_child,
    start_link,
    terminate_child,
    which_children,
)
from tests.conftest import EventLog
from tests.unit._runtimes import (  # noqa: F401  (fixtures)
    TIMEOUT_S,
    Journal,
    Recorder,
    Runtime,
    journal_fixture,
    runtime_fixture,
)

# -- the child every case starts ----------------------------------------------------------


class StopNormally:
    """The child stops itself with plain ``stop()``: reason normal."""


class Child(pykka.Actor):
    """A child on either runtime: answers 'ping' with its label, stops itself
    on `StopNormally`."""

    def __init__(self, label: str, **runtime_kwargs: Any) -> None:
        super().__init__(**runtime_kwargs)
        self.label = label

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, StopNormally):
            self.stop()
            return None
        if message == "ping":
            return self.label
        return None


def spec(runtime: Runtime, child_id: str, **options: Any) -> ChildSpec:
    """A spec for a `Child` labelled `child_id`, on `runtime`."""
    return ChildSpec(child_id, lambda: runtime.start(Child, child_id), **options)


def ids(supervisor: pykka.ActorRef[Any]) -> list[str]:
    return [info.id for info in which_children(supervisor).get(timeout=TIMEOUT_S)]


# -- a dynamic supervisor forgets a child it does not restart ----------------------------


def test_transient_normal_simple_one_for_one_forgets_the_child(
    runtime: Runtime, events: EventStream, event_log: EventLog
) -> None:
    """OTP: ``transient_normal`` under simple_one_for_one (and Elixir's
    "restarts transient children only on abnormal exit"): a transient child of
    a dynamic supervisor that exits normally is not restarted and is forgotten,
    so that with max_children its place is given back."""
    sup = start_link(DynamicSupervisor.child_spec("dyn", max_children=1, events=events))
    ref = start_child(sup, spec(runtime, "job", restart=Restart.TRANSIENT)).get(timeout=TIMEOUT_S)
    ref.tell(StopNormally())
    event_log.wait(EventKind.EXITED, "job")

    assert ids(sup) == []
    counts = count_children(sup).get(timeout=TIMEOUT_S)
    assert (counts.specs, counts.active, counts.workers) == (0, 0, 0)
    again = start_child(sup, spec(runtime, "job", restart=Restart.TRANSIENT))
    assert again.get(timeout=TIMEOUT_S).ask("ping") == "job"


def test_transient_normal_one_for_one_keeps_the_spec(
    runtime: Runtime, events: EventStream, event_log: EventLog
) -> None:
    """OTP: ``transient_normal``: under a static supervisor the spec of a
    transient child that exited normally is kept, not running."""
    sup = start_link(
        Supervisor.child_spec(
            "root", [spec(runtime, "job", restart=Restart.TRANSIENT)], events=events
        )
    )
    which_children(sup).get(timeout=TIMEOUT_S)[0].ref.tell(StopNormally())  # type: ignore[union-attr]
    event_log.wait(EventKind.EXITED, "job")
    [info] = which_children(sup).get(timeout=TIMEOUT_S)
    assert (info.id, info.alive, info.ref) == ("job", False, None)


# -- already started, already present ------------------------------------------------------


def test_child_adm_already_started_and_already_present(
    runtime: Runtime, events: EventStream
) -> None:
    """OTP: ``child_adm``: starting an id whose child runs is
    ``{error, {already_started, Pid}}``, with the running child's pid; once it
    is terminated (its spec kept), starting it again is ``{error,
    already_present}``; deleted, it starts."""
    sup = start_link(Supervisor.child_spec("root", [spec(runtime, "a")], events=events))
    [running] = which_children(sup).get(timeout=TIMEOUT_S)

    with pytest.raises(AlreadyStartedError) as started:
        start_child(sup, spec(runtime, "a")).get(timeout=TIMEOUT_S)
    assert started.value.child_id == "a"
    assert started.value.ref == running.ref
    assert isinstance(started.value, DuplicateChildError)

    terminate_child(sup, "a").get(timeout=TIMEOUT_S)
    with pytest.raises(AlreadyPresentError, match="'a', not running"):
        start_child(sup, spec(runtime, "a")).get(timeout=TIMEOUT_S)

    delete_child(sup, "a").get(timeout=TIMEOUT_S)
    assert start_child(sup, spec(runtime, "a")).get(timeout=TIMEOUT_S).ask("ping") == "a"


def test_child_adm_simple_already_started(runtime: Runtime, events: EventStream) -> None:
    """OTP: ``child_adm`` (the dynamic supervisor takes ids here, as Elixir's
    ``Supervisor`` does): an id that runs is already started, with its ref."""
    sup = start_link(DynamicSupervisor.child_spec("dyn", events=events))
    ref = start_child(sup, spec(runtime, "a")).get(timeout=TIMEOUT_S)
    with pytest.raises(AlreadyStartedError) as started:
        start_child(sup, spec(runtime, "a")).get(timeout=TIMEOUT_S)
    assert started.value.ref == ref
    assert ids(sup) == ["a"]


# -- shutdown values ---------------------------------------------------------------------


def test_sup_stop_shutdown_0_kills_at_once(
    runtime: Runtime, journal: Journal, events: EventStream, event_log: EventLog
) -> None:
    """OTP: ``sup_stop_brutal_kill``, with a shutdown of 0 (valid in OTP: the
    child is given no time): the child is killed at once, its ``on_stop`` not run."""
    child = ChildSpec("a", lambda: runtime.start(Recorder, journal), shutdown=0)
    sup = start_link(Supervisor.child_spec("root", [child], events=events))
    sup.stop(timeout=TIMEOUT_S)
    assert event_log.wait(EventKind.EXITED, "a").reason == "killed"
    assert "on_stop" not in journal.whats()
