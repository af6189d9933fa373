"""The room and the home page as people use them (issue #17): where the keyboard
goes, what the people list says while the connection is lost, how soon a lost
connection comes back, and the small things: the phone's People popover, the
"Sent" line, the length limit, right-to-left text, contrast, and the links to
the live supervision tree."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, Route, expect

from chatter.config import Environment, Settings
from chatter.messages import MAX_BODY_CHARS
from tests.browser.conftest import OpenPage, Seed, SeedPeople
from tests.browser.ui import (
    DESKTOP,
    LOOKS,
    PHONE,
    compose_count,
    compose_error,
    connection,
    delivery,
    in_the_room,
    message,
    message_box,
    name_field,
    next_try,
    people_counts,
    person,
    reconnect_now,
    send,
    shown_messages,
    you,
)
from tests.harness.data import stored
from tests.harness.server import ChatServer

RETRYING = re.compile(r"^Retrying in (\d+) s$")
VISIBLE_CAP_S = 4
"""The longest wait between tries while the page is visible (connection.js)."""
HIDDEN_CAP_S = 15


def look(name: str) -> dict[str, Any]:
    return LOOKS[name]


def in_view(page: Page, *selectors: str) -> None:
    """Each of `selectors` is wholly on screen, not pushed out sideways."""
    width = page.viewport_size["width"] if page.viewport_size else 0
    for selector in selectors:
        box = page.locator(selector).bounding_box()
        assert box is not None, f"{selector} is not shown"
        assert box["x"] >= 0, (selector, box)
        assert box["x"] + box["width"] <= width, (selector, box, width)


# -- 1. keyboard focus ------------------------------------------------------------------

ROOM_SCRIPT = re.compile(r"/static/js/room\.js")
HELD_ROOM_SCRIPT = """
await new Promise((go) => {
  const check = () => (window.testRunRoom ? go() : setTimeout(check, 20));
  check();
});
await import("/static/js/room.js?held");
"""
"""Stands in for the room's script until the test sets `testRunRoom` (before or
after this runs): what a slow network does to a person who starts typing at once."""


@pytest.mark.parametrize("looks", LOOKS)
def test_after_enter_the_room_what_is_typed_at_once_goes_into_the_message_box_and_out(
    open_page: OpenPage, database: str, looks: str
) -> None:
    page = open_page("/", **look(looks))
    expect(connection(page)).to_have_attribute("data-state", "connected")
    held = [True]

    def hold_the_room_script(route: Route) -> None:
        if held[0]:
            held[0] = False
            route.fulfill(body=HELD_ROOM_SCRIPT, content_type="text/javascript")
        else:
            route.continue_()

    page.route(ROOM_SCRIPT, hold_the_room_script)
    page.get_by_label("Choose a name").fill("ada")
    page.get_by_role("button", name="Enter the room").click()
    box = message_box(page)
    expect(box).to_be_focused()  # before the room's script has even run
    page.keyboard.type("typed at once")
    assert not held[0], "the room's script was not held"
    page.evaluate("window.testRunRoom = true")
    expect(you(page)).to_have_text("ada")
    expect(box).to_have_value("typed at once")
    expect(box).to_be_focused()
    page.keyboard.press("Enter")
    expect(delivery(page, "typed at once")).to_have_text("Sent")
    assert stored(database, "body") == ["typed at once"]

    # After Leave the keyboard is on the name field, and Enter there joins again
    # and hands it back to the message box.
    page.get_by_role("button", name="Leave").click()
    expect(name_field(page)).to_be_focused()
    expect(name_field(page)).to_have_value("ada")
    page.keyboard.press("Enter")
    expect(you(page)).to_have_text("ada")
    expect(box).to_be_focused()
    page.keyboard.type("back again")
    page.keyboard.press("Enter")
    expect(delivery(page, "back again")).to_have_text("Sent")


# -- 4. presence while disconnected -----------------------------------------------------


@pytest.mark.parametrize("looks", LOOKS)
def test_while_disconnected_the_people_show_as_last_known_until_the_next_welcome(
    open_page: OpenPage, server: ChatServer, looks: str
) -> None:
    bob = in_the_room(open_page, "bob")
    ann = in_the_room(open_page, "ann", **look(looks))
    home = open_page("/", **look(looks))
    for page in (ann, home):
        expect(people_counts(page)).to_have_text("2 online / 2 total")
        expect(person(page, "ann")).to_have_attribute("data-status", "online")

    server.stop()
    for page in (ann, home):
        expect(connection(page)).to_have_attribute("data-state", "reconnecting")
        for name in ("ann", "bob"):  # the person included
            expect(person(page, name)).to_have_attribute("data-status", "unknown")
            expect(person(page, name)).to_have_attribute("data-last-known", "online")
            expect(person(page, name).locator(".person-status")).to_have_text("Last known: online")
        expect(page.locator("#people")).to_have_attribute("data-presence", "unknown")
        expect(people_counts(page)).to_have_text("Last known: 2 online / 2 total")
    expect(ann.locator("#people-toggle-count")).to_have_text("2 online?")

    server.start()
    for page in (bob, ann, home):  # back without waiting out the backoff
        page.evaluate("dispatchEvent(new Event('online'))")
    for page in (ann, home):
        expect(connection(page)).to_have_attribute("data-state", "connected")
        expect(person(page, "ann")).to_have_attribute("data-status", "online")
        expect(page.locator("#people")).to_have_attribute("data-presence", "known")
        expect(people_counts(page)).to_have_text("2 online / 2 total")
    expect(ann.locator("#people-toggle-count")).to_have_text("2 online")


# -- 5. reconnecting promptly -----------------------------------------------------------


def pause_the_clock(page: Page) -> None:
    """From now on the page's timers fire only when the test moves its time on:
    a backoff timer never ends a wait by itself."""
    page.clock.pause_at(page.evaluate("Date.now()") / 1000 + 1)


RECORD_WAITS = """() => {
  window.testWaits = [];
  let trying = true;
  const when = document.getElementById("reconnect-when");
  new MutationObserver(() => {
    const text = when.textContent;
    if (text === "Trying now…") trying = true;
    else if (trying && text.startsWith("Retrying in")) {
      trying = false;
      window.testWaits.push(Number(text.match(/\\d+/)[0]));
    }
  }).observe(when, {childList: true, characterData: true, subtree: true});
}"""
"""Keep the wait the page announces after each failed try, in seconds, before
its countdown runs down: the page's full backoff, whenever the try failed."""


