"""The recent users presence keeps for welcomes: the most recently seen users
who posted, and the people count (`chatter.queries.PEOPLE_COUNT`: everyone who
posted, and whoever is online), as the last read of the users table found them.

A welcome lists who is online and the most recently active offline users.
Presence knows the first; it also keeps this page, so that a welcome asks one
actor on its own loop and no database read is made per connection. The page is
read again on every presence wake-up (a name changed on some node, or a tick)
and whenever this node records a user or their last visit (`UsersChanged`,
from persistence), or a name that never posted comes or goes here (the count
changes): until a read begun after such a change is in, asks wait, so a welcome
is never older than a change this node made before it was asked.
Another node's changes show within a tick.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chatter.queries import UsersPage

__all__ = ["RecentUsers", "UsersChanged"]


@dataclass(frozen=True)
class UsersChanged:
    """To presence, from persistence: a user was recorded or seen; read the
    recent users again before answering a welcome."""


class RecentUsers:
    """The page and whether it may be given out (`settled`). `read(generation)`
    asks for a read; its answer comes back through `read_done` or
    `read_failed` with that generation."""

    def __init__(self, read: Callable[[int], None]) -> None:
        self._read = read
        self.page: UsersPage | None = None
        """The last page read, or None before the first."""
        self._changes = 0
        """How many changes were heard of (the generation a read starts at)."""
        self._read_up_to = -1
        """The generation of the newest read that answered (or failed)."""
        self._reading = False
        self._read_again = False

    @property
    def settled(self) -> bool:
        """Whether a read begun after the last change has answered: the page
        (None if that read failed and none came before) can be given out."""
        return self._read_up_to >= self._changes

    def changed(self) -> None:
        """This node changed a user: asks wait for a read begun after now."""
        self._changes += 1
        self.refresh()

    def refresh(self) -> None:
        """Read again (one read at a time: asked during one, another after it)."""
        if self._reading:
            self._read_again = True
            return
        self._reading = True
        self._read(self._changes)

    def read_done(self, generation: int, page: UsersPage) -> None:
        self.page = page
        self._answered(generation)

    def read_failed(self, generation: int) -> None:
        """Asks are answered with what is known: a welcome whose users cannot
        be read reads them itself, and fails as a read of its own would."""
        self._answered(generation)

    def _answered(self, generation: int) -> None:
        self._reading = False
        self._read_up_to = max(self._read_up_to, generation)
        if self._read_again or not self.settled:
            self._read_again = False
            self.refresh()
