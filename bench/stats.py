"""The benchmark's arithmetic, one definition each, so that a p99 in one table means
what it means in the next: percentiles, rates and ratios, and a step's figures
(`aggregate`). A figure that cannot be computed (no samples, no time, nothing to
divide by) is NaN, never an exception: the report shows it as ``-``, the JSON as
``null``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bench.clients import Tally
from bench.servers import ServerSample

__all__ = [
    "OTHER_CPU_WARNING_PERCENT",
    "P99_TARGET_MS",
    "StepResult",
    "aggregate",
    "percent",
    "percentile",
    "percentiles",
    "rate",
    "ratio",
]

P99_TARGET_MS = 250.0
"""A step is ok only with p99 under this and nothing lost."""
OTHER_CPU_WARNING_PERCENT = 25.0
"""Other processes using more of a CPU than this during a step perturb it: say so."""


def percentiles(values: Iterable[float], *qs: float) -> tuple[float, ...]:
    """The nearest-rank `qs`-th percentiles (each 0 to 100) of `values`, sorting
    them once: the smallest value with at least q% of the values at or below it,
    so a percentile is always a value that was measured. NaN when empty."""
    ordered = sorted(values)
    if not ordered:
        return tuple(math.nan for _ in qs)
    return tuple(ordered[max(1, math.ceil(q / 100.0 * len(ordered))) - 1] for q in qs)


def percentile(values: Iterable[float], q: float) -> float:
    """One nearest-rank percentile (`percentiles` for several of the same values)."""
    return percentiles(values, q)[0]


def rate(count: float, seconds: float) -> float:
    """`count` per second; NaN over no time."""
    return count / seconds if seconds > 0 else math.nan


def percent(used_s: float, window_s: float) -> float:
    """CPU seconds `used_s` over a wall-clock window, as a percentage of one CPU."""
    return 100.0 * rate(used_s, window_s)


def ratio(ours: float | None, theirs: float | None) -> float:
    """`ours` / `theirs`; NaN when either is missing or not finite, or `theirs` is 0."""
    if ours is None or theirs is None or not math.isfinite(ours) or not math.isfinite(theirs):
        return math.nan
    return ours / theirs if theirs else math.nan


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

    @property
    def perturbed(self) -> bool:
        return self.other_cpu_percent > OTHER_CPU_WARNING_PERCENT


def aggregate(
    server: str,
    rate_per_s: float,
    duration_s: float,
    start_at: float,
    tallies: Sequence[Tally],
    sample: ServerSample,
) -> StepResult:
    """One step's figures from every client process's tally and the server's sample:

    - *deliveries/s*: message frames of the step received over all connections, over
      the time from the step's start to the last of them (at least the step's
      duration): the offered rate times the connections while the server keeps up;
    - *latency*: receive time minus the send time in the body, over every delivery;
      *ack*: post sent to ack received, for the sender;
    - *lost*: for each acked message, each connection open at the step's start that
      had not received it by the end of the drain;
    - the server's CPU (of one CPU: above 100 is several threads at work), peak RSS
      and threads, PostgreSQL's CPU (Chatter), each client process's own CPU, and
      what everything else on the machine used meanwhile.
    """
    acked = {seq for tally in tallies for seq in tally.acked}
    rejected: Counter[str] = Counter()
    lost = duplicates = 0
    for tally in tallies:
        rejected.update(tally.rejected)
        for seq in acked:
            got = tally.counts.get(seq, 0)
            lost += max(0, tally.connections - got)
            duplicates += max(0, got - tally.connections)
    delivered = sum(sum(tally.counts.values()) for tally in tallies)
    p50, p99, top = percentiles((x for t in tallies for x in t.latencies_ms), 50, 99, 100)
    ack_p50, ack_p99 = percentiles((x for t in tallies for x in t.ack_latencies_ms), 50, 99)
    last = max((t.last_receipt for t in tallies if t.last_receipt is not None), default=start_at)
    server_cpu = percent(sample.cpu_s, sample.window_s)
    db_cpu = None if sample.db_cpu_s is None else percent(sample.db_cpu_s, sample.window_s)
    generators = [percent(t.cpu_s, t.window_s) for t in tallies]
    connections = sum(t.connections for t in tallies)
    host_cpu = sample.host_busy_percent * sample.cpus
    return StepResult(
        server,
        rate_per_s,
        duration_s,
        connections,
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
        other_cpu_percent=host_cpu - server_cpu - (db_cpu or 0.0) - sum(generators),
    )
