"""A one-way flag that costs a lock until someone waits on it.

`threading.Event` carries a `threading.Condition`, and a condition carries a
lock and a deque of waiters: over a kilobyte. An actor, its link to its
supervisor and its start future each hold one for as long as they live,
though nobody ever waits on most of them (ten thousand idle connections hold
thirty thousand). A `Flag` answers `set` and `is_set` with a plain lock and a
bool, and makes its event only for the first caller of `wait`.
"""

from __future__ import annotations

import threading

__all__ = ["Flag"]


class Flag:
    """As `threading.Event` for `set`, `is_set` and `wait`; it is never cleared."""

    __slots__ = ("_event", "_lock", "_set")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._set = False
        self._event: threading.Event | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        with self._lock:
            self._set = True
            event = self._event
        if event is not None:
            event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """True once set; False if `timeout` seconds passed first."""
        with self._lock:
            if self._set:
                return True
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        return event.wait(timeout)
