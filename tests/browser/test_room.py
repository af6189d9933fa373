"""The room in a real browser: two people chatting, identity, history, safety."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.sync_api import Dialog, Page, expect

from tests.browser.conftest import OpenPage, Seed
from tests.browser.ui import (
    bodies,
    connection,
    in_the_room,
    message,
    message_box,
    name_error,
    name_field,
    person,
    scroller,
    send,
    shown_messages,
    you,
)
from tests.harness.data import stored


def test_two_people_chat_both_ways_and_see_each_other_come_and_go(open_page: OpenPage) -> None:
    bob = open_page("/chat")
    expect(connection(bob)).to_have_attribute("data-state", "connected")
    ann = in_the_room(open_page, "ann")
    expect(person(bob, "ann")).to_have_attribute("data-status", "online")
    expect(person(ann, "ann")).to_contain_text("you")

    send(ann, "hello bob")
    expect(message(bob, "hello bob")).to_contain_text("ann")
    expect(message(ann, "hello bob").locator(".delivery")).to_have_text("Sent")

    # Bob's first message carries his name; Shift+Enter makes a new line.
    name_field(bob).fill("bob")
    box = message_box(bob)
    box.press_sequentially("hi ann")
    box.press("Shift+Enter")
    box.press_sequentially("how are you?")
    box.press("Enter")
    expect(message(ann, "hi ann\nhow are you?")).to_contain_text("bob")
    expect(you(bob)).to_have_text("bob")
    expect(person(ann, "bob")).to_have_attribute("data-status", "online")
    assert bodies(ann) == bodies(bob) == ["hello bob", "hi ann\nhow are you?"]

    ann.get_by_role("button", name="Leave").click()
    expect(person(bob, "ann")).to_have_attribute("data-status", "offline")
    expect(name_field(ann)).to_have_value("ann")

    ann.get_by_role("button", name="Join").click()
    expect(person(bob, "ann")).to_have_attribute("data-status", "online")
    ann.close()
    expect(person(bob, "ann")).to_have_attribute("data-status", "offline")
    expect(bob.locator("#people-counts")).to_have_text("1 online / 2 total")


def test_a_taken_name_is_refused_next_to_the_field_and_the_message_is_kept(
    open_page: OpenPage, database: str
) -> None:
    ann = in_the_room(open_page, "ann")
    other = open_page("/chat")
    expect(connection(other)).to_have_attribute("data-state", "connected")
    name_field(other).fill("ANN")
    send(other, "am I ann?")
    expect(name_error(other)).to_contain_text("taken")
    expect(message_box(other)).to_have_value("am I ann?")
    expect(name_field(other)).to_have_attribute("aria-invalid", "true")
    expect(shown_messages(other)).to_have_count(0)
    assert stored(database, "body").count("am I ann?") == 0

    name_field(other).fill("anne")
    message_box(other).press("Enter")
    expect(you(other)).to_have_text("anne")
    expect(message(ann, "am I ann?")).to_contain_text("anne")


def test_an_invalid_name_is_explained_and_nothing_is_sent(open_page: OpenPage) -> None:
    page = open_page("/chat")
    expect(connection(page)).to_have_attribute("data-state", "connected")
    send(page, "no name yet")
    expect(name_error(page)).to_contain_text("Choose a name first")
    expect(message_box(page)).to_have_value("no name yet")
    name_field(page).fill("évé_1")
    page.get_by_role("button", name="Join").click()
    expect(you(page)).to_have_text("évé_1")


def test_a_body_with_markup_shows_as_text(open_page: OpenPage) -> None:
    attack = "<img src=x onerror=alert(1)><script>alert(2)</script>"
    dialogs: list[str] = []
    bob = open_page("/chat")
    bob.on("dialog", lambda dialog: _refuse(dialog, dialogs))
    ann = in_the_room(open_page, "ann")
    send(ann, attack)
    expect(message(bob, attack)).to_be_visible()
    expect(message(ann, attack)).to_be_visible()
    for page in (ann, bob):
        assert page.locator("#messages img, #messages script").count() == 0
    assert dialogs == []


def _refuse(dialog: Dialog, seen: list[str]) -> None:
    seen.append(dialog.message)
    dialog.dismiss()


def test_scrolling_up_loads_older_pages_back_to_the_very_first_of_1200(
    open_page: OpenPage, seed: Seed
) -> None:
    seed("old", [f"m{n}" for n in range(1, 1201)])
    page = open_page("/chat")
    expect(shown_messages(page)).to_have_count(500)
    expect(message(page, "m1200")).to_be_in_viewport()
    # Record every state the history indicator passes through.
    page.evaluate(
        """() => {
          window.historyStates = [];
          new MutationObserver(() => window.historyStates.push(
            document.getElementById('history-status').dataset.state
          )).observe(document.getElementById('history-status'), {attributes: true});
        }"""
    )
    beginning = page.get_by_text("this is the very first message")
    view = scroller(page)
    while not beginning.is_visible():
        count = shown_messages(page).count()
        top = shown_messages(page).first
        top_body = top.locator(".body").inner_text()
        view.evaluate("el => { el.scrollTop = 0; }")
        expect(shown_messages(page)).not_to_have_count(count)
        # The reading position holds: what was at the top is still in view.
        expect(message(page, top_body)).to_be_in_viewport()
    assert bodies(page) == [f"m{n}" for n in range(1, 1201)]
    assert "loading" in page.evaluate("window.historyStates")
    view.evaluate("el => { el.scrollTop = 0; }")
    expect(message(page, "m1")).to_be_in_viewport()

    # Reading old messages, a new one does not pull the view down: a marker does.
    ann = open_page("/chat?name=ann")
    send(ann, "fresh news")
    marker = page.get_by_role("button", name="1 new message")
    expect(marker).to_be_visible()
    expect(message(page, "m1")).to_be_in_viewport()
    marker.click()
    expect(message(page, "fresh news")).to_be_in_viewport()
    expect(marker).to_be_hidden()


def test_new_messages_scroll_into_view_when_you_are_at_the_bottom(
    open_page: OpenPage, seed: Seed
) -> None:
    seed("old", [f"line {n}" for n in range(1, 61)])
    reader = open_page("/chat")
    expect(message(reader, "line 60")).to_be_in_viewport()
    ann = open_page("/chat?name=ann")
    send(ann, "right at the bottom")
    expect(message(reader, "right at the bottom")).to_be_in_viewport()
    expect(reader.locator("#new-messages")).to_be_hidden()
    expect(reader.locator("#announcer")).to_contain_text("ann: right at the bottom")


def test_an_empty_room_invites_you_to_tell_your_friends(
    open_page: OpenPage, artifacts: Path
) -> None:
    page = open_page("/chat", viewport={"width": 1280, "height": 800})
    expect(page.get_by_text("No messages yet")).to_be_visible()
    expect(page.get_by_text("Tell your friends!")).to_be_hidden()
    name_field(page).fill("solo")
    name_field(page).press("Enter")
    expect(you(page)).to_have_text("solo")
    expect(page.get_by_text("Tell your friends!")).to_be_visible()
    page.screenshot(path=artifacts / "room-empty.png")
    send(page, "anyone here?")
    expect(page.get_by_text("No messages yet")).to_be_hidden()
    in_the_room(open_page, "friend")
    expect(page.get_by_text("Tell your friends!")).to_be_hidden()


def test_times_read_as_time_ago_with_the_exact_time_on_hover_and_stay_current(
    open_page: OpenPage, seed: Seed
) -> None:
    posted = datetime.now(UTC) - timedelta(minutes=2, seconds=10)
    seed("old", ["a while back"], at=posted)
    page = open_page("/chat", fake_clock=True)
    time = message(page, "a while back").locator("time")
    expect(time).to_have_text("2 minutes ago")
    expect(time).to_have_attribute("title", re.compile(str(posted.astimezone().year)))
    page.clock.fast_forward("03:00")
    expect(time).to_have_text("5 minutes ago")


def test_sending_fast_is_paced_shows_sending_then_sent_and_loses_nothing(
    open_page: OpenPage, database: str
) -> None:
    page = in_the_room(open_page, "quick")
    texts = [f"burst {n}" for n in range(1, 9)]
    for text in texts:
        send(page, text)
    expect(message(page, "burst 8").locator(".delivery")).to_have_text("Sending…")
    expect(page.get_by_text("Sending one message every half second")).to_be_visible()
    for text in texts:
        expect(message(page, text)).to_have_attribute("data-delivery", "sent")
    # "Sent" stays under the latest only: the ones above it went too.
    expect(message(page, "burst 8").locator(".delivery")).to_have_text("Sent")
    for text in texts[:-1]:
        expect(message(page, text).locator(".delivery")).to_be_hidden()
    expect(page.get_by_text("Sending one message every half second")).to_be_hidden()
    assert bodies(page) == texts
    assert [stored(database, "body").count(text) for text in texts] == [1] * len(texts)
    assert not _has_error(page)


def _has_error(page: Page) -> bool:
    return bool(page.locator("#compose-error").inner_text().strip())
