"""Scenario 6: what a crash of the room costs the people in it.

During a step at scenario 2's load the orchestrator (`bench.fanout`) kills
Chatter's room actor (``POST /api/supervision/kill {"id": "room"}``, docs/PROTOCOL.md)
and reads ``GET /api/supervision`` every 10 ms until the room's restart count
goes up; the client processes keep each delivery's receive time as well as its
latency. `analyse` reads the spike out of them, message by message (a
message's deliveries are those with its send time):

- *normal* is what deliveries of messages posted before the kill took: a
  message is delivered normally when the p99 of its deliveries is at most
  ``max(2 x p99 before the kill, 20 ms)``;
- taking the messages on their way at the kill, and those posted after it, in
  the order they were posted, deliveries are *back to normal* when the first of
  them is delivered normally; the *recovery* is the time from the kill to the
  last delivery of the slow ones before it (0 when there are none: the kill
  went unnoticed);
- the *spike* is the slowest delivery of those messages within 5 s of the kill,
  and *stragglers* the slow messages after the recovery in that window (noise,
  or a second wave).
"""

from __future__ import annotations

import json
import math
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.clients import Tally
from bench.report import Section, Target, number, plot, relative, table
from bench.servers import HOST
from bench.stats import StepResult, percentile

if TYPE_CHECKING:
    from bench.fanout import Settings

__all__ = ["RESTART_WAIT_S", "KillRecord", "RestartResult", "analyse", "kill_room", "section"]

RESTART_POLL_S = 0.01
"""How often the supervision API is read after the kill, to time the restart."""
RESTART_WAIT_S = 5.0
"""Longest wait for the API to show the room restarted."""
NORMAL_FACTOR = 2.0
"""A message slower than this many times the pre-kill p99 is abnormal..."""
NORMAL_FLOOR_MS = 20.0
"""...and slower than this, so that a very fast server does not make noise abnormal."""
RECOVERY_WINDOW_S = 5.0
"""How long after the kill abnormal deliveries are looked for."""
RECOVERY_TARGET_MS = 500.0
"""Issue #8: deliveries back to normal within this of the kill."""


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


ANALYSED = (
    *("restart_ms", "restarts", "spike_ms", "recovery_ms", "before_p99_ms", "after_p99_ms"),
    *("normal_ms", "slow_messages", "stragglers"),
)
"""The figures of a `RestartResult`, by its fields' names, in the report's order."""


def _restarts(port: int) -> int | None:
    """How often the room has been restarted (``GET /api/supervision``); None while
    the tree is down or the room is not running."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/api/supervision", timeout=5) as answer:
            nodes = [json.load(answer)]
    except (OSError, urllib.error.URLError, ValueError):
        return None
    while nodes:
        node = nodes.pop()
        if node.get("id") == "room":
            restarts = node.get("restarts")
            return restarts if node.get("alive") and isinstance(restarts, int) else None
        nodes.extend(node.get("children", []))
    return None


def kill_room(port: int, at: float) -> KillRecord:
    """Kill the room at `at` (`time.time()`) and watch the API until it has restarted."""
    before = _restarts(port)
    time.sleep(max(0.0, at - time.time()))
    kill_at = time.time()
    request = urllib.request.Request(
        f"http://{HOST}:{port}/api/supervision/kill",
        data=json.dumps({"id": "room"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        if answer.status != 202:
            raise RuntimeError(f"killing the room answered {answer.status}")
    deadline = time.monotonic() + RESTART_WAIT_S
    while time.monotonic() < deadline:
        now = _restarts(port)
        if now is not None and before is not None and now > before:
            return KillRecord(kill_at, time.time(), now - before)
        time.sleep(RESTART_POLL_S)
    return KillRecord(kill_at, None, 0)


def analyse(
    step: StepResult, tallies: Sequence[Tally], kill: KillRecord, kill_after_s: float
) -> RestartResult:
    """The spike and the recovery from every delivery's receive time and latency."""
    by_send: dict[float, tuple[float, list[float], list[float]]] = {}
    for tally in tallies:
        for arrival, latency in zip(tally.arrivals, tally.latencies_ms, strict=True):
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


