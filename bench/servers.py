"""The servers under test, each a process of its own, the database, and what they cost.

`running_server` starts Chatter (``python -m web serve``, against the
database the caller gives it) or one of the baselines of `bench.baselines`
on a free port of 127.0.0.1, logging to a file (a pipe nobody reads would
block it), waits for ``/healthz``, and on the way out stops it with SIGTERM,
then SIGKILL if it lingers; a failure meanwhile carries the end of its log.
`running_nodes` starts several Chatter nodes on one database, a cluster
(docs/CLUSTER.md). `embedded_database` starts a PostgreSQL 18 in a temporary
directory, with Chatter's schema, for one run.

Costs are read from ``/proc`` (Linux): a process's CPU time, resident memory
and threads; the CPU time of PostgreSQL and its backends; and the busy share
of the whole machine (`Meter`).
"""

from __future__ import annotations

import contextlib
import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.report import Progress
from bench.wsclient import CHATTER_WIRE, SOCKETIO_WIRE

__all__ = [
    "BATCHED",
    "CHATTER",
    "DEMO",
    "FRAME",
    "HOST",
    "LABELS",
    "SERVERS",
    "SOCKETIO",
    "Database",
    "Meter",
    "RunningServer",
    "ServerSample",
    "embedded_database",
    "process_cost",
    "raise_files_limit",
    "running_nodes",
    "running_server",
]

DEMO, FRAME, BATCHED, SOCKETIO, CHATTER = "demo", "frame", "batched", "socketio", "chatter"
SERVERS = (DEMO, FRAME, BATCHED, SOCKETIO, CHATTER)
"""Every server, in the order a run measures them."""
LABELS = {
    DEMO: "Tornado demo",
    FRAME: "pre-built frame",
    BATCHED: "batched frames",
    SOCKETIO: "python-socketio",
    CHATTER: "Chatter",
}
"""How the report names them."""

HOST = "127.0.0.1"
READY_TIMEOUT_S = 60.0
"""Longest wait for a server to answer /healthz after it is started."""
STOP_TIMEOUT_S = 15.0
"""Longest wait for a server to exit after SIGTERM, before SIGKILL."""
SAMPLE_S = 0.5
"""How often `Meter.until` samples a server's RSS and threads."""
MAX_CONNECTIONS = 20_000
"""Chatter's caps for the benchmark, in all and per address: the defaults (10,000
and 100) would refuse the 10,001st connection and all but 100 from one address,
and the whole load comes from 127.0.0.1."""

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_REPO = Path(__file__).resolve().parents[1]