def waits(page: Page) -> list[int]:
    result: list[int] = page.evaluate("window.testWaits")
    return result


def until_waiting(page: Page) -> None:
    """Until no try is under way: the page waits for its next one."""
    expect(next_try(page)).to_have_text(RETRYING)


def set_visibility(page: Page, state: str) -> str:
    """Make the tab hidden or visible as far as the page can tell, and tell it;
    what the page says of its next try right after."""
    text: str = page.evaluate(
        """state => {
          Object.defineProperty(document, "visibilityState", {value: state, configurable: true});
          document.dispatchEvent(new Event("visibilitychange"));
          return document.getElementById("reconnect-when").textContent;
        }""",
        state,
    )
    return text


def test_retries_come_within_four_seconds_while_visible_and_at_once_when_shown_again(
    open_page: OpenPage, server: ChatServer
) -> None:
    page = in_the_room(open_page, "ann", fake_clock=True, **DESKTOP)
    pause_the_clock(page)
    page.evaluate(RECORD_WAITS)
    server.stop()
    while len(waits(page)) < 9:  # a long outage: the backoff has long reached its cap
        until_waiting(page)
        page.clock.run_for(20_000)  # the next try goes out, and fails
    until_waiting(page)
    visible = waits(page)
    assert max(visible) <= VISIBLE_CAP_S, visible
    assert visible[-1] >= VISIBLE_CAP_S // 2, visible

    # A hidden tab spares the server: it waits longer.
    set_visibility(page, "hidden")
    page.clock.run_for(20_000)
    until_waiting(page)
    hidden = waits(page)[len(visible) :]
    assert hidden, "no try failed while hidden"
    assert all(VISIBLE_CAP_S < wait <= HIDDEN_CAP_S for wait in hidden), hidden

    # Shown again, it tries at once, and is back on the next try within the cap.
    assert set_visibility(page, "visible") == "Trying now…"
    until_waiting(page)
    assert waits(page)[-1] <= VISIBLE_CAP_S, waits(page)
    server.start()
    page.clock.run_for(VISIBLE_CAP_S * 1000)
    expect(connection(page)).to_have_attribute("data-state", "connected")
    expect(reconnect_now(page)).to_be_hidden()
    expect(you(page)).to_have_text("ann")


