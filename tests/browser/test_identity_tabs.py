"""One person, several tabs; and the people list shows people (issue #17,
items 2 and 3), as a person meets them in Chromium.

Tabs of one browser are pages of one context (they share its localStorage):
the second tab is that person at once, Leave in one makes the others viewers
with a visible reason, and the person is listed once. A name typed and let go
without a word does not stay in anyone's list, live or after a reload."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import OpenPage
from tests.browser.ui import (
    LOOKS,
    compose_error,
    in_the_room,
    message,
    message_box,
    name_field,
    people_counts,
    person,
    send,
    you,
)


def another_tab(page: Page, errors: list[str]) -> Page:
    """A second tab of `page`'s browser (its context) on the room; its
    uncaught errors go to `errors`."""
    tab = page.context.new_page()
    tab.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    tab.goto("/chat")
    return tab


@pytest.mark.parametrize("looks", LOOKS)
def test_a_second_tab_is_the_same_person_at_once_and_listed_once(
    open_page: OpenPage, looks: str
) -> None:
    bob = open_page("/chat", **LOOKS[looks])
    ann = in_the_room(open_page, "ann", **LOOKS[looks])
    errors: list[str] = []
    tab = another_tab(ann, errors)
    expect(you(tab)).to_have_text("ann")  # no name asked
    expect(name_field(tab)).to_be_hidden()
    expect(message_box(tab)).to_be_visible()

    send(tab, "from my second tab")
    expect(message(bob, "from my second tab")).to_contain_text("ann")
    expect(message(ann, "from my second tab")).to_be_visible()
    for page in (bob, ann, tab):
        expect(person(page, "ann")).to_have_count(1)
        expect(person(page, "ann")).to_have_attribute("data-status", "online")
        expect(people_counts(page)).to_have_text("1 online / 1 total")

    ann.close()  # one tab closes: still online
    expect(message_box(tab)).to_be_enabled()
    send(tab, "still here")
    expect(message(bob, "still here")).to_be_visible()
    expect(person(bob, "ann")).to_have_attribute("data-status", "online")
    tab.close()  # the last one: offline, and listed (she took part)
    expect(person(bob, "ann")).to_have_attribute("data-status", "offline")
    expect(people_counts(bob)).to_have_text("0 online / 1 total")
    assert errors == []


def test_a_tab_open_before_the_name_was_taken_becomes_that_person_at_once(
    open_page: OpenPage,
) -> None:
    ann = open_page("/chat")
    errors: list[str] = []
    tab = another_tab(ann, errors)
    expect(name_field(tab)).to_be_visible()
    name_field(ann).fill("ann")
    ann.get_by_role("button", name="Join").click()
    expect(you(ann)).to_have_text("ann")
    expect(you(tab)).to_have_text("ann")  # never asked, never "taken"
    expect(name_field(tab)).to_be_hidden()
    send(tab, "the same person")
    expect(message(ann, "the same person")).to_be_visible()
    expect(person(tab, "ann")).to_have_count(1)
    expect(people_counts(tab)).to_have_text("1 online / 1 total")
    assert errors == []


@pytest.mark.parametrize("looks", LOOKS)
def test_leave_in_one_tab_makes_the_others_viewers_that_say_why(
    open_page: OpenPage, looks: str
) -> None:
    bob = open_page("/chat", **LOOKS[looks])
    ann = in_the_room(open_page, "ann", **LOOKS[looks])
    errors: list[str] = []
    tab = another_tab(ann, errors)
    expect(you(tab)).to_have_text("ann")
    expect(person(bob, "ann")).to_have_attribute("data-status", "online")

    ann.get_by_role("button", name="Leave").click()
    expect(name_field(tab)).to_be_visible()  # a viewer: asked for a name again
    expect(compose_error(tab)).to_be_visible()
    expect(compose_error(tab)).to_contain_text("You left as ann in another tab")
    expect(name_field(tab)).to_have_value("ann")
    # She never posted: nobody lists her now.
    expect(person(bob, "ann")).to_have_count(0)
    expect(people_counts(bob)).to_have_text("0 online / 0 total")

    # A reload stays a viewer: the browser's token went with the Leave.
    tab.reload()
    expect(name_field(tab)).to_be_visible()
    expect(you(tab)).to_be_hidden()
    expect(people_counts(tab)).to_have_text("0 online / 0 total")
    assert errors == []


def test_a_name_typed_and_abandoned_does_not_stay_listed(open_page: OpenPage) -> None:
    bob = open_page("/chat")
    trying = in_the_room(open_page, "typo")
    expect(person(bob, "typo")).to_have_attribute("data-status", "online")
    trying.get_by_role("button", name="Leave").click()
    expect(person(bob, "typo")).to_have_count(0)
    expect(person(trying, "typo")).to_have_count(0)
    name_field(trying).fill("carol")
    trying.get_by_role("button", name="Join").click()
    expect(you(trying)).to_have_text("carol")
    send(trying, "hello, I am carol")
    expect(message(bob, "hello, I am carol")).to_be_visible()
    trying.close()
    # Carol took part: offline, listed; typo is gone for good.
    expect(person(bob, "carol")).to_have_attribute("data-status", "offline")
    expect(people_counts(bob)).to_have_text("0 online / 1 total")
    bob.reload()
    expect(person(bob, "carol")).to_have_attribute("data-status", "offline")
    expect(person(bob, "typo")).to_have_count(0)
    expect(people_counts(bob)).to_have_text("0 online / 1 total")
