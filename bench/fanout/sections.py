"""Scenarios 1, 2 and 6 as sections of the report: tables, figures, targets, plots.

`run` measures them in one go (one database, each server started once, see
`bench.fanout.runner`) and turns the `Report` into three `Section`\\ s for
``python -m bench``. The plots (matplotlib, Agg backend, PNG) go to
``bench/results/``: p99 latency against offered load for each server
(scenario 1), and each message's latency around the room's kill (scenario 6).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from bench.fanout.report import P99_TARGET_MS, Report, StepResult
from bench.fanout.restart import RECOVERY_TARGET_MS, RECOVERY_WINDOW_S, RestartResult
from bench.fanout.runner import FANOUT, FULL, LATENCY, QUICK, RESTART, SCENARIOS, Settings
from bench.fanout.runner import run as run_scenarios
from bench.fanout.servers import CHATTER, DEMO, FRAME, LABELS, SERVERS, SOCKETIO
from bench.section import Progress, Section, Target

__all__ = [
    "DEMO_RATIO_TARGET",
    "RESULTS_DIR",
    "SOCKETIO_RATIO_TARGET",
    "fanout_section",
    "latency_section",
    "restart_section",
    "run",
]

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"
_REPO = Path(__file__).resolve().parents[2]

DEMO_RATIO_TARGET = 1.5
"""Issue #8: Chatter's sustained deliveries/s at least this times the demo's..."""
SOCKETIO_RATIO_TARGET = 3.0
"""...and this times python-socketio's."""

WHAT_IT_DOES = {
    DEMO: "`write_message(dict)` to each handler: JSON encoded and framed per receiver; "
    "no database",
    FRAME: "the demo, but the frame built once per message and the same bytes written "
    "to each stream: the stack's limit; no database",
    SOCKETIO: 'python-socketio `AsyncServer(async_mode="tornado")`, `emit` to all '
    "(encoded once, one task per receiver); socket.io's own ack; no database",
    CHATTER: "stores the message (group commit in PostgreSQL), acks after the commit, "
    "room actor fans out one encoded frame to the session actors",
}


def _n(value: float | None, digits: int = 0) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:,.{digits}f}"


def _ratio(ours: float | None, theirs: float | None) -> float:
    if ours is None or theirs is None or not theirs or not math.isfinite(theirs):
        return math.nan
    return ours / theirs


def _table(header: list[str], rows: list[list[str]], align: str) -> str:
    """A Markdown table; `align` has one of ``<>`` per column."""
    rule = ["---:" if a == ">" else "---" for a in align]
    lines = [header, rule, *rows]
    return "\n".join("| " + " | ".join(row) + " |" for row in lines)


def _load(settings: Settings) -> str:
    return (
        f"{settings.connections:,} WebSocket connections in one room, {settings.senders} of "
        f"them posting, from {settings.generators} load-generator processes"
    )


# -- plots ------------------------------------------------------------------------------


def plot_p99(report: Report, path: Path) -> None:
    """p99 latency against offered load, one line per server, the 250 ms line drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter, ScalarFormatter

    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=110)
    connections = report.settings["connections"]
    for server in SERVERS:
        steps = report.steps.get(server)
        if not steps:
            continue
        x = [step.rate_per_s * connections for step in steps]
        y = [step.latency_p99_ms for step in steps]
        (line,) = axes.plot(x, y, marker="o", label=LABELS[server])
        failed = [(a, b) for a, b, step in zip(x, y, steps, strict=True) if not step.ok]
        if failed:
            axes.scatter(
                [a for a, _ in failed],
                [b for _, b in failed],
                marker="x",
                s=80,
                color=line.get_color(),
            )
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
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


def plot_restart(restart: RestartResult, path: Path) -> None:
    """Each message's median and largest latency against its send time, the kill at 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4), dpi=110)
    sent = [t for t, _, _ in restart.timeline]
    axes.plot(sent, [m for _, m, _ in restart.timeline], marker=".", label="median delivery")
    axes.plot(sent, [x for _, _, x in restart.timeline], marker=".", label="slowest delivery")
    axes.axvline(0, color="red", linewidth=1, label="room killed")
    axes.axhline(restart.normal_ms, color="grey", linestyle="--", linewidth=1, label="normal")
    if restart.recovery_ms > 0:
        axes.axvline(restart.recovery_ms / 1000, color="green", linewidth=1, label="back to normal")
    if math.isfinite(restart.restart_ms):
        axes.axvline(
            restart.restart_ms / 1000,
            color="orange",
            linestyle=":",
            linewidth=1,
            label=f"room seen restarted ({restart.restart_ms:.0f} ms)",
        )
    axes.set_ylim(bottom=0)
    axes.set_xlabel("message sent, s after the kill")
    axes.set_ylabel("post-to-delivery latency (ms)")
    axes.set_title("Restart under load: the room killed at 10 msg/s")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


