"""The servers under test, each in a process of its own, and what they cost.

`running_server` runs Chatter (``python -m chatter serve``, against a database
the caller provides: the orchestrator starts an embedded PostgreSQL 18 in a
temporary directory for the run) or one of the baselines: the Tornado chat demo
(`bench.fanout.baseline_demo`), the same broadcast writing one pre-built frame
(`bench.fanout.baseline_frame`), python-socketio (`bench.fanout.baseline_socketio`).
Each listens on 127.0.0.1, log to a file (a pipe nobody reads would block them), and
are stopped with SIGTERM, then SIGKILL if they linger.

Costs are read from ``/proc`` (Linux): a process's CPU time, resident memory
and thread count; the CPU time of the PostgreSQL server and its backends; and
the busy share of the whole machine.
"""

from __future__ import annotations

import contextlib
import json
import os
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

__all__ = [
    "CHATTER",
    "DEMO",
    "FRAME",
    "LABELS",
    "SERVERS",
    "SOCKETIO",
    "HostCpu",
    "ProcessCost",
    "RunningServer",
    "free_port",
    "kill_actor",
    "process_cost",
    "process_tree_cpu_s",
    "restarts_of",
    "running_server",
    "stop_process",
    "wait_ready",
]

CHATTER = "chatter"
DEMO = "demo"
FRAME = "frame"
SOCKETIO = "socketio"
SERVERS = (DEMO, FRAME, SOCKETIO, CHATTER)
"""In the order a run measures them."""
LABELS = {
    DEMO: "Tornado demo",
    FRAME: "pre-built frame",
    SOCKETIO: "python-socketio",
    CHATTER: "Chatter",
}
"""How the report names them."""
_MODULES = {
    DEMO: "bench.fanout.baseline_demo",
    FRAME: "bench.fanout.baseline_frame",
    SOCKETIO: "bench.fanout.baseline_socketio",
}

HOST = "127.0.0.1"
READY_TIMEOUT_S = 60.0
"""Longest wait for a server to answer /healthz after it is started."""
STOP_TIMEOUT_S = 15.0
"""Longest wait for a server to exit after SIGTERM, before SIGKILL."""
MAX_CONNECTIONS_PER_IP = 5000
"""Chatter allows 100 connections per address by default; the whole load comes from one."""

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


# -- /proc ------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    """Fields 3.. of /proc/PID/stat (after the command name, which may hold spaces)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def process_cpu_s(pid: int) -> float:
    """User plus system CPU time of a process (all its threads), in seconds."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


@dataclass(frozen=True)
class ProcessCost:
    cpu_s: float
    rss_kib: int
    threads: int


def process_cost(pid: int) -> ProcessCost:
    """CPU time, resident memory and thread count of a process, now."""
    rss_kib = threads = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return ProcessCost(process_cpu_s(pid), rss_kib, threads)


def process_tree_cpu_s(root: int) -> dict[int, float]:
    """CPU seconds of `root` and of each of its children, by pid (PostgreSQL's
    postmaster and its backends)."""
    found: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = _stat_fields(pid)
            if pid == root or int(fields[1]) == root:
                found[pid] = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    return found


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


# -- server processes -------------------------------------------------------------------


@dataclass(frozen=True)
class RunningServer:
    name: str
    pid: int
    port: int
    log: Path


def _command(name: str, port: int) -> list[str]:
    if name == CHATTER:
        return [sys.executable, "-m", "chatter", "serve", "--host", HOST, "--port", str(port)]
    if name in _MODULES:
        return [sys.executable, "-m", _MODULES[name], "--host", HOST, "--port", str(port)]
    raise ValueError(f"unknown server {name!r}; choose from {SERVERS}")


def wait_ready(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    """Wait until the server answers /healthz with 200; fail if it exits first."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    url = f"http://{HOST}:{port}/healthz"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}; see {log}")
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=2) as answer,
        ):
            if answer.status == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"the server did not answer {url} in {READY_TIMEOUT_S} s; see {log}")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it is not gone in `STOP_TIMEOUT_S`."""
    if process.poll() is not None:
        return
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
    """Start server `name` on a free port; stop it on exit, whatever happens.
    Chatter needs `database_url` and keeps its secrets in `work_dir`."""
    port = free_port()
    log = work_dir / f"{name}.log"
    env = dict(os.environ)
    if name == CHATTER:
        if database_url is None:
            raise ValueError("Chatter needs a database_url")
        env.update(
            DATABASE_URL=database_url,
            CHATTER_DATA_DIR=str(work_dir / "chatter-data"),
            CHATTER_MAX_CONNECTIONS_PER_IP=str(MAX_CONNECTIONS_PER_IP),
            CHATTER_MAX_PENDING_PER_IP=str(MAX_CONNECTIONS_PER_IP),  # one generator, one address
            CHATTER_NAME_CLAIMS_PER_IP=str(MAX_CONNECTIONS_PER_IP),
            CHATTER_ENV="dev",
            CHATTER_CHAOS="1",  # scenario 6 kills the room (dev allows it anyway: say so)
        )
    with open(log, "wb") as out:
        process = subprocess.Popen(
            _command(name, port), cwd=_REPO, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            wait_ready(process, port, log)
            yield RunningServer(name, process.pid, port, log)
        finally:
            stop_process(process)


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
            tree = json.load(answer)
    except (OSError, urllib.error.URLError, ValueError):
        return None
    nodes = [tree]
    while nodes:
        node = nodes.pop()
        if node.get("id") == actor:
            restarts = node.get("restarts")
            return restarts if node.get("alive") and isinstance(restarts, int) else None
        nodes.extend(node.get("children", []))
    return None
