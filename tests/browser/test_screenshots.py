"""Screenshots of the home page and the room, light and dark, desktop and phone,
saved under tests/browser/artifacts/ to be looked at. The pages must also hold
together at those sizes: nothing spills out sideways."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import OpenPage, Seed
from tests.browser.ui import connection, in_the_room, message, person, send
from tests.harness.data import seed_users

CONVERSATION = [
    ("grace", 52, "Morning all! Has anyone tried the new supervision page yet?"),
    ("alan", 49, "Yes: I killed the room actor twice and nobody noticed 😄"),
    ("grace", 48, "That is the point of a supervisor, after all."),
    ("barbara", 31, "One for one, one for all, rest for one.\nI still mix up the last two."),
    ("alan", 30, "rest_for_one restarts the crashed child and every child started after it."),
    ("barbara", 29, "Thanks, that finally makes sense."),
    ("linus", 12, "Messages are stored before they are broadcast, so a restart loses nothing."),
    ("grace", 3, "Ada, are you joining the review at eleven?"),
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def seed_conversation(conninfo: str, seed: Seed) -> None:
    now = datetime.now(UTC)
    seed_users(conninfo, ["edsger", "margaret"])
    for username, minutes_ago, body in CONVERSATION:
        seed(username, [body], at=now - timedelta(minutes=minutes_ago))


def fits_the_width(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_screenshots_of_home_and_room(
    open_page: OpenPage, database: str, seed: Seed, artifacts: Path, theme: str
) -> None:
    seed_conversation(database, seed)
    in_the_room(open_page, "grace")

    home = open_page("/", viewport=DESKTOP, color_scheme=theme)
    expect(person(home, "grace")).to_have_attribute("data-status", "online")
    expect(connection(home)).to_have_attribute("data-state", "connected")
    assert fits_the_width(home)
    home.screenshot(path=artifacts / f"home-{theme}.png")

    ada = in_the_room(open_page, "ada", viewport=DESKTOP, color_scheme=theme)
    send(ada, "Yes! On my way. I will bring the restart numbers.")
    expect(message(ada, "Yes! On my way. I will bring the restart numbers.")).to_contain_text(
        "Sent"
    )
    ada.get_by_label("Message", exact=True).fill("See you there")
    expect(ada.locator("#send-button")).not_to_have_class(re.compile("cooling"))
    assert fits_the_width(ada)
    ada.screenshot(path=artifacts / f"room-{theme}.png")

    phone = open_page("/chat", viewport=PHONE, color_scheme=theme, is_mobile=True)
    expect(message(phone, "Yes! On my way. I will bring the restart numbers.")).to_be_visible()
    assert fits_the_width(phone)
    phone.screenshot(path=artifacts / f"room-phone-{theme}.png")
    phone.get_by_role("button", name="People").click()
    expect(person(phone, "ada")).to_be_visible()
    phone.screenshot(path=artifacts / f"room-phone-people-{theme}.png")
    phone.goto("/")
    expect(person(phone, "ada")).to_have_attribute("data-status", "online")
    assert fits_the_width(phone)
    phone.screenshot(path=artifacts / f"home-phone-{theme}.png", full_page=True)
