"""``chatter cluster``: one room served by several Chatter nodes behind haproxy,
all on this machine, as it would be by several machines (docs/CLUSTER.md).

Start, each step waiting for the one before:

1. the database: ``chatter db serve`` (the embedded PostgreSQL in the data
   directory), whose one line ``DATABASE_URL=...`` on stdout says it is up and
   migrated; with a ``DATABASE_URL`` of the user's, that server instead;
2. the nodes ``node-1`` .. ``node-N``: ``chatter serve`` on free loopback
   ports, sharing the database and one ``SECRET_KEY_BASE`` (a token one node
   signs, every node must accept), trusting 127.0.0.1 (haproxy) to name the
   client in ``X-Forwarded-For``; each is up once its ``/healthz`` answers 200
   naming it;
3. haproxy in the foreground (``-db``), with `web.haproxy.config` written to
   ``haproxy.cfg`` in the data directory; up once every node has answered
   ``/healthz`` through it (each node is in rotation).

Then one line on stdout (`ready_line`) names the URL and the nodes.

While it runs, every child's output is relayed to stderr, each line prefixed
with the child's name. A node that exits is reported there and the rest carry
on: haproxy's health check takes it out of rotation, which is what several
nodes are for. The database or haproxy exiting, or the last node, stops the
cluster with status 1.

Stop, on SIGINT, SIGTERM or SIGHUP: in reverse order of start, haproxy, the
nodes (together: SIGTERM, then SIGKILL after a grace), the database; exit 0.
How a child is started, relayed and stopped (in a process group of its own, so
that a Ctrl-C reaches only this process, which stops them in that order) is
`web.children`; haproxy's configuration is `web.haproxy`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import tornado.httpclient

from chatter.errors import ConfigError
from web import haproxy
from web.children import Child, relay, spawn
from web.errors import ClusterError
from web.haproxy import LOOPBACK, NodeSpec

__all__ = [
    "DEFAULT_NODES",
    "EXIT_FAILED",
    "MAX_NODES",
    "ClusterPlan",
    "healthz",
    "ready_line",
    "run_cluster",
]

DEFAULT_NODES = 3
MAX_NODES = 32
"""Each node is a Python process of some 60 MB; more than this on one machine is a typo."""
CONFIG_FILE_NAME = "haproxy.cfg"
EXIT_FAILED = 1
"""The exit status when the cluster could not start or lost its database or haproxy."""

DATABASE_START_TIMEOUT_S = 120.0
"""``chatter db serve`` runs initdb on a data directory's first use: seconds, more on slow disks."""
NODE_START_TIMEOUT_S = 60.0
"""A node starts Python, checks the migrations and starts its tree: a few seconds each."""
BALANCER_START_TIMEOUT_S = 30.0
"""haproxy starts at once; its first health checks take about a second."""
NODE_STOP_GRACE_S = 10.0
"""A node closes its sockets (waiting up to 3 s for the clients) and stops its tree."""
DATABASE_STOP_GRACE_S = 30.0
"""``pg_ctl stop -m fast`` ends the sessions and writes a checkpoint."""
BALANCER_STOP_GRACE_S = 5.0
"""haproxy stops at once on SIGTERM (it does not wait for open WebSockets)."""

HEALTH_POLL_FIRST_S = 0.05
HEALTH_POLL_MAX_S = 0.5
"""A process coming up says so no other way than by answering: /healthz is
asked again after 50 ms, then twice as long each time, up to 500 ms."""
HEALTH_REQUEST_TIMEOUT_S = 2.0

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_CHATTER = (sys.executable, "-m", "web")
"""The ``chatter`` command, run by the Python running this one."""


# -- what to run -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterPlan:
    """What ``chatter cluster`` was asked to run."""

    haproxy: str
    """The haproxy executable (`web.haproxy.find_haproxy`)."""
    data_dir: Path
    """The embedded database's directory (``chatter db serve --data-dir``), and
    where ``haproxy.cfg`` is written."""
    nodes: int = DEFAULT_NODES
    """How many nodes: 1 to `MAX_NODES`."""
    port: int = 4000
    """The port haproxy listens on, at 127.0.0.1: the cluster's one address."""
    database_url: str | None = None
    """A PostgreSQL server of the user's for the nodes to share; None: start
    ``chatter db serve``."""
    secret_key_base: str | None = None
    """The ``SECRET_KEY_BASE`` every node shares; None: a random one for this run."""

    def __post_init__(self) -> None:
        if not 1 <= self.nodes <= MAX_NODES:
            raise ConfigError(f"--nodes must be 1 to {MAX_NODES}, got {self.nodes}")
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"the cluster's port must be 1 to 65535, got {self.port}")

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/"


