"""The people a welcome lists and counts (issue #17, item 3), over real
WebSockets: whoever is online, and offline only those who took part (posted at
least once). Names typed and let go without a word are not listed, nor
counted, once they are offline; `total_users` counts the same people."""

from __future__ import annotations

from tests.harness.server import ChatServer


def test_a_name_typed_and_abandoned_without_posting_is_not_listed_after(
    server: ChatServer,
) -> None:
    async def scenario(server: ChatServer) -> None:
        watcher = await server.welcomed()
        trying = await server.welcomed()
        for name in ("typo", "tpyo", "final"):
            await trying.join(name)
            await watcher.expect("presence", joins=[name])
        await trying.send({"type": "leave"})
        await trying.expect("left")
        # Each leave says the name is no longer listed, so clients drop it.
        await watcher.expect("presence", leaves=["final"], unlisted=["final"])
        closing = await server.joined("closed")
        await watcher.expect("presence", joins=["closed"])
        closing.close()
        await watcher.expect("presence", leaves=["closed"], unlisted=["closed"])
        switches = [p for p in watcher.received("presence") if p["leaves"]]
        assert [p["unlisted"] for p in switches] == [["typo"], ["tpyo"], ["final"], ["closed"]]
        welcome = await server.welcome()
        assert welcome["users"] == []
        assert welcome["total_users"] == 0

    server.run(scenario)


def test_a_poster_is_listed_offline_after_leaving_and_counted(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        watcher = await server.welcomed()
        ann = await server.joined("ann")
        await watcher.expect("presence", joins=["ann"])
        await ann.post("a word, after joining", "a-1")  # not the post that named her
        await ann.expect("ack", client_id="a-1")
        await ann.send({"type": "leave"})
        # Listed offline: the leave does not say she is unlisted.
        assert "unlisted" not in await watcher.expect("presence", leaves=["ann"])
        _, bob = await server.watched_join("bob", first_post=("hi", "b-1"))
        bob.close()
        assert "unlisted" not in await watcher.expect("presence", leaves=["bob"])
        zed = await server.joined("zed")  # a name typed and let go: not among them
        await watcher.expect("presence", joins=["zed"])
        zed.close()
        await watcher.expect("presence", leaves=["zed"], unlisted=["zed"])
        welcome = await server.welcome()
        assert welcome["users"] == [
            {"username": "bob", "online": False},
            {"username": "ann", "online": False},
        ]
        assert welcome["total_users"] == 2

    server.run(scenario)


def test_the_count_is_the_people_listed_online_or_having_posted(server: ChatServer) -> None:
    async def scenario(server: ChatServer) -> None:
        watcher, ann = await server.watched_join("ann", first_post=("hello", "a-1"))
        ann.close()
        await watcher.expect("presence", leaves=["ann"])
        lurker = await server.joined("lurker")  # online, has not posted: listed and counted
        presence = await watcher.expect("presence", joins=["lurker"])
        assert presence["total_users"] == 2
        welcome = await server.welcome()
        assert welcome["users"] == [
            {"username": "lurker", "online": True},
            {"username": "ann", "online": False},
        ]
        assert welcome["total_users"] == len(welcome["users"]) == 2
        lurker.close()
        await watcher.expect("presence", leaves=["lurker"])
        welcome = await server.welcome()
        assert welcome["users"] == [{"username": "ann", "online": False}]
        assert welcome["total_users"] == 1
        # Back by name, she counts once, however she came back.
        await server.joined("ANN")
        presence = await watcher.expect("presence", joins=["ANN"])
        assert presence["total_users"] == 1

    server.run(scenario)
