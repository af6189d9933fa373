"""Fixtures for the browser tests: Debian's Chromium driven by Playwright (one
browser per test module, a fresh context per person), on the `server` of
tests/conftest.py (a real Chatter server per test, on clean tables)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from tests.conftest import stop_every_actor
from tests.harness.data import seed_messages, seed_users
from tests.harness.server import ChatServer

DEFAULT_CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM = Path(os.environ.get("CHROMIUM") or DEFAULT_CHROMIUM)
"""Debian's Chromium unless `CHROMIUM` names another (`make test CHROMIUM=...`)."""
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    # The machine has no network: without these Chromium keeps dialling out.
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).parent / "artifacts"
"""Screenshots land here (git-ignored), to be looked at."""

EXPECT_TIMEOUT_MS = 10_000
expect.set_options(timeout=EXPECT_TIMEOUT_MS)

POLICY_WORDS = ("Content Security Policy", "Trusted Type")
"""A console error naming these means the page broke its own policy."""

OpenPage = Callable[..., Page]
Seed = Callable[..., None]
SeedPeople = Callable[[Sequence[str]], None]

T = TypeVar("T")


def off_the_loop(function: Callable[[], T]) -> T:
    """Run `function` on a thread of its own and return its result.

    Playwright's sync API keeps its event loop marked as running on the test's
    thread, and the actor runtime rightly refuses to block on a future there."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="off-the-loop") as pool:
        return pool.submit(function).result()


@pytest.fixture(autouse=True)
def _stop_leftover_actors() -> Iterator[None]:
    """The suite's own clean-up (every test leaves no actor running), done off
    the test's thread, where Playwright keeps its event loop running."""
    yield
    off_the_loop(stop_every_actor)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Per module, not per session: while Playwright's sync API runs, its event
    loop counts as running on this thread, and the other test groups (which
    rightly block on actor futures here) must not run under it."""
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: `make chromium` installs it where it may"
            " (scripts/ensure-chromium, which `make test` runs first);"
            " else apt-get install chromium, or set CHROMIUM to another Chromium"
        )
    browser = playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    yield browser
    browser.close()


@pytest.fixture
def open_page(browser: Browser, server: ChatServer) -> Iterator[OpenPage]:
    """`open_page(path, fake_clock=False, **context_options)`: a page in a context
    of its own (a separate person, with their own storage), at `path` on the
    test's server (None: nowhere yet); with `fake_clock`, the test can move the
    page's time forward.
    A test fails if any page threw an uncaught error or broke the security policy."""
    contexts: list[BrowserContext] = []
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error" and any(word in message.text for word in POLICY_WORDS):
            problems.append(message.text)

    def open_(path: str | None = "/", *, fake_clock: bool = False, **options: Any) -> Page:
        context = browser.new_context(base_url=server.url, **options)
        context.set_default_timeout(EXPECT_TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
        page.on("console", console)
        if fake_clock:
            page.clock.install()  # time flows, and a test can jump it forward
        if path is not None:
            page.goto(path)
        return page

    yield open_
    for context in contexts:
        context.close()
    assert problems == [], problems


@pytest.fixture
def seed(server: ChatServer, database: str) -> Seed:
    """`seed(username, bodies, at=None)`: store messages as
    `tests.harness.data.seed_messages` does, and return once the running
    server's room has sent them, so a page opened next has them in its welcome."""

    def seed_(username: str, bodies: Sequence[str], at: datetime | None = None) -> None:
        last = seed_messages(database, username, bodies, at)
        server.users_written()
        off_the_loop(lambda: asyncio.run(server.heard(last)))

    return seed_


@pytest.fixture
def seed_people(server: ChatServer, database: str) -> SeedPeople:
    """`seed_people(usernames)`: users who were here before (offline), stored as
    `tests.harness.data.seed_users` does, and presence told, so that a page
    opened next lists and counts them."""

    def seed_people_(usernames: Sequence[str]) -> None:
        seed_users(database, usernames)
        server.users_written()

    return seed_people_


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
