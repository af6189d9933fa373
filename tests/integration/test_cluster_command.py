"""``chatter cluster`` run as a user runs it (docs/CLUSTER.md): the embedded
database, the nodes and a real haproxy as processes, reached over real sockets
through haproxy's port. What a cluster must do: spread clients over its nodes,
carry a message from a client on one node to a client on another, let the
nodes see each client's own address, carry on when a node dies, stop when its
database does, and leave no process behind when it stops."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from tests.harness.client import Client
from tests.harness.http import healthz, request
from tests.harness.process import free_port
from tests.harness.raw import raw_socket
from tests.harness.waiting import eventually
from web.errors import ClusterError
from web.haproxy import find_haproxy

NODES = 3
READY_TIMEOUT_S = 60.0
"""The database, three nodes and haproxy start in a few seconds; a busy machine takes longer."""
STOP_TIMEOUT_S = 30.0
CLIENT = "127.0.0.8"
"""A loopback address of the client's own: haproxy reaches the nodes from 127.0.0.1."""
_READY = re.compile(r"^Chatter cluster on (?P<url>http://\S+/) .*?: (?P<nodes>.*)$")


@dataclass(frozen=True)
class RunningCluster:
    """A ``chatter cluster`` process and what its ready line said."""

    process: subprocess.Popen[str]
    port: int
    log_path: Path
    url: str
    """haproxy's, from the ready line."""
    nodes: dict[str, str]
    """Each node's id and its own URL, from the ready line."""
    pids: tuple[int, ...]
    """The processes that must be gone once it stops: its children and PostgreSQL."""

    def log(self) -> str:
        """The cluster's stderr so far: its own lines and its children's."""
        return self.log_path.read_text(errors="replace")

    def child_pid(self, pattern: str) -> int:
        """The pid of the child whose command line contains `pattern`."""
        for pid in _children_of(self.process.pid):
            if pattern in _command_line(pid):
                return pid
        raise AssertionError(f"no child running {pattern!r}")


def _environment() -> dict[str, str]:
    """This process's environment without any server settings (the cluster's
    own are its flags), in the test environment, logging at debug."""
    dropped = {"DATABASE_URL", "PORT", "HOST", "SECRET_KEY_BASE"}
    keep = {
        k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("CHATTER_")
    }
    # At debug a node logs each session's opening with the client's address,
    # which says what address the node saw (a test below reads it).
    return {**keep, "CHATTER_ENV": "test", "CHATTER_LOG_LEVEL": "debug", "PYTHONUNBUFFERED": "1"}


def _read_line(stream: IO[str], timeout_s: float) -> str:
    """The next line of `stream`, waiting at most `timeout_s` ("" at its end)."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout_s)
    except queue.Empty:
        raise AssertionError(f"no line within {timeout_s} s") from None


def _children_of(pid: int) -> list[int]:
    """The processes whose parent is `pid`, read from /proc."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    children.append(int(entry.name))
    return children


def _command_line(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    """Whether `pid` is running (a zombie, dead but not yet reaped, is not)."""
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _postgres_pid(data_dir: Path) -> int:
    """The embedded PostgreSQL's postmaster, from its lock file."""
    return int((data_dir / "postgres18" / "postmaster.pid").read_text().split()[0])


def _start(tmp_path: Path, nodes: int) -> RunningCluster:
    """``chatter cluster`` until its ready line; the test must `_end` it."""
    try:
        haproxy = find_haproxy(os.environ.get("HAPROXY"))
    except ClusterError as error:
        pytest.fail(str(error))
    port = free_port()
    data_dir = tmp_path / "cluster-data"
    log_path = tmp_path / "cluster.log"
    command = ["cluster", "--nodes", str(nodes), "--port", str(port), "--data-dir", str(data_dir)]
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "web", *command, "--haproxy", haproxy],
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            text=True,
            env=_environment(),
        )
    try:
        assert process.stdout is not None
        line = _read_line(process.stdout, READY_TIMEOUT_S)
        ready = _READY.match(line.strip())
        assert ready, f"not a ready line: {line!r}\n{log_path.read_text(errors='replace')}"
        listed = dict(part.split(" ", 1) for part in ready["nodes"].split(", "))
        pids = (*_children_of(process.pid), _postgres_pid(data_dir))
    except BaseException:
        _end_process(process, tuple(_children_of(process.pid)))
        raise
    return RunningCluster(process, port, log_path, ready["url"], listed, pids)


def _end(cluster: RunningCluster) -> None:
    """Make sure nothing of `cluster` is left running, however the test went."""
    _end_process(cluster.process, cluster.pids)


def _end_process(process: subprocess.Popen[str], pids: tuple[int, ...]) -> None:
    """Stop `process` as a user would (SIGINT), or kill it; then kill any of
    `pids` still running."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCluster]:
    """One cluster of `NODES` nodes for the tests that only use it."""
    running = _start(tmp_path_factory.mktemp("cluster"), NODES)
    try:
        yield running
    finally:
        _end(running)


def _connections(cluster: RunningCluster) -> dict[str, int]:
    """Each node's open WebSocket connections, as its own /healthz counts them."""
    counts = {}
    for node, url in cluster.nodes.items():
        status, body = healthz(url)
        assert status == 200, (node, status, body)
        assert body["node"] == node
        counts[node] = body["connections"]
    return counts