# -- scenario 1 -------------------------------------------------------------------------


def fanout_section(report: Report, settings: Settings, image: Path) -> Section:
    figures: dict[str, float] = {}
    sustained: dict[str, StepResult | None] = {}
    rows = []
    for server in (s for s in SERVERS if s in report.steps):
        best = sustained[server] = report.sustained(server)
        through = report.ok_through(server)
        figures[f"{server}_sustained_rate_per_s"] = best.rate_per_s if best else math.nan
        figures[f"{server}_sustained_deliveries_per_s"] = (
            best.deliveries_per_s if best else math.nan
        )
        for name, value in (
            ("delivery_p50_ms", best.latency_p50_ms if best else math.nan),
            ("delivery_p99_ms", best.latency_p99_ms if best else math.nan),
            ("ack_p50_ms", best.ack_p50_ms if best else math.nan),
            ("ack_p99_ms", best.ack_p99_ms if best else math.nan),
        ):
            figures[f"{server}_{name}"] = value
        rows.append(
            [
                f"**{LABELS[server]}**",
                WHAT_IT_DOES[server],
                _n(best.rate_per_s) if best else "none",
                _n(through.rate_per_s) if through else "none",
                _n(best.deliveries_per_s) if best else "-",
                f"{_n(best.latency_p50_ms, 1)} / {_n(best.latency_p99_ms, 1)}" if best else "-",
                f"{_n(best.ack_p50_ms, 1)} / {_n(best.ack_p99_ms, 1)}" if best else "-",
                _n(best.server_cpu_percent) if best else "-",
            ]
        )
    ours = sustained.get(CHATTER)
    for server in (DEMO, FRAME, SOCKETIO):
        if server in sustained:
            theirs = sustained[server]
            figures[f"chatter_vs_{server}"] = _ratio(
                ours.deliveries_per_s if ours else None,
                theirs.deliveries_per_s if theirs else None,
            )
    for row, server in zip(rows, (s for s in SERVERS if s in report.steps), strict=True):
        ratio = figures.get(f"chatter_vs_{server}")
        row.append("" if server == CHATTER else f"{_n(ratio, 2)}x")
    summary = _table(
        [
            "server",
            "what it does per message",
            "highest ok step, msg/s",
            "ok up to, msg/s",
            "deliveries/s there",
            "delivery p50 / p99, ms",
            "ack p50 / p99, ms",
            "server CPU %",
            "Chatter ÷ it",
        ],
        rows,
        "<<>>>>>>>",
    )
    # One row per rate: each server's p99 (and whether the step was ok).
    servers = [s for s in SERVERS if s in report.steps]
    rates = sorted({step.rate_per_s for steps in report.steps.values() for step in steps})
    grid = []
    for rate in rates:
        cells = [_n(rate), _n(rate * settings.connections)]
        for server in servers:
            step = report.at_rate(server, rate)
            if step is None:
                cells.append("not run")
                continue
            cell = f"{_n(step.latency_p99_ms, 1)} / {_n(step.ack_p99_ms, 1)}"
            if not step.ok:
                lost = f", {step.lost:,} lost" if step.lost else ""
                cell += f" ✗{lost}"
            cells.append(cell)
        grid.append(cells)
    steps_table = _table(
        ["msg/s", "offered deliveries/s", *(f"{LABELS[s]} p99 / ack p99, ms" for s in servers)],
        grid,
        ">>" + ">" * len(servers),
    )
    top = max(settings.rates)
    targets = []
    for server, wanted in ((DEMO, DEMO_RATIO_TARGET), (SOCKETIO, SOCKETIO_RATIO_TARGET)):
        if server not in sustained or CHATTER not in sustained:
            continue
        ratio = figures[f"chatter_vs_{server}"]
        capped = ours is not None and ours.rate_per_s >= top
        theirs = sustained[server]
        met = (math.isfinite(ratio) and ratio >= wanted) or (ours is not None and theirs is None)
        detail = ""
        if capped and theirs is not None and theirs.rate_per_s >= top:
            detail = (
                f"Both kept up at the top step offered ({top:g} msg/s): this run cannot "
                "tell them apart."
            )
        elif capped:
            detail = (
                f"Chatter kept up at the top step offered ({top:g} msg/s, the throttle's "
                f"limit for {settings.senders} senders): the ratio is a lower bound."
            )
        if not met:
            detail = (
                f"missed by {wanted - ratio:.2f}x ({_n(ours.deliveries_per_s) if ours else 0} "
                f"against {_n(theirs.deliveries_per_s) if theirs else 0} deliveries/s). " + detail
            )
        targets.append(
            Target(
                f"Chatter ≥ {wanted:g}x {LABELS[server]}'s sustained deliveries/s",
                met,
                f"{_n(ratio, 2)}x" if math.isfinite(ratio) else "it sustained no step",
                detail,
            )
        )
    markdown = "\n\n".join(
        [
            f"{_load(settings)}; steps of rising post rate, {settings.duration_s:g} s each "
            f"({', '.join(f'{r:g}' for r in settings.rates)} msg/s), each followed by a "
            f"drain. A step is ok when p99 post-to-delivery < {P99_TARGET_MS:g} ms, every "
            "post was answered and no acked message missed any connection; a server's "
            "figure is its highest ok step; *ok up to* is the top of its unbroken run of "
            "ok steps. A server that loses messages or misses two steps running is not "
            "pushed further.",
            summary,
            "Every step (p99 post → delivery / p99 post → ack, ms; ✗ = not ok):",
            steps_table,
            *_notes(report, [s for steps in report.steps.values() for s in steps], True),
        ]
    )
    plot_p99(report, image)
    return Section(
        "Scenario 1: fan-out at 1,000 connections"
        if settings.connections == 1000
        else f"Scenario 1: fan-out at {settings.connections:,} connections",
        markdown,
        figures,
        targets,
        [_relative(image)],
    )


