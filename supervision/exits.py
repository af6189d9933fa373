"""Why an actor exited, in OTP's words.

A supervisor decides what to do about an exit from its reason alone:

    normal    the actor stopped itself, or was stopped by someone other than
              its supervisor (``stop()``)
    shutdown  its supervisor stopped it (while restarting siblings, removing
              it, or shutting down), or it stopped itself saying so
              (``stop(ExitReason.SHUTDOWN)``, with an ``info`` if it likes:
              OTP's ``{shutdown, Info}``)
    killed    its supervisor killed it: a brutal kill, or a stop that took
              longer than the child's shutdown timeout
    crashed   an exception escaped it (see `supervision.supervised` for which
              exceptions count)

`normal` and `shutdown` are normal exits, so a transient child is not restarted
after them; `killed` and `crashed` are abnormal. A supervisor that gives up
(more restarts than its intensity allows) exits `shutdown` with the
`RestartIntensityExceededError` as info, as OTP's exits
``{shutdown, reached_max_restart_intensity}``: see `Exit.gave_up`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from supervision.errors import RestartIntensityExceededError

__all__ = ["Exit", "ExitReason"]


class ExitReason(enum.Enum):
    """The closed set of exit reasons."""

    NORMAL = "normal"
    SHUTDOWN = "shutdown"
    KILLED = "killed"
    CRASHED = "crashed"


@dataclass(frozen=True)
class Exit:
    """How one incarnation of an actor ended."""

    reason: ExitReason
    """The kind of exit."""

    error: BaseException | None = None
    """The exception that escaped, for a crash."""

    info: Any = None
    """What an actor that stopped itself with reason shutdown said with it
    (OTP's ``{shutdown, Info}``); None otherwise."""

    @property
    def abnormal(self) -> bool:
        """True for a crash or a kill: what a transient child is restarted after."""
        return self.reason in (ExitReason.CRASHED, ExitReason.KILLED)

    @property
    def gave_up(self) -> bool:
        """True for a supervisor that gave up: a shutdown whose info is the
        `RestartIntensityExceededError`. Normal for its own supervisor (a
        transient supervisor is not restarted after it), a failure for whoever
        runs the root (`supervision.run` exits non-zero)."""
        return self.reason is ExitReason.SHUTDOWN and isinstance(
            self.info, RestartIntensityExceededError
        )

    def __str__(self) -> str:
        if self.info is not None:
            return f"{self.reason.value}: {self.info}"
        if self.error is None:
            return self.reason.value
        return f"{self.reason.value}: {type(self.error).__name__}: {self.error}"


NORMAL = Exit(ExitReason.NORMAL)
SHUTDOWN = Exit(ExitReason.SHUTDOWN)
KILLED = Exit(ExitReason.KILLED)
