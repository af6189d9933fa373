"""The report's plots (matplotlib, Agg backend, PNG): p99 latency against offered load
for each server (scenario 1), and each message's latency around the room's kill
(scenario 6)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.servers import LABELS, SERVERS
from bench.stats import P99_TARGET_MS

if TYPE_CHECKING:
    from bench.fanout import Report
    from bench.restart import RestartResult

__all__ = ["p99", "restart"]


def _axes(width: float, height: float) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(width, height), dpi=110)
    return figure, axes


def _save(figure: Any, axes: Any, path: Path, legend_size: str = "medium") -> None:
    import matplotlib.pyplot as plt

    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=legend_size)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


def p99(report: Report, path: Path) -> None:
    """p99 latency against offered load, one line per server, the 250 ms line drawn."""
    from matplotlib.ticker import FuncFormatter, NullFormatter, ScalarFormatter

    figure, axes = _axes(8, 4.5)
    connections = report.settings.connections
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
    _save(figure, axes, path)


def restart(result: RestartResult, path: Path) -> None:
    """Each message's median and largest latency against its send time, the kill at 0."""
    figure, axes = _axes(8, 4)
    sent = [t for t, _, _ in result.timeline]
    axes.plot(sent, [m for _, m, _ in result.timeline], marker=".", label="median delivery")
    axes.plot(sent, [x for _, _, x in result.timeline], marker=".", label="slowest delivery")
    axes.axvline(0, color="red", linewidth=1, label="room killed")
    axes.axhline(result.normal_ms, color="grey", linestyle="--", linewidth=1, label="normal")
    if result.recovery_ms > 0:
        axes.axvline(result.recovery_ms / 1000, color="green", linewidth=1, label="back to normal")
    if math.isfinite(result.restart_ms):
        axes.axvline(
            result.restart_ms / 1000,
            color="orange",
            linestyle=":",
            linewidth=1,
            label=f"room seen restarted ({result.restart_ms:.0f} ms)",
        )
    axes.set_ylim(bottom=0)
    axes.set_xlabel("message sent, s after the kill")
    axes.set_ylabel("post-to-delivery latency (ms)")
    axes.set_title("Restart under load: the room killed at 10 msg/s")
    _save(figure, axes, path, "small")