PERTURBED_PERCENT = 25.0
"""Other processes using more of a CPU than this during a step perturbed it."""


def _notes(report: Report, steps: list[StepResult], run_notes: bool) -> list[str]:
    """Notes for a section: the run's own (servers stopped early, a busy machine) if
    `run_notes` (scenario 1, whose near misses are run again), and which of `steps`
    other work perturbed."""
    notes = [note for note in report.notes if run_notes and not note.startswith("Other processes")]
    perturbed = [
        f"{LABELS[step.server]} at {step.rate_per_s:g} msg/s ({step.other_cpu_percent:.0f}%)"
        for step in steps
        if step.other_cpu_percent > PERTURBED_PERCENT
    ]
    if perturbed:
        notes.append(
            f"Other processes used over {PERTURBED_PERCENT:g}% of a CPU during "
            + ", ".join(perturbed)
            + ": those figures are perturbed"
            + (
                " (a near miss so perturbed is run once more, and the less perturbed of the "
                "two kept)."
                if run_notes
                else "."
            )
        )
    if not notes:
        return []
    return ["Notes:\n\n" + "\n".join(f"- {note}" for note in notes)]


# -- scenario 2 -------------------------------------------------------------------------


def latency_section(report: Report, settings: Settings) -> Section:
    figures: dict[str, float] = {}
    rows = []
    servers = [s for s in SERVERS if s in report.latency]
    chatter = report.latency.get(CHATTER)
    for server in servers:
        step = report.latency[server]
        for name, value in (
            ("p50_ms", step.latency_p50_ms),
            ("p99_ms", step.latency_p99_ms),
            ("max_ms", step.latency_max_ms),
            ("ack_p50_ms", step.ack_p50_ms),
            ("ack_p99_ms", step.ack_p99_ms),
            ("lost", float(step.lost)),
            ("deliveries_per_s", step.deliveries_per_s),
        ):
            figures[f"{server}_{name}"] = value
        ratio = _ratio(chatter.latency_p99_ms if chatter else None, step.latency_p99_ms)
        rows.append(
            [
                f"**{LABELS[server]}**",
                _n(step.deliveries_per_s),
                _n(step.latency_p50_ms, 1),
                _n(step.latency_p99_ms, 1),
                _n(step.latency_max_ms, 1),
                f"{_n(step.ack_p50_ms, 1)} / {_n(step.ack_p99_ms, 1)}",
                f"{step.lost:,}",
                _n(step.server_cpu_percent),
                _n(step.server_rss_mib),
                "" if server == CHATTER else f"{_n(ratio, 2)}x",
            ]
        )
    targets = []
    demo = report.latency.get(DEMO)
    if chatter is not None and demo is not None:
        figures["chatter_p99_vs_demo"] = _ratio(chatter.latency_p99_ms, demo.latency_p99_ms)
        met = chatter.latency_p99_ms < demo.latency_p99_ms and chatter.lost == 0
        targets.append(
            Target(
                f"Chatter's p99 below the demo's ({settings.latency_rate_per_s:g} msg/s, "
                f"{settings.latency_duration_s:g} s)",
                met,
                f"{chatter.latency_p99_ms:.1f} ms against {demo.latency_p99_ms:.1f} ms "
                f"({figures['chatter_p99_vs_demo']:.2f}x)",
                "" if met else f"missed by {chatter.latency_p99_ms - demo.latency_p99_ms:.1f} ms",
            )
        )
    table = _table(
        [
            "server",
            "deliveries/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "ack p50 / p99 ms",
            "lost",
            "server CPU %",
            "RSS MiB",
            "Chatter's p99 ÷ its",
        ],
        rows,
        "<>>>>>>>>>",
    )
    markdown = "\n\n".join(
        [
            f"{_load(settings)}; {settings.latency_rate_per_s:g} messages/s for "
            f"{settings.latency_duration_s:g} s, each server on its own. Latency is post "
            "sent → message frame received, over every delivery; ack is post sent → ack "
            "received by the sender.",
            table,
            *_notes(report, list(report.latency.values()), False),
        ]
    )
    return Section("Scenario 2: latency at the seed's scale", markdown, figures, targets)