@pytest.mark.parametrize("looks", LOOKS)
def test_reconnect_now_and_going_online_reconnect_at_once(
    open_page: OpenPage, server: ChatServer, looks: str
) -> None:
    page = in_the_room(open_page, "ann", fake_clock=True, **look(looks))
    pause_the_clock(page)  # the backoff timer never fires: only what the test does reconnects
    expect(reconnect_now(page)).to_be_hidden()

    server.stop()
    expect(reconnect_now(page)).to_be_visible()
    until_waiting(page)
    in_view(page, ".brand-mark", ".connection-dot", "#reconnect-now", "#theme-toggle")
    server.start()
    page.locator(".brand").focus()
    page.keyboard.press("Tab")  # the next stop after the home link
    expect(reconnect_now(page)).to_be_focused()
    page.keyboard.press("Enter")
    expect(connection(page)).to_have_attribute("data-state", "connected")
    expect(reconnect_now(page)).to_be_hidden()
    expect(message_box(page)).to_be_focused()  # not lost with the button

    server.stop()
    until_waiting(page)
    server.start()
    page.evaluate("dispatchEvent(new Event('online'))")
    expect(connection(page)).to_have_attribute("data-state", "connected")
    send(page, "back")
    expect(delivery(page, "back")).to_have_text("Sent")


# -- 6. the small things ----------------------------------------------------------------


def test_the_phone_people_popover_closes_with_escape_and_a_tap_outside(
    open_page: OpenPage,
) -> None:
    page = in_the_room(open_page, "ann", **look("phone-dark"))
    toggle = page.get_by_role("button", name=re.compile(r"^People"))
    panel = page.locator("#people-panel")
    expect(panel).to_be_hidden()

    toggle.tap()
    expect(person(page, "ann")).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(toggle).to_be_focused()

    toggle.tap()
    expect(panel).to_be_visible()
    person(page, "ann").tap()  # inside: stays open
    expect(panel).to_be_visible()
    page.locator("#room-title").tap()  # takes no focus: it goes back to the toggle
    expect(panel).to_be_hidden()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(toggle).to_be_focused()

    toggle.tap()
    expect(panel).to_be_visible()
    message_box(page).tap()  # takes focus: it stays there
    expect(panel).to_be_hidden()
    expect(message_box(page)).to_be_focused()


def test_sent_shows_under_the_latest_own_message_only(open_page: OpenPage) -> None:
    page = in_the_room(open_page, "ann")
    send(page, "first")
    expect(delivery(page, "first")).to_have_text("Sent")
    send(page, "second")
    expect(delivery(page, "second")).to_have_text("Sent")
    expect(delivery(page, "first")).to_be_hidden()
    expect(message(page, "first")).to_have_attribute("data-delivery", "sent")


def test_a_message_over_the_limit_is_counted_refused_and_kept_counting_as_the_server(
    open_page: OpenPage, database: str
) -> None:
    page = in_the_room(open_page, "ann")
    box = message_box(page)
    box.fill("a" * 100)
    expect(compose_count(page)).to_be_hidden()
    box.fill("a" * (MAX_BODY_CHARS - 5))
    expect(compose_count(page)).to_have_text("5 characters left")

    too_long = "b" * (MAX_BODY_CHARS + 3)
    box.fill(too_long)
    expect(compose_count(page)).to_have_text("3 characters too many")
    box.press("Enter")
    expect(compose_error(page)).to_contain_text(f"at most {MAX_BODY_CHARS:,} characters")
    expect(box).to_have_value(too_long)  # not a character cut
    expect(shown_messages(page)).to_have_count(0)

    # The server counts code points after trimming: an emoji is one character,
    # though two UTF-16 units, and the spaces around do not count.
    emoji = "😀" * MAX_BODY_CHARS
    box.fill(f"  {emoji}\n ")
    expect(compose_count(page)).to_have_text("0 characters left")
    box.press("Enter")
    expect(delivery(page, emoji)).to_have_text("Sent")
    expect(compose_count(page)).to_be_hidden()
    assert stored(database, "body") == [emoji]


