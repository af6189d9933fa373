"""Refusals and outages as a person meets them: each is shown, and nothing typed is lost."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from playwright.sync_api import Page, WebSocketRoute, expect

from tests.browser.conftest import OpenPage
from tests.browser.ui import (
    connection,
    in_the_room,
    message,
    message_box,
    send,
    shown_messages,
    you,
)
from tests.harness.data import stored

REFUSED_ONCE = {"slow down please": "rate_limited", "is the database there?": "unavailable"}
"""Bodies whose first post the test answers itself, as the server would when busy."""

Intercept = Callable[[WebSocketRoute, dict[str, Any]], bool]


def between_page_and_server(page: Page, intercept: Intercept) -> None:
    """Route the page's chat socket through the test: each frame the page sends
    goes to `intercept(socket, frame)` first, and on to the server unless that
    says it took the frame (True)."""

    def route(socket: WebSocketRoute) -> None:
        server = socket.connect_to_server()

        def from_page(text: str | bytes) -> None:
            if not intercept(socket, json.loads(text)):
                server.send(text)

        socket.on_message(from_page)

    page.route_web_socket(re.compile(r"/ws"), route)


def test_refusals_from_the_server_are_shown_and_nothing_typed_is_lost(
    open_page: OpenPage, database: str
) -> None:
    page = open_page(None)
    refused: set[str] = set()

    def refuse_once(socket: WebSocketRoute, frame: dict[str, Any]) -> bool:
        code = REFUSED_ONCE.get(frame.get("body", ""))
        if frame["type"] == "post" and code and frame["client_id"] not in refused:
            refused.add(frame["client_id"])
            refusal = {"type": "error", "code": code, "client_id": frame["client_id"]}
            socket.send(json.dumps(refusal | {"message": "busy", "retry_after_ms": 400}))
            return True
        return False

    between_page_and_server(page, refuse_once)
    page.goto("/chat?name=ann")
    expect(you(page)).to_have_text("ann")

    send(page, "slow down please")
    expect(page.locator("#compose-error")).to_contain_text("sending quickly")
    expect(message(page, "slow down please").locator(".delivery")).to_have_text("Sent")
    expect(page.locator("#compose-error")).to_be_empty()

    send(page, "is the database there?")
    expect(page.locator("#compose-error")).to_contain_text("Retrying by itself")
    expect(message(page, "is the database there?").locator(".delivery")).to_have_text("Sent")

    # A body the server refuses for good comes back into the box, with the reason.
    send(page, "a bell \u0007 rings")
    expect(page.locator("#compose-error")).to_contain_text("control character")
    expect(message_box(page)).to_have_value("a bell \u0007 rings")
    expect(shown_messages(page)).to_have_count(2)
    assert len(refused) == 2
    assert stored(database, "body").count("slow down please") == 1
    assert stored(database, "body").count("is the database there?") == 1


def test_offline_shows_and_what_is_typed_meanwhile_goes_out_once_back_online(
    open_page: OpenPage, database: str
) -> None:
    page = in_the_room(open_page, "ann")
    expect(connection(page)).to_have_attribute("data-state", "connected")
    page.context.set_offline(True)
    expect(connection(page)).to_have_attribute("data-state", "offline")
    expect(connection(page)).to_have_text("Offline")
    send(page, "written on the train")
    expect(message(page, "written on the train").locator(".delivery")).to_have_text(
        "Waiting for the connection…"
    )
    page.context.set_offline(False)
    expect(connection(page)).to_have_attribute("data-state", "connected")
    expect(message(page, "written on the train").locator(".delivery")).to_have_text("Sent")
    assert stored(database, "body").count("written on the train") == 1


def test_the_room_works_with_the_keyboard_alone(open_page: OpenPage) -> None:
    page = open_page("/chat")
    expect(connection(page)).to_have_attribute("data-state", "connected")

    def tab_to(label: str) -> None:
        target = page.get_by_label(label, exact=True)
        for _ in range(20):
            page.keyboard.press("Tab")
            if target.evaluate("el => el === document.activeElement"):
                return
        raise AssertionError(f"Tab never reached {label!r}")

    tab_to("Your name")
    page.keyboard.type("keys")
    page.keyboard.press("Enter")
    expect(you(page)).to_have_text("keys")
    # The name field goes away once joined: the keyboard moves on to the message box.
    expect(message_box(page)).to_be_focused()
    page.keyboard.type("no mouse needed")
    page.keyboard.press("Enter")
    expect(message(page, "no mouse needed").locator(".delivery")).to_have_text("Sent")
    expect(message_box(page)).to_be_focused()


def test_the_theme_switches_and_is_remembered(open_page: OpenPage) -> None:
    page = open_page("/", color_scheme="light")
    html = page.locator("html")
    expect(html).to_have_attribute("data-theme", "light")
    page.get_by_role("button", name="Switch to dark theme").click()
    expect(html).to_have_attribute("data-theme", "dark")
    page.goto("/chat")
    expect(html).to_have_attribute("data-theme", "dark")
    expect(page.get_by_role("button", name="Switch to light theme")).to_be_visible()


def test_a_reload_keeps_the_draft_and_sends_what_was_never_acked_once(
    open_page: OpenPage, database: str
) -> None:
    page = open_page(None)
    holding = [True]

    def lose_posts(socket: WebSocketRoute, frame: dict[str, Any]) -> bool:
        return holding[0] and frame["type"] == "post"  # lost, as on a dying connection

    between_page_and_server(page, lose_posts)
    page.goto("/chat?name=ann")
    expect(you(page)).to_have_text("ann")
    send(page, "never acked")
    expect(message(page, "never acked").locator(".delivery")).to_have_text("Sending…")
    message_box(page).fill("half-written")

    holding[0] = False
    page.reload()
    expect(you(page)).to_have_text("ann")
    expect(message(page, "never acked").locator(".delivery")).to_have_text("Sent")
    expect(message_box(page)).to_have_value("half-written")
    assert stored(database, "body").count("never acked") == 1
