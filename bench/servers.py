"""The servers under test, each a process of its own, the database, and what they cost.

`running_server` starts Chatter (``python -m web serve``, against the
database the caller gives it) or one of the baselines of `bench.baselines`
on a free port of 127.0.0.1, logging to a file (a pipe nobody reads would
block it), waits for ``/healthz``, and on the way out stops it with SIGTERM,
then SIGKILL if it lingers. `embedded_database` starts a PostgreSQL 18 in a
temporary directory, with Chatter's schema, for one run.

Costs are read from ``/proc`` (Linux): a process's CPU time, resident memory
and threads; the CPU time of PostgreSQL and its backends; and the busy share
of the whole machine. `kill_actor` and `restarts_of` use Chatter's supervision
API (scenario 6).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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
    "HostCpu",
    "ProcessCost",
    "RunningServer",
    "ServerSample",
    "embedded_database",
    "kill_actor",
    "process_cost",
    "process_tree_cpu_s",
    "restarts_of",
    "running_server",
    "tail",
    "watch",
    "wire_of",
]

DEMO = "demo"
FRAME = "frame"
BATCHED = "batched"
SOCKETIO = "socketio"
CHATTER = "chatter"
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
"""How often `watch` samples a server's RSS and threads."""
MAX_CONNECTIONS = 20_000
"""Chatter's caps for the benchmark, in all and per address: the defaults (10,000
and 100) would refuse the 10,001st connection and all but 100 from one address,
and the whole load comes from 127.0.0.1."""

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_REPO = Path(__file__).resolve().parents[1]


def wire_of(server: str) -> str:
    """The wire a server speaks (`bench.wsclient`)."""
    return SOCKETIO_WIRE if server == SOCKETIO else CHATTER_WIRE


def tail(path: Path, lines: int = 30) -> str:
    """The end of a log, for an error message."""
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


# -- /proc ------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    """Fields 3.. of /proc/PID/stat (after the command name, which may hold spaces)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


@dataclass(frozen=True)
class ProcessCost:
    cpu_s: float
    """User plus system CPU time, all threads."""
    rss_kib: int
    threads: int


def process_cost(pid: int) -> ProcessCost:
    """CPU time, resident memory and thread count of a process, now."""
    fields = _stat_fields(pid)
    rss_kib = threads = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return ProcessCost((int(fields[11]) + int(fields[12])) / _CLOCK_TICKS, rss_kib, threads)


def process_tree_cpu_s(root: int) -> dict[int, float]:
    """CPU seconds of `root` and of each of its children, by pid (PostgreSQL's
    postmaster and its backends)."""
    found: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                pid, fields = int(entry.name), _stat_fields(int(entry.name))
                if pid == root or int(fields[1]) == root:
                    found[pid] = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    return found


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


@dataclass(frozen=True)
class HostCpu:
    """The whole machine's CPU counters (/proc/stat), to take differences of."""

    busy: int
    total: int

    @classmethod
    def now(cls) -> HostCpu:
        with open("/proc/stat") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        total = sum(values[:8])  # guest time is already inside user time
        return cls(total - idle, total)

    def busy_percent_since(self, earlier: HostCpu) -> float:
        """Busy share of all CPUs between `earlier` and this, 0 to 100."""
        total = self.total - earlier.total
        return 100.0 * (self.busy - earlier.busy) / total if total > 0 else 0.0


def watch(pid: int, postmaster: int | None, until: float) -> ServerSample:
    """What the server (and its database) cost until `until`, sampled from now."""
    host_before, before = HostCpu.now(), process_cost(pid)
    db_before = process_tree_cpu_s(postmaster) if postmaster else {}
    started = time.monotonic()
    peak_rss, peak_threads = before.rss_kib, before.threads
    while time.time() < until:
        time.sleep(max(0.0, min(SAMPLE_S, until - time.time())))
        cost = process_cost(pid)
        peak_rss, peak_threads = max(peak_rss, cost.rss_kib), max(peak_threads, cost.threads)
    db_after = process_tree_cpu_s(postmaster) if postmaster else {}
    return ServerSample(
        window_s=time.monotonic() - started,
        cpu_s=process_cost(pid).cpu_s - before.cpu_s,
        db_cpu_s=sum(cpu - db_before.get(p, 0.0) for p, cpu in db_after.items())
        if postmaster
        else None,
        peak_rss_kib=peak_rss,
        peak_threads=peak_threads,
        host_busy_percent=HostCpu.now().busy_percent_since(host_before),
        cpus=os.cpu_count() or 1,
    )


