"""The room, presence and persistence actors killed again and again under live
traffic, within the root's restart intensity: nobody is disconnected, nothing
is lost, and the name rules hold while presence comes back."""

from __future__ import annotations

import asyncio
import json

import pytest

from supervision import EventKind, SupervisionEvent, inject_crash
from tests.conftest import EventLog
from tests.faults._traffic import Crowd, assert_consistent
from tests.integration.chat_server import ChatServer, Client

KILLS = 4
"""More kills than the intensity allows at once (3 in 5 s), spaced so that no
5-second window holds more than 3: each is survived."""
KILL_SPACING_S = 2.0


def restart_count(log: EventLog, child: str | None = None) -> int:
    return sum(
        1
        for e in list(log.events)
        if e.kind is EventKind.RESTARTED and (child is None or e.child == child)
    )


async def restarts_reach(log: EventLog, count: int, child: str | None = None) -> None:
    """Wait (off the loop) until `child` (any child) has been restarted `count` times."""

    def reached(_: SupervisionEvent) -> bool:
        return restart_count(log, child) >= count

    await asyncio.to_thread(log.wait_for, reached, 10.0)


async def kill_repeatedly(server: ChatServer, log: EventLog, child: str, crowd: Crowd) -> None:
    """Kill `child` `KILLS` times under traffic, each after the previous
    incarnation restarted and took more posts."""
    for kill in range(KILLS):
        await crowd.acked_at_least(5 * (kill + 1))
        ref = server.tree.registry.whereis(child)
        assert ref is not None
        inject_crash(ref, f"fault suite kill {kill + 1}")
        restarts = kill + 1
        await restarts_reach(log, restarts, child)
        # The next kill waits, so the kills stay within the restart intensity.
        await asyncio.sleep(KILL_SPACING_S)


@pytest.mark.parametrize("child", ["room", "presence", "persistence"])
def test_an_actor_killed_repeatedly_under_traffic_disconnects_nobody_and_loses_nothing(
    server: ChatServer, log: EventLog, database: str, child: str
) -> None:
    async def scenario() -> None:
        crowd = Crowd(server.ws_url, posters=6, viewers=2)
        try:
            await crowd.start()
            crowd.type_messages(True)
            await kill_repeatedly(server, log, child, crowd)
            await crowd.settle(database)
            await asyncio.to_thread(assert_consistent, crowd, database, server.url)
        finally:
            await crowd.close()

    asyncio.run(scenario())
    restarts = [e for e in log.events if e.kind is EventKind.RESTARTED]
    assert [e.child for e in restarts] == [child] * KILLS
    assert not [e for e in log.events if e.kind is EventKind.GAVE_UP]


async def answer_to_join(client: Client) -> dict[str, object]:
    """The `joined` or `error` frame answering the client's join."""
    while True:
        frame = await client.receive()
        assert frame is not None, f"closed ({client.closed_code})"
        if frame["type"] in ("joined", "error"):
            return frame


def test_an_online_name_cannot_be_taken_while_presence_restarts(
    server: ChatServer, log: EventLog
) -> None:
    attempts = ["alice", "ALICE", "\u0430lice"]  # the name, its case variant, a look-alike

    async def scenario() -> None:
        holder = await server.connect()
        await holder.welcome()
        await holder.join("alice")
        thieves = [await server.connect() for _ in attempts]
        taken_answers: list[object] = []
        for thief in thieves:
            await thief.welcome()
        for round in range(1, 4):  # three restarts: the most the intensity allows at once
            presence = server.tree.registry.whereis("presence")
            assert presence is not None
            inject_crash(presence, f"fault suite: presence, round {round}")
            # Sent while the crash is queued: handled by no presence or a rebuilding one.
            for thief, name in zip(thieves, attempts, strict=True):
                await thief.send(json.dumps({"type": "join", "username": name}))
            answers = [await answer_to_join(thief) for thief in thieves]
            assert all(a.get("code") in ("username_taken", "unavailable") for a in answers), answers
            taken_answers.extend(a.get("code") for a in answers)
            await restarts_reach(log, round)
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
    assert not [e for e in log.events if e.kind is EventKind.GAVE_UP]
