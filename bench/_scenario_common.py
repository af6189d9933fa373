"""What scenarios 3, 4 and 5 share: a database, a server, client processes, statistics.

Each scenario runs its own embedded PostgreSQL 18 in a temporary directory
(`embedded_database`), starts the servers it measures as processes of their
own (`running_server`: Chatter with its connection caps raised for the run, or
the Tornado-demo and python-socketio baselines of `bench.fanout`), drives them from separate client
processes (`ClientProcesses`, running `bench._scenario_clients`), and stops
everything it started on the way out, whatever happens. The fan-out
benchmark's helpers (`bench.fanout.servers`) are reused for ports and /proc.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bench import _scenario_clients as clients
from bench.fanout.servers import (
    CHATTER,
    DEMO,
    HOST,
    SOCKETIO,
    free_port,
    stop_process,
    wait_ready,
)
from bench.section import Progress, Section

__all__ = [
    "HOST",
    "RESULTS_DIR",
    "ClientProcesses",
    "Database",
    "ServerProcess",
    "embedded_database",
    "main_for",
    "percentile",
    "protocol_of",
    "raise_fd_limit",
    "running_server",
    "tail",
    "versions",
    "work_directory",
]

T = TypeVar("T")

RESULTS_DIR = Path(__file__).resolve().parent / "results"
"""Where a scenario run alone writes its figures (git-ignored)."""
_REPO = Path(__file__).resolve().parents[1]

STOP_TIMEOUT_S = 15.0
"""Longest wait for a process to exit after SIGTERM, before SIGKILL."""
MAX_CONNECTIONS = 20_000
"""Chatter's caps for the benchmark, in all and per address: the defaults (10,000
and 100) would refuse the 10,001st connection and all but 100 from one address."""


def raise_fd_limit() -> int:
    """Raise this process's soft limit of open files to the hard limit; returns it.
    10,000 sockets do not fit the usual soft limit of 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# -- statistics ---------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0..100) by linear interpolation; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def versions(*packages: str) -> str:
    """``tornado 6.5, psycopg 3.2``: the versions a table is measured with."""
    return ", ".join(f"{name} {importlib.metadata.version(name)}" for name in packages)


# -- the database -------------------------------------------------------------------------


@dataclass(frozen=True)
class Database:
    """An embedded PostgreSQL with Chatter's schema, for one scenario."""

    conninfo: str
    version: str
    """``PostgreSQL 18.1``."""
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
        postmaster: int | None = None
        with contextlib.suppress(OSError, ValueError):
            postmaster = int((server.pgdata / "postmaster.pid").read_text().split()[0])
        yield Database(conninfo, f"PostgreSQL {row[0] if row else '?'}", postmaster)
    finally:
        server.close()


# -- servers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerProcess:
    name: str
    pid: int
    port: int
    log: Path


_MODULES = {
    CHATTER: "chatter",
    DEMO: "bench.fanout.baseline_demo",
    SOCKETIO: "bench.fanout.baseline_socketio",
}


def protocol_of(server: str) -> str:
    """The wire protocol a server speaks, for `ClientProcesses`."""
    return clients.SOCKETIO_PROTOCOL if server == SOCKETIO else clients.CHATTER_PROTOCOL


def _command(name: str, port: int) -> list[str]:
    module = _MODULES.get(name)
    if module is None:
        raise ValueError(f"unknown server {name!r}; choose from {tuple(_MODULES)}")
    serve = ["serve"] if name == CHATTER else []
    return [sys.executable, "-m", module, *serve, "--host", HOST, "--port", str(port)]