def section(restart: RestartResult, settings: Settings, image: Path) -> Section:
    step = restart.step
    rejected = sum(step.rejected.values())
    figures = {name: float(getattr(restart, name)) for name in ANALYSED}
    figures |= {"p99_ms": step.latency_p99_ms, "max_ms": step.latency_max_ms}
    figures |= {name: float(getattr(step, name)) for name in ("lost", "unanswered")}
    figures |= {"rejected": float(rejected), "acked": float(step.acked), "sent": float(step.sent)}
    rows = [
        ["room restarted (kill → API shows restart count + 1)", f"{number(restart.restart_ms)} ms"],
        ["p99 before the kill", f"{number(restart.before_p99_ms, 1)} ms"],
        [
            "a message counts as slow above (p99 of its deliveries)",
            f"{number(restart.normal_ms, 1)} ms",
        ],
        [
            "spike: slowest delivery of a message in flight at or after the kill",
            f"{number(restart.spike_ms, 1)} ms",
        ],
        ["slow messages before the first normal one", f"{restart.slow_messages}"],
        ["**deliveries back to normal after the kill**", f"**{number(restart.recovery_ms)} ms**"],
        [f"slow messages later (within {RECOVERY_WINDOW_S:g} s)", f"{restart.stragglers}"],
        ["p99 after recovery", f"{number(restart.after_p99_ms, 1)} ms"],
        [
            "posts acked / sent; refused; unanswered",
            f"{step.acked:,} / {step.sent:,}; {rejected}; {step.unanswered}",
        ],
        ["deliveries lost", f"**{step.lost:,}** of {step.expected:,}"],
        [
            "p99 / max latency over the whole step",
            f"{number(step.latency_p99_ms, 1)} / {number(step.latency_max_ms, 1)} ms",
        ],
    ]
    recovered = restart.restarts >= 1 and restart.recovery_ms <= RECOVERY_TARGET_MS
    missed = (
        "the room was not seen restarted"
        if restart.restarts < 1
        else f"missed by {restart.recovery_ms - RECOVERY_TARGET_MS:.0f} ms"
    )
    targets = [
        Target(
            f"deliveries back to normal within {RECOVERY_TARGET_MS:g} ms of the kill",
            recovered,
            f"{number(restart.recovery_ms)} ms",
            "" if recovered else missed,
        ),
        Target(
            "nothing lost across the room's kill",
            step.lost == 0 and step.unanswered == 0 and not rejected,
            f"{step.lost:,} deliveries lost, {step.unanswered} posts unanswered, "
            f"{rejected} refused",
        ),
    ]
    parts = [
        f"Scenario 2's load ({settings.load()}, {settings.latency_rate_per_s:g} "
        f"messages/s) on Chatter for {settings.restart_duration_s:g} s; "
        f"{restart.kill_after_s:g} s in, the room actor is killed "
        '(`POST /api/supervision/kill {"id": "room"}`, chaos on) while the load goes '
        "on. A message is slow when the p99 of its deliveries is over twice the p99 "
        "before the kill (at least 20 ms); deliveries are back to normal when the "
        "first message in flight at or after the kill is delivered normally, and the "
        "time counted is from the kill to the last delivery of the slow ones.",
        table(["figure", "value"], rows, "<>"),
    ]
    if step.perturbed:
        parts.append(
            f"Note: other processes used {step.other_cpu_percent:.0f}% of a CPU meanwhile."
        )
    return Section(
        "Scenario 6: the room killed under load",
        "\n\n".join(parts),
        figures,
        targets,
        [_plot(restart, image)],
    )


def _plot(result: RestartResult, path: Path) -> str:
    """Each message's median and largest latency against its send time, the kill at 0."""
    with plot(path, (8, 4)) as axes:
        sent = [t for t, _, _ in result.timeline]
        axes.plot(sent, [m for _, m, _ in result.timeline], marker=".", label="median delivery")
        axes.plot(sent, [x for _, _, x in result.timeline], marker=".", label="slowest delivery")
        axes.axvline(0, color="red", linewidth=1, label="room killed")
        axes.axhline(result.normal_ms, color="grey", linestyle="--", linewidth=1, label="normal")
        if result.recovery_ms > 0:
            back = result.recovery_ms / 1000
            axes.axvline(back, color="green", linewidth=1, label="back to normal")
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
        axes.legend(fontsize="small")
    return relative(path)
