"""What the browser tests look for on the pages, by role and label where a
person would, and the data they set up in the database."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import psycopg
from playwright.sync_api import Locator, Page

from chatter.usernames import username_key


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


def send(page: Page, body: str) -> None:
    """Type `body` in the message box and press Enter, as a person would."""
    box = message_box(page)
    box.fill(body)
    box.press("Enter")


def seed_messages(
    conninfo: str, username: str, texts: Sequence[str], at: datetime | None = None
) -> None:
    """Store `texts` as messages of `username` (created if new), straight into the database."""
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "INSERT INTO users (username, username_key, last_seen_at) "
            "VALUES (%s, %s, now() - interval '1 hour') "
            "ON CONFLICT (username_key) DO UPDATE SET updated_at = now() RETURNING id",
            (username, username_key(username)),
        ).fetchone()
        assert row is not None
        columns = "user_id, body" + (", inserted_at" if at is not None else "")
        with conn.cursor().copy(f"COPY messages ({columns}) FROM STDIN") as copy:
            for text in texts:
                copy.write_row((row[0], text) if at is None else (row[0], text, at))


def seed_users(conninfo: str, usernames: Sequence[str]) -> None:
    """Users who joined once and are offline now."""
    with psycopg.connect(conninfo) as conn:
        for username in usernames:
            conn.execute(
                "INSERT INTO users (username, username_key, last_seen_at) "
                "VALUES (%s, %s, now() - interval '1 hour') ON CONFLICT DO NOTHING",
                (username, username_key(username)),
            )


def stored_count(conninfo: str, body: str) -> int:
    """How many stored messages have exactly this body."""
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT count(*) FROM messages WHERE body = %s", (body,)).fetchone()
        assert row is not None
        return int(row[0])
