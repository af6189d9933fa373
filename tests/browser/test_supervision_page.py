"""The live supervision page in a real browser: the tree as a picture, pushed
updates as actors die and come back, the event log, sessions as partitions with
counts that expand, a session found by its user's name, and Kill buttons only
where chaos is enabled."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

import web.api
from chatter.config import Environment, Settings
from tests.browser.conftest import OpenPage
from tests.browser.ui import connection, in_the_room, message, send
from tests.harness.server import ChatServer

DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


def box(page: Page, node_id: str) -> Locator:
    """The box drawn for the node with this id."""
    return page.locator(f'.sv-box[data-id="{node_id}"]')


def log_lines(page: Page, kind: str, actor: str) -> Locator:
    return page.locator(f'#log > li[data-kind="{kind}"][data-actor="{actor}"]')


def sessions_count(page: Page) -> Locator:
    return page.locator("#sessions-count")


def session_boxes(page: Page) -> Locator:
    """The sessions drawn in the tree (not those found by name)."""
    return page.locator("#tree .sv-box.session")


def open_every_partition(page: Page, server: ChatServer) -> None:
    """Show the sessions of each partition that has any."""
    for partition in server.tree.sessions.ids():
        toggle = page.get_by_role("button", name=f"Show the sessions of {partition}")
        if toggle.is_enabled():
            toggle.click()
            expect(
                page.get_by_role("button", name=f"Hide the sessions of {partition}")
            ).to_be_visible()


def animations_finish(page: Page) -> None:
    """Wait until every animation that ends (not a pulse that loops) has ended
    or was cancelled (a redraw replaces its element)."""
    page.evaluate(
        """Promise.all(document.getAnimations()
            .filter(a => a.effect.getComputedTiming().iterations !== Infinity)
            .map(a => a.finished.catch(() => null)))"""
    )


def fits_the_width(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_the_page_draws_the_tree_with_strategies_and_restart_types(open_page: OpenPage) -> None:
    page = open_page("/supervision")
    expect(connection(page)).to_have_attribute("data-state", "connected")
    expect(box(page, "root")).to_contain_text("one_for_one")
    expect(box(page, "root")).to_contain_text("supervisor")
    for worker in ("persistence", "presence", "room"):
        expect(box(page, worker)).to_contain_text(worker)
        expect(box(page, worker)).to_contain_text("permanent")
        expect(box(page, worker)).to_contain_text("alive")
        expect(box(page, worker).locator(".sv-restart-count")).to_have_text("0")
    expect(box(page, "sessions")).to_contain_text("sessions")
    expect(box(page, "sessions").locator(".sv-badge.strategy")).not_to_be_empty()
    expect(sessions_count(page)).to_have_text("0 sessions")
    # The root has no supervisor to bring it back: no Kill button on it.
    expect(page.get_by_role("button", name="Kill root")).to_have_count(0)
    expect(page.get_by_role("button", name="Kill room", exact=True)).to_be_visible()
    expect(page.locator("#log")).to_have_attribute("aria-live", "polite")


def test_killing_the_room_is_logged_counted_and_the_chat_keeps_working(
    open_page: OpenPage,
) -> None:
    ann = in_the_room(open_page, "ann")
    bob = in_the_room(open_page, "bob")

    page = open_page("/supervision")
    expect(connection(page)).to_have_attribute("data-state", "connected")
    expect(box(page, "room").locator(".sv-restart-count")).to_have_text("0")

    page.get_by_role("button", name="Kill room", exact=True).click()
    expect(log_lines(page, "exited", "room")).to_have_count(1)
    expect(log_lines(page, "exited", "room")).to_contain_text(
        "asked by the supervision page from 127.0.0.1"
    )
    expect(log_lines(page, "restarted", "room")).to_have_count(1)
    expect(box(page, "room").locator(".sv-restart-count")).to_have_text("1")
    expect(box(page, "room")).to_contain_text("1 restart")
    expect(box(page, "room")).to_have_attribute("data-alive", "true")
    # Newest first: the restart is above the exit.
    kinds = page.locator("#log > li[data-actor='room']").evaluate_all(
        "lines => lines.map(line => line.dataset.kind)"
    )
    assert kinds.index("restarted") < kinds.index("exited"), kinds

    # The chat open elsewhere still delivers, through the restarted room.
    send(ann, "still here after the crash")
    expect(message(bob, "still here after the crash")).to_be_visible()
    expect(message(ann, "still here after the crash").locator(".delivery")).to_have_text("Sent")
    # And the page itself did not reload: the log kept its lines.
    expect(log_lines(page, "exited", "room")).to_have_count(1)


@pytest.mark.parametrize("actor", ["listener", "lease"])
def test_the_listener_and_the_lease_are_shown_and_killed_like_the_others(
    open_page: OpenPage, actor: str
) -> None:
    """The node's commit listener and its lease are in the tree; killing
    either restarts it, and the chat goes on (names kept, messages delivered)."""
    ann = in_the_room(open_page, "ann")
    bob = in_the_room(open_page, "bob")
    page = open_page("/supervision")
    expect(connection(page)).to_have_attribute("data-state", "connected")
    expect(box(page, actor)).to_contain_text("permanent")
    expect(box(page, actor).locator(".sv-restart-count")).to_have_text("0")

    page.get_by_role("button", name=f"Kill {actor}", exact=True).click()
    expect(log_lines(page, "restarted", actor)).to_have_count(1)
    expect(box(page, actor).locator(".sv-restart-count")).to_have_text("1")
    expect(box(page, actor)).to_have_attribute("data-alive", "true")

    send(ann, f"after the {actor} was killed")
    expect(message(bob, f"after the {actor} was killed")).to_be_visible()
    send(bob, "and back")
    expect(message(ann, "and back")).to_be_visible()


def test_sessions_show_as_partitions_with_counts_that_expand_into_killable_sessions(
    open_page: OpenPage, server: ChatServer
) -> None:
    page = open_page("/supervision")
    expect(sessions_count(page)).to_have_text("0 sessions")
    partitions = server.tree.sessions
    expect(box(page, "sessions")).to_contain_text(f"in {partitions.count} partitions")
    for partition in partitions.ids():
        expect(box(page, partition)).to_contain_text("0 sessions")
    in_the_room(open_page, "ann")
    bob = open_page("/chat")
    expect(connection(bob)).to_have_attribute("data-state", "connected")

    expect(sessions_count(page)).to_have_text("2 sessions")  # pushed, not reloaded
    counts = [
        int(box(page, partition).locator(".sv-count").inner_text().split()[0])
        for partition in partitions.ids()
    ]
    assert sum(counts) == 2, counts
    expect(session_boxes(page)).to_have_count(0)  # collapsed
    open_every_partition(page, server)
    expect(session_boxes(page)).to_have_count(2)
    expect(session_boxes(page).get_by_role("button", name="Kill session")).to_have_count(2)

    # Killing one session closes that connection; the counts follow.
    session_boxes(page).get_by_role("button", name="Kill session").first.click()
    expect(page.locator('#log > li[data-kind="exited"]')).to_have_count(1)
    expect(sessions_count(page)).to_have_text("1 session")
    expect(session_boxes(page)).to_have_count(1)


def test_a_partition_shows_the_sessions_the_tree_lists_and_pages_in_the_rest(
    open_page: OpenPage, server: ChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(web.api, "MAX_LISTED_PER_PARTITION", 1)
    chats = [open_page("/chat") for _ in range(6)]
    for chat in chats:
        expect(connection(chat)).to_have_attribute("data-state", "connected")
    page = open_page("/supervision")
    expect(sessions_count(page)).to_have_text("6 sessions")
    counts = {
        partition: int(box(page, partition).locator(".sv-count").inner_text().split()[0])
        for partition in server.tree.sessions.ids()
    }
    fullest = max(counts, key=lambda partition: counts[partition])
    assert counts[fullest] >= 2, counts
    page.get_by_role("button", name=f"Show the sessions of {fullest}").click()
    listed = page.locator(f'[id="sessions-list-{fullest}"] .sv-box.session')
    expect(listed).to_have_count(1)  # what the tree lists
    page.get_by_role("button", name=f"Show {counts[fullest] - 1} more").click()
    expect(listed).to_have_count(counts[fullest])


def test_a_session_is_found_by_its_users_name_and_killed_from_there(
    open_page: OpenPage,
) -> None:
    in_the_room(open_page, "ann")
    grace = in_the_room(open_page, "grace")
    page = open_page("/supervision")
    expect(sessions_count(page)).to_have_text("2 sessions")
    page.get_by_label("Find a session by its user's name").fill("GRA")
    page.get_by_role("button", name="Find", exact=True).click()
    expect(page.locator("#find-status")).to_have_text("1 session found for “GRA”.")
    (found,) = page.locator("#found .sv-box.session").all()
    expect(found).to_contain_text("grace · session-")
    expect(found.locator(".sv-badge.partition")).to_contain_text("sessions.")
    found.get_by_role("button", name="Kill session").click()
    expect(connection(grace)).not_to_have_attribute("data-state", "connected")
    expect(sessions_count(page)).not_to_have_text("2 sessions")
    page.get_by_label("Find a session by its user's name").fill("nobody")
    page.get_by_role("button", name="Find", exact=True).click()
    expect(page.locator("#find-status")).to_contain_text("No session here holds a name")
    expect(page.locator("#found .sv-box")).to_have_count(0)


def test_no_kill_buttons_where_chaos_is_off(open_page: OpenPage, server: ChatServer) -> None:
    server.stop()
    server.start(Settings(env=Environment.PROD, secret_key_base="x" * 32))
    page = open_page("/supervision")
    expect(box(page, "room")).to_contain_text("permanent")
    expect(page.locator("#chaos-note")).to_contain_text("Chaos is off")
    expect(page.get_by_role("button", name="Kill room")).to_have_count(0)
    expect(page.locator(".sv-kill:visible")).to_have_count(0)


def test_a_refused_kill_hides_the_buttons(open_page: OpenPage) -> None:
    """Should the server turn chaos off under an open page, the first 403 hides every button."""
    page = open_page("/supervision")
    page.route(
        "**/api/supervision/kill",
        lambda route: route.fulfill(
            status=403,
            content_type="application/json",
            body='{"error": "forbidden", "message": "chaos is off in prod"}',
        ),
    )
    page.get_by_role("button", name="Kill room", exact=True).click()
    expect(page.locator("#chaos-note")).to_contain_text("Chaos is off")
    expect(page.locator(".sv-kill:visible")).to_have_count(0)
    expect(box(page, "room").locator(".sv-restart-count")).to_have_text("0")


def expect_at_the_top(page: Page) -> None:
    page.wait_for_function("window.scrollY === 0")


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_screenshots_of_the_supervision_page(
    open_page: OpenPage, server: ChatServer, artifacts: Path, theme: str
) -> None:
    in_the_room(open_page, "ann")
    open_page("/chat?name=grace")
    page = open_page("/supervision", viewport=DESKTOP, color_scheme=theme)
    expect(connection(page)).to_have_attribute("data-state", "connected")
    expect(sessions_count(page)).to_have_text("2 sessions")
    page.get_by_role("button", name="Kill presence", exact=True).click()
    expect(box(page, "presence").locator(".sv-restart-count")).to_have_text("1")
    open_every_partition(page, server)
    expect(session_boxes(page)).to_have_count(2)
    animations_finish(page)  # the restart's flash
    assert fits_the_width(page)
    # From the top: the header sticks to where the page was scrolled (the Kill).
    page.evaluate("window.scrollTo(0, 0)")
    expect_at_the_top(page)
    page.screenshot(path=artifacts / f"supervision-{theme}.png", full_page=True)

    phone = open_page("/supervision", viewport=PHONE, color_scheme=theme)
    expect(box(phone, "room")).to_be_visible()
    assert fits_the_width(phone)
    phone.screenshot(path=artifacts / f"supervision-phone-{theme}.png", full_page=True)
