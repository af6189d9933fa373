"""``chatter console`` and ``chatter chaos``, used as a person would."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from chatter.chaos import ChaosError, actor_ids, kill, kill_randomly
from chatter.database import EmbeddedPostgres
from supervision import EventKind
from tests.harness.process import free_port
from tests.harness.server import ChatServer


def test_console_shows_the_tree_kills_watches_and_posts(
    postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    commands = "\n".join(
        [
            "tree()",
            'kill("room")',
            "watch(1)",
            "children()",
            'post("ann", "hello from the console")["body"]',
            "help(watch)",
        ]
    )
    env = {k: v for k, v in os.environ.items() if k != "CHATTER_DATA_DIR"}
    env.update({"DATABASE_URL": postgres.conninfo(), "CHATTER_DATA_DIR": str(tmp_path)})
    result = subprocess.run(
        [sys.executable, "-m", "web", "console", "--port", str(free_port())],
        input=commands + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "root  supervisor one_for_one  alive" in out
    assert "├─ room  worker permanent  alive" in out
    assert "'killed room'" in out
    assert "root/room restarted" in out
    assert (
        "'id': 'room', 'kind': 'worker', 'restart': 'permanent', 'alive': True, 'restarts': 1"
        in out
    )
    assert "'hello from the console'" in out
    assert "Print supervision events as they happen" in out
    assert "Chatter stopped" in result.stderr
    # The kill is one WARNING line naming who asked, with no traceback.
    assert "WARNING chatter.supervision: root/room killed on purpose, asked by the console" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def test_chaos_kills_one_actor_by_id(server: ChatServer) -> None:
    assert kill(server.url, "presence") == "killed presence"
    server.log.wait(EventKind.RESTARTED, "presence", 10)
    with pytest.raises(ChaosError, match="404"):
        kill(server.url, "nobody")


def test_chaos_kills_random_actors_for_a_bounded_time(server: ChatServer) -> None:
    said: list[str] = []
    # Three kills inside the root's intensity (3 restarts in 5 s); a fourth
    # would make it give up, which is the point of intensity, not of this test.
    killed = kill_randomly(
        server.url, every_s=0.45, for_s=1.0, rng=random.Random(1), say=said.append
    )
    assert 2 <= killed <= 3
    assert said[-1] == f"killed {killed} actor(s) in 1 s"
    assert set(actor_ids(server.url)) == {
        "persistence",
        "lease",
        "presence",
        "room",
        "listener",
        "sessions",
        *server.tree.sessions.ids(),
    }
    assert server.tree.root.is_alive()


def test_chaos_command_reports_an_unreachable_server() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "web",
            "chaos",
            "--url",
            f"http://127.0.0.1:{free_port()}",
            "kill",
            "room",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "chatter chaos: cannot reach" in result.stderr
