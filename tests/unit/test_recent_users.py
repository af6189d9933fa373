"""Presence's page of recent users (`chatter.recent_users.RecentUsers`): given
out only once a read begun after the last change this node made has answered,
one read at a time, and read again when a change came during one."""

from __future__ import annotations

from chatter.queries import UsersPage
from chatter.recent_users import RecentUsers


class Reads:
    """The reads asked for, by generation, answered by hand."""

    def __init__(self) -> None:
        self.asked: list[int] = []
        self.users = RecentUsers(self.asked.append)


def settled(reads: Reads) -> bool:
    """Read afresh each time (mypy would keep an asserted property narrowed)."""
    return reads.users.settled


def page(total: int) -> UsersPage:
    return UsersPage((), total)


def test_nothing_is_given_out_before_the_first_read_answers() -> None:
    reads = Reads()
    assert not settled(reads)
    reads.users.refresh()
    assert reads.asked == [0]
    assert not settled(reads)
    reads.users.read_done(0, page(3))
    assert settled(reads)
    assert reads.users.page == page(3)


def test_a_change_during_a_read_waits_for_a_read_begun_after_it() -> None:
    reads = Reads()
    reads.users.refresh()
    reads.users.read_done(0, page(1))
    reads.users.refresh()  # a tick
    reads.users.changed()  # a user recorded while that read runs
    assert reads.asked == [0, 0]  # one read at a time
    assert not settled(reads)
    reads.users.read_done(0, page(1))  # begun before the change: not enough
    assert not settled(reads)
    assert reads.asked == [0, 0, 1]
    reads.users.read_done(1, page(2))
    assert settled(reads)
    assert reads.users.page == page(2)


def test_a_refresh_does_not_hold_asks_back() -> None:
    reads = Reads()
    reads.users.refresh()
    reads.users.read_done(0, page(1))
    reads.users.refresh()
    assert settled(reads)  # the page is as fresh as every change made here


def test_a_failed_read_settles_with_what_is_known() -> None:
    reads = Reads()
    reads.users.changed()
    reads.users.read_failed(1)
    assert settled(reads)
    assert reads.users.page is None  # the welcome reads the users itself
    reads.users.changed()
    reads.users.read_done(2, page(4))
    assert reads.users.page == page(4)
