"""When ``chatter cluster`` says it is ready: once haproxy sends clients to
every node, not merely once haproxy answers. A stand-in for haproxy on the
cluster's port answers ``/healthz`` as the node it would have picked, so a
node out of rotation (its first health check failed) is one it never names."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import tornado.httpserver
import tornado.web

from tests.harness.process import free_port
from web.cluster import Cluster, ClusterPlan
from web.errors import ClusterError
from web.haproxy import LOOPBACK, NodeSpec

NODES = [NodeSpec(f"node-{number}", 0) for number in (1, 2, 3)]


class _Balancer(tornado.web.RequestHandler):
    """``/healthz`` answered by the next node `answers` names."""

    def initialize(self, answers: Iterator[str], asked: list[str]) -> None:
        self.answers = answers
        self.asked = asked

    def get(self) -> None:
        node = next(self.answers)
        self.asked.append(node)
        self.write({"status": "ok", "node": node})


async def _wait_for_rotation(tmp_path: Path, answers: Iterator[str], timeout_s: float) -> list[str]:
    """The cluster's wait against a balancer answering `answers`; the nodes it named."""
    port = free_port()
    asked: list[str] = []
    app = tornado.web.Application([(r"/healthz", _Balancer, {"answers": answers, "asked": asked})])
    server = tornado.httpserver.HTTPServer(app)
    server.listen(port, LOOPBACK)
    try:
        plan = ClusterPlan(haproxy="haproxy", data_dir=tmp_path, port=port)
        cluster = Cluster(plan, {}, io.StringIO(), io.StringIO())
        await cluster._until_in_rotation(NODES, timeout_s)
    finally:
        server.stop()
    return asked


def _repeat(*names: str) -> Iterator[str]:
    while True:
        yield from names


def test_the_cluster_is_ready_only_once_every_node_has_answered_through_haproxy(
    tmp_path: Path,
) -> None:
    # node-2 and node-3 are out of rotation for the first answers, as after a failed first check.
    def answers() -> Iterator[str]:
        yield from ["node-1"] * 5
        yield from _repeat("node-1", "node-2", "node-3")

    asked = asyncio.run(_wait_for_rotation(tmp_path, answers(), timeout_s=30))
    assert asked[:5] == ["node-1"] * 5
    assert asked[-1] == "node-3"
    assert set(asked) == {"node-1", "node-2", "node-3"}


def test_a_node_haproxy_never_sends_clients_to_stops_the_start_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ClusterError) as refused:
        asyncio.run(_wait_for_rotation(tmp_path, _repeat("node-1", "node-3"), timeout_s=0.5))
    assert "haproxy did not send clients to node-2 within" in str(refused.value)
