"""What the browser tests look for on the pages, by role and label where a
person would."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import OpenPage

DESKTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 800}}
"""`open_page` options for a desktop screen."""
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
}
"""`open_page` options for a phone."""
LOOKS = {
    "desktop-light": {**DESKTOP, "color_scheme": "light"},
    "phone-dark": {**PHONE, "color_scheme": "dark"},
}
"""A person's screen and theme, for the tests where layout or colour matter: each
size and each theme once."""


def message_box(page: Page) -> Locator:
    return page.get_by_label("Message", exact=True)


def name_field(page: Page) -> Locator:
    return page.get_by_label("Your name")


def name_error(page: Page) -> Locator:
    return page.locator("#name-error")


def you(page: Page) -> Locator:
    """Your name as the room shows it once the server accepted it."""
    return page.locator("#you-name")


def connection(page: Page) -> Locator:
    """The connection state: its `data-state` is connecting, connected, reconnecting or offline."""
    return page.locator("#connection")


def scroller(page: Page) -> Locator:
    return page.get_by_label("Messages", exact=True)


def shown_messages(page: Page) -> Locator:
    return page.locator("#messages > li")


def message(page: Page, body: str) -> Locator:
    """The one message whose body is exactly `body`."""
    return shown_messages(page).filter(has=page.locator(".body").get_by_text(body, exact=True))


def person(page: Page, username: str) -> Locator:
    """`username` in the people list; its `data-status` is online or offline."""
    return page.locator("#people > li").filter(
        has=page.locator(".person-name").get_by_text(username, exact=True)
    )


def people_names(page: Page) -> list[str]:
    return page.locator("#people .person-name").all_inner_texts()


def bodies(page: Page) -> list[str]:
    """Every message body shown, top to bottom."""
    return page.locator("#messages > li .body").all_text_contents()


def in_the_room(open_page: OpenPage, name: str, **options: Any) -> Page:
    """The room opened with ``?name=``, once the server has accepted the name
    (`options` are `open_page`'s)."""
    page = open_page(f"/chat?name={name}", **options)
    expect(you(page)).to_have_text(name)
    return page


def send(page: Page, body: str) -> None:
    """Type `body` in the message box and press Enter, as a person would."""
    box = message_box(page)
    box.fill(body)
    box.press("Enter")


def delivery(page: Page, body: str) -> Locator:
    """The delivery line ("Sending…", "Sent") under the message `body`."""
    return message(page, body).locator(".delivery")


def people_counts(page: Page) -> Locator:
    """ "2 online / 5 total" above the people list ("Last known: ..." while disconnected)."""
    return page.locator("#people-counts")


def reconnect_now(page: Page) -> Locator:
    """The "Reconnect now" button beside the connection state, shown while reconnecting."""
    return page.get_by_role("button", name="Reconnect now")


def next_try(page: Page) -> Locator:
    """While reconnecting: "Retrying in 3 s", or "Trying now…" during a try."""
    return page.locator("#reconnect-when")


def compose_count(page: Page) -> Locator:
    """The count under the message box near the length limit ("12 characters left")."""
    return page.locator("#compose-count")


def compose_error(page: Page) -> Locator:
    return page.locator("#compose-error")
