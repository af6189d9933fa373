"""Running out of file descriptors: a flood of half-sent requests from many
addresses fills the process's open-files limit. The server must not spin or
log a traceback per failed accept; it backs off, logs once a second, cuts the
slow requests off at the header timeout, and then answers again, while the
honest client connected before the flood chats on and loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import time
from pathlib import Path

from tests.harness.honest import HonestClient
from tests.harness.http import healthz
from tests.harness.process import ServeProcess, StartServe
from tests.harness.waiting import eventually

SOFT, HARD = 200, 320
"""The open-files limits serve starts with: the soft one is raised to the hard one."""
HEADER_TIMEOUT_S = 3.0
ATTACK_ADDRESSES = 10
SOCKETS_PER_ADDRESS = 50
"""Half-sent requests per address: under the per-address pending cap (64),
and 500 in all, well past the hard limit."""


def start_limited(start_serve: StartServe) -> ServeProcess:
    """Serve with the open-files limits above and a short header timeout."""
    return start_serve(
        env={"CHATTER_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S)}, open_files=(SOFT, HARD)
    )


def open_files_limits(pid: int) -> tuple[int, int]:
    text = Path(f"/proc/{pid}/limits").read_text()
    match = re.search(r"Max open files\s+(\d+)\s+(\d+)", text)
    assert match, text
    return int(match[1]), int(match[2])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_serve_raises_its_open_files_limit_to_the_hard_limit(start_serve: StartServe) -> None:
    serve = start_limited(start_serve)
    assert serve.process is not None
    assert open_files_limits(serve.process.pid) == (HARD, HARD)


def test_running_out_of_descriptors_backs_off_and_recovers(start_serve: StartServe) -> None:
    serve = start_limited(start_serve)
    assert serve.process is not None
    pid = serve.process.pid

    async def scenario() -> None:
        honest = HonestClient(serve)
        await honest.start()

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
            await eventually(
                lambda: "accept failed" in serve.log(),
                lambda: f"a failed accept logged:\n{serve.log()[-2000:]}",
                20,
            )

            # The header timeout frees the descriptors; then it answers again.
            async def answering() -> bool:
                status, _ = await asyncio.to_thread(healthz, serve.url, timeout_s=1)
                return status == 200

            await eventually(answering, lambda: f"healthy again:\n{serve.log()[-2000:]}", 30)
            cpu_used = cpu_seconds(pid) - cpu_before
            wall = time.monotonic() - wall_before

        # No spinning: a busy loop on the listening socket would use a whole core.
        assert cpu_used < 0.5 * wall, f"{cpu_used:.1f} s of CPU in {wall:.1f} s"
        log = serve.log()
        failures = log.count("accept failed")
        assert 1 <= failures <= wall + 2, f"{failures} accept-failure lines in {wall:.1f} s"
        assert "Traceback" not in log
        await honest.check()  # it chats on, and nothing restarted
        honest.close()

    asyncio.run(scenario())