def test_right_to_left_names_and_messages_are_isolated(open_page: OpenPage) -> None:
    ann = in_the_room(open_page, "ann")
    dani = in_the_room(open_page, "דני")
    send(dani, "שלום (#2502)")
    send(ann, "hello (#2503)")
    for page in (ann, dani):
        expect(message(page, "שלום (#2502)").locator(".body")).to_have_css("direction", "rtl")
        expect(message(page, "hello (#2503)").locator(".body")).to_have_css("direction", "ltr")
        expect(message(page, "שלום (#2502)").locator(".author")).to_have_css(
            "unicode-bidi", "isolate"
        )
        expect(person(page, "דני").locator(".person-name")).to_have_css("unicode-bidi", "isolate")
    expect(you(dani)).to_have_css("unicode-bidi", "isolate")


# -- contrast -----------------------------------------------------------------------------

SMALL_TEXT = {
    "/chat": [
        ".ago",
        ".author",
        ".message[data-delivery='sent'] .delivery",
        "#compose-hint",
        "#compose-count",
        ".field-label",
        "#people-counts",
        ".person.online .person-status",
        ".person.offline .person-status",
        ".person.offline .person-name",
        ".people .you-badge",
        ".people-toggle-count",
        ".history-text",
        ".connection-text",
        ".reconnect-when",
        ".tree-link",
    ],
    "/": [
        ".footer p",
        ".field-hint",
        ".lede",
        ".features li span",
        "#people-counts",
        ".person.offline .person-status",
        ".person.offline .person-name",
        ".read-first a",
        ".tree-first a",
        ".connection-text",
    ],
}
"""Small and secondary text on each page, each checked against WCAG AA (4.5:1)."""

COLOURS = """selector => [...document.querySelectorAll(selector)].slice(0, 3).map(element => {
  const layers = [];
  for (let node = element; node; node = node.parentElement) {
    const background = getComputedStyle(node).backgroundColor;
    layers.push(background);
    if (/^rgb\\(/.test(background)) break;  // opaque: nothing below shows through
  }
  return {text: getComputedStyle(element).color, layers};
})"""
"""For each element (the first three) its text colour and the backgrounds from
itself up to the first opaque one."""

NUMBER = r"[\d.]+%?"


def rgba(css: str) -> tuple[float, float, float, float]:
    """A computed colour (rgb(), rgba() or color(srgb ...)) as 0..1 channels and alpha."""
    numbers = [float(n.rstrip("%")) for n in re.findall(NUMBER, css)]
    if css.startswith("color(srgb"):
        red, green, blue = numbers[:3]
    elif css.startswith("rgb"):
        red, green, blue = (n / 255 for n in numbers[:3])
    else:
        raise AssertionError(f"a colour this test cannot read: {css}")
    alpha = numbers[3] if len(numbers) > 3 else 1.0
    return red, green, blue, alpha


def over(top: tuple[float, ...], below: tuple[float, ...]) -> tuple[float, float, float]:
    """`top` (with its alpha) painted over the opaque `below`."""
    alpha = top[3]
    return (
        top[0] * alpha + below[0] * (1 - alpha),
        top[1] * alpha + below[1] * (1 - alpha),
        top[2] * alpha + below[2] * (1 - alpha),
    )


