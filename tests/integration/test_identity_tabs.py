"""One person, several connections (issue #17, item 2), over real WebSockets:
connections presenting a valid token of a name hold it together, presence
shows it once, it goes offline with the last of them, and a Leave on one lets
it go for all of them (the others are told why and become viewers)."""

from __future__ import annotations

import asyncio

from tests.harness.client import Client, Frame
from tests.harness.cluster import start_nodes
from tests.harness.process import StartServe
from tests.harness.server import ChatServer


async def second_tab(server: ChatServer, first: Client) -> Client:
    """A connection made with the token `first` got: the same person at once."""
    token = first.received("joined")[-1]["token"]
    tab = await server.welcomed(token=token)
    you = (await tab.welcome())["you"]
    assert you is not None
    await tab.expect("joined", username=you["username"])
    return tab


def online_entries(welcome: Frame, username: str) -> list[Frame]:
    return [u for u in welcome["users"] if u["username"].casefold() == username.casefold()]


def test_two_connections_with_one_token_hold_the_name_together_shown_once(
    server: ChatServer,
) -> None:
    async def scenario(server: ChatServer) -> None:
        watcher, tab1 = await server.watched_join("ann", first_post=("hi", "a-1"))
        tab2 = await second_tab(server, tab1)
        await tab2.post("from the second tab", "a-2")
        await tab2.expect("ack", client_id="a-2")
        message = (await watcher.expect("message", timeout_s=5))["message"]
        while message["body"] != "from the second tab":
            message = (await watcher.expect("message"))["message"]
        assert message["username"] == "ann"
        # The second tab came online without a presence change: ann was online.
        await watcher.settle()
        assert [p["joins"] for p in watcher.received("presence")] == [["ann"]]
        welcome = await server.welcome()
        assert online_entries(welcome, "ann") == [{"username": "ann", "online": True}]
        assert welcome["total_users"] == 1
        # The first tab is still ann: nobody was replaced.
        await tab1.post("and from the first, still", "a-3")
        await tab1.expect("ack", client_id="a-3")
        assert "left" not in tab1.kinds() + tab2.kinds()

    server.run(scenario)


def test_the_name_stays_online_until_the_last_connection_holding_it_closes(
    server: ChatServer,
) -> None:
    async def scenario(server: ChatServer) -> None:
        watcher, tab1 = await server.watched_join("ann")
        tab2 = await second_tab(server, tab1)
        tab3 = await second_tab(server, tab2)
        tab1.close()
        tab3.close()
        await server.log.reaches(lambda: server.open_connections() == 2, "two tabs closed")
        # Nobody was told ann left, and a newcomer sees her online.
        welcome = await server.welcome()
        assert online_entries(welcome, "ann") == [{"username": "ann", "online": True}]
        await watcher.settle()
        assert [p["leaves"] for p in watcher.received("presence")] == [[]]
        # Nobody else may take the name meanwhile.
        stranger = await server.welcomed()
        await stranger.send({"type": "join", "username": "ANN"})
        assert (await stranger.expect("error"))["code"] == "username_taken"
        tab2.close()
        presence = await watcher.expect("presence", leaves=["ann"])
        assert presence["joins"] == []

    server.run(scenario)


