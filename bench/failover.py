"""Scenario 7's killed node: what its clients see, and when its names are free.

On a running cluster (`bench.cluster` starts it), with clients posting on
node-1 and node-2 all along, a few clients on the last node (one of them joined as
``kept``, one as ``gone``, the others viewers) and a watcher on node-1:

1. the last node is killed (SIGKILL: no close frame, no lease dropped);
2. each of its clients but ``gone`` notices its connection end, and at once
   reconnects to another node (node-1, node-2, node-1...) with ``?after=`` the
   last seq it received and, for ``kept``, ``&token=`` its token, as a client
   following docs/PROTOCOL.md §11 does: it is *back* when welcomed there, and
   ``kept`` has its name back once the welcome's ``you`` names it and the
   ``joined`` that follows arrives;
3. ``gone`` does not come back: its name is free once a join of it on node-2
   (tried every `CLAIM_POLL_S`) is granted, and the watcher on node-1 sees it
   leave; docs/CLUSTER.md expects about 11 s (the dead node's lease, 10 s after
   its last renewal, then a tick), 15 s at most;
4. the posters stop; every client that came back must hold every message acked
   since it first connected, once and in order (the welcome after ``after``
   fills the gap).

The clients are Tornado WebSocket clients on one asyncio loop, each doing what
a real client does; every time is `time.time()` after the kill.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import tornado.websocket

from bench.servers import HOST, RunningServer

__all__ = ["NAME_FREE_TARGET_S", "NAME_TIMEOUT_S", "FailoverResult", "kill_and_watch"]

KEPT, GONE = "kept", "gone"
"""The names of the client that comes back and of the one that does not."""
POSTER_RATE_PER_S = 1.5
"""Posts a second from one poster: under the post throttle's 2 a second per connection."""
NAME_FREE_TARGET_S = 15.0
"""docs/CLUSTER.md: a dead node's names are free within 15 s (a 10 s lease, then a tick)."""
CLAIM_POLL_S = 0.1
"""How often node-2's client asks for ``gone`` until it is granted (ten frames a
second, within the flood limit; a refused claim costs no claim token)."""
SETTLE_S = 1.0
"""Posting before the kill, so that every client has received messages."""
ANSWER_TIMEOUT_S = 20.0
"""Longest wait for an expected frame: a welcome, a joined, a presence change."""
NAME_TIMEOUT_S = 40.0
"""Longest wait for ``gone`` to be free (a missed target, not a hang, when slower)."""
DELIVERY_TIMEOUT_S = 15.0
"""Longest wait, after the last post, for every client to hold every acked message."""


@dataclass(frozen=True)
class FailoverResult:
    """What the clients of the killed node saw, in ms after the kill."""

    clients: int
    """The killed node's clients that came back (``kept`` and the viewers)."""
    closed_ms: list[float]
    """Each one: the kill to the end of its connection seen..."""
    back_ms: list[float]
    """...and to its welcome on another node."""
    name_back_ms: float
    """``kept``: the kill to the ``joined`` after its welcome (NaN if its name was not back)."""
    name_seen_leaving: bool
    """Whether the watcher saw ``kept`` leave (it should not: a takeover keeps it online)."""
    leave_seen_ms: float
    """``gone``: the kill to the watcher on node-1 seeing it leave..."""
    name_free_ms: float
    """...and to a join of it on node-2 granted (NaN if neither within `NAME_TIMEOUT_S`)."""
    sent: int
    """Posts sent from the kill's settling to the end, on node-1 and node-2..."""
    acked: int
    """...of which acked..."""
    refused: int
    """...and refused (an error frame)."""
    missed: int
    """Acked messages a client that came back does not hold, over them all..."""
    duplicates: int
    """...messages it holds twice..."""
    out_of_order: int
    """...and messages below one received before on its connections."""


