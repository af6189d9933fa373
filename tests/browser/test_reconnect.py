"""The page across a server restart: it says so, comes back by itself, shows
what it missed once and in order, and delivers what was typed meanwhile, once."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.conftest import OpenPage, Seed
from tests.browser.ui import (
    bodies,
    connection,
    in_the_room,
    message,
    person,
    send,
    shown_messages,
    you,
)
from tests.harness.data import seed_messages, stored
from tests.harness.server import ChatServer

RECONNECT_TIMEOUT_MS = 20_000
"""The backoff doubles from half a second; the server is away for a few seconds."""


def test_the_page_reconnects_after_a_restart_and_loses_nothing(
    open_page: OpenPage, server: ChatServer, database: str
) -> None:
    ann = in_the_room(open_page, "ann")
    send(ann, "before the restart")
    expect(message(ann, "before the restart").locator(".delivery")).to_have_text("Sent")

    server.stop()
    expect(connection(ann)).to_have_attribute("data-state", "reconnecting")
    expect(connection(ann)).to_have_text("Reconnecting…")
    missed = [f"missed {n}" for n in range(1, 4)]
    seed_messages(database, "bob", missed)  # while the page cannot hear of them
    send(ann, "typed while away")
    away = message(ann, "typed while away")
    expect(away.locator(".delivery")).to_have_text("Waiting for the connection…")

    server.start()
    expect(connection(ann)).to_have_attribute(
        "data-state", "connected", timeout=RECONNECT_TIMEOUT_MS
    )
    expect(away.locator(".delivery")).to_have_text("Sent")
    expect(you(ann)).to_have_text("ann")  # the token took the name back
    expect(person(ann, "ann")).to_have_attribute("data-status", "online")
    assert bodies(ann) == ["before the restart", *missed, "typed while away"]
    assert stored(database, "body").count("typed while away") == 1
    assert stored(database, "body").count("before the restart") == 1

    # And the room goes on: a newcomer sees it all, once.
    bob = open_page("/chat")
    expect(message(bob, "typed while away")).to_be_visible()
    assert bodies(bob) == bodies(ann)


def test_a_page_that_missed_more_than_a_resume_carries_fills_the_gap_in_order(
    open_page: OpenPage, server: ChatServer, database: str, seed: Seed
) -> None:
    seed("old", [f"early {n}" for n in range(1, 11)])
    page = open_page("/chat")
    expect(message(page, "early 10")).to_be_visible()

    server.stop()
    expect(connection(page)).to_have_attribute("data-state", "reconnecting")
    missed = [f"gap {n}" for n in range(1, 5301)]  # more than the 5,000 a resume carries
    seed_messages(database, "bob", missed)
    server.start()

    expect(message(page, "gap 5300")).to_be_visible(timeout=RECONNECT_TIMEOUT_MS)
    expect(shown_messages(page)).to_have_count(5310, timeout=RECONNECT_TIMEOUT_MS)
    assert bodies(page) == [f"early {n}" for n in range(1, 11)] + missed
