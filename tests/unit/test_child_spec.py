"""Child specs validate on construction and name the field that failed."""

from __future__ import annotations

from typing import Any

import pytest

from supervision import ChildKind, ChildSpec, InvalidChildSpecError, Restart, Shutdown, ThreadActor


def _start() -> Any:
    return ThreadActor.start()


def test_defaults_follow_otp_for_workers() -> None:
    spec = ChildSpec("room", _start)
    assert spec.restart is Restart.PERMANENT
    assert spec.shutdown == 5.0
    assert spec.kind is ChildKind.WORKER
    assert spec.name is None


def test_a_supervisor_defaults_to_an_infinite_shutdown() -> None:
    """OTP: ``sup_start_map``: a child of type supervisor gets shutdown
    infinity unless its spec says otherwise."""
    assert ChildSpec("sub", _start, kind=ChildKind.SUPERVISOR).shutdown is Shutdown.INFINITY
    assert ChildSpec("sub", _start, kind=ChildKind.SUPERVISOR, shutdown=1).shutdown == 1


def test_enum_values_are_otps_words() -> None:
    assert [r.value for r in Restart] == ["permanent", "transient", "temporary"]
    assert Shutdown.BRUTAL_KILL.value == "brutal_kill"
    assert ChildKind.SUPERVISOR.value == "supervisor"


def test_spec_is_frozen() -> None:
    spec = ChildSpec("room", _start)
    with pytest.raises(AttributeError):
        spec.id = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("id", "", "id must be a non-empty string"),
        ("start", "not callable", "start must be a callable"),
        ("restart", "permanent", "restart must be Restart"),
        ("shutdown", -1, "shutdown must be a number of seconds >= 0"),
        ("shutdown", float("inf"), "shutdown must be a number of seconds >= 0"),
        ("shutdown", True, "shutdown must be a number of seconds >= 0"),
        ("kind", "worker", "kind must be ChildKind"),
        ("name", "", "name must be None or a non-empty string"),
    ],
)
def test_invalid_field_is_refused_naming_field_and_value(
    field: str, value: object, expected: str
) -> None:
    arguments: dict[str, Any] = {"id": "room", "start": _start, field: value}
    with pytest.raises(InvalidChildSpecError) as raised:
        ChildSpec(**arguments)
    assert expected in str(raised.value)
    assert repr(value) in str(raised.value)


@pytest.mark.parametrize("shutdown", [0, 0.1, 3, Shutdown.BRUTAL_KILL, Shutdown.INFINITY])
def test_valid_shutdowns_are_accepted(shutdown: float | Shutdown) -> None:
    assert ChildSpec("room", _start, shutdown=shutdown).shutdown == shutdown
