"""The room answers a welcome's messages from the newest it remembers
(`chatter.welcome.recalled_backlog`): whenever it answers, the answer is what a
read of the log would give (`chatter.welcome.read_backlog`), and it declines
only when messages the client missed may lie beyond what it remembers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from chatter.messages import Page, StoredMessage
from chatter.welcome import MAX_RESUME, WELCOME_MESSAGES, Backlog, recalled_backlog

AT = datetime(2026, 12, 6, tzinfo=UTC)


def log_of(gaps: list[int]) -> list[StoredMessage]:
    """Messages whose seqs step by `gaps` (a step above 1 is a spent seq)."""
    seqs, seq = [], 0
    for gap in gaps:
        seq += gap
        seqs.append(seq)
    return [StoredMessage(uuid.uuid4(), s, "ann", f"m{s}", AT, None) for s in seqs]


def remembered(log: list[StoredMessage]) -> Page:
    """What a room remembers of `log`: its newest messages, and whether older ones exist."""
    return Page(tuple(log[-WELCOME_MESSAGES:]), len(log) > WELCOME_MESSAGES)


def read_from_the_log(log: list[StoredMessage], after: int | None) -> Backlog:
    """What the welcome's read of the log gives (the model of `read_backlog`)."""
    last = log[-1].seq if log else 0
    newest = Backlog(remembered(log), last)
    if after is None:
        return newest
    missed = [m for m in log if m.seq > after]
    if not missed:
        return Backlog(Page((), False), min(after, last))
    if len(missed) <= MAX_RESUME:
        return Backlog(Page(tuple(missed), False), last)
    return newest


logs = st.lists(st.integers(1, 3), max_size=2 * WELCOME_MESSAGES + 50).map(log_of)


@settings(max_examples=150, deadline=None)
@given(log=logs, data=st.data())
def test_a_recalled_backlog_is_the_one_a_read_of_the_log_gives(
    log: list[StoredMessage], data: st.DataObject
) -> None:
    last = log[-1].seq if log else 0
    after = data.draw(st.none() | st.integers(0, last + 5))
    recalled = recalled_backlog(remembered(log), after)
    if recalled is not None:
        assert recalled == read_from_the_log(log, after)
    else:
        assert after is not None
        assert len(log) > WELCOME_MESSAGES
        assert after < log[-WELCOME_MESSAGES].seq - 1


@settings(max_examples=150, deadline=None)
@given(count=st.integers(0, 2 * WELCOME_MESSAGES), data=st.data())
def test_a_resume_is_declined_only_when_it_missed_more_than_is_remembered(
    count: int, data: st.DataObject
) -> None:
    log = log_of([1] * count)  # no spent seqs: remembering is all there is to it
    after = data.draw(st.integers(0, count + 2))
    missed = sum(1 for m in log if m.seq > after)
    remembers_all = missed <= WELCOME_MESSAGES
    assert (recalled_backlog(remembered(log), after) is not None) == remembers_all


def test_a_client_resuming_from_beyond_the_log_hides_no_message_to_come() -> None:
    log = log_of([1, 1, 1])
    backlog = recalled_backlog(remembered(log), 10)
    assert backlog == Backlog(Page((), False), 3)
