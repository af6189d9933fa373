"""Scenarios 1, 2 and 6 measured together: one database, each server started once.

For each server (the baselines, then Chatter) it starts the server process
and its client processes, opens every connection (the senders join), then runs
at the same connections:

- scenario 2 (*latency*): one long step at the seed's rate (10 msg/s for 60 s);
- scenario 6 (*restart*, Chatter only): a step at the same rate during which
  the room actor is killed and the API watched until it has restarted.

Every server then stays up, idle, for scenario 1 (*fan-out*): steps of rising
rate, run rate by rate, each rate on every server before the next, so that
whatever else runs on the machine meanwhile falls on every server alike. A
server that loses messages or leaves posts unanswered, or misses the targets
two steps running, is stopped there: its higher steps would only measure a
collapse. A near miss during which other processes took over a quarter of a
CPU is run once more (the less perturbed of the two is kept) and does not
count as a miss.

Between steps it waits for every post to be answered and every delivery to
arrive (or the drain to run out), so no step inherits another's backlog; a
server that fell behind in scenario 2 or 6 is started afresh before the next.
Everything it starts is stopped on the way out, whatever happened.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.clients import ClientProcesses, Done, Join, Open, Opened, Step, Tally
from bench.report import Progress
from bench.restart import RESTART_WAIT_S, KillRecord, RestartResult, analyse, kill_room
from bench.servers import (
    CHATTER,
    SERVERS,
    Database,
    Meter,
    RunningServer,
    embedded_database,
    running_server,
)
from bench.stats import StepResult, aggregate
from chatter.throttle import POST_RATE_PER_S

__all__ = ["FANOUT", "FULL", "LATENCY", "QUICK", "RESTART", "SCENARIOS", "Report", "Settings"]

FANOUT, LATENCY, RESTART = "fanout", "latency", "restart"
SCENARIOS = (FANOUT, LATENCY, RESTART)

STEP_LEAD_S = 0.3
"""Time between sending a step's plan and its start, for every process to get it."""
ANSWER_SLACK_S = 30.0
"""How much longer than its own deadlines a client process may take to answer."""
CONNECT_TIMEOUT_S = 180.0
"""Longest wait for every connection of every client process."""
COLLAPSE_P99_MS = 1000.0
"""A step this slow is a collapse, perturbed or not: it counts as a miss."""
PERTURBED_RETRIES = 2
"""Steps missed while other processes took the CPU that a server may run again."""


@dataclass(frozen=True)
class Settings:
    """One run's shape."""

    connections: int
    senders: int
    generators: int
    """Client processes per server."""
    rates: tuple[float, ...]
    """Scenario 1: posts a second over all senders, one step each, rising."""
    duration_s: float
    """Scenario 1: seconds per step."""
    drain_s: float
    """After a step: the most time given to answers, then again to deliveries."""
    compare_rates: tuple[float, ...]
    """Scenario 1: the steps at which Chatter's latency is held against the batched
    baseline's (issue #13: 60 and 100 msg/s)."""
    latency_rate_per_s: float = 10.0
    """Scenario 2 (and 6): the seed's rate."""
    latency_duration_s: float = 60.0
    restart_duration_s: float = 20.0
    """Scenario 6: the step's length..."""
    kill_after_s: float = 8.0
    """...and when in it the room is killed."""
    servers: tuple[str, ...] = SERVERS
    scenarios: tuple[str, ...] = SCENARIOS

    def load(self) -> str:
        """The load, in words."""
        return (
            f"{self.connections:,} WebSocket connections in one room, {self.senders} of "
            f"them posting, from {self.generators} load-generator processes"
        )

    def validate(self) -> None:
        if self.connections < 1 or not 1 <= self.senders <= self.connections:
            raise ValueError("need 1 <= senders <= connections")
        if self.generators < 1:
            raise ValueError("need at least one generator process")
        if min(self.duration_s, self.drain_s, self.latency_duration_s) <= 0:
            raise ValueError("durations and drain must be positive")
        if not 0 < self.kill_after_s < self.restart_duration_s:
            raise ValueError("the kill must fall inside the restart step")
        for rate in (*self.rates, self.latency_rate_per_s):
            if rate <= 0 or rate * self.duration_s < 1:
                raise ValueError(f"a step of {rate} msg/s for {self.duration_s} s posts nothing")
            if rate / self.senders > POST_RATE_PER_S:
                raise ValueError(
                    f"{rate:g} msg/s from {self.senders} senders is over Chatter's "
                    f"{POST_RATE_PER_S:g} posts/s per connection: use at least "
                    f"{math.ceil(rate / POST_RATE_PER_S)} senders"
                )
        if list(self.rates) != sorted(self.rates):
            raise ValueError(f"rates must rise: {self.rates}")