def luminance(colour: tuple[float, float, float]) -> float:
    """WCAG 2 relative luminance."""

    def linear(channel: float) -> float:
        return channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4

    red, green, blue = (linear(channel) for channel in colour)
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast(text: str, layers: list[str]) -> float:
    """The WCAG contrast ratio of `text` on the `layers` (innermost first)."""
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)  # the canvas
    for layer in reversed(layers):
        background = over(rgba(layer), background)
    foreground = over(rgba(text), background)
    lighter, darker = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def too_faint(page: Page, where: str, selectors: list[str]) -> list[str]:
    """Each element matching `selectors` on `page` whose text is below WCAG AA
    (4.5:1) against what is behind it; every selector must match something."""
    faint = []
    for selector in selectors:
        found = page.evaluate(COLOURS, selector)
        assert found, f"nothing on {where} matches {selector}"
        for colours in found:
            ratio = contrast(colours["text"], colours["layers"])
            if ratio < 4.5:
                faint.append(f"{where} {selector}: {ratio:.2f} ({colours})")
    return faint


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_small_text_reaches_wcag_aa_contrast_in_both_themes(
    open_page: OpenPage, seed: Seed, seed_people: SeedPeople, theme: str
) -> None:
    seed_people(["zoe"])
    seed("bob", ["an older message"])
    page = in_the_room(open_page, "ann", color_scheme=theme, **DESKTOP)
    send(page, "mine")
    expect(delivery(page, "mine")).to_have_text("Sent")
    message_box(page).fill("x" * MAX_BODY_CHARS)  # the count shows
    expect(page.get_by_text("this is the very first message")).to_be_visible()
    home = open_page("/", color_scheme=theme, **DESKTOP)
    expect(person(home, "zoe")).to_have_attribute("data-status", "offline")

    assert (
        too_faint(page, "/chat", SMALL_TEXT["/chat"]) + too_faint(home, "/", SMALL_TEXT["/"]) == []
    )


PHONE_POPOVER_TEXT = [
    "#people-counts",
    ".person.online .person-status",
    ".person.offline .person-status",
    ".person.offline .person-name",
    ".people .you-badge",
    ".people-toggle-count",
]
"""What the phone's People popover shows, over the popover's own background."""


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_phone_people_popover_reaches_wcag_aa_contrast_in_both_themes(
    open_page: OpenPage, seed: Seed, seed_people: SeedPeople, theme: str
) -> None:
    seed_people(["zoe"])
    seed("bob", ["an older message"])
    page = in_the_room(open_page, "ann", color_scheme=theme, **PHONE)
    page.get_by_role("button", name=re.compile(r"^People")).click()
    expect(person(page, "zoe")).to_be_visible()
    assert too_faint(page, "the popover", PHONE_POPOVER_TEXT) == []


# -- links to the supervision tree ------------------------------------------------------


def test_home_and_room_link_to_the_live_tree_in_dev_and_test_and_not_in_production(
    open_page: OpenPage, server: ChatServer
) -> None:
    home = open_page("/", **DESKTOP)
    home.get_by_role("link", name="See the live supervision tree behind it").click()
    expect(home).to_have_url(re.compile(r"/supervision$"))
    for looks in LOOKS:
        room = open_page("/chat", **look(looks))
        expect(connection(room)).to_have_attribute("data-state", "connected")
        in_view(room, ".room-title", ".tree-link", "#theme-toggle")
        if looks.startswith("phone"):
            in_view(room, "#people-toggle")
            title, link = (
                room.locator(".room-title").bounding_box(),
                room.locator(".tree-link").bounding_box(),
            )
            assert title is not None
            assert link is not None
            assert title["x"] + title["width"] <= link["x"], (title, link)
        room.get_by_role("link", name="Live tree").click()
        expect(room).to_have_url(re.compile(r"/supervision$"))

    server.stop()
    server.start(Settings(env=Environment.PROD, secret_key_base="x" * 32))
    home = open_page("/")
    expect(home.get_by_role("link", name="Just read the room first")).to_be_visible()
    expect(home.locator("a[href='/supervision']")).to_have_count(0)
    room = open_page("/chat")
    expect(connection(room)).to_have_attribute("data-state", "connected")
    expect(room.locator("a[href='/supervision']")).to_have_count(0)