@dataclass
class _Peer:
    """One WebSocket client: what it received, over all its connections."""

    label: str
    seqs: list[int] = field(default_factory=list)
    """Every message's seq received, welcomes' included, in order."""
    acked: list[int] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    """Error frames answering posts."""
    presence: list[dict[str, Any]] = field(default_factory=list)
    answers: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    """Frames other than messages, acks and presence, for `answer`."""
    token: str | None = None
    first_seq: int = 0
    """The newest seq of its first welcome: it is due every acked message after it."""
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    closed_at: float = math.nan
    connection: tornado.websocket.WebSocketClientConnection | None = None
    reader: asyncio.Task[None] | None = None

    @property
    def last_seq(self) -> int:
        return self.seqs[-1] if self.seqs else self.first_seq

    async def connect(self, node: RunningServer, after: int | None = None) -> dict[str, Any]:
        """Connect to `node` (resuming `after` a seq, with its token if it has one);
        its welcome."""
        query = [f"after={after}"] if after is not None else []
        query += [f"token={self.token}"] if self.token and after is not None else []
        url = f"ws://{HOST}:{node.port}/ws" + ("?" + "&".join(query) if query else "")
        self.closed = asyncio.Event()
        self.connection = await tornado.websocket.websocket_connect(url)
        self.reader = asyncio.create_task(self._read(self.connection, self.closed))
        welcome = await self.answer("welcome")
        if after is None:
            self.first_seq = max((m["seq"] for m in welcome["messages"]), default=0)
        return welcome

    async def _read(
        self, connection: tornado.websocket.WebSocketClientConnection, closed: asyncio.Event
    ) -> None:
        while (text := await connection.read_message()) is not None:
            frame = json.loads(text)
            kind = frame.get("type")
            if kind == "message":
                self.seqs.append(frame["message"]["seq"])
            elif kind == "ack":
                self.acked.append(frame["seq"])
            elif kind == "error" and frame.get("client_id"):
                self.refused.append(frame)
            elif kind == "presence":
                self.presence.append(frame)
            else:
                if kind == "welcome":
                    self.seqs += [m["seq"] for m in frame["messages"]]
                elif kind == "joined":
                    self.token = frame["token"]
                self.answers.put_nowait(frame)
        self.closed_at = time.time()
        closed.set()

    async def answer(self, *kinds: str) -> dict[str, Any]:
        """The next frame of one of `kinds` (others are dropped)."""
        while True:
            frame = await asyncio.wait_for(self.answers.get(), ANSWER_TIMEOUT_S)
            if frame.get("type") in kinds:
                return frame

    async def join(self, name: str) -> dict[str, Any]:
        await self.send({"type": "join", "username": name})
        frame = await self.answer("joined", "error")
        if frame["type"] != "joined":
            raise RuntimeError(f"{self.label} could not join as {name}: {frame}")
        return frame

    async def send(self, frame: dict[str, Any]) -> None:
        assert self.connection is not None
        await self.connection.write_message(json.dumps(frame))

    def saw(self, key: str, name: str) -> bool:
        """Whether a presence frame listed `name` in its `key` (``joins`` or ``leaves``)."""
        return any(name in frame.get(key, ()) for frame in self.presence)

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
        if self.reader is not None:
            self.reader.cancel()


async def _until(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Wait (polling every 10 ms) until `condition`; the `time.time()` it held."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout_s:g} s: {what}")
        await asyncio.sleep(0.01)
    return time.time()


async def _post(poster: _Peer, rate_per_s: float, stop: asyncio.Event) -> int:
    """Post at `rate_per_s` until `stop`; how many were sent."""
    sent = 0
    started = time.monotonic()
    while not stop.is_set():
        sent += 1
        client_id = f"{poster.label}-{sent}"
        await poster.send({"type": "post", "body": f"failover {client_id}", "client_id": client_id})
        due = started + sent / rate_per_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, due - time.monotonic()))
    return sent


async def _come_back(
    peer: _Peer, node: RunningServer, kill_at: float
) -> tuple[float, float, float]:
    """Once `peer`'s connection has ended, resume on `node` as a client would: the
    ms from the kill to the end seen, to the welcome, and (``kept``) to its name
    back, the ``joined`` after a welcome whose ``you`` names it (NaN for a viewer)."""
    await asyncio.wait_for(peer.closed.wait(), ANSWER_TIMEOUT_S)
    welcome = await peer.connect(node, after=peer.last_seq)
    back_at, named_at = time.time(), math.nan
    if peer.label == KEPT:
        if welcome.get("you") != {"username": KEPT}:
            raise RuntimeError(f"{KEPT} was not recognised on {node.node_id}: {welcome['you']}")
        await peer.answer("joined")
        named_at = time.time()
    closed_ms, back_ms, named_ms = (
        (at - kill_at) * 1000.0 for at in (peer.closed_at, back_at, named_at)
    )
    return closed_ms, back_ms, named_ms


