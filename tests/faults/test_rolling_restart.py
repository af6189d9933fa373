"""A rolling restart, as docs/DEPLOYMENT.md tells an operator to make one: three
nodes behind haproxy under steady traffic, each in turn sent SIGTERM, waited
for, and started again. A node drains (its sockets closed with 1001, exit 0),
its clients come back through the balancer to the others with their token and
last seq, and the fault suite's verdict holds over everything."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from tests.faults._traffic import chatting
from tests.harness.cluster import balancer, start_nodes
from tests.harness.process import StartServe

CLOSE_GOING_AWAY = 1001
MORE_ACKS_BETWEEN = 10
"""Posts acked between one node's restart and the next: the chat went on."""


def test_a_rolling_restart_of_three_nodes_under_traffic_loses_nothing(
    start_serve: StartServe, database: str, tmp_path: Path
) -> None:
    # Every client reaches the nodes from haproxy's address: trust it to name
    # them, and let the one address rejoin its names at each restart.
    nodes = start_nodes(
        start_serve, 3, CHATTER_TRUSTED_PROXIES="127.0.0.1", CHATTER_NAME_CLAIMS_PER_IP="100"
    )
    with balancer(nodes, tmp_path / "haproxy") as url:
        ws_url = url.replace("http://", "ws://") + "/ws"

        async def scenario() -> None:
            async with chatting(ws_url, posters=6, viewers=3, acked=20) as crowd:
                for node in nodes:
                    closed_before = sum(len(u.closes) for u in crowd.users)
                    node.kill(signal.SIGTERM)
                    assert await asyncio.to_thread(node.wait) == 0, node.log()
                    drained = node.log()
                    assert "Stopping: asked to" in drained
                    assert "Chatter stopped" in drained
                    assert "Traceback" not in drained

                    def back(before: int = closed_before) -> bool:
                        closed = sum(len(u.closes) for u in crowd.users)
                        return closed > before and all(
                            u.connected and u.joined == bool(u.name) for u in crowd.users
                        )

                    await crowd.until(back, "the drained node's clients back through the balancer")
                    await crowd.acked_at_least(crowd.acks + MORE_ACKS_BETWEEN, timeout_s=30)
                    await asyncio.to_thread(node.start)
                everyone = [u.name for u in crowd.users]
                await crowd.lost_nothing(database, url, reconnects_allowed=everyone)
                closes = [code for u in crowd.users for code in u.closes]
                assert len(closes) >= len(nodes)
                assert set(closes) == {CLOSE_GOING_AWAY}, closes

        asyncio.run(scenario())