def ready_line(plan: ClusterPlan, nodes: Sequence[NodeSpec]) -> str:
    """The one line on stdout once the cluster serves: its URL and its nodes."""
    listed = ", ".join(f"{node.node_id} {node.url}" for node in nodes)
    count = f"{len(nodes)} node" + ("s" if len(nodes) > 1 else "")
    return f"Chatter cluster on {plan.url} (haproxy, leastconn) over {count}: {listed}"


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free on the loopback now: bound all at once (so
    distinct), then let go for the nodes to take. Another process could take
    one in between; that node would then fail to start and say so."""
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind((LOOPBACK, 0))
        return [probe.getsockname()[1] for probe in probes]


def _check_port_free(port: int) -> None:
    """Fail before starting anything if haproxy could not bind `port`."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as haproxy binds
        try:
            probe.bind((LOOPBACK, port))
        except OSError as error:
            raise ClusterError(
                f"{LOOPBACK}:{port} is taken ({error.strerror}): choose another with --port"
            ) from None


def _node_environment(environ: Mapping[str, str], database_url: str, secret: str) -> dict[str, str]:
    """A node's environment: the user's, less what would set one server's
    place (its flags set those), with the cluster's database, secret and proxy."""
    own = {"PORT", "HOST", "CHATTER_NODE_ID", "CHATTER_METRICS_PORT", "CHATTER_DATA_DIR"}
    return {
        **{name: value for name, value in environ.items() if name not in own},
        "DATABASE_URL": database_url,
        "SECRET_KEY_BASE": secret,
        "CHATTER_TRUSTED_PROXIES": LOOPBACK,
        "CHATTER_PROXY_PROTOCOL": "0",  # haproxy names the client in X-Forwarded-For
        "PYTHONUNBUFFERED": "1",
    }