def test_leave_in_one_connection_makes_the_others_viewers_told_why(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        watcher, tab1 = await server.watched_join("ann")
        tab2 = await second_tab(server, tab1)
        await tab1.send({"type": "leave"})
        assert await tab1.expect("left") == {"type": "left"}
        assert await tab2.expect("left") == {"type": "left", "reason": "left_elsewhere"}
        await watcher.expect("presence", leaves=["ann"])
        # Both are viewers now.
        for tab, client_id in ((tab1, "v-1"), (tab2, "v-2")):
            await tab.post("still ann?", client_id)
            assert (await tab.expect("error", client_id=client_id))["code"] == ("identity_required")
        # The name is free: someone else takes it, and the viewers are not it.
        await server.joined("ann")
        await watcher.expect("presence", joins=["ann"])
        await tab2.settle()
        assert tab2.received("left") == [{"type": "left", "reason": "left_elsewhere"}]

    server.run(scenario)


def test_a_claim_by_name_of_a_shared_name_is_refused_and_a_look_alike_too(
    server: ChatServer,
) -> None:
    async def scenario(server: ChatServer) -> None:
        _, tab1 = await server.watched_join("paypal")
        await second_tab(server, tab1)
        stranger = await server.welcomed()
        for attempt in ("PayPal", "pаypal"):  # noqa: RUF001  (Cyrillic a)
            await stranger.send({"type": "join", "username": attempt})
            assert (await stranger.expect("error"))["code"] == "username_taken"
        # Both tabs still hold it.
        await tab1.post("still paypal", "p-1")
        await tab1.expect("ack", client_id="p-1")

    server.run(scenario)


def test_one_person_on_two_nodes_is_one_name_until_the_last_goes_and_leave_reaches_both(
    start_serve: StartServe,
) -> None:
    nodes = start_nodes(start_serve, 2)
    one, two = (node.ws_url for node in nodes)

    async def scenario() -> None:
        watcher = await Client.connect(two)
        await watcher.welcome()
        tab1 = await Client.connect(one)
        await tab1.welcome()
        token = (await tab1.join("ann"))["token"]
        await watcher.expect("presence", joins=["ann"])
        tab2 = await Client.connect(two, token=token)
        assert (await tab2.welcome())["you"] == {"username": "ann"}
        await tab2.expect("joined", username="ann")
        # The first tab closes: ann stays online. A later change read on node-2
        # (carl, claimed on node-1 after ann's release there) shows no leave before it.
        tab1.close()
        carl = await Client.connect(one)
        await carl.welcome()
        await carl.join("carl")
        await watcher.expect("presence", joins=["carl"])
        assert [p["leaves"] for p in watcher.received("presence")] == [[], []]
        # A third tab on node-1; a Leave in it reaches the one on node-2.
        tab3 = await Client.connect(one, token=tab2.received("joined")[-1]["token"])
        assert (await tab3.welcome())["you"] == {"username": "ann"}
        await tab3.send({"type": "leave"})
        await tab3.expect("left")
        assert await tab2.expect("left") == {"type": "left", "reason": "left_elsewhere"}
        await watcher.expect("presence", leaves=["ann"])
        welcome = await (await Client.connect(one)).welcome()
        assert {"username": "carl", "online": True} in welcome["users"]
        assert all(u["username"] != "ann" for u in welcome["users"])
        # Node-2 learns who posted on node-1 from its reads: once a read after
        # carl's first post is in (it shows dave), carl's leave keeps him listed.
        await carl.post("a word from carl", "c-1")
        await carl.expect("ack", client_id="c-1")
        dave = await Client.connect(one)
        await dave.welcome()
        await dave.join("dave")
        await watcher.expect("presence", joins=["dave"])
        carl.close()
        assert "unlisted" not in await watcher.expect("presence", leaves=["carl"])

    asyncio.run(scenario())


def test_a_name_typed_while_its_holder_was_away_revokes_the_holders_token(
    server: ChatServer,
) -> None:
    """Names have no passwords: whoever typed the name while it was offline holds
    it now, and the token from before makes a viewer, not a co-holder."""

    async def scenario(server: ChatServer) -> None:
        watcher, ann = await server.watched_join("ann", first_post=("hi", "a-1"))
        token = ann.received("joined")[-1]["token"]
        ann.close()
        await watcher.expect("presence", leaves=["ann"])
        typist = await server.welcomed()
        await typist.send({"type": "join", "username": "ann"})
        await typist.expect("joined", username="ann")
        back = await server.welcomed(token=token)
        assert (await back.welcome())["you"] is None
        await back.send({"type": "join", "username": "ann"})
        assert (await back.expect("error"))["code"] == "username_taken"
        # The typist alone holds the name: their Leave tells no one else.
        await typist.send({"type": "leave"})
        await typist.expect("left")
        await watcher.expect("presence", leaves=["ann"])
        assert "left" not in back.kinds()

    server.run(scenario)
