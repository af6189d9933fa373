"""The supervision page as a lesson (issue #17), in a real browser: the legend
says what each word on screen means and links to its section of the guide; each
Kill says beforehand what it will do; a restart stays highlighted with its count
and the intensity left; a slowed restart is seen restarting; sessions are named
by who they are and their comings and goings folded; the tree links back to the
room; and each step of the guided exercise shows what it says you should see,
up to the whole process exiting and coming back."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from chatter.config import Environment, Settings
from tests.browser.conftest import OpenPage, off_the_loop
from tests.browser.ui import connection, in_the_room, person, you
from tests.harness.process import StartServe
from tests.harness.server import ChatServer

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
VIEWS: dict[str, dict[str, Any]] = {
    "desktop-light": {"viewport": DESKTOP, "color_scheme": "light"},
    "desktop-dark": {"viewport": DESKTOP, "color_scheme": "dark"},
    "phone-light": {
        "viewport": PHONE,
        "color_scheme": "light",
        "is_mobile": True,
        "has_touch": True,
    },
    "phone-dark": {"viewport": PHONE, "color_scheme": "dark", "is_mobile": True, "has_touch": True},
}
BOTH_SIZES_AND_THEMES = ["desktop-light", "phone-dark"]
"""For the items that are not about layout first: each size and each theme once."""

SECTIONS = {
    "one_for_one": ("3-strategies", "only that child is restarted"),
    "permanent": ("4-restart-types-and-exit-reasons", "Always restarted"),
    "transient": ("4-restart-types-and-exit-reasons", "only after a crash or a kill"),
    "temporary": ("4-restart-types-and-exit-reasons", "Never restarted"),
    "intensity": ("5-restart-intensity", "3 restarts in 5 seconds"),
}


def box(page: Page, node_id: str) -> Locator:
    return page.locator(f'.sv-box[data-id="{node_id}"]')


def restart_event(page: Page, node_id: str) -> Locator:
    """The highlighted restart on a node's box, while it is shown."""
    return box(page, node_id).locator(".sv-restart-event")


def kill_button(page: Page, node_id: str) -> Locator:
    return page.get_by_role("button", name=f"Kill {node_id}", exact=True)


def server_status(page: Page) -> Locator:
    return page.locator("#server-status")


def open_every_partition(page: Page, server: ChatServer) -> None:
    """Show the sessions of each partition that has any."""
    for partition in server.tree.sessions.ids():
        toggle = page.get_by_role("button", name=f"Show the sessions of {partition}")
        if toggle.is_enabled():
            toggle.click()
            expect(
                page.get_by_role("button", name=f"Hide the sessions of {partition}")
            ).to_be_visible()


