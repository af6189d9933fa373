"""What a step of scenarios 1, 2 and 6 measured, and what the room's kill cost.

A step's figures (`aggregate`) come from every client process's `Tally` and
the orchestrator's samples of the server:

- *deliveries/s*: message frames of the step received over all connections,
  over the time from the step's start to the last of them (at least the step's
  duration): the offered rate times the connections while the server keeps up,
  what it managed when it does not;
- *latency*: receive time minus the send time in the body, over every delivery;
  *ack*: post sent to ack received, for the sender;
- *lost*: for each acked message, each connection open at the step's start that
  had not received it by the end of the drain;
- the server's CPU (of one CPU: above 100 is several threads at work), peak RSS
  and threads, PostgreSQL's CPU (Chatter), each client process's own CPU, and
  what everything else on the machine used meanwhile.

A step is *ok* when p99 < 250 ms and nothing was lost or left unanswered; a
server's *sustained* figure is the deliveries/s of its highest ok step.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench.clients import Tally
from bench.servers import ServerSample
from bench.stats import percent, percentiles, rate

if TYPE_CHECKING:
    from bench.restart import RestartResult

__all__ = [
    "OTHER_CPU_WARNING_PERCENT",
    "P99_TARGET_MS",
    "Report",
    "StepResult",
    "aggregate",
]

P99_TARGET_MS = 250.0
"""A step counts as sustained only with p99 under this and nothing lost."""
OTHER_CPU_WARNING_PERCENT = 25.0
"""Other processes using more of a CPU than this during a step perturb it: say so."""


@dataclass(frozen=True)
class StepResult:
    server: str
    rate_per_s: float
    """Posts offered per second, over all senders."""
    duration_s: float
    connections: int
    sent: int
    acked: int
    rejected: dict[str, int]
    unanswered: int
    expected: int
    """Deliveries due: acked messages times connections open at the start."""
    lost: int
    duplicates: int
    out_of_order: int
    closed_connections: int
    deliveries_per_s: float
    latency_p50_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    ack_p50_ms: float
    ack_p99_ms: float
    server_cpu_percent: float
    db_cpu_percent: float | None
    server_rss_mib: float
    server_threads: int
    generator_cpu_percent: list[float]
    """Per client process, of one CPU each."""
    other_cpu_percent: float
    """CPU used by everything but the server, its database and the client
    processes (of one CPU): the orchestrator, and whatever else ran meanwhile."""

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.unanswered == 0
            and self.acked > 0
            and self.latency_p99_ms < P99_TARGET_MS
        )


def aggregate(
    server: str,
    rate_per_s: float,
    duration_s: float,
    start_at: float,
    tallies: Sequence[Tally],
    sample: ServerSample,
) -> StepResult:
    """One step's figures from every client process's tally and the server's sample."""
    acked = {seq for tally in tallies for seq in tally.acked}
    rejected: Counter[str] = Counter()
    lost = duplicates = delivered = 0
    for tally in tallies:
        rejected.update(tally.rejected)
        for seq in acked:
            got = tally.counts.get(seq, 0)
            lost += max(0, tally.connections - got)
            duplicates += max(0, got - tally.connections)
        delivered += sum(tally.counts.values())
    p50, p99, top = percentiles((x for t in tallies for x in t.latencies_ms), 50, 99, 100)
    ack_p50, ack_p99 = percentiles((x for t in tallies for x in t.ack_latencies_ms), 50, 99)
    last = max((t.last_receipt for t in tallies if t.last_receipt is not None), default=start_at)
    server_cpu = percent(sample.cpu_s, sample.window_s)
    db_cpu = percent(sample.db_cpu_s, sample.window_s) if sample.db_cpu_s is not None else None
    generators = [percent(t.cpu_s, t.window_s) for t in tallies]
    connections = sum(t.connections for t in tallies)
    return StepResult(
        server=server,
        rate_per_s=rate_per_s,
        duration_s=duration_s,
        connections=connections,
        sent=sum(t.sent for t in tallies),
        acked=len(acked),
        rejected=dict(rejected),
        unanswered=sum(t.unanswered for t in tallies),
        expected=len(acked) * connections,
        lost=lost,
        duplicates=duplicates,
        out_of_order=sum(t.out_of_order for t in tallies),
        closed_connections=sum(t.connections - t.open_at_end for t in tallies),
        deliveries_per_s=rate(delivered, max(duration_s, last - start_at)),
        latency_p50_ms=p50,
        latency_p99_ms=p99,
        latency_max_ms=top,
        ack_p50_ms=ack_p50,
        ack_p99_ms=ack_p99,
        server_cpu_percent=server_cpu,
        db_cpu_percent=db_cpu,
        server_rss_mib=sample.peak_rss_kib / 1024,
        server_threads=sample.peak_threads,
        generator_cpu_percent=generators,
        other_cpu_percent=sample.host_busy_percent * sample.cpus
        - server_cpu
        - (db_cpu or 0.0)
        - sum(generators),
    )


# -- a run --------------------------------------------------------------------------------


@dataclass
class Report:
    """Scenarios 1, 2 and 6 of one run."""

    settings: Any
    """The run's `bench.fanout.Settings`."""
    steps: dict[str, list[StepResult]] = field(default_factory=dict)
    """Scenario 1, per server, in the order run."""
    latency: dict[str, StepResult] = field(default_factory=dict)
    """Scenario 2, per server."""
    restart: RestartResult | None = None
    """Scenario 6, Chatter only."""
    notes: list[str] = field(default_factory=list)
    """What happened beyond the figures: servers stopped early, a busy machine."""

    def sustained(self, server: str) -> StepResult | None:
        """The highest-rate ok step of scenario 1, if any."""
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
        return next(
            (s for s in self.steps.get(server, []) if math.isclose(s.rate_per_s, rate_per_s)),
            None,
        )
