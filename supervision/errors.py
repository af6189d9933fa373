"""The typed errors of the supervision library.

Every failure a caller can act on has its own class, so code branches on types,
never on message strings. All derive from `SupervisionError`, except
`InjectedCrash`, which is not an error of the caller but a fault put into an
actor on purpose, and `Ignore`, which is no failure at all: a start declined.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pykka

__all__ = [
    "AlreadyPresentError",
    "AlreadyStartedError",
    "BlockingCallOnLoopError",
    "ChildNotFoundError",
    "ChildRestartingError",
    "ChildRunningError",
    "DuplicateChildError",
    "Ignore",
    "InjectedCrash",
    "InvalidChildSpecError",
    "MaxChildrenError",
    "NameNotRegisteredError",
    "NameTakenError",
    "NameUnavailableError",
    "NoEventLoopError",
    "RestartIntensityExceededError",
    "StartChildError",
    "SupervisionError",
]


class SupervisionError(Exception):
    """Base class of every error raised by the supervision library."""


class InvalidChildSpecError(SupervisionError, ValueError):
    """A child spec field has a value it cannot take; the message names both."""


class DuplicateChildError(SupervisionError, ValueError):
    """A child id is already used by another child of the same supervisor."""


class AlreadyStartedError(DuplicateChildError):
    """`start_child` of an id whose child runs: OTP's ``{error, {already_started,
    Pid}}``. `ref` is the running child's."""

    def __init__(self, supervisor: str, child_id: str, ref: pykka.ActorRef[Any]) -> None:
        self.child_id = child_id
        self.ref = ref
        super().__init__(f"supervisor {supervisor!r}: child {child_id!r} is already started: {ref}")


class AlreadyPresentError(DuplicateChildError):
    """`start_child` of an id whose spec is kept but whose child does not run:
    OTP's ``{error, already_present}`` (`restart_child` starts it, or
    `delete_child` forgets it)."""


class ChildNotFoundError(SupervisionError, LookupError):
    """No child with that id is known to the supervisor."""


class ChildRunningError(SupervisionError):
    """The child is running, and the operation needs it terminated first."""


class ChildRestartingError(SupervisionError):
    """The child is being restarted (a failed attempt is retried), and the
    operation needs it terminated first: OTP's ``{error, restarting}``."""


class StartChildError(SupervisionError):
    """A child failed to start: `child_id` names it, `reason` says why, and
    `__cause__` is the exception, when one was raised."""

    def __init__(self, child_id: str, cause: BaseException | str) -> None:
        self.child_id = child_id
        self.reason = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}"
        super().__init__(f"child {child_id!r} failed to start: {self.reason}")


class MaxChildrenError(SupervisionError):
    """A dynamic supervisor already runs its `max_children` and refuses one more."""


class RestartIntensityExceededError(SupervisionError):
    """A supervisor restarted more often than its intensity allows and gave up."""

    def __init__(self, supervisor: str, max_restarts: int, max_seconds: float) -> None:
        self.supervisor = supervisor
        self.max_restarts = max_restarts
        self.max_seconds = max_seconds
        super().__init__(
            f"supervisor {supervisor!r} gave up: more than {max_restarts} restarts "
            f"in {max_seconds:g} s"
        )


class NameNotRegisteredError(SupervisionError, LookupError):
    """No actor is registered under that name, and none is being restarted."""


class NameTakenError(SupervisionError):
    """The name is registered to another live actor: `holder`."""

    def __init__(self, name: str, holder: pykka.ActorRef[Any]) -> None:
        self.name = name
        self.holder = holder
        super().__init__(f"{name!r} is already registered to {holder}")


class NameUnavailableError(SupervisionError):
    """The named actor is restarting and no new incarnation arrived in time."""


class NoEventLoopError(SupervisionError, RuntimeError):
    """A loop actor was created without a loop and off any running loop's thread."""


class BlockingCallOnLoopError(SupervisionError, RuntimeError):
    """A blocking `Future.get()` was called on a thread that runs an event loop."""


class Ignore(Exception):  # noqa: N818  (OTP's word: a start declined, not an error)
    """Raised by a start function or ``on_start`` to decline to start, as OTP's
    ``ignore``: no actor runs, nothing is logged, and the supervisor goes on
    (a static one keeps the spec, not running, unless it is temporary; a
    dynamic one adds nothing; `start_child` answers None)."""


class InjectedCrash(Exception):  # noqa: N818  (it is a crash, not an error in the caller)
    """Raised inside an actor by `inject_crash`: a fault put there on purpose."""