async def _no_connections(cluster: RunningCluster) -> None:
    """Wait until the nodes have seen every earlier test's connections close."""
    await eventually(
        lambda: sum(_connections(cluster).values()) == 0,
        lambda: f"the nodes hold no connection: {_connections(cluster)}",
    )


async def _all_gone(cluster: RunningCluster) -> None:
    """Wait until every process of the stopped `cluster` has exited (PostgreSQL
    may take a moment after the database's process has reported it stopped)."""
    await eventually(
        lambda: not any(map(_alive, cluster.pids)),
        lambda: f"gone: {[(p, _command_line(p)) for p in cluster.pids if _alive(p)]}",
    )


def test_healthz_through_haproxy_is_answered_by_every_node(cluster: RunningCluster) -> None:
    assert sorted(cluster.nodes) == ["node-1", "node-2", "node-3"]
    answered_by = set()
    for _ in range(3 * NODES):  # each request on a fresh connection: leastconn takes turns
        answer = request(cluster.url + "healthz")
        assert answer.status == 200, answer
        answered_by.add(answer.json()["node"])
    assert answered_by == set(cluster.nodes)


def test_websockets_opened_one_after_another_go_to_different_nodes(cluster: RunningCluster) -> None:
    async def scenario() -> None:
        await _no_connections(cluster)
        ws_url = cluster.url.replace("http", "ws") + "ws"
        clients = []
        try:
            # One after another, each once the last is welcomed (so haproxy
            # counts it): least connections sends each to a node with none.
            for _ in range(NODES):
                clients.append(await Client.connect(ws_url))
                await clients[-1].expect("welcome")
            assert _connections(cluster) == dict.fromkeys(cluster.nodes, 1)
        finally:
            for client in clients:
                client.close()

    asyncio.run(scenario())


def test_a_message_posted_on_one_node_reaches_a_client_on_another(
    cluster: RunningCluster,
) -> None:
    async def scenario() -> None:
        await _no_connections(cluster)
        ws_url = cluster.url.replace("http", "ws") + "ws"
        poster = await Client.connect(ws_url)
        reader = await Client.connect(ws_url)
        try:
            await poster.expect("welcome")
            await reader.expect("welcome")
            held = _connections(cluster)
            assert sorted(held.values()) == [0] * (NODES - 2) + [1, 1], held  # two nodes
            body = f"across nodes {uuid.uuid4()}"
            await poster.join(f"ada-{uuid.uuid4().hex[:6]}")
            await poster.post(body, client_id="c1")
            ack = await poster.expect("ack", client_id="c1")
            delivered = await reader.first(
                lambda f: f["type"] == "message" and f["message"]["body"] == body,
                "the message, on the other node",
            )
            assert delivered["message"]["seq"] == ack["seq"]
        finally:
            poster.close()
            reader.close()

    asyncio.run(scenario())


def test_a_node_sees_the_clients_own_address_and_not_a_forged_one(
    cluster: RunningCluster,
) -> None:
    with raw_socket(cluster.port, source=CLIENT) as raw:
        assert raw.upgrade(headers={"X-Forwarded-For": "6.6.6.6"}) == 101
        raw.expect("welcome")

        async def logged() -> None:
            await eventually(
                lambda: f"opened from {CLIENT}" in cluster.log(),
                lambda: f"a node logs the session opened from {CLIENT}:\n{cluster.log()}",
            )

        asyncio.run(logged())
    assert "opened from 6.6.6.6" not in cluster.log()


def test_a_node_dies_the_cluster_carries_on_and_sigint_leaves_nothing_running(
    tmp_path: Path,
) -> None:
    cluster = _start(tmp_path, 2)
    try:
        node_1 = cluster.child_pid("--node-id node-1")
        os.kill(node_1, signal.SIGKILL)

        async def carries_on() -> None:
            await eventually(
                lambda: "node-1 exited (signal SIGKILL); node-2 carry on" in cluster.log(),
                lambda: f"the cluster reports node-1's death:\n{cluster.log()}",
            )
            for _ in range(4):  # haproxy sends each to node-2, the one left
                status, body = healthz(cluster.url.rstrip("/"))
                assert (status, body.get("node")) == (200, "node-2"), cluster.log()

        asyncio.run(carries_on())
        assert cluster.process.poll() is None

        cluster.process.send_signal(signal.SIGINT)
        assert cluster.process.wait(timeout=STOP_TIMEOUT_S) == 0, cluster.log()

        asyncio.run(_all_gone(cluster))
        assert len(cluster.pids) == 1 + 2 + 1 + 1  # db serve, the nodes, haproxy, postgres
    finally:
        _end(cluster)


def test_the_cluster_stops_with_status_1_when_its_database_stops(tmp_path: Path) -> None:
    cluster = _start(tmp_path, 1)
    try:
        os.kill(cluster.child_pid(" db serve "), signal.SIGTERM)

        assert cluster.process.wait(timeout=STOP_TIMEOUT_S) == 1, cluster.log()
        assert "database exited (status 0): stopping the cluster" in cluster.log()
        asyncio.run(_all_gone(cluster))
    finally:
        _end(cluster)