# -- scenario 6 -------------------------------------------------------------------------


def restart_section(restart: RestartResult, settings: Settings, image: Path) -> Section:
    step = restart.step
    figures = {
        "restart_ms": restart.restart_ms,
        "restarts": float(restart.restarts),
        "spike_ms": restart.spike_ms,
        "recovery_ms": restart.recovery_ms,
        "before_p99_ms": restart.before_p99_ms,
        "after_p99_ms": restart.after_p99_ms,
        "normal_ms": restart.normal_ms,
        "slow_messages": float(restart.slow_messages),
        "stragglers": float(restart.stragglers),
        "p99_ms": step.latency_p99_ms,
        "max_ms": step.latency_max_ms,
        "lost": float(step.lost),
        "unanswered": float(step.unanswered),
        "rejected": float(sum(step.rejected.values())),
        "acked": float(step.acked),
        "sent": float(step.sent),
    }
    table = _table(
        ["figure", "value"],
        [
            ["room restarted (kill → API shows restart count + 1)", f"{_n(restart.restart_ms)} ms"],
            ["p99 before the kill", f"{_n(restart.before_p99_ms, 1)} ms"],
            [
                "a message counts as slow above (p99 of its deliveries)",
                f"{_n(restart.normal_ms, 1)} ms",
            ],
            [
                "spike: slowest delivery of a message in flight at or after the kill",
                f"{_n(restart.spike_ms, 1)} ms",
            ],
            ["slow messages before the first normal one", f"{restart.slow_messages}"],
            ["**deliveries back to normal after the kill**", f"**{_n(restart.recovery_ms)} ms**"],
            [f"slow messages later (within {RECOVERY_WINDOW_S:g} s)", f"{restart.stragglers}"],
            ["p99 after recovery", f"{_n(restart.after_p99_ms, 1)} ms"],
            [
                "posts acked / sent; refused; unanswered",
                f"{step.acked:,} / {step.sent:,}; {sum(step.rejected.values())}; {step.unanswered}",
            ],
            ["deliveries lost", f"**{step.lost:,}** of {step.expected:,}"],
            [
                "p99 / max latency over the whole step",
                f"{_n(step.latency_p99_ms, 1)} / {_n(step.latency_max_ms, 1)} ms",
            ],
        ],
        "<>",
    )
    recovered = restart.restarts >= 1 and restart.recovery_ms <= RECOVERY_TARGET_MS
    nothing_lost = step.lost == 0 and step.unanswered == 0 and not step.rejected
    targets = [
        Target(
            f"deliveries back to normal within {RECOVERY_TARGET_MS:g} ms of the kill",
            recovered,
            f"{_n(restart.recovery_ms)} ms",
            ""
            if recovered
            else (
                "the room was not seen restarted"
                if restart.restarts < 1
                else f"missed by {restart.recovery_ms - RECOVERY_TARGET_MS:.0f} ms"
            ),
        ),
        Target(
            "nothing lost across the room's kill",
            nothing_lost,
            f"{step.lost:,} deliveries lost, {step.unanswered} posts unanswered, "
            f"{sum(step.rejected.values())} refused",
        ),
    ]
    markdown = "\n\n".join(
        [
            f"Scenario 2's load ({_load(settings)}, {settings.latency_rate_per_s:g} "
            f"messages/s) on Chatter for {settings.restart_duration_s:g} s; "
            f"{restart.kill_after_s:g} s in, the room actor is killed "
            '(`POST /api/supervision/kill {"id": "room"}`, chaos on) while the load goes '
            "on. A message is slow when the p99 of its deliveries is over twice the p99 "
            "before the kill (at least 20 ms); deliveries are back to normal when the "
            "first message in flight at or after the kill is delivered normally, and the "
            "time counted is from the kill to the last delivery of the slow ones.",
            table,
            *(
                [
                    f"Note: other processes used {step.other_cpu_percent:.0f}% of a CPU "
                    "during this step: its figures are perturbed."
                ]
                if step.other_cpu_percent > PERTURBED_PERCENT
                else []
            ),
        ]
    )
    plot_restart(restart, image)
    return Section(
        "Scenario 6: the room killed under load", markdown, figures, targets, [_relative(image)]
    )


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(_REPO))
    except ValueError:
        return str(path)


# -- the entry point --------------------------------------------------------------------


def run(
    quick: bool,
    progress: Progress,
    scenarios: tuple[str, ...] = SCENARIOS,
    results_dir: Path = RESULTS_DIR,
) -> list[Section]:
    """Run scenarios 1, 2 and 6 (or those of `scenarios`) and return their sections,
    in the issue's order; plots go to `results_dir`."""
    from dataclasses import replace

    settings = replace(QUICK if quick else FULL, scenarios=scenarios)
    report = run_scenarios(settings, progress)
    suffix = "-quick" if quick else ""
    sections: list[Section] = []
    builders: dict[str, Callable[[], Section]] = {
        FANOUT: lambda: fanout_section(report, settings, results_dir / f"fanout-p99{suffix}.png"),
        LATENCY: lambda: latency_section(report, settings),
    }
    if report.restart is not None:
        restart = report.restart
        builders[RESTART] = lambda: restart_section(
            restart, settings, results_dir / f"restart{suffix}.png"
        )
    for scenario in (FANOUT, LATENCY, RESTART):
        if scenario in scenarios:
            if scenario not in builders:
                raise RuntimeError(f"scenario {scenario!r} produced no result")
            sections.append(builders[scenario]())
    return sections
