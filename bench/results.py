"""What a step of scenarios 1, 2 and 6 measured, and what the room's kill cost.

A step's figures (`aggregate`) come from every client process's answers
(`Sent`, `Received`) and the orchestrator's samples of the server:

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

Scenario 6 (`analyse`): during a step at scenario 2's load the room actor is
killed. *Normal* is what deliveries of messages posted before the kill took: a
message is delivered normally when the p99 of its deliveries is at most
``max(2 x p99 before the kill, 20 ms)``. Taking the messages on their way at the
kill, and those posted after it, in the order they were posted, deliveries are
*back to normal* when the first of them is delivered normally; the *recovery*
is the time from the kill to the last delivery of the slow ones before it (0
when there are none: the kill went unnoticed). The *spike* is the slowest
delivery of those messages within 5 s of the kill, and *stragglers* the slow
messages after the recovery in that window (noise, or a second wave).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.clients import Received, Sent
from bench.stats import percent, percentile, percentiles, rate

__all__ = [
    "P99_TARGET_MS",
    "RECOVERY_TARGET_MS",
    "RECOVERY_WINDOW_S",
    "KillRecord",
    "Report",
    "RestartResult",
    "ServerSample",
    "StepResult",
    "aggregate",
    "analyse",
]

P99_TARGET_MS = 250.0
"""A step counts as sustained only with p99 under this and nothing lost."""
NORMAL_FACTOR = 2.0
"""A message slower than this many times the pre-kill p99 is abnormal..."""
NORMAL_FLOOR_MS = 20.0
"""...and slower than this, so that a very fast server does not make noise abnormal."""
RECOVERY_WINDOW_S = 5.0
"""How long after the kill abnormal deliveries are looked for."""
RECOVERY_TARGET_MS = 500.0
"""Issue #8: deliveries back to normal within this of the kill."""


@dataclass(frozen=True)
class ServerSample:
    """What the orchestrator measured of the server over one step's window."""

    window_s: float
    cpu_s: float
    db_cpu_s: float | None
    peak_rss_kib: int
    peak_threads: int
    host_busy_percent: float
    cpus: int


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
    max_send_lag_ms: float

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
    sents: Sequence[Sent],
    receiveds: Sequence[Received],
    sample: ServerSample,
) -> StepResult:
    """One step's figures from every client process's answers and the server's sample."""
    acked = {seq for sent in sents for seq in sent.acked}
    rejected: Counter[str] = Counter()
    for sent in sents:
        rejected.update(sent.rejected)
    lost = duplicates = delivered = 0
    for answer in receiveds:
        for seq in acked:
            got = answer.counts.get(seq, 0)
            lost += max(0, answer.connections - got)
            duplicates += max(0, got - answer.connections)
        delivered += sum(answer.counts.values())
    p50, p99, top = percentiles((x for r in receiveds for x in r.latencies_ms), 50, 99, 100)
    ack_p50, ack_p99 = percentiles((x for s in sents for x in s.ack_latencies_ms), 50, 99)
    last = max((r.last_receipt for r in receiveds if r.last_receipt is not None), default=None)
    server_cpu = percent(sample.cpu_s, sample.window_s)
    db_cpu = percent(sample.db_cpu_s, sample.window_s) if sample.db_cpu_s is not None else None
    generators = [percent(r.cpu_s, r.window_s) for r in sorted(receiveds, key=lambda r: r.process)]
    connections = sum(r.connections for r in receiveds)
    return StepResult(
        server=server,
        rate_per_s=rate_per_s,
        duration_s=duration_s,
        connections=connections,
        sent=sum(s.sent for s in sents),
        acked=len(acked),
        rejected=dict(rejected),
        unanswered=sum(s.unanswered for s in sents),
        expected=len(acked) * connections,
        lost=lost,
        duplicates=duplicates,
        out_of_order=sum(r.out_of_order for r in receiveds),
        closed_connections=sum(r.connections - r.open_at_end for r in receiveds),
        deliveries_per_s=rate(delivered, max(duration_s, (last or 0.0) - start_at)),
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
        max_send_lag_ms=max((s.max_send_lag_ms for s in sents), default=0.0),
    )


# -- scenario 6 ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KillRecord:
    """What the orchestrator did and saw of the kill (`time.time()` each)."""

    kill_at: float
    restarted_at: float | None
    """When ``GET /api/supervision`` first showed the room restarted, if it did."""
    restarts: int
    """How many times the API saw the room restarted meanwhile (1 when the kill worked)."""


@dataclass(frozen=True)
class RestartResult:
    step: StepResult
    kill_after_s: float
    restart_ms: float
    """Kill request to the room seen restarted by the API (NaN if never seen)."""
    restarts: int
    before_p99_ms: float
    normal_ms: float
    spike_ms: float
    recovery_ms: float
    slow_messages: int
    stragglers: int
    after_p99_ms: float
    timeline: list[tuple[float, float, float]]
    """Per message: send time relative to the kill (s), median and max latency (ms)."""


def analyse(
    step: StepResult, receiveds: Sequence[Received], kill: KillRecord, kill_after_s: float
) -> RestartResult:
    """The spike and the recovery from every delivery's receive time and latency."""
    by_send: dict[float, tuple[float, list[float], list[float]]] = {}
    for answer in receiveds:
        for arrival, latency in zip(answer.arrivals, answer.latencies_ms, strict=True):
            sent = arrival - latency / 1000.0
            _, latencies, arrivals = by_send.setdefault(round(sent, 4), (sent, [], []))
            latencies.append(latency)
            arrivals.append(arrival)
    # Each message: when it was sent, its deliveries' latencies, its last delivery.
    messages = sorted((sent, lat, max(arr)) for sent, lat, arr in by_send.values())
    before = [x for _, lat, last in messages if last < kill.kill_at for x in lat]
    before_p99 = percentile(before, 99)
    normal = max(NORMAL_FACTOR * before_p99, NORMAL_FLOOR_MS) if before else NORMAL_FLOOR_MS
    affected = [
        m for m in messages if m[2] >= kill.kill_at and m[0] <= kill.kill_at + RECOVERY_WINDOW_S
    ]
    slow = 0
    while slow < len(affected) and percentile(affected[slow][1], 99) > normal:
        slow += 1
    recovered_at = max((last for _, _, last in affected[:slow]), default=kill.kill_at)
    later = affected[slow:]
    return RestartResult(
        step=step,
        kill_after_s=kill_after_s,
        restart_ms=(kill.restarted_at - kill.kill_at) * 1000.0 if kill.restarted_at else math.nan,
        restarts=kill.restarts,
        before_p99_ms=before_p99,
        normal_ms=normal,
        spike_ms=max((max(lat) for _, lat, _ in affected), default=math.nan),
        recovery_ms=(recovered_at - kill.kill_at) * 1000.0,
        slow_messages=slow,
        stragglers=sum(1 for _, lat, _ in later if percentile(lat, 99) > normal),
        after_p99_ms=percentile(
            (x for sent, lat, _ in later if sent > recovered_at for x in lat), 99
        ),
        timeline=[
            (sent - kill.kill_at, statistics.median(lat), max(lat)) for sent, lat, _ in messages
        ],
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
