"""The room, presence and persistence actors killed again and again under live
traffic, within the root's restart intensity: nobody is disconnected, nothing
is lost, and the name rules hold while presence comes back."""

from __future__ import annotations

import asyncio
import json

import pytest

from supervision import EventKind, inject_crash
from tests.faults._traffic import Crowd, chatting
from tests.harness.server import ChatServer

KILLS = 4
"""More kills than the intensity allows at once (3 in 5 s), spaced so that no
5-second window holds more than 3: each is survived."""
KILL_SPACING_S = 2.0


async def restarts_reach(server: ChatServer, count: int, child: str | None = None) -> None:
    """Wait until `child` (any child) has been restarted `count` times."""
    await server.log.reaches(
        lambda: server.log.count(EventKind.RESTARTED, child=child) >= count,
        f"{count} restarts of {child or 'any child'}",
    )


async def kill_repeatedly(server: ChatServer, child: str, crowd: Crowd) -> None:
    """Kill `child` `KILLS` times under traffic, each after the previous
    incarnation restarted and took more posts."""
    for kill in range(KILLS):
        await crowd.acked_at_least(5 * (kill + 1))
        inject_crash(server.whereis(child), f"fault suite kill {kill + 1}")
        await restarts_reach(server, kill + 1, child)
        # The next kill waits, so the kills stay within the restart intensity.
        await asyncio.sleep(KILL_SPACING_S)


@pytest.mark.parametrize("child", ["room", "presence", "persistence"])
def test_an_actor_killed_repeatedly_under_traffic_disconnects_nobody_and_loses_nothing(
    server: ChatServer, database: str, child: str
) -> None:
    async def scenario() -> None:
        async with chatting(server.ws_url, posters=6, viewers=2) as crowd:
            await kill_repeatedly(server, child, crowd)
            await crowd.lost_nothing(database, server.url, more_acks=0)

    asyncio.run(scenario())
    assert [e.child for e in server.log.restarts()] == [child] * KILLS  # and none gave up


def test_an_online_name_cannot_be_taken_while_presence_restarts(
    server: ChatServer,
) -> None:
    attempts = ["alice", "ALICE", "\u0430lice"]  # the name, its case variant, a look-alike

    async def scenario() -> None:
        holder = await server.joined("alice")
        thieves = [await server.welcomed() for _ in attempts]
        taken_answers: list[object] = []
        for round in range(1, 4):  # three restarts: the most the intensity allows at once
            inject_crash(server.whereis("presence"), f"fault suite: presence, round {round}")
            # Sent while the crash is queued: handled by no presence or a rebuilding one.
            for thief, name in zip(thieves, attempts, strict=True):
                await thief.send(json.dumps({"type": "join", "username": name}))
            answers = [await thief.answer("joined", "error") for thief in thieves]
            assert all(a.get("code") in ("username_taken", "unavailable") for a in answers), answers
            taken_answers.extend(a.get("code") for a in answers)
            await restarts_reach(server, round)
        await holder.post("still mine", "h-1")
        assert (await holder.expect("ack", client_id="h-1"))["seq"] > 0
        assert not [f for f in holder.frames if f["type"] == "left"]
        await holder.send(json.dumps({"type": "leave"}))
        await holder.expect("left")
        assert (await thieves[0].join("alice"))["username"] == "alice"
        for client in [holder, *thieves]:
            client.close()
        # Held sends wait for the new incarnation, so the name is refused as
        # taken (not merely unavailable) at least once.
        assert "username_taken" in taken_answers, taken_answers

    asyncio.run(scenario())
    assert server.log.count(EventKind.GAVE_UP) == 0