def _tail(path: Path, lines: int = 30) -> str:
    """The end of a log, for an error message."""
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def raise_files_limit() -> None:
    """The open-files limit up to its hard limit: 10,000 sockets need more than 1,024."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- /proc ------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    """Fields 3.. of /proc/PID/stat (after the command name, which may hold spaces)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def _cpu_s(fields: list[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime + stime


@dataclass(frozen=True)
class ProcessCost:
    cpu_s: float
    """User plus system CPU time, all threads."""
    rss_kib: int
    threads: int


def process_cost(pid: int) -> ProcessCost:
    """CPU time, resident memory and thread count of a process, now."""
    with open(f"/proc/{pid}/status") as lines:
        status = {key: value for key, _, value in (line.partition(":") for line in lines)}
    rss_kib, threads = (int(status.get(key, "0").split()[0]) for key in ("VmRSS", "Threads"))
    return ProcessCost(_cpu_s(_stat_fields(pid)), rss_kib, threads)


def _tree_cpu_s(root: int | None) -> dict[int, float]:
    """CPU seconds of `root` and of each of its children, by pid (PostgreSQL's
    postmaster and its backends)."""
    found: dict[int, float] = {}
    if root is None:
        return found
    for entry in os.scandir("/proc"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid, fields = int(entry.name), _stat_fields(int(entry.name))
            if root in (pid, int(fields[1])):
                found[pid] = _cpu_s(fields)
    return found


def _host_cpu() -> tuple[int, int]:
    """The whole machine's busy and total CPU time (/proc/stat), to take differences of."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    total = sum(values[:8])  # guest time is already inside user time
    return total - values[3] - (values[4] if len(values) > 4 else 0), total  # - idle - iowait


@dataclass(frozen=True)
class ServerSample:
    """What a server cost over a window."""

    window_s: float
    cpu_s: float
    db_cpu_s: float | None
    """PostgreSQL's CPU time, its backends' included (Chatter's database)."""
    peak_rss_kib: int
    peak_threads: int
    host_busy_percent: float
    """The whole machine's busy share, 0 to 100."""
    cpus: int


class Meter:
    """What a server (and its database, given its postmaster) costs from now on."""

    def __init__(self, pid: int, postmaster: int | None = None) -> None:
        self.pid, self.postmaster = pid, postmaster
        self.host, self.cost = _host_cpu(), process_cost(pid)
        self.db_cpu = _tree_cpu_s(postmaster)
        self.started = time.monotonic()
        self.peak_rss, self.peak_threads = self.cost.rss_kib, self.cost.threads

    def until(self, at: float) -> ServerSample:
        """Sample RSS and threads until `at` (`time.time()`), then `stop`."""
        while time.time() < at:
            time.sleep(max(0.0, min(SAMPLE_S, at - time.time())))
            cost = process_cost(self.pid)
            self.peak_rss = max(self.peak_rss, cost.rss_kib)
            self.peak_threads = max(self.peak_threads, cost.threads)
        return self.stop()

    def stop(self) -> ServerSample:
        db_after = _tree_cpu_s(self.postmaster)
        busy, total = (now - then for now, then in zip(_host_cpu(), self.host, strict=True))
        return ServerSample(
            window_s=time.monotonic() - self.started,
            cpu_s=process_cost(self.pid).cpu_s - self.cost.cpu_s,
            db_cpu_s=sum(cpu - self.db_cpu.get(p, 0.0) for p, cpu in db_after.items())
            if self.postmaster
            else None,
            peak_rss_kib=self.peak_rss,
            peak_threads=self.peak_threads,
            host_busy_percent=100.0 * busy / total if total > 0 else 0.0,
            cpus=os.cpu_count() or 1,
        )


# -- the database -----------------------------------------------------------------------


@dataclass(frozen=True)
class Database:
    conninfo: str
    version: str
    """``PostgreSQL 18.6``."""
    postmaster: int | None
    work_dir: Path
    """A temporary directory beside the database's, for the servers' logs and data."""


@contextlib.contextmanager
def embedded_database(scenario: str, progress: Progress) -> Iterator[Database]:
    """PostgreSQL 18 in a temporary directory, migrated to the newest schema; stopped
    and removed on exit."""
    import psycopg

    from chatter.database import EmbeddedPostgres, migrate

    progress(f"[{scenario}] starting an embedded PostgreSQL in a temporary directory")
    with tempfile.TemporaryDirectory(prefix=f"{scenario}-", ignore_cleanup_errors=True) as tmp:
        server = EmbeddedPostgres(Path(tmp) / "db")
        try:
            conninfo = server.start()
            migrate(conninfo)
            with psycopg.connect(conninfo) as conn:
                row = conn.execute("SHOW server_version").fetchone()
            postmaster = None
            with contextlib.suppress(OSError, ValueError):
                postmaster = int((server.pgdata / "postmaster.pid").read_text().split()[0])
            version = f"PostgreSQL {row[0] if row else '?'}"
            yield Database(conninfo, version, postmaster, Path(tmp))
        finally:
            server.close()


# -- server processes -------------------------------------------------------------------


@dataclass(frozen=True)
class RunningServer:
    name: str
    pid: int
    port: int
    log: Path
    node_id: str = ""
    """A Chatter node's ``CHATTER_NODE_ID`` when it was given one (`running_nodes`)."""

    @property
    def label(self) -> str:
        """``chatter``, or ``chatter node-2`` for a node of a cluster."""
        return f"{self.name} {self.node_id}" if self.node_id else self.name

    @property
    def wire(self) -> str:
        """The wire it speaks (`bench.wsclient`)."""
        return SOCKETIO_WIRE if self.name == SOCKETIO else CHATTER_WIRE

    @contextlib.contextmanager
    def blamed(self) -> Iterator[None]:
        """An exception within names the server and ends with the end of its log."""
        try:
            yield
        except Exception as error:
            end = f"the end of {self.log.name}:\n{_tail(self.log)}"
            raise RuntimeError(f"{self.label}: {error}; {end}") from error


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_ready(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    """Wait until the server answers /healthz with 200; fail if it exits first."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    url = f"http://{HOST}:{port}/healthz"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=2) as answer,
        ):
            if answer.status == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"the server did not answer {url} in {READY_TIMEOUT_S} s; see {log}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it is not gone in `STOP_TIMEOUT_S`."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT_S)


@contextlib.contextmanager
def running_server(
    name: str, work_dir: Path, database: Database | None = None, node_id: str = "", secret: str = ""
) -> Iterator[RunningServer]:
    """Start server `name` on a free port, with the open-files limit raised; stop it
    on exit, whatever happens. Chatter needs `database` and keeps its secrets in
    `work_dir`; a node of a cluster is given its `node_id` and the cluster's
    `secret` (``SECRET_KEY_BASE``), and a data directory of its own. An exception
    within is `RunningServer.blamed`."""
    if name not in SERVERS:
        raise ValueError(f"unknown server {name!r}; choose from {SERVERS}")
    port = _free_port()
    log = work_dir / f"{name}{'-' + node_id if node_id else ''}-{port}.log"
    raise_files_limit()  # the server inherits it
    env = dict(os.environ)
    command = [sys.executable, "-m", "bench.baselines", name]
    if name == CHATTER:
        if database is None:
            raise ValueError("Chatter needs a database")
        command = [sys.executable, "-m", "web", "serve"]
        caps = str(MAX_CONNECTIONS)
        env.update(
            DATABASE_URL=database.conninfo,
            CHATTER_DATA_DIR=str(work_dir / f"chatter-data{'-' + node_id if node_id else ''}"),
            CHATTER_MAX_CONNECTIONS=caps,
            CHATTER_MAX_CONNECTIONS_PER_IP=caps,
            CHATTER_MAX_PENDING_PER_IP=caps,  # thousands of handshakes at once, one address
            CHATTER_NAME_CLAIMS_PER_IP=caps,
            CHATTER_ENV="dev",
            CHATTER_CHAOS="1",  # scenario 6 kills the room (dev allows it anyway: say so)
        )
        if node_id:
            env["CHATTER_NODE_ID"] = node_id
        if secret:
            env["SECRET_KEY_BASE"] = secret
    elif node_id or secret:
        raise ValueError(f"only Chatter has nodes; {name!r} was given node {node_id!r}")
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [*command, "--host", HOST, "--port", str(port)],
            cwd=_REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        server = RunningServer(name, process.pid, port, log, node_id)
        try:
            with server.blamed():
                _wait_ready(process, port, log)
                yield server
        finally:
            _stop(process)


@contextlib.contextmanager
def running_nodes(count: int, work_dir: Path, database: Database) -> Iterator[list[RunningServer]]:
    """`count` Chatter nodes (``node-1``...) on `database`, a cluster as
    ``chatter cluster`` runs one without its balancer: one random
    ``SECRET_KEY_BASE`` for all, so a token from one node is good on another.
    Each is started once the one before answers; all are stopped on exit (a
    node already killed is simply gone)."""
    secret = secrets.token_urlsafe(32)
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(running_server(CHATTER, work_dir, database, f"node-{n}", secret))
            for n in range(1, count + 1)
        ]
