"""Scenario 6: what a crash of the room costs the people in it.

During a step at scenario 2's load (10 messages/s to 1,000 connections), the
orchestrator kills Chatter's room actor (``POST /api/supervision/kill``,
``{"id": "room"}``) and watches ``GET /api/supervision`` until the room's restart
count goes up. The generators keep each delivery's receive time as well as its latency, and
`analyse` reads the spike out of them, message by message (a message's
deliveries are those of its send time):

- *normal* is what the deliveries of messages posted before the kill took: a
  message is delivered normally when 99% of its deliveries took at most
  ``max(NORMAL_FACTOR * p99 before the kill, NORMAL_FLOOR_MS)``;
- the messages still on their way at the kill, and those posted after it, are
  taken in the order they were posted: deliveries are *back to normal* when the
  first of them is delivered normally, and the *recovery* is the time from the
  kill to the last delivery of the slow messages before it (zero if there are
  none: the kill went unnoticed);
- the *spike* is the largest latency of a delivery of those messages within
  `RECOVERY_WINDOW_S` of the kill, and *stragglers* counts slow messages after
  the recovery in that window (unrelated noise, or a second wave: the report
  shows them, and the timeline plot the whole step);
- *lost*, as in every step, counts each acked message some connection never got.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from bench.fanout.loadgen import Received
from bench.fanout.report import StepResult, percentile

__all__ = [
    "NORMAL_FACTOR",
    "NORMAL_FLOOR_MS",
    "RECOVERY_TARGET_MS",
    "RECOVERY_WINDOW_S",
    "KillRecord",
    "RestartResult",
    "analyse",
]

NORMAL_FACTOR = 2.0
"""A delivery slower than this many times the pre-kill p99 is abnormal..."""
NORMAL_FLOOR_MS = 20.0
"""...and slower than this, so that a very fast baseline does not make noise abnormal."""
RECOVERY_WINDOW_S = 5.0
"""How long after the kill abnormal deliveries are looked for."""
RECOVERY_TARGET_MS = 500.0
"""The issue's target: deliveries back to normal within this of the kill."""


@dataclass(frozen=True)
class KillRecord:
    """What the orchestrator did and saw of the kill."""

    kill_at: float
    """`time.time()` just before the kill request was sent."""
    answered_at: float
    """When the server answered it (202)."""
    restarted_at: float | None
    """When ``GET /api/supervision`` first showed the room restarted, if it did."""
    restarts_before: int | None
    restarts_after: int | None


@dataclass(frozen=True)
class RestartResult:
    step: StepResult
    kill_after_s: float
    """Seconds into the step at which the room was killed."""
    restart_ms: float
    """Kill request to the room seen restarted by the API (NaN if never seen)."""
    restarts: int
    """Restarts of the room during the step, by the API (1 when the kill worked)."""
    before_p99_ms: float
    """p99 latency of deliveries of messages posted before the kill."""
    normal_ms: float
    """A message whose deliveries' p99 is above this was delivered slowly."""
    spike_ms: float
    """The largest latency of a delivery of a message on its way at or after the kill."""
    recovery_ms: float
    """Kill to the last delivery of the slow messages: deliveries back to normal."""
    slow_messages: int
    """Messages delivered slowly before the first normal one."""
    stragglers: int
    """Slow messages after that one, within the window."""
    after_p99_ms: float
    """p99 latency of deliveries of messages posted after the recovery."""
    timeline: list[tuple[float, float, float]]
    """Per message: send time relative to the kill (s), median and max latency (ms)."""

    @property
    def ok(self) -> bool:
        return (
            self.restarts >= 1
            and self.recovery_ms <= RECOVERY_TARGET_MS
            and self.step.lost == 0
            and self.step.unanswered == 0
        )


@dataclass
class _Message:
    sent: float
    latencies: list[float]
    last_arrival: float

    def p99(self) -> float:
        return percentile(sorted(self.latencies), 0.99)


def analyse(
    step: StepResult, receiveds: Sequence[Received], kill: KillRecord, kill_after_s: float
) -> RestartResult:
    """The spike and the recovery from every delivery's receive time and latency."""
    by_send: dict[float, _Message] = {}
    for answer in receiveds:
        for arrival, latency in zip(answer.arrivals, answer.latencies_ms, strict=True):
            sent = arrival - latency / 1000.0
            message = by_send.get(key := round(sent, 4))
            if message is None:
                message = by_send[key] = _Message(sent, [], arrival)
            message.latencies.append(latency)
            message.last_arrival = max(message.last_arrival, arrival)
    messages = sorted(by_send.values(), key=lambda m: m.sent)
    before = sorted(x for m in messages if m.last_arrival < kill.kill_at for x in m.latencies)
    before_p99 = percentile(before, 0.99)
    normal = max(NORMAL_FACTOR * before_p99, NORMAL_FLOOR_MS) if before else NORMAL_FLOOR_MS
    affected = [
        m
        for m in messages
        if m.last_arrival >= kill.kill_at and m.sent <= kill.kill_at + RECOVERY_WINDOW_S
    ]
    slow: list[_Message] = []
    for message in affected:
        if message.p99() <= normal:
            break
        slow.append(message)
    recovered_at = max((m.last_arrival for m in slow), default=kill.kill_at)
    later = affected[len(slow) :]
    after = sorted(x for m in later if m.sent > recovered_at for x in m.latencies)
    restarts = 0
    if kill.restarts_before is not None and kill.restarts_after is not None:
        restarts = kill.restarts_after - kill.restarts_before
    return RestartResult(
        step=step,
        kill_after_s=kill_after_s,
        restart_ms=(
            (kill.restarted_at - kill.kill_at) * 1000.0
            if kill.restarted_at is not None
            else math.nan
        ),
        restarts=restarts,
        before_p99_ms=before_p99,
        normal_ms=normal,
        spike_ms=max((max(m.latencies) for m in affected), default=math.nan),
        recovery_ms=(recovered_at - kill.kill_at) * 1000.0,
        slow_messages=len(slow),
        stragglers=sum(1 for m in later if m.p99() > normal),
        after_p99_ms=percentile(after, 0.99),
        timeline=[
            (m.sent - kill.kill_at, statistics.median(m.latencies), max(m.latencies))
            for m in messages
        ],
    )
