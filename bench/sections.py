"""Scenarios 1, 2 and 6 as sections of the report: tables, figures, targets, plots.

`run` measures them in one go (`bench.fanout`) and turns the results into
three `Section`\\ s (scenario 6's is `bench.restart.section`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from bench import restart
from bench.fanout import FANOUT, LATENCY, RESTART, Report, Settings, measure
from bench.report import Progress, Section, Target, bullets, number, plot, relative, table
from bench.servers import BATCHED, CHATTER, DEMO, FRAME, LABELS, SERVERS, SOCKETIO
from bench.stats import OTHER_CPU_WARNING_PERCENT, P99_TARGET_MS, StepResult, ratio

__all__ = ["THROUGHPUT_TARGETS", "fanout_section", "latency_section", "run"]

THROUGHPUT_TARGETS = {DEMO: 1.5, SOCKETIO: 3.0, BATCHED: 0.95}
"""Chatter's sustained deliveries/s at least this times each baseline's (issue #8 for
the demo and python-socketio, issue #13 for the batched frames)."""
BATCHED_P99_TARGET = 1.5
"""Issue #13: Chatter's p99 at each compared rate within this times the batched baseline's."""
WHAT_IT_DOES = {
    DEMO: "`write_message(dict)` to each handler: JSON encoded and framed per receiver; "
    "no database",
    FRAME: "the demo, but the frame built once per message and the same bytes written "
    "to each stream: one write per receiver per message; no database",
    BATCHED: "the frames of a loop turn joined, each connection written once per turn: "
    "the most one Tornado process fans out; no database",
    SOCKETIO: 'python-socketio `AsyncServer(async_mode="tornado")`, `emit` to all '
    "(encoded once, one task per receiver); socket.io's own ack; no database",
    CHATTER: "stores the message (group commit in PostgreSQL), acks after the commit; the "
    "room sends each round of committed frames (encoded once) to every session actor, "
    "one socket write per session per round",
}
FANOUT_FIGURES = {
    "sustained_rate_per_s": "rate_per_s",
    "sustained_deliveries_per_s": "deliveries_per_s",
    "delivery_p50_ms": "latency_p50_ms",
    "delivery_p99_ms": "latency_p99_ms",
    "ack_p50_ms": "ack_p50_ms",
    "ack_p99_ms": "ack_p99_ms",
}
"""Scenario 1's figures of each server, ``<server>_<name>``, from its highest ok step."""
LATENCY_FIGURES = {
    "p50_ms": "latency_p50_ms",
    "p99_ms": "latency_p99_ms",
    "max_ms": "latency_max_ms",
    "ack_p50_ms": "ack_p50_ms",
    "ack_p99_ms": "ack_p99_ms",
    "lost": "lost",
    "deliveries_per_s": "deliveries_per_s",
}
"""Scenario 2's figures of each server, ``<server>_<name>``."""


def _of(step: StepResult | None, figure: str) -> float:
    """A figure of a step, NaN for a step that was not run or not ok."""
    return float(getattr(step, figure)) if step is not None else math.nan


def _pair(first: float, second: float, digits: int = 1) -> str:
    return f"{number(first, digits)} / {number(second, digits)}"


def _notes(report: Report, steps: Sequence[StepResult], run_notes: bool) -> list[str]:
    """The run's own notes (servers stopped early) if `run_notes`, then which of
    `steps` had frames out of order or twice, and which other work perturbed."""
    notes = list(report.notes) if run_notes else []
    notes += [
        f"{LABELS[step.server]} at {step.rate_per_s:g} msg/s: {step.out_of_order:,} "
        f"message frames out of order, {step.duplicates:,} received twice."
        for step in steps
        if step.out_of_order or step.duplicates
    ]
    perturbed = [
        f"{LABELS[step.server]} at {step.rate_per_s:g} msg/s ({step.other_cpu_percent:.0f}%)"
        for step in steps
        if step.perturbed
    ]
    if perturbed:
        again = " (a near miss so perturbed is run once more, the less perturbed kept)"
        notes.append(
            f"Other processes used over {OTHER_CPU_WARNING_PERCENT:g}% of a CPU during "
            f"{', '.join(perturbed)}: those figures are perturbed{again if run_notes else ''}."
        )
    return ["Notes:\n\n" + bullets(notes)] if notes else []


# -- scenario 1 -------------------------------------------------------------------------


def _throughput_target(report: Report, server: str, top: float, senders: int) -> Target:
    wanted = THROUGHPUT_TARGETS[server]
    ours, theirs = report.sustained(CHATTER), report.sustained(server)
    times = ratio(_of(ours, "deliveries_per_s"), _of(theirs, "deliveries_per_s"))
    met = times >= wanted or (ours is not None and theirs is None)
    detail = ""
    if ours is not None and ours.rate_per_s >= top:
        detail = (
            f"Both kept up at the top step offered ({top:g} msg/s): this run cannot tell "
            "them apart."
            if theirs is not None and theirs.rate_per_s >= top
            else f"Chatter kept up at the top step offered ({top:g} msg/s, the throttle's "
            f"limit for {senders} senders): the ratio is a lower bound."
        )
    if not met:
        detail = (
            f"missed by {wanted - times:.2f}x ({number(_of(ours, 'deliveries_per_s'))} against "
            f"{number(_of(theirs, 'deliveries_per_s'))} deliveries/s). {detail}"
        )
    label = LABELS[server] + ("'" if LABELS[server].endswith("s") else "'s")
    return Target(
        f"Chatter ≥ {wanted:g}x {label} sustained deliveries/s",
        met,
        f"{times:.2f}x" if math.isfinite(times) else "it sustained no step",
        detail.strip(),
    )


def _batched(
    report: Report, rates: tuple[float, ...], figures: dict[str, float]
) -> tuple[str, list[Target]]:
    """Chatter held against the batched baseline at `rates`: a table, and targets."""
    rows = []
    for server in (BATCHED, CHATTER):
        best = report.sustained(server)
        cells = [f"**{LABELS[server]}**", number(_of(best, "deliveries_per_s"))]
        cells.append(f"{number(best.rate_per_s)} msg/s" if best else "none")
        for rate in rates:
            step = report.at_rate(server, rate)
            p50 = figures[f"{server}_delivery_p50_ms_at_{rate:g}"] = _of(step, "latency_p50_ms")
            p99 = figures[f"{server}_delivery_p99_ms_at_{rate:g}"] = _of(step, "latency_p99_ms")
            cells.append("not run" if step is None else _pair(p50, p99) + ("" if step.ok else " ✗"))
        rows.append(cells)
    rows.append(["**Chatter ÷ batched**", f"{number(figures['chatter_vs_batched'], 2)}x", ""])
    targets = []
    for rate in rates:
        ours, theirs = (figures[f"{s}_delivery_p99_ms_at_{rate:g}"] for s in (CHATTER, BATCHED))
        times = figures[f"chatter_p99_vs_batched_at_{rate:g}"] = ratio(ours, theirs)
        p50 = ratio(*(figures[f"{s}_delivery_p50_ms_at_{rate:g}"] for s in (CHATTER, BATCHED)))
        rows[-1].append(f"{number(p50, 2)}x / {number(times, 2)}x")
        met = times <= BATCHED_P99_TARGET
        missed = (
            "a step was not run"
            if math.isnan(times)
            else f"over by {times - BATCHED_P99_TARGET:.2f}x"
        )
        targets.append(
            Target(
                f"Chatter's p99 at {rate:g} msg/s within {BATCHED_P99_TARGET:g}x the batched "
                "baseline's",
                met,
                f"{number(ours, 1)} ms against {number(theirs, 1)} ms ({number(times, 2)}x)",
                "" if met else missed,
            )
        )
    header = ["server", "sustained deliveries/s", "at"]
    header += [f"p50 / p99 at {r:g} msg/s, ms" for r in rates]
    return table(header, rows, "<>>" + ">" * len(rates)), targets


def _plot_p99(report: Report, path: Path) -> str:
    """p99 latency against offered load, one line per server, the 250 ms line drawn."""
    from matplotlib.ticker import FuncFormatter, NullFormatter, ScalarFormatter

    connections = report.settings.connections
    with plot(path, (8, 4.5)) as axes:
        for server in (s for s in SERVERS if report.steps.get(s)):
            steps = report.steps[server]
            x = [step.rate_per_s * connections for step in steps]
            y = [step.latency_p99_ms for step in steps]
            (line,) = axes.plot(x, y, marker="o", label=LABELS[server])
            missed = [(a, b) for a, b, step in zip(x, y, steps, strict=True) if not step.ok]
            if missed:
                axes.scatter(*zip(*missed, strict=True), marker="x", s=80, color=line.get_color())
        axes.axhline(
            P99_TARGET_MS,
            color="grey",
            linestyle="--",
            linewidth=1,
            label=f"target: p99 < {P99_TARGET_MS:g} ms",
        )
        axes.set_yscale("log")
        axes.set_xscale("log")
        axes.yaxis.set_major_formatter(ScalarFormatter())
        axes.yaxis.set_minor_formatter(NullFormatter())
        axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
        axes.set_xlabel(f"offered deliveries/s (posts/s x {connections:,} connections)")
        axes.set_ylabel("p99 post-to-delivery latency (ms)")
        axes.set_title("Fan-out: p99 latency against offered load (x = step not ok)")
        axes.legend(fontsize="medium")
    return relative(path)


def fanout_section(report: Report, settings: Settings, image: Path) -> Section:
    servers = [s for s in SERVERS if s in report.steps]
    figures: dict[str, float] = {}
    rows = []
    ours = _of(report.sustained(CHATTER), "deliveries_per_s")
    for server in servers:
        best, through = report.sustained(server), report.ok_through(server)
        for name, figure in FANOUT_FIGURES.items():
            figures[f"{server}_{name}"] = _of(best, figure)
        if server != CHATTER:
            figures[f"chatter_vs_{server}"] = ratio(ours, _of(best, "deliveries_per_s"))
        rows.append(
            [
                f"**{LABELS[server]}**",
                WHAT_IT_DOES[server],
                number(best.rate_per_s) if best else "none",
                number(through.rate_per_s) if through else "none",
                number(_of(best, "deliveries_per_s")),
                _pair(_of(best, "latency_p50_ms"), _of(best, "latency_p99_ms")),
                _pair(_of(best, "ack_p50_ms"), _of(best, "ack_p99_ms")),
                number(_of(best, "server_cpu_percent")),
                "" if server == CHATTER else f"{number(figures[f'chatter_vs_{server}'], 2)}x",
            ]
        )
    header = (
        "server|what it does per message|highest ok step, msg/s|ok up to, msg/s|"
        "deliveries/s there|delivery p50 / p99, ms|ack p50 / p99, ms|server CPU %|Chatter ÷ it"
    )
    parts = [
        f"{settings.load()}; steps of rising post rate, {settings.duration_s:g} s each "
        f"({', '.join(f'{r:g}' for r in settings.rates)} msg/s), each followed by a drain. "
        f"A step is ok when p99 post-to-delivery < {P99_TARGET_MS:g} ms, every post was "
        "answered and no acked message missed any connection; a server's figure is its "
        "highest ok step; *ok up to* is the top of its unbroken run of ok steps. A server "
        "that loses messages or misses two steps running is not pushed further.",
        table(header, rows, "<<>>>>>>>"),
    ]
    targets = [
        _throughput_target(report, server, max(settings.rates), settings.senders)
        for server in THROUGHPUT_TARGETS
        if server in report.steps and CHATTER in report.steps
    ]
    if BATCHED in report.steps and CHATTER in report.steps:
        batched_table, batched_targets = _batched(report, settings.compare_rates, figures)
        targets += batched_targets
        parts += [
            "Chatter against the batched frames (the frames of a loop turn joined, each "
            "connection written once per turn: what Chatter's coalesced writes do, with "
            "nothing else to do), at its highest ok step and at "
            + " and ".join(f"{r:g}" for r in settings.compare_rates)
            + " msg/s (delivery latency, ms; ✗ = step not ok):",
            batched_table,
        ]
    grid = []
    for rate in sorted({step.rate_per_s for steps in report.steps.values() for step in steps}):
        cells = [number(rate), number(rate * settings.connections)]
        for step in (report.at_rate(server, rate) for server in servers):
            cell = "not run"
            if step is not None:
                cell = _pair(step.latency_p99_ms, step.ack_p99_ms)
                cell += "" if step.ok else " ✗" + (f", {step.lost:,} lost" if step.lost else "")
            cells.append(cell)
        grid.append(cells)
    header = "msg/s|offered deliveries/s|" + "|".join(
        f"{LABELS[s]} p99 / ack p99, ms" for s in servers
    )
    parts += [
        "Every step (p99 post → delivery / p99 post → ack, ms; ✗ = not ok):",
        table(header, grid, ">>" + ">" * len(servers)),
        *_notes(report, [s for steps in report.steps.values() for s in steps], True),
    ]
    return Section(
        f"Scenario 1: fan-out at {settings.connections:,} connections",
        "\n\n".join(parts),
        figures,
        targets,
        [_plot_p99(report, image)],
    )


# -- scenario 2 -------------------------------------------------------------------------


def latency_section(report: Report, settings: Settings) -> Section:
    figures: dict[str, float] = {}
    rows = []
    chatter = report.latency.get(CHATTER)
    for server in (s for s in SERVERS if s in report.latency):
        step = report.latency[server]
        for name, figure in LATENCY_FIGURES.items():
            figures[f"{server}_{name}"] = _of(step, figure)
        times = ratio(_of(chatter, "latency_p99_ms"), step.latency_p99_ms)
        rows.append(
            [
                f"**{LABELS[server]}**",
                number(step.deliveries_per_s),
                number(step.latency_p50_ms, 1),
                number(step.latency_p99_ms, 1),
                number(step.latency_max_ms, 1),
                _pair(step.ack_p50_ms, step.ack_p99_ms),
                f"{step.lost:,}",
                number(step.server_cpu_percent),
                number(step.server_rss_mib),
                "" if server == CHATTER else f"{number(times, 2)}x",
            ]
        )
    targets = []
    demo = report.latency.get(DEMO)
    if chatter is not None and demo is not None:
        times = figures["chatter_p99_vs_demo"] = ratio(chatter.latency_p99_ms, demo.latency_p99_ms)
        met = chatter.latency_p99_ms < demo.latency_p99_ms and chatter.lost == 0
        targets.append(
            Target(
                f"Chatter's p99 below the demo's ({settings.latency_rate_per_s:g} msg/s, "
                f"{settings.latency_duration_s:g} s)",
                met,
                f"{chatter.latency_p99_ms:.1f} ms against {demo.latency_p99_ms:.1f} ms "
                f"({times:.2f}x)",
                "" if met else f"missed by {chatter.latency_p99_ms - demo.latency_p99_ms:.1f} ms",
            )
        )
    header = (
        "server|deliveries/s|p50 ms|p99 ms|max ms|ack p50 / p99 ms|lost|server CPU %|RSS MiB|"
        "Chatter's p99 ÷ its"
    )
    parts = [
        f"{settings.load()}; {settings.latency_rate_per_s:g} messages/s for "
        f"{settings.latency_duration_s:g} s, each server on its own. Latency is post "
        "sent → message frame received, over every delivery; ack is post sent → ack "
        "received by the sender.",
        table(header, rows, "<>>>>>>>>>"),
        *_notes(report, list(report.latency.values()), False),
    ]
    return Section("Scenario 2: latency at the seed's scale", "\n\n".join(parts), figures, targets)


def run(settings: Settings, progress: Progress, results_dir: Path, suffix: str) -> list[Section]:
    """Measure scenarios 1, 2 and 6 (those of ``settings.scenarios``) and return their
    sections in the issue's order; the plots go to `results_dir`."""
    report = measure(settings, progress)
    sections = []
    if FANOUT in settings.scenarios:
        sections.append(fanout_section(report, settings, results_dir / f"fanout-p99{suffix}.png"))
    if LATENCY in settings.scenarios:
        sections.append(latency_section(report, settings))
    if RESTART in settings.scenarios:
        if report.restart is None:
            raise RuntimeError("scenario 6 produced no result (is Chatter among the servers?)")
        image = results_dir / f"restart{suffix}.png"
        sections.append(restart.section(report.restart, settings, image))
    return sections