# -- the database -----------------------------------------------------------------------


@dataclass(frozen=True)
class Database:
    conninfo: str
    version: str
    """``PostgreSQL 18.6``."""
    postmaster: int | None


@contextlib.contextmanager
def embedded_database(work_dir: Path) -> Iterator[Database]:
    """PostgreSQL 18 in `work_dir`, migrated to the newest schema; stopped on exit."""
    import psycopg

    from chatter.database import EmbeddedPostgres, migrate

    server = EmbeddedPostgres(work_dir / "db")
    try:
        conninfo = server.start()
        migrate(conninfo)
        with psycopg.connect(conninfo) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        postmaster = None
        with contextlib.suppress(OSError, ValueError):
            postmaster = int((server.pgdata / "postmaster.pid").read_text().split()[0])
        yield Database(conninfo, f"PostgreSQL {row[0] if row else '?'}", postmaster)
    finally:
        server.close()


# -- server processes -------------------------------------------------------------------


@dataclass(frozen=True)
class RunningServer:
    name: str
    pid: int
    port: int
    log: Path


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
            raise RuntimeError(f"the server exited with {process.returncode}:\n{tail(log)}")
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
    name: str, work_dir: Path, database_url: str | None = None
) -> Iterator[RunningServer]:
    """Start server `name` on a free port, with the open-files limit raised (10,000
    sockets need more than 1,024); stop it on exit, whatever happens. Chatter
    needs `database_url` and keeps its secrets in `work_dir`."""
    if name not in SERVERS:
        raise ValueError(f"unknown server {name!r}; choose from {SERVERS}")
    port = _free_port()
    log = work_dir / f"{name}-{port}.log"
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the server inherits it
    env = dict(os.environ)
    command = [sys.executable, "-m", "bench.baselines", name]
    if name == CHATTER:
        if database_url is None:
            raise ValueError("Chatter needs a database_url")
        command = [sys.executable, "-m", "web", "serve"]
        caps = str(MAX_CONNECTIONS)
        env.update(
            DATABASE_URL=database_url,
            CHATTER_DATA_DIR=str(work_dir / "chatter-data"),
            CHATTER_MAX_CONNECTIONS=caps,
            CHATTER_MAX_CONNECTIONS_PER_IP=caps,
            CHATTER_MAX_PENDING_PER_IP=caps,  # thousands of handshakes at once, one address
            CHATTER_NAME_CLAIMS_PER_IP=caps,
            CHATTER_ENV="dev",
            CHATTER_CHAOS="1",  # scenario 6 kills the room (dev allows it anyway: say so)
        )
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [*command, "--host", HOST, "--port", str(port)],
            cwd=_REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_ready(process, port, log)
            yield RunningServer(name, process.pid, port, log)
        finally:
            _stop(process)


# -- Chatter's supervision API ----------------------------------------------------------


def kill_actor(port: int, actor: str) -> None:
    """``POST /api/supervision/kill`` (docs/PROTOCOL.md): crash `actor` from inside."""
    request = urllib.request.Request(
        f"http://{HOST}:{port}/api/supervision/kill",
        data=json.dumps({"id": actor}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        if answer.status != 202:
            raise RuntimeError(f"kill {actor!r} answered {answer.status}")


def restarts_of(port: int, actor: str) -> int | None:
    """How often `actor` has been restarted (``GET /api/supervision``); None while the
    tree is down or the actor is not running."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/api/supervision", timeout=5) as answer:
            nodes = [json.load(answer)]
    except (OSError, urllib.error.URLError, ValueError):
        return None
    while nodes:
        node = nodes.pop()
        if node.get("id") == actor:
            restarts = node.get("restarts")
            return restarts if node.get("alive") and isinstance(restarts, int) else None
        nodes.extend(node.get("children", []))
    return None
