"""One timer pings every open socket once an interval, a slice at a time, and
closes one that did not answer the ping before; ticks are driven by hand."""

from __future__ import annotations

import asyncio

from web.keepalive import SLICES, Keepalive


class Socket:
    def __init__(self) -> None:
        self.pings = 0
        self.closed: str | None = None

    def ping(self, data: str | bytes = b"") -> None:
        self.pings += 1

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        self.closed = reason


def a_round(keepalive: Keepalive) -> None:
    """Every slice's turn once: one interval."""
    for _ in range(SLICES):
        keepalive._ping_slice()


def test_each_socket_is_pinged_once_an_interval_and_dropped_when_it_does_not_answer() -> None:
    async def scenario() -> None:
        keepalive = Keepalive(20.0)
        answering, silent = Socket(), Socket()
        crowd = [Socket() for _ in range(3 * SLICES)]
        for socket in (answering, silent, *crowd):
            keepalive.track(socket)
        a_round(keepalive)
        assert (answering.pings, silent.pings) == (1, 1)
        assert all(socket.pings == 1 for socket in crowd)  # spread: each once per interval
        keepalive.answered(answering)
        for socket in crowd:
            keepalive.answered(socket)
        a_round(keepalive)
        assert (answering.pings, answering.closed) == (2, None)
        assert (silent.pings, silent.closed) == (1, "ping timed out")
        assert len(keepalive) == 1 + len(crowd)
        for socket in (answering, *crowd):
            keepalive.forget(socket)
        assert keepalive._timer is None  # the last one gone, the timer stops

    asyncio.run(scenario())


def test_an_interval_of_zero_pings_nothing() -> None:
    keepalive = Keepalive(0)
    keepalive.track(Socket())
    assert (len(keepalive), keepalive._timer) == (0, None)


def test_a_socket_is_first_pinged_between_half_an_interval_and_an_interval_after_it_opens() -> None:
    async def scenario() -> None:
        keepalive = Keepalive(20.0)
        for _ in range(7):  # the timer is somewhere in its round
            keepalive._ping_slice()
        burst = [Socket() for _ in range(5 * SLICES)]
        for socket in burst:
            keepalive.track(socket)
        for _ in range(SLICES // 2):
            keepalive._ping_slice()
        assert all(socket.pings == 0 for socket in burst)  # none while half an interval runs
        pinged_per_tick = []
        for _ in range(SLICES // 2):
            before = sum(socket.pings for socket in burst)
            keepalive._ping_slice()
            pinged_per_tick.append(sum(socket.pings for socket in burst) - before)
        assert all(socket.pings == 1 for socket in burst)  # each once within the interval
        assert pinged_per_tick == [len(burst) // (SLICES // 2)] * (SLICES // 2)  # spread evenly
        for socket in burst:
            keepalive.forget(socket)

    asyncio.run(scenario())
