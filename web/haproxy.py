"""haproxy for ``chatter cluster`` (`web.cluster`): where to find it, and its
configuration for a set of nodes. Each setting's reason is in docs/CLUSTER.md,
"The haproxy settings"."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass

from web.errors import ClusterError

__all__ = ["CHECK_INTERVAL", "HAPROXY_PATHS", "LOOPBACK", "NodeSpec", "config", "find_haproxy"]

LOOPBACK = "127.0.0.1"
"""Where every part of a local cluster listens: it is for this machine's user only."""
HAPROXY_PATHS = ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy")
"""Where haproxy is looked for when it is not on PATH (a user's PATH often lacks sbin)."""
CHECK_INTERVAL = "1s"
"""The health check's period: a dead node is out of rotation within about two
(``fall 2``), a node that is back is in again after two good ones (``rise 2``)."""


@dataclass(frozen=True)
class NodeSpec:
    """One node of the cluster: its name and the loopback port it listens on."""

    node_id: str
    """``node-1`` .. ``node-N``: its ``--node-id``, and its server name in haproxy."""
    port: int

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


def find_haproxy(given: str | None) -> str:
    """The haproxy to run: `given` (``--haproxy`` or ``HAPROXY``), else the one
    on PATH, else Debian's; ClusterError saying how to install it if none is."""
    candidates = [given] if given else [shutil.which("haproxy"), *HAPROXY_PATHS]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    where = given or "on PATH or in " + " or ".join(HAPROXY_PATHS)
    raise ClusterError(
        f"no haproxy {where}: `make cluster` installs Debian's (scripts/ensure-haproxy),"
        " or apt-get install haproxy, or name one with --haproxy PATH"
    )


def config(port: int, nodes: Sequence[NodeSpec]) -> str:
    """haproxy's configuration for `nodes` behind 127.0.0.1:`port`."""
    servers = "\n".join(f"    server {node.node_id} {LOOPBACK}:{node.port}" for node in nodes)
    return f"""\
# Written by `chatter cluster` (web/haproxy.py) at each start: edits are lost.
# Why each setting: docs/CLUSTER.md, "The haproxy settings".
# haproxy -db writes a node going DOWN or UP on its stderr, which the cluster relays.

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    # An open WebSocket: idle this long, it is closed. The nodes ping every 20 s.
    timeout tunnel 1h
    # A connection one side has closed: the other side has this long to close too.
    timeout client-fin 10s
    timeout server-fin 10s
    timeout check 2s

frontend chatter
    bind {LOOPBACK}:{port}
    # The client's address for the nodes' per-address limits: whatever a client
    # sent is dropped, then haproxy appends the address it sees.
    http-request del-header X-Forwarded-For
    option forwardfor
    default_backend nodes

backend nodes
    balance leastconn
    option httpchk GET /healthz
    http-check expect status 200
    # A connection refused by a node that died since the last check goes to another.
    retries 2
    option redispatch 1
    default-server check inter {CHECK_INTERVAL} fall 2 rise 2
{servers}
"""
