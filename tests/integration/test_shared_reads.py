"""Overlapping asks for the newest page share reads, and never get an answer
older than their ask (the welcome's page, `chatter.persistence.Read` with a share key)."""

from __future__ import annotations

from chatter.messages import Page
from chatter.persistence import Persistence

TIMEOUT_S = 10
ASKS = 50


def test_a_crowd_of_asks_shares_a_few_reads(persistence: Persistence) -> None:
    user = persistence.upsert_user("crowd").get(timeout=TIMEOUT_S)
    for n in range(3):
        persistence.store(user.id, "crowd", f"m{n}").get(timeout=TIMEOUT_S)
    asks = [persistence.newest(500) for _ in range(ASKS)]
    pages: list[Page] = [ask.get(timeout=TIMEOUT_S) for ask in asks]
    assert all(page == pages[0] for page in pages)
    assert [m.body for m in pages[0].messages] == ["m0", "m1", "m2"]
    # Every ask sent while the first read ran is answered by one next read.
    assert len({id(page) for page in pages}) < ASKS // 2


def test_an_answer_is_never_older_than_its_ask(persistence: Persistence) -> None:
    user = persistence.upsert_user("fresh").get(timeout=TIMEOUT_S)
    for n in range(20):
        running = [persistence.newest(10) for _ in range(5)]  # reads in flight
        stored = persistence.store(user.id, "fresh", f"after {n}").get(timeout=TIMEOUT_S)
        page = persistence.newest(10).get(timeout=TIMEOUT_S)
        assert page.messages[-1].seq == stored.message.seq, n
        for ask in running:
            ask.get(timeout=TIMEOUT_S)


def test_different_limits_are_different_reads(persistence: Persistence) -> None:
    user = persistence.upsert_user("limits").get(timeout=TIMEOUT_S)
    for n in range(5):
        persistence.store(user.id, "limits", f"m{n}").get(timeout=TIMEOUT_S)
    one, three = persistence.newest(1), persistence.newest(3)
    assert [m.body for m in one.get(timeout=TIMEOUT_S).messages] == ["m4"]
    assert [m.body for m in three.get(timeout=TIMEOUT_S).messages] == ["m2", "m3", "m4"]


def test_an_unchanged_page_is_the_same_object_and_encoded_once(persistence: Persistence) -> None:
    user = persistence.upsert_user("same").get(timeout=TIMEOUT_S)
    persistence.store(user.id, "same", "first").get(timeout=TIMEOUT_S)
    first = persistence.newest(500).get(timeout=TIMEOUT_S)
    again = persistence.newest(500).get(timeout=TIMEOUT_S)
    assert again is first
    assert again.wire_json is first.wire_json
    persistence.store(user.id, "same", "second").get(timeout=TIMEOUT_S)
    changed = persistence.newest(500).get(timeout=TIMEOUT_S)
    assert changed is not first
    assert [m.body for m in changed.messages] == ["first", "second"]
    assert '"body":"second"' in changed.wire_json


def test_asks_for_recent_users_share_reads_and_see_who_joined_before(
    persistence: Persistence,
) -> None:
    for n in range(5):
        running = [persistence.recent_users(50) for _ in range(5)]  # reads in flight
        user = persistence.upsert_user(f"user{n}").get(timeout=TIMEOUT_S)
        persistence.store(user.id, user.username, "hello").get(timeout=TIMEOUT_S)  # listed
        page = persistence.recent_users(50).get(timeout=TIMEOUT_S)
        assert page.total == n + 1
        assert f"user{n}" in [user.username for user in page.users]
        for ask in running:
            ask.get(timeout=TIMEOUT_S)
    asks = [persistence.recent_users(50) for _ in range(ASKS)]
    pages = [ask.get(timeout=TIMEOUT_S) for ask in asks]
    assert all(page == pages[0] for page in pages)
    assert len({id(page) for page in pages}) < ASKS // 2