@contextlib.contextmanager
def running_server(
    name: str, work_dir: Path, database_url: str | None = None
) -> Iterator[ServerProcess]:
    """Start server `name` (``"chatter"``, ``"demo"`` or ``"socketio"``) on a free
    port of 127.0.0.1 with the open-files limit raised; stop it on exit, whatever
    happens. Chatter needs `database_url`; its connection caps are raised to
    `MAX_CONNECTIONS` (`bench.fanout.servers` fixes the per-address cap at 5,000,
    too few for 10,000 connections from one address)."""
    port = free_port()
    log = work_dir / f"{name}-{port}.log"
    raise_fd_limit()  # the server inherits it: 10,000 sockets need more than 1,024
    env = dict(os.environ)
    if name == CHATTER:
        if database_url is None:
            raise ValueError("Chatter needs a database_url")
        env.update(
            DATABASE_URL=database_url,
            CHATTER_DATA_DIR=str(work_dir / "chatter-data"),
            CHATTER_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
            CHATTER_MAX_CONNECTIONS_PER_IP=str(MAX_CONNECTIONS),
            # One load generator opens thousands of sockets at once from one address.
            CHATTER_MAX_PENDING_PER_IP=str(MAX_CONNECTIONS),
            CHATTER_NAME_CLAIMS_PER_IP=str(MAX_CONNECTIONS),
            CHATTER_ENV="dev",
        )
    with open(log, "wb") as out:
        process = subprocess.Popen(
            _command(name, port),
            cwd=_REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_ready(process, port, log)
            yield ServerProcess(name, process.pid, port, log)
        finally:
            stop_process(process)


def tail(path: Path, lines: int = 20) -> str:
    """The end of a log, for an error message."""
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


# -- client processes -------------------------------------------------------------------


class ClientProcesses:
    """Processes of WebSocket clients (`bench._scenario_clients`), each driven
    through a pipe, one command at a time. Used as a context manager: every
    process is stopped on exit, then terminated, then killed."""

    def __init__(
        self,
        count: int,
        port: int,
        *,
        name: str = "bench-clients",
        protocol: str = clients.CHATTER_PROTOCOL,
    ) -> None:
        self._count = count
        self._port = port
        self._name = name
        self._protocol = protocol
        self._processes: list[Any] = []
        self._pipes: list[multiprocessing.connection.Connection] = []
        self._asked: list[int] = []

    def __enter__(self) -> ClientProcesses:
        context = multiprocessing.get_context("spawn")  # no inherited threads or sockets
        try:
            for index in range(self._count):
                ours, theirs = context.Pipe()
                process = context.Process(
                    target=clients.process_main,
                    args=(theirs, HOST, self._port, self._protocol),
                    name=f"{self._name}-{index}",
                    daemon=True,
                )
                process.start()
                theirs.close()
                self._processes.append(process)
                self._pipes.append(ours)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self._processes]

    def ask(self, commands: Sequence[Any | None], kind: type[T], timeout_s: float) -> list[T]:
        """Send command ``commands[i]`` to process ``i`` (None: nothing) and
        return the answers of type `kind`, in process order."""
        self.send(commands)
        return self.gather(kind, timeout_s)

    def send(self, commands: Sequence[Any | None]) -> None:
        """Send command ``commands[i]`` to process ``i`` (None: nothing); `gather`
        collects the answers."""
        self._asked = [i for i in range(len(self._pipes)) if commands[i] is not None]
        for i in self._asked:
            self._pipes[i].send(commands[i])

    def gather(self, kind: type[T], timeout_s: float) -> list[T]:
        """The answers of type `kind` to the last `send`, in process order."""
        asked = {i: self._pipes[i] for i in self._asked}
        answers: dict[int, T] = {}
        deadline = time.monotonic() + timeout_s
        while len(answers) < len(asked):
            waiting = [pipe for i, pipe in asked.items() if i not in answers]
            ready = multiprocessing.connection.wait(waiting, max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError(f"no {kind.__name__} from every client process in {timeout_s} s")
            for one in ready:
                assert isinstance(one, multiprocessing.connection.Connection)
                index = self._pipes.index(one)
                try:
                    answer = one.recv()
                except EOFError:
                    raise RuntimeError(f"client process {index} died") from None
                if isinstance(answer, clients.Failed):
                    raise RuntimeError(f"client process {index} failed:\n{answer.error}")
                if not isinstance(answer, kind):
                    raise RuntimeError(f"client process {index} answered {answer!r}, not {kind}")
                answers[index] = answer
        return [answers[i] for i in sorted(answers)]

    def ask_all(self, command: Any, kind: type[T], timeout_s: float) -> list[T]:
        return self.ask([command] * self._count, kind, timeout_s)

    def close(self) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(OSError):
                pipe.send(clients.Stop())
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in self._processes:
            process.join(max(0.0, deadline - time.monotonic()))
            for end in (process.terminate, process.kill):
                if process.is_alive():
                    end()
                    process.join(STOP_TIMEOUT_S)
        for pipe in self._pipes:
            pipe.close()
        self._processes, self._pipes = [], []


# -- running a scenario alone -------------------------------------------------------------


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"stopped by signal {signum}")


def main_for(
    name: str, run: Callable[[bool, Progress], Section], argv: Sequence[str] | None = None
) -> int:
    """``python -m bench.<name> [--quick]``: run the scenario, print its Markdown,
    write its figures to ``bench/results/<name>.json`` (``<name>-quick.json``)."""
    import argparse

    parser = argparse.ArgumentParser(prog=f"python -m bench.{name}")
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    parser.add_argument("--json", type=Path, help="write the figures here instead")
    args = parser.parse_args(argv)
    # Stopping the run (Ctrl-C, or SIGTERM) must still stop everything it started.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupted)
    section = run(args.quick, _log)
    print(f"## {section.title}\n\n{section.markdown}", flush=True)
    for target in section.targets:
        verdict = "met" if target.met else "MISSED"
        print(f"- {target.name}: {verdict} ({target.measured}) {target.detail}".rstrip())
    path: Path = args.json or RESULTS_DIR / f"{name}{'-quick' if args.quick else ''}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "title": section.title,
        "figures": {k: (v if math.isfinite(v) else None) for k, v in section.figures.items()},
        "targets": [
            {"name": t.name, "met": t.met, "measured": t.measured, "detail": t.detail}
            for t in section.targets
        ],
        "images": section.images,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    _log(f"figures written to {path}")
    return 0


@contextlib.contextmanager
def work_directory(prefix: str) -> Iterator[Path]:
    """A temporary directory for one scenario's database and logs."""
    with tempfile.TemporaryDirectory(prefix=prefix, ignore_cleanup_errors=True) as tmp:
        yield Path(tmp)