FULL = Settings(
    connections=1000,
    senders=100,
    generators=2,
    rates=(2, 5, 10, 20, 40, 60, 80, 100, 130, 160, 190),
    duration_s=5.0,
    drain_s=4.0,
    compare_rates=(60, 100),
)
"""The issue's load: 1,000 connections, 100 of them posting, up to 190 msg/s
(100 senders may post 200/s in all, 2/s each; the last step keeps a margin);
scenario 2 at 10 msg/s for 60 s; scenario 6 a kill 8 s into 20 s at 10 msg/s."""

QUICK = Settings(
    connections=100,
    senders=10,
    generators=2,
    rates=(5, 15),
    duration_s=1.0,
    drain_s=3.0,
    compare_rates=(5, 15),
    latency_duration_s=1.5,
    restart_duration_s=2.5,
    kill_after_s=1.0,
)
"""The same code path, small: for `make bench-quick` and the tests."""


@dataclass
class Report:
    """Scenarios 1, 2 and 6 of one run."""

    settings: Settings
    steps: dict[str, list[StepResult]] = field(default_factory=dict)
    """Scenario 1, per server, in the order run."""
    latency: dict[str, StepResult] = field(default_factory=dict)
    """Scenario 2, per server."""
    restart: RestartResult | None = None
    """Scenario 6, Chatter only."""
    notes: list[str] = field(default_factory=list)
    """What happened beyond the figures: servers stopped early, a busy machine."""

    def sustained(self, server: str) -> StepResult | None:
        """The highest-rate ok step of scenario 1, if any: the server's figure."""
        ok = [step for step in self.steps.get(server, []) if step.ok]
        return max(ok, key=lambda step: step.rate_per_s, default=None)

    def ok_through(self, server: str) -> StepResult | None:
        """The last of the unbroken run of ok steps from the lowest, if any: a stricter
        figure than `sustained` when a step near the limit passes by luck."""
        last = None
        for step in self.steps.get(server, []):
            if not step.ok:
                break
            last = step
        return last

    def at_rate(self, server: str, rate_per_s: float) -> StepResult | None:
        steps = self.steps.get(server, [])
        return next((s for s in steps if math.isclose(s.rate_per_s, rate_per_s)), None)


