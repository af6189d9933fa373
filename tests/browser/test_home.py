"""The home page: the people, live, and the way into the room."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.conftest import OpenPage, SeedPeople
from tests.browser.ui import (
    connection,
    delivery,
    in_the_room,
    people_names,
    person,
    send,
    you,
)


def test_home_lists_people_online_first_then_alphabetically_and_updates_live(
    open_page: OpenPage, seed_people: SeedPeople
) -> None:
    seed_people(["zoe", "Bea"])
    home = open_page("/")
    expect(home.locator("#people-counts")).to_have_text("0 online / 2 total")
    expect(home.locator("#people .person-name")).to_have_text(["Bea", "zoe"])

    ann = in_the_room(open_page, "ann")
    expect(home.locator("#people-counts")).to_have_text("1 online / 3 total")
    expect(home.locator("#people .person-name")).to_have_text(["ann", "Bea", "zoe"])
    expect(person(home, "ann")).to_have_attribute("data-status", "online")

    in_the_room(open_page, "carl")
    expect(home.locator("#people-counts")).to_have_text("2 online / 4 total")
    expect(home.locator("#people .person-name")).to_have_text(["ann", "carl", "Bea", "zoe"])

    send(ann, "hello")  # she takes part, so she stays listed once offline
    expect(delivery(ann, "hello")).to_have_text("Sent")
    ann.close()
    expect(home.locator("#people-counts")).to_have_text("1 online / 4 total")
    expect(person(home, "ann")).to_have_attribute("data-status", "offline")
    assert people_names(home) == ["carl", "ann", "Bea", "zoe"]


def test_the_name_entered_at_home_joins_the_room(open_page: OpenPage) -> None:
    home = open_page("/")
    expect(connection(home)).to_have_attribute("data-state", "connected")
    home.get_by_label("Choose a name").fill("ada")
    home.get_by_role("button", name="Enter the room").click()
    expect(you(home)).to_have_text("ada")
    expect(home).to_have_url(re.compile(r"/chat$"))  # a reload reclaims by token, not by name
    home.reload()
    expect(you(home)).to_have_text("ada")


def test_home_refuses_a_name_that_is_online_before_leaving_the_page(open_page: OpenPage) -> None:
    in_the_room(open_page, "ann")
    home = open_page("/")
    expect(person(home, "ann")).to_have_attribute("data-status", "online")
    home.get_by_label("Choose a name").fill("ANN")
    home.get_by_role("button", name="Enter the room").click()
    expect(home.locator("#home-name-error")).to_contain_text("online right now")
    expect(home).to_have_url(re.compile(r"/$"))


def test_the_plain_link_reads_the_room_without_a_name(open_page: OpenPage) -> None:
    home = open_page("/")
    home.get_by_role("link", name="Just read the room first").click()
    expect(home).to_have_url(re.compile(r"/chat$"))
    expect(connection(home)).to_have_attribute("data-state", "connected")
    expect(home.get_by_label("Your name")).to_be_visible()


def test_the_total_counts_a_new_user_even_when_the_welcome_listed_only_some(
    open_page: OpenPage, seed_people: SeedPeople
) -> None:
    seed_people([f"member{n:02d}" for n in range(60)])  # the welcome lists 50
    home = open_page("/")
    expect(home.locator("#people-counts")).to_have_text("0 online / 60 total")
    in_the_room(open_page, "ann")
    expect(home.locator("#people-counts")).to_have_text("1 online / 61 total")
    in_the_room(open_page, "member59")  # not new: the total stays
    expect(home.locator("#people-counts")).to_have_text("2 online / 61 total")