def _database_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``chatter db serve``'s environment: it refuses a DATABASE_URL, and is
    given its data directory as a flag."""
    unset = {"DATABASE_URL", "CHATTER_DATA_DIR"}
    return {name: value for name, value in environ.items() if name not in unset}


# -- the cluster -----------------------------------------------------------------------------


class Cluster:
    """The database, the nodes and haproxy: started in that order, watched,
    and stopped in reverse (see the module's documentation)."""

    def __init__(
        self, plan: ClusterPlan, environ: Mapping[str, str], out: TextIO, err: TextIO
    ) -> None:
        self.plan = plan
        self._environ = environ
        self._out = out
        self._err = err
        self._stages: list[list[Child]] = []
        """The children by stage of start: the database, the nodes, haproxy."""
        self._name_width = max(len("database"), len(f"node-{plan.nodes}"))

    @property
    def children(self) -> list[Child]:
        return [child for stage in self._stages for child in stage]

    def report(self, text: str) -> None:
        """A line of the cluster's own on stderr."""
        self._err.write(f"chatter cluster: {text}\n")
        self._err.flush()

    # -- starting ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every part and wait until the cluster serves; then print the ready line."""
        _check_port_free(self.plan.port)
        self.plan.data_dir.mkdir(parents=True, exist_ok=True)
        database_url = self.plan.database_url or await self._start_database()
        secret = self.plan.secret_key_base or secrets.token_urlsafe(32)
        nodes = [
            NodeSpec(f"node-{number}", port)
            for number, port in enumerate(free_ports(self.plan.nodes), start=1)
        ]
        await self._start_nodes(nodes, _node_environment(self._environ, database_url, secret))
        await self._start_balancer(nodes)
        self._out.write(ready_line(self.plan, nodes) + "\n")
        self._out.flush()

    async def _start_database(self) -> str:
        """``chatter db serve`` in the data directory; its DATABASE_URL once migrated."""
        argv = [*_CHATTER, "db", "serve", "--data-dir", str(self.plan.data_dir)]
        child = await self._spawn(
            "database",
            argv,
            _database_environment(self._environ),
            essential=True,
            stop_grace_s=DATABASE_STOP_GRACE_S,
            keep_stdout=True,
        )
        self._stages.append([child])
        assert child.process.stdout is not None
        try:
            line = await asyncio.wait_for(child.process.stdout.readline(), DATABASE_START_TIMEOUT_S)
        except TimeoutError:
            raise ClusterError(
                f"the database gave no DATABASE_URL within {DATABASE_START_TIMEOUT_S:.0f} s"
            ) from None
        text = line.decode(errors="replace").strip()
        if not text.startswith("DATABASE_URL="):
            await child.process.wait()
            raise ClusterError(f"the database exited ({child.exit_status()}) before it was ready")
        relay(child, child.process.stdout, self._err, self._prefix(child.name))
        return text.removeprefix("DATABASE_URL=")

    async def _start_nodes(self, nodes: Sequence[NodeSpec], env: dict[str, str]) -> None:
        """Start every node at once; return when each answers /healthz."""
        stage: list[Child] = []
        self._stages.append(stage)
        for node in nodes:
            argv = [
                *_CHATTER,
                "serve",
                "--host",
                LOOPBACK,
                "--port",
                str(node.port),
                "--node-id",
                node.node_id,
            ]
            stage.append(
                await self._spawn(
                    node.node_id, argv, env, essential=False, stop_grace_s=NODE_STOP_GRACE_S
                )
            )
        await asyncio.gather(
            *(
                self._until_healthy(child, node.port, node.node_id, NODE_START_TIMEOUT_S)
                for child, node in zip(stage, nodes, strict=True)
            )
        )

    async def _start_balancer(self, nodes: Sequence[NodeSpec]) -> None:
        """haproxy with its configuration written out; return once every node
        answers /healthz through it."""
        config = self.plan.data_dir / CONFIG_FILE_NAME
        config.write_text(haproxy.config(self.plan.port, nodes), encoding="utf-8")
        child = await self._spawn(
            "haproxy",
            [self.plan.haproxy, "-db", "-f", str(config)],
            dict(self._environ),
            essential=True,
            stop_grace_s=BALANCER_STOP_GRACE_S,
        )
        self._stages.append([child])
        await self._until_healthy(child, self.plan.port, None, BALANCER_START_TIMEOUT_S)
        await self._until_in_rotation(nodes, BALANCER_START_TIMEOUT_S)

    async def _spawn(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        essential: bool,
        stop_grace_s: float,
        keep_stdout: bool = False,
    ) -> Child:
        """`web.children.spawn`, its output relayed to the cluster's stderr."""
        return await spawn(
            name,
            argv,
            env,
            essential=essential,
            stop_grace_s=stop_grace_s,
            relay_to=self._err,
            prefix=self._prefix(name),
            keep_stdout=keep_stdout,
        )

    def _prefix(self, name: str) -> str:
        """What a child's output lines begin with: its name, the names aligned."""
        return f"{name:<{self._name_width}} | "

    async def _until_healthy(
        self, child: Child, port: int, node_id: str | None, timeout_s: float
    ) -> None:
        """Return once ``/healthz`` at `port` answers 200 (naming `node_id`, if
        given: another process could have taken the port); ClusterError if
        `child` exits first or `timeout_s` passes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        pause = HEALTH_POLL_FIRST_S
        while True:
            if child.exited:
                raise ClusterError(
                    f"{child.name} exited ({child.exit_status()}) before it was ready"
                )
            status, body = await healthz(port)
            if status == 200 and node_id is not None and body.get("node") != node_id:
                raise ClusterError(
                    f"{LOOPBACK}:{port} is answered by {body.get('node')!r}, not {node_id}:"
                    " another process took its port"
                )
            if status == 200:
                return
            if loop.time() > deadline:
                raise ClusterError(
                    f"{child.name} was not healthy within {timeout_s:.0f} s"
                    f" (GET /healthz: {status or 'no answer'})"
                )
            await asyncio.sleep(pause)
            pause = min(2 * pause, HEALTH_POLL_MAX_S)

    async def _until_in_rotation(self, nodes: Sequence[NodeSpec], timeout_s: float) -> None:
        """Return once every node has answered ``/healthz`` through haproxy, so
        that the ready line means every node takes clients: a node whose first
        health check failed (a slow start on a busy machine) is out of rotation
        until two more pass. Each request is a connection of its own, which
        leastconn gives to the nodes in turn. ClusterError if haproxy or a node
        exits first or `timeout_s` passes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        waiting = {node.node_id for node in nodes}
        while waiting:
            gone = [child for child in self.children if child.exited]
            if gone:
                raise ClusterError(
                    f"{gone[0].name} exited ({gone[0].exit_status()}) before the cluster was ready"
                )
            status, body = await healthz(self.plan.port)
            if status == 200 and body.get("node") in waiting:
                waiting.discard(body["node"])
                continue
            if loop.time() > deadline:
                raise ClusterError(
                    f"haproxy did not send clients to {', '.join(sorted(waiting))}"
                    f" within {timeout_s:.0f} s: its health checks of them fail"
                )
            await asyncio.sleep(HEALTH_POLL_FIRST_S)

    # -- running -------------------------------------------------------------------------------

    async def watch(self, stop: asyncio.Event) -> int:
        """Until `stop` is set (exit status 0) or a part the cluster cannot run
        without exits (1): report each child that exits."""
        exits = {asyncio.ensure_future(child.process.wait()): child for child in self.children}
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while True:
                done, _ = await asyncio.wait(
                    {stopping, *exits}, return_when=asyncio.FIRST_COMPLETED
                )
                for finished in done - {stopping}:
                    if not self._carries_on_without(exits.pop(finished)):
                        return EXIT_FAILED
                if stopping in done:
                    return 0
        finally:
            for waiting in (stopping, *exits):
                waiting.cancel()

    def _carries_on_without(self, child: Child) -> bool:
        """Report `child`'s exit; whether the cluster can run on without it."""
        if child.essential:
            self.report(f"{child.name} exited ({child.exit_status()}): stopping the cluster")
            return False
        alive = [other.name for other in self.children if not other.essential and not other.exited]
        if not alive:
            self.report(f"{child.name} exited ({child.exit_status()}), the last node: stopping")
            return False
        self.report(
            f"{child.name} exited ({child.exit_status()}); {', '.join(alive)} carry on"
            " (haproxy's health check takes it out of rotation)"
        )
        return True

    # -- stopping ------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop every child, stage by stage in reverse order of start."""
        for stage in reversed(self._stages):
            await asyncio.gather(*(child.stop(self.report) for child in stage))


async def healthz(port: int) -> tuple[int, dict[str, Any]]:
    """``GET /healthz`` at 127.0.0.1:`port`: the status and JSON body, (0, {})
    when nothing answered."""
    client = tornado.httpclient.AsyncHTTPClient()
    try:
        response = await client.fetch(
            f"http://{LOOPBACK}:{port}/healthz",
            raise_error=False,
            connect_timeout=HEALTH_REQUEST_TIMEOUT_S,
            request_timeout=HEALTH_REQUEST_TIMEOUT_S,
        )
    except (OSError, tornado.httpclient.HTTPClientError):
        return 0, {}
    try:
        body = json.loads(response.body or b"{}")
    except ValueError:
        body = {}
    return response.code, body if isinstance(body, dict) else {}


async def _run(plan: ClusterPlan, environ: Mapping[str, str], out: TextIO, err: TextIO) -> int:
    """Start the cluster, run it until a stop signal or a fatal exit, stop it;
    the exit status."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in _STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    cluster = Cluster(plan, environ, out, err)
    try:
        starting = asyncio.ensure_future(cluster.start())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not starting.done():  # asked to stop while starting
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
            return 0
        starting.result()
        return await cluster.watch(stop)
    except ClusterError as error:
        cluster.report(str(error))
        return EXIT_FAILED
    finally:
        await cluster.stop()
        for signum in _STOP_SIGNALS:
            loop.remove_signal_handler(signum)


def run_cluster(
    plan: ClusterPlan,
    environ: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run the cluster in the foreground until SIGINT, SIGTERM or SIGHUP (exit
    status 0) or until it cannot go on (1). `environ` (default: this process's)
    is what the children inherit; `out` gets the ready line, `err` the rest."""
    return asyncio.run(
        _run(
            plan,
            os.environ if environ is None else environ,
            sys.stdout if out is None else out,
            sys.stderr if err is None else err,
        )
    )
