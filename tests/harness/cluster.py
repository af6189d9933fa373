"""Several ``chatter serve`` processes on one database: a cluster, as
``chatter cluster`` runs one but without the balancer, so that a test knows
which node each client is on and can kill, pause or cut one of them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg

from tests.harness.http import healthz
from tests.harness.process import ServeProcess, StartServe, free_port
from tests.harness.waiting import eventually
from web import haproxy

__all__ = ["balancer", "claims_of", "cut_listeners", "lease_expired", "start_nodes"]

BALANCER_START_S = 30.0


def start_nodes(start_serve: StartServe, count: int = 3, **env: str) -> list[ServeProcess]:
    """`count` nodes (``node-1``...) sharing the test database and one
    ``SECRET_KEY_BASE``, each healthy; ended when the test ends."""
    shared = {"SECRET_KEY_BASE": secrets.token_hex(32), **env}
    return [
        start_serve(env={**shared, "CHATTER_NODE_ID": f"node-{n}"}) for n in range(1, count + 1)
    ]


def claims_of(conninfo: str, username_key: str) -> list[tuple[Any, ...]]:
    """The claims table's rows for a name (by its key): (node, session, live)."""
    with psycopg.connect(conninfo) as conn:
        return conn.execute(
            "SELECT l.node_id, c.session_id, l.expires_at > now() "
            "FROM name_claims c JOIN node_leases l USING (lease_id) "
            "WHERE c.username_key = %s ORDER BY c.look_alike",
            (username_key,),
        ).fetchall()


def lease_expired(conninfo: str, node_id: str) -> bool:
    """Whether every lease `node_id` has held has expired, on the database's clock."""
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT bool_and(expires_at <= now()) FROM node_leases WHERE node_id = %s",
            (node_id,),
        ).fetchone()
    return bool(row and row[0])


def cut_listeners(conninfo: str, most: int | None = None) -> int:
    """Cut the connections of the commit listeners (those that last ran a
    LISTEN), at most `most` of them, as a network fault would; how many."""
    limit = "" if most is None else f" LIMIT {int(most)}"
    with psycopg.connect(conninfo, autocommit=True) as admin:
        cut = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE query LIKE 'LISTEN %%' AND pid <> pg_backend_pid()" + limit
        ).fetchall()
    assert all(ok for (ok,) in cut), cut
    return len(cut)


@contextlib.contextmanager
def balancer(nodes: Sequence[ServeProcess], directory: Path) -> Iterator[str]:
    """Debian's haproxy in front of `nodes` (``node-1``... in order), configured
    as ``chatter cluster`` configures it; its base URL once it answers /healthz."""
    port = free_port()
    specs = [haproxy.NodeSpec(f"node-{n}", node.port) for n, node in enumerate(nodes, 1)]
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "haproxy.cfg"
    # Each request logged (as it starts: a WebSocket lasts), with the node it went to.
    logged = "global\n    log stderr format raw local0\n\n" + haproxy.config(port, specs).replace(
        "    mode http\n",
        "    mode http\n    log global\n    option httplog\n    option logasap\n",
        1,
    )
    config.write_text(logged)
    with (directory / "haproxy.log").open("wb") as log:
        process = subprocess.Popen(
            [haproxy.find_haproxy(os.environ.get("HAPROXY")), "-db", "-f", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://{haproxy.LOOPBACK}:{port}"
    try:
        asyncio.run(eventually(lambda: healthz(url)[0] == 200, "haproxy answers", BALANCER_START_S))
        yield url
    finally:
        process.terminate()
        process.wait(10)