def fits_the_width(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def color_of(locator: Locator) -> str:
    return str(locator.evaluate("element => getComputedStyle(element).color"))


def danger_color(page: Page) -> str:
    """The theme's --danger as a computed color, to compare with."""
    return str(
        page.evaluate(
            """() => {
                const probe = document.createElement("span");
                probe.style.color = "var(--danger)";
                document.body.append(probe);
                const color = getComputedStyle(probe).color;
                probe.remove();
                return color;
            }"""
        )
    )


@pytest.mark.parametrize("view", list(VIEWS))
def test_the_legend_says_what_each_word_means_and_links_to_its_section(
    open_page: OpenPage, view: str
) -> None:
    page = open_page("/supervision", **VIEWS[view])
    expect(connection(page)).to_have_attribute("data-state", "connected")
    for word, (section, meaning) in SECTIONS.items():
        item = page.locator(f"#word-{word}")
        expect(item).to_be_visible()
        expect(item).to_contain_text(meaning)
        expect(item.get_by_role("link")).to_have_attribute("href", f"/docs/supervision#{section}")
    # What each Kill will do, said before it is pressed (and read out with the button).
    room = "Kill: root restarts it (permanent), restart 1 of 3 in 5 s."
    expect(box(page, "room").locator(".sv-predict")).to_have_text(room)
    expect(kill_button(page, "room")).to_have_accessible_description(room)
    expect(box(page, "sessions.0").locator(".sv-predict")).to_contain_text(
        "sessions restarts it: its sessions close and their tabs reconnect"
    )
    # A word on a node leads to its meaning.
    box(page, "root").get_by_role("link", name="one_for_one").click()
    expect(page).to_have_url(re.compile("#word-one_for_one$"))
    assert fits_the_width(page)

    # The section the legend links to is served, at its anchor.
    page.locator("#word-intensity").get_by_role("link").click()
    expect(page).to_have_url(re.compile("/docs/supervision#5-restart-intensity$"))
    heading = page.locator('h2[id="5-restart-intensity"]')
    expect(heading).to_have_text("5. Restart intensity")
    expect(heading).to_be_in_viewport()
    expect(page.locator('h2[id="15-a-guided-exercise"]')).to_have_count(1)
    assert fits_the_width(page)


@pytest.mark.parametrize("view", BOTH_SIZES_AND_THEMES)
def test_a_restart_stays_highlighted_with_its_count_and_the_intensity_left(
    open_page: OpenPage, view: str
) -> None:
    page = open_page("/supervision", fake_clock=True, **VIEWS[view])
    expect(connection(page)).to_have_attribute("data-state", "connected")
    expect(box(page, "root").locator(".sv-intensity")).to_have_text("restarts used: 0 of 3 in 5 s")

    kill_button(page, "room").click()
    expect(restart_event(page, "room")).to_have_text("↻ restarted · 1 of 3 in 5 s")
    expect(box(page, "room")).to_have_class(re.compile(r"\brestarted\b"))
    kill_button(page, "presence").click()
    expect(restart_event(page, "presence")).to_have_text("↻ restarted · 2 of 3 in 5 s")
    expect(box(page, "root").locator(".sv-intensity")).to_have_text("restarts used: 2 of 3 in 5 s")
    expect(box(page, "room").locator(".sv-predict")).to_have_text(
        "Kill: root restarts it (permanent), restart 3 of 3 in 5 s."
    )
    assert fits_the_width(page)

    # A few seconds on, the highlight has gone; after five the budget is back.
    page.clock.fast_forward(6_000)
    expect(restart_event(page, "room")).to_have_count(0)
    expect(box(page, "room")).not_to_have_class(re.compile(r"\brestarted\b"))
    expect(box(page, "room").locator(".sv-restart-count")).to_have_text("1")
    expect(box(page, "root").locator(".sv-intensity")).to_have_text("restarts used: 0 of 3 in 5 s")


@pytest.mark.parametrize("view", ["desktop-dark", "phone-light"])
def test_a_slowed_restart_is_seen_restarting_before_the_child_is_back(
    open_page: OpenPage, server: ChatServer, view: str
) -> None:
    server.stop()
    server.start(Settings(env=Environment.TEST, restart_delay_ms=2000))
    page = open_page("/supervision", **VIEWS[view])
    expect(page.locator("#restart-delay")).to_contain_text("slowed down to 2 s for the lesson")
    kill_button(page, "room").click()
    expect(box(page, "room")).to_have_attribute("data-alive", "false")
    expect(box(page, "room").locator(".sv-state")).to_have_text("restarting…")
    expect(kill_button(page, "room")).to_have_count(0)  # nothing to kill while it restarts
    expect(box(page, "room")).to_have_attribute("data-alive", "true")
    expect(restart_event(page, "room")).to_have_text("↻ restarted · 1 of 3 in 5 s")
    assert fits_the_width(page)


@pytest.mark.parametrize("view", BOTH_SIZES_AND_THEMES)
def test_sessions_are_named_by_who_they_are_and_their_comings_and_goings_folded(
    open_page: OpenPage, server: ChatServer, view: str
) -> None:
    in_the_room(open_page, "ann")
    viewer = open_page("/chat")
    expect(connection(viewer)).to_have_attribute("data-state", "connected")
    page = open_page("/supervision", **VIEWS[view])
    expect(page.locator("#sessions-count")).to_have_text("2 sessions")
    open_every_partition(page, server)
    sessions = page.locator("#tree .sv-box.session")
    expect(sessions.filter(has_text=re.compile(r"\bann · session-\d+"))).to_have_count(1)
    expect(sessions.filter(has_text=re.compile(r"\bviewer · session-\d+"))).to_have_count(1)
    expect(page.get_by_role("button", name=re.compile(r"^Kill session ann · "))).to_be_visible()
    expect(sessions.first.locator(".sv-predict")).to_contain_text("not restarted (temporary)")

    # Two starts are one line, not two; a tab closing adds to it, in no alarming colour.
    folded = page.locator('#log > li[data-kind="sessions"]')
    expect(folded).to_have_count(1)
    expect(folded).to_contain_text("2 sessions started")
    expect(page.locator('#log > li[data-actor^="session-"]')).to_have_count(0)
    viewer.close()
    expect(folded).to_contain_text("2 sessions started, 1 ended")
    expect(page.locator("#sessions-count")).to_have_text("1 session")
    expect(page.locator('#log > li[data-actor^="session-"]')).to_have_count(0)
    assert color_of(folded.locator(".sv-event-kind")) != danger_color(page)
    assert fits_the_width(page)

    # A session killed is news, not noise: a line of its own, naming who it was.
    page.get_by_role("button", name=re.compile(r"^Kill session ann · ")).click()
    killed = page.locator('#log > li[data-kind="exited"]')
    expect(killed).to_have_count(1)
    expect(killed).to_have_attribute("data-tone", "killed")
    expect(killed.locator(".sv-event-actor")).to_have_text(re.compile(r"^ann · session-\d+$"))


def test_the_tree_links_back_to_the_room(open_page: OpenPage) -> None:
    page = open_page("/supervision", **VIEWS["phone-dark"])
    page.get_by_role("link", name="Back to the room").click()
    expect(page).to_have_url(re.compile(r"/chat$"))
    expect(connection(page)).to_have_attribute("data-state", "connected")


def test_exercise_kill_presence_and_the_names_come_back(open_page: OpenPage) -> None:
    """Step 2: two tabs in the room, presence killed; nobody is disconnected and
    the names are back, told by the new presence."""
    ann = in_the_room(open_page, "ann")
    bob = in_the_room(open_page, "bob")
    page = open_page("/supervision", **VIEWS["desktop-light"])
    page.locator("#exercise summary").click()
    expect(page.locator("#step-presence")).to_be_visible()
    expect(page.locator("#sessions-count")).to_have_text("2 sessions")

    kill_button(page, "presence").click()
    expect(restart_event(page, "presence")).to_have_text("↻ restarted · 1 of 3 in 5 s")
    for tab, other in ((ann, "bob"), (bob, "ann")):
        expect(person(tab, other)).to_have_attribute("data-status", "online")
        expect(connection(tab)).to_have_attribute("data-state", "connected")
    # The new presence knows both: a third person sees them online.
    cat = in_the_room(open_page, "cat")
    for name in ("ann", "bob"):
        expect(person(cat, name)).to_have_attribute("data-status", "online")
    expect(person(ann, "cat")).to_have_attribute("data-status", "online")
    # No session ended: nobody was disconnected.
    expect(page.locator("#sessions-count")).to_have_text("3 sessions")
    expect(page.locator('#log > li[data-kind="sessions"]', has_text="ended")).to_have_count(0)


def test_exercise_four_kills_in_five_seconds_end_the_process_and_it_comes_back(
    open_page: OpenPage, start_serve: StartServe
) -> None:
    """Steps 3 and 4, against ``chatter serve`` as a process: three restarts
    are counted, the fourth Kill says beforehand that it is one too many, the
    process exits with status 1 and the page says so; started again, the page
    says it is back, with a new tree."""
    serve = off_the_loop(start_serve)
    page = open_page(f"{serve.url}/supervision", **VIEWS["desktop-dark"])
    chat = open_page(f"{serve.url}/chat?name=ann")
    expect(you(chat)).to_have_text("ann")
    expect(page.locator("#sessions-count")).to_have_text("1 session")

    for n in (1, 2, 3):
        kill_button(page, "room").click()
        expect(restart_event(page, "room")).to_have_text(f"↻ restarted · {n} of 3 in 5 s")
    expect(box(page, "room").locator(".sv-predict")).to_have_text(
        "Kill: one restart too many (3 in 5 s already): root gives up, stops every actor, "
        "and the whole process exits."
    )
    kill_button(page, "room").click()
    expect(server_status(page)).to_have_attribute("data-state", "down")
    expect(server_status(page)).to_contain_text("The root gave up: the whole process exited")
    expect(server_status(page)).to_contain_text("systemd")
    assert serve.wait() == 1
    expect(connection(chat)).not_to_have_attribute("data-state", "connected")
    log = serve.log()
    assert "root/room killed on purpose, asked by the supervision page from 127.0.0.1" in log
    assert "Traceback" not in log, log

    off_the_loop(serve.start)
    expect(server_status(page)).to_have_attribute("data-state", "back")
    expect(server_status(page)).to_contain_text("The server is back")
    expect(box(page, "room").locator(".sv-restart-count")).to_have_text("0")
    expect(restart_event(page, "room")).to_have_count(0)
    expect(you(chat)).to_have_text("ann", timeout=30_000)
    expect(connection(chat)).to_have_attribute("data-state", "connected", timeout=30_000)
