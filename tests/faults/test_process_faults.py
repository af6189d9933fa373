"""Faults that end the process: SIGKILL, and a crash loop beyond the root's
restart intensity. Started again, the server has lost nothing and every client
resumes where it was."""

from __future__ import annotations

import asyncio
import re

from tests.faults._traffic import Crowd, while_chatting
from tests.harness.http import request
from tests.harness.process import ServeProcess, StartServe

CLOSE_GOING_AWAY = 1001
CLOSE_TRY_AGAIN_LATER = 1013


def kill_over_http(base_url: str, node_id: str) -> int:
    """POST /api/supervision/kill; the status (404 while the actor restarts, 0
    once the process is going)."""
    return request(f"{base_url}/api/supervision/kill", "POST", {"id": node_id}, timeout_s=5).status


async def start_again_and_resume(serve: ServeProcess, crowd: Crowd, database: str) -> None:
    """Start the server again; once everyone is back and more posts are acked,
    the suite's verdict (every client was cut off, so each may reconnect)."""
    await asyncio.to_thread(serve.start)
    await crowd.until(lambda: all(u.joined or u.name is None for u in crowd.users), "back")
    everyone = [u.name for u in crowd.users]
    await crowd.lost_nothing(database, serve.url, reconnects_allowed=everyone)


def test_a_server_killed_with_sigkill_and_started_again_loses_nothing(
    start_serve: StartServe, database: str
) -> None:
    serve = start_serve()

    async def sigkill(crowd: Crowd) -> None:
        serve.kill()  # mid-traffic: posts in flight, some stored but not acked
        assert await asyncio.to_thread(serve.wait) == -9
        await crowd.until(lambda: not any(u.connected for u in crowd.users), "all cut off")
        await start_again_and_resume(serve, crowd, database)
        assert all(u.connects == 2 for u in crowd.users)

    while_chatting(serve.ws_url, sigkill, posters=6, acked=20)


def test_a_crash_loop_beyond_the_intensity_exits_non_zero_and_a_restart_resumes_everyone(
    start_serve: StartServe, database: str
) -> None:
    serve = start_serve()

    async def crash_loop(crowd: Crowd) -> None:
        kills = 0
        while serve.process is not None and serve.process.poll() is None and kills < 10:
            # 404 while the room is between incarnations: try again at once.
            status = await asyncio.to_thread(kill_over_http, serve.url, "room")
            kills += status == 202
        assert await asyncio.to_thread(serve.wait) == 1, serve.log()
        assert kills == 4, f"{kills} kills; the intensity allows 3 restarts in 5 s"
        # Closed with 1001 when the root gave up; a reconnect while the
        # process winds down is refused with 1013 (try again later).
        closes = [u.closes for u in crowd.users]
        assert all(c and c[0] == CLOSE_GOING_AWAY for c in closes), closes
        assert all(set(c[1:]) <= {CLOSE_GOING_AWAY, CLOSE_TRY_AGAIN_LATER} for c in closes), closes
        await start_again_and_resume(serve, crowd, database)

    while_chatting(serve.ws_url, crash_loop, posters=6, acked=20)
    first_run = (serve.data_dir / "serve-1.log").read_text()
    assert "root gave up" in first_run, first_run
    stopped = re.findall(r"root/(\w+) exited \(shutdown\)", first_run)
    assert stopped == ["sessions", "listener", "presence", "lease", "persistence"], first_run