class _Session:
    """One server and its client processes, connected, started afresh after a collapse;
    its way up scenario 1's steps."""

    def __init__(
        self, name: str, report: Report, progress: Progress, work_dir: Path, db: Database | None
    ) -> None:
        self.name, self.report, self.progress, self.work_dir = name, report, progress, work_dir
        self.settings = report.settings
        self.database = db if name == CHATTER else None
        self._stack = contextlib.ExitStack()
        self._open: tuple[RunningServer, ClientProcesses] | None = None
        self._steps = 0
        self.misses, self.retries, self.stopped = 0, PERTURBED_RETRIES, False

    def connected(self) -> tuple[RunningServer, ClientProcesses]:
        if self._open is not None:
            return self._open
        settings = self.settings
        self.progress(f"[{self.name}] starting the server")
        with contextlib.ExitStack() as stack:
            server = stack.enter_context(running_server(self.name, self.work_dir, self.database))
            clients = stack.enter_context(ClientProcesses(settings.generators, server, "fanout"))
            self.progress(f"[{self.name}] opening {settings.connections:,} connections")
            opened = clients.ask(Open(settings.connections), Opened, CONNECT_TIMEOUT_S)
            clients.ask(Join(settings.senders), Done, CONNECT_TIMEOUT_S)
            self._stack = stack.pop_all()
        self.progress(
            f"[{self.name}] {sum(len(o.welcome_ms) for o in opened):,} connected in "
            f"{max(o.seconds for o in opened):.1f} s"
        )
        self._open = server, clients
        return self._open

    def close(self) -> None:
        self._stack.close()
        self._open = None

    def step(
        self, rate: float, duration_s: float, kill_after_s: float | None = None
    ) -> tuple[StepResult, list[Tally], KillRecord | None]:
        """One step: post at `rate` for `duration_s`, then drain; killing the room
        `kill_after_s` into it, if given."""
        server, clients = self.connected()
        self._steps += 1
        drain = self.settings.drain_s
        start_at = time.time() + STEP_LEAD_S
        end_at = start_at + duration_s
        with server.blamed(), concurrent.futures.ThreadPoolExecutor(1) as killer:
            kill = None
            if kill_after_s is not None:
                kill = killer.submit(kill_room, server.port, start_at + kill_after_s)
            plan = Step(self._steps, rate, start_at, duration_s, end_at + drain, kill is not None)
            clients.send(plan)
            time.sleep(max(0.0, start_at - time.time()))
            postmaster = self.database.postmaster if self.database else None
            sample = Meter(server.pid, postmaster).until(end_at)
            tallies = clients.tallies(self._steps, drain, drain + ANSWER_SLACK_S)
            record = kill.result(RESTART_WAIT_S) if kill is not None else None
        step = aggregate(self.name, rate, duration_s, start_at, tallies, sample)
        self.progress(
            f"[{self.name}] {rate:g} msg/s: {step.deliveries_per_s:,.0f} deliveries/s, "
            f"p50 {step.latency_p50_ms:.1f} ms, p99 {step.latency_p99_ms:.1f} ms, lost "
            f"{step.lost:,}, acked {step.acked}/{step.sent}, server CPU "
            f"{step.server_cpu_percent:.0f}%, generators "
            + "/".join(f"{c:.0f}" for c in step.generator_cpu_percent)
            + "%"
            + ("" if step.ok else "  [target missed]")
        )
        return step, tallies, record

    def latency_and_restart(self) -> None:
        """Scenarios 2 and (Chatter) 6; a server that fell behind is started afresh."""
        name, settings, rate = self.name, self.settings, self.settings.latency_rate_per_s
        if LATENCY in settings.scenarios:
            duration_s = settings.latency_duration_s
            self.progress(f"[{name}] scenario 2, latency: {rate:g} msg/s for {duration_s:g} s")
            step, _, _ = self.step(rate, duration_s)
            self.report.latency[name] = step
            if not step.ok:
                self.close()
        if RESTART in settings.scenarios and name == CHATTER:
            self.progress(
                f"[{name}] scenario 6, restart: {rate:g} msg/s for "
                f"{settings.restart_duration_s:g} s, the room killed after "
                f"{settings.kill_after_s:g} s"
            )
            step, tallies, kill = self.step(
                rate, settings.restart_duration_s, settings.kill_after_s
            )
            assert kill is not None
            restart = self.report.restart = analyse(step, tallies, kill, settings.kill_after_s)
            self.progress(
                f"[{name}] restart: room restarted after {restart.restart_ms:.0f} ms, spike "
                f"{restart.spike_ms:.1f} ms, back to normal after {restart.recovery_ms:.0f} ms"
            )
            if not step.ok:
                self.close()

    def climb(self, rate: float) -> None:
        """Scenario 1's step at `rate` (again if other work spoiled a near miss); the
        climb stops after a collapse."""
        name, duration_s, steps = self.name, self.settings.duration_s, self.report.steps[self.name]
        self.progress(
            f"[{name}] scenario 1, step {len(steps) + 1}: {rate:g} msg/s for {duration_s:g} s"
        )
        step, _, _ = self.step(rate, duration_s)
        near_miss = step.perturbed and step.latency_p99_ms <= COLLAPSE_P99_MS
        if not step.ok and near_miss and self.retries:
            self.retries -= 1
            self.progress(
                f"[{name}] other processes used {step.other_cpu_percent:.0f}% of a CPU: "
                "running the step again"
            )
            again, _, _ = self.step(rate, duration_s)
            step = min(step, again, key=lambda s: s.other_cpu_percent)
        steps.append(step)
        if step.ok:
            self.misses = 0
        elif not step.perturbed or step.latency_p99_ms > COLLAPSE_P99_MS:
            self.misses += 1  # a near miss that other work perturbed says little: go on
        why = None
        if step.lost or step.closed_connections or step.unanswered:
            why = (
                f"at {rate:g} it lost {step.lost:,} deliveries, left {step.unanswered:,} "
                f"posts unanswered and closed {step.closed_connections} connections"
            )
        elif self.misses >= 2:
            why = "two steps running missed the targets"
        if why is not None:
            self.report.notes.append(f"{name}: steps above {rate:g} msg/s not run: {why}.")
            self.stopped = True
            self.close()  # its backlog must not slow the others' steps


def measure(settings: Settings, progress: Progress) -> Report:
    """Measure each server in turn; the embedded database (Chatter's) lives for the
    whole run, the servers' logs in a temporary directory."""
    settings.validate()
    report = Report(settings)
    with contextlib.ExitStack() as stack:
        if CHATTER in settings.servers:
            database = stack.enter_context(embedded_database("fanout", progress))
            work_dir = database.work_dir
        else:
            database, work_dir = None, Path(stack.enter_context(tempfile.TemporaryDirectory()))
        sessions = [
            _Session(name, report, progress, work_dir, database) for name in settings.servers
        ]
        for session in sessions:
            stack.callback(session.close)
        # Scenarios 2 and 6 server by server; then scenario 1 rate by rate.
        for session in sessions:
            session.latency_and_restart()
        if FANOUT in settings.scenarios:
            for name in settings.servers:
                report.steps[name] = []
            for rate in settings.rates:
                for session in sessions:
                    if not session.stopped:
                        session.climb(rate)
    return report
