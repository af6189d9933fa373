"""Running out of file descriptors: a flood of half-sent requests from many
addresses fills the process's open-files limit. The server must not spin or
log a traceback per failed accept; it backs off, logs once a second, cuts the
slow requests off at the header timeout, and then answers again, while the
honest client connected before the flood chats on and loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import tornado.websocket

from tests.faults._process import ServeProcess

SOFT, HARD = 200, 320
"""The open-files limits serve starts with: the soft one is raised to the hard one."""
HEADER_TIMEOUT_S = 3.0
ATTACK_ADDRESSES = 10
SOCKETS_PER_ADDRESS = 50
"""Half-sent requests per address: under the per-address pending cap (64),
and 500 in all, well past the hard limit."""


@pytest.fixture
def serve(database: str, tmp_path: Path) -> Iterator[ServeProcess]:
    process = ServeProcess(
        database,
        tmp_path / "data",
        env={"CHATTER_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S)},
        open_files=(SOFT, HARD),
    )
    process.start()
    yield process
    process.stop()


def open_files_limits(pid: int) -> tuple[int, int]:
    text = Path(f"/proc/{pid}/limits").read_text()
    match = re.search(r"Max open files\s+(\d+)\s+(\d+)", text)
    assert match, text
    return int(match[1]), int(match[2])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def healthz(url: str) -> int:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1) as answer:
            status: int = answer.status
            return status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def test_serve_raises_its_open_files_limit_to_the_hard_limit(serve: ServeProcess) -> None:
    assert serve.process is not None
    assert open_files_limits(serve.process.pid) == (HARD, HARD)


async def post_and_see(connection: tornado.websocket.WebSocketClientConnection, body: str) -> None:
    """Post `body` and read until its ack and its message have both arrived."""
    client_id = f"cid-{body}"
    await connection.write_message(
        json.dumps({"type": "post", "body": body, "client_id": client_id})
    )
    acked = delivered = False
    while not (acked and delivered):
        text = await asyncio.wait_for(connection.read_message(), 30)
        assert text is not None, "the honest client was disconnected"
        frame = json.loads(text)
        assert frame["type"] != "error", frame
        acked = acked or (frame["type"] == "ack" and frame["client_id"] == client_id)
        delivered = delivered or (frame["type"] == "message" and frame["message"]["body"] == body)


def test_running_out_of_descriptors_backs_off_and_recovers(serve: ServeProcess) -> None:
    assert serve.process is not None
    pid = serve.process.pid

    async def scenario() -> None:
        honest = await tornado.websocket.websocket_connect(serve.ws_url)
        await honest.write_message(json.dumps({"type": "join", "username": "honest"}))
        await post_and_see(honest, "before the flood")

        with contextlib.ExitStack() as stack:
            cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
            for n in range(ATTACK_ADDRESSES):
                for _ in range(SOCKETS_PER_ADDRESS):
                    sock = stack.enter_context(socket.socket())
                    sock.bind((f"127.0.2.{n + 1}", 0))
                    sock.setblocking(False)
                    with contextlib.suppress(BlockingIOError):
                        sock.connect(("127.0.0.1", serve.port))
                    with contextlib.suppress(OSError):
                        sock.send(b"GET / HTTP/1.1\r\n")  # and never the rest
            # The server is out of descriptors: wait until it has said so.
            deadline = time.monotonic() + 20
            while "accept failed" not in serve.log():
                assert time.monotonic() < deadline, serve.log()[-2000:]
                await asyncio.sleep(0.05)
            # The header timeout frees the descriptors; then it answers again.
            deadline = time.monotonic() + 30
            while await asyncio.to_thread(healthz, serve.url) != 200:
                assert time.monotonic() < deadline, serve.log()[-2000:]
                await asyncio.sleep(0.1)
            cpu_used = cpu_seconds(pid) - cpu_before
            wall = time.monotonic() - wall_before

        # No spinning: a busy loop on the listening socket would use a whole core.
        assert cpu_used < 0.5 * wall, f"{cpu_used:.1f} s of CPU in {wall:.1f} s"
        log = serve.log()
        failures = log.count("accept failed")
        assert 1 <= failures <= wall + 2, f"{failures} accept-failure lines in {wall:.1f} s"
        assert "Traceback" not in log
        await post_and_see(honest, "after the flood")
        honest.close()

    asyncio.run(scenario())