async def _free(claimer: _Peer) -> float:
    """Ask for ``gone`` every `CLAIM_POLL_S` until it is granted; when it was."""
    deadline = time.monotonic() + NAME_TIMEOUT_S
    while time.monotonic() < deadline:
        await claimer.send({"type": "join", "username": GONE})
        frame = await claimer.answer("joined", "error")
        if frame["type"] == "joined":
            return time.time()
        await asyncio.sleep(CLAIM_POLL_S)
    return math.nan


def _holes(peer: _Peer, acked: set[int]) -> tuple[int, int, int]:
    """What `peer` lacks of `acked` past its first welcome, holds twice, and got out
    of order."""
    held = [seq for seq in peer.seqs if seq > peer.first_seq]
    out_of_order = sum(1 for a, b in itertools.pairwise(held) if b <= a)
    return len(acked - set(held)), len(held) - len(set(held)), out_of_order


async def _failover(
    nodes: Sequence[RunningServer], viewers: int, rate_per_s: float
) -> FailoverResult:
    first, second, doomed = nodes[0], nodes[1], nodes[-1]
    watcher, claimer = _Peer("watcher"), _Peer("claimer")
    posters = [_Peer(f"poster{n}") for n in range(math.ceil(rate_per_s / POSTER_RATE_PER_S))]
    kept, gone = _Peer(KEPT), _Peer(GONE)
    others = [_Peer(f"viewer-{n}") for n in range(viewers)]
    everyone = [watcher, *posters, claimer, kept, gone, *others]
    try:
        await watcher.connect(first)
        for n, poster in enumerate(posters):
            await poster.connect(nodes[n % 2])
            await poster.join(poster.label)
        await claimer.connect(second)
        for peer in (kept, gone, *others):
            await peer.connect(doomed)
        await kept.join(KEPT)
        await gone.join(GONE)
        await _until(
            lambda: watcher.saw("joins", KEPT) and watcher.saw("joins", GONE),
            ANSWER_TIMEOUT_S,
            "node-1 sees the names taken on the last node",
        )

        stop = asyncio.Event()
        each = rate_per_s / len(posters)
        posting = asyncio.gather(*(_post(poster, each, stop) for poster in posters))
        await asyncio.sleep(SETTLE_S)
        kill_at = time.time()
        os.kill(doomed.pid, signal.SIGKILL)
        back = asyncio.gather(
            *(
                _come_back(peer, nodes[n % (len(nodes) - 1)], kill_at)
                for n, peer in enumerate((kept, *others))
            )
        )
        free = asyncio.create_task(_free(claimer))
        returned = await asyncio.wait_for(back, 2 * ANSWER_TIMEOUT_S)
        freed_at = await free
        left_at = math.nan
        with contextlib.suppress(TimeoutError):
            left_at = await _until(
                lambda: watcher.saw("leaves", GONE), ANSWER_TIMEOUT_S, "node-1 sees gone leave"
            )
        stop.set()
        sent = sum(await posting)
        await _until(
            lambda: sum(len(p.acked) + len(p.refused) for p in posters) >= sent,
            ANSWER_TIMEOUT_S,
            "every post answered",
        )
        acked = {seq for poster in posters for seq in poster.acked}
        came_back = [kept, *others]
        with contextlib.suppress(TimeoutError):
            await _until(
                lambda: all(_holes(peer, acked)[0] == 0 for peer in came_back),
                DELIVERY_TIMEOUT_S,
                "every client that came back holds every acked message",
            )
        holes = [_holes(peer, acked) for peer in came_back]
        return FailoverResult(
            clients=len(came_back),
            closed_ms=[closed for closed, _, _ in returned],
            back_ms=[back for _, back, _ in returned],
            name_back_ms=returned[0][2],
            name_seen_leaving=watcher.saw("leaves", KEPT),
            leave_seen_ms=(left_at - kill_at) * 1000.0,
            name_free_ms=(freed_at - kill_at) * 1000.0,
            sent=sent,
            acked=len(acked),
            refused=sum(len(poster.refused) for poster in posters),
            missed=sum(h[0] for h in holes),
            duplicates=sum(h[1] for h in holes),
            out_of_order=sum(h[2] for h in holes),
        )
    finally:
        for peer in everyone:
            peer.close()


def kill_and_watch(
    nodes: Sequence[RunningServer], viewers: int, rate_per_s: float
) -> FailoverResult:
    """Kill the last of `nodes` (at least three, running) with `viewers` and two named
    clients on it, and watch them come back on the others (see the module's text)."""
    if len(nodes) < 3:
        raise ValueError(f"the killed node needs two others to watch it: {len(nodes)} nodes")
    return asyncio.run(_failover(nodes, viewers, rate_per_s))
