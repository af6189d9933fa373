"""The load generator: client processes, each holding a share of the connections.

Every scenario that drives a server over WebSocket drives it through this one
harness. `ClientProcesses` starts the processes (`bench._generator`): each runs
an asyncio loop of raw WebSocket clients (`bench.wsclient`) and answers each
command sent through its pipe with one dataclass (or `Failed`, with the
traceback): `Open` → `Opened`, `Join` → `Done`, `Step` → `Acked`, `Expect` →
`Tally`, `Pages` → `Paged`, `Stop` → `Done`. Process ``p`` of ``P`` holds the
connections whose index ``g`` (over all processes) has ``g % P == p``. Times
cross processes as `time.time()` (one machine, one clock).
"""

from __future__ import annotations

import array
import contextlib
import multiprocessing
import multiprocessing.connection
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bench.servers import HOST, RunningServer

__all__ = [
    "BODY_PREFIX",
    "FILLER",
    "Acked",
    "ClientProcesses",
    "Done",
    "Expect",
    "Failed",
    "Join",
    "Open",
    "Opened",
    "Paged",
    "Pages",
    "Step",
    "Stop",
    "Tally",
]

T = TypeVar("T")

BODY_PREFIX = "bench"
"""A post's body starts with this, then the step and the send time..."""
FILLER = "the quick brown fox jumps over the lazy dog"
"""...then this, to be about as long as a typical chat line (about 80 characters in all)."""
STOP_TIMEOUT_S = 10.0
"""How long a process may take to close its connections and end, before it is killed."""


# -- commands ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Open:
    """Open this process's share of `count` connections (50 handshakes in flight, or
    each at its own start time), each waiting for its welcome."""

    count: int
    starts: tuple[float, ...] = ()
    """`time.time()` at which connection ``g`` starts; empty: all at once."""
    query: str = ""
    """Appended to the WebSocket's path (``?after=SEQ``)."""
    close: bool = False
    """Close each connection once it is welcomed."""
    timeout_s: float = 60.0


@dataclass(frozen=True)
class Join:
    """The first `senders` connections opened join as ``bench<names_from + g>``."""

    senders: int
    timeout_s: float = 60.0
    names_from: int = 0
    """Where the names' numbers start: client processes on several nodes of one
    cluster must not claim the same names (a name is taken on every node)."""


@dataclass(frozen=True)
class Step:
    """From `start_at` for `duration_s`, post at `rate_per_s` over all senders: post
    ``j`` is due at ``start_at + j / rate_per_s`` from sender ``j % senders``, so
    posts are spread evenly over time and senders. A post carries a ``client_id``
    and a body ``"bench <step> <time.time()> <filler>"``. Once every post is
    answered (ack or error), or at `answer_deadline`, answer the seqs acked."""

    number: int
    rate_per_s: float
    start_at: float
    duration_s: float
    answer_deadline: float
    timeline: bool = False
    """Keep each delivery's receive time too (`Tally.arrivals`)."""


@dataclass(frozen=True)
class Expect:
    """Given the seqs acked to every process, wait until each open connection here
    has them all (or `deadline`), then answer the step as this process saw it."""

    number: int
    acked: frozenset[int]
    deadline: float


@dataclass(frozen=True)
class Pages:
    """One connection asks ``history`` pages one at a time, timing each answer."""

    befores: tuple[int, ...]
    limit: int = 100
    timeout_s: float = 30.0


@dataclass(frozen=True)
class Stop:
    """Close every connection and end."""


# -- answers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Opened:
    seconds: float
    welcome_ms: list[float]
    """Per connection: the start of its TCP connect to its whole welcome..."""
    upgrade_ms: list[float]
    """...and to the server's 101."""
    welcome_messages: list[int]


@dataclass(frozen=True)
class Done:
    """`Join` or `Stop` done."""


@dataclass(frozen=True)
class Acked:
    seqs: list[int]


@dataclass
class Tally:
    """One step as one client process saw it."""

    process: int
    connections: int
    """Connections open when the step started..."""
    open_at_end: int = 0
    """...and when it was reported."""
    sent: int = 0
    unanswered: int = 0
    """Posts with no ack or error by the deadline, or due from a closed sender."""
    acked: list[int] = field(default_factory=list)
    ack_latencies_ms: array.array[float] = field(default_factory=lambda: array.array("d"))
    rejected: Counter[str] = field(default_factory=Counter)
    """Error frames answering posts, by code."""
    counts: dict[int, int] = field(default_factory=dict)
    """For each seq of the step: how many connections here received it."""
    latencies_ms: array.array[float] = field(default_factory=lambda: array.array("d"))
    """Each delivery: its receive time minus the send time in its body."""
    arrivals: array.array[float] = field(default_factory=lambda: array.array("d"))
    """Each delivery's `time.time()`, in the order of `latencies_ms`, with a timeline."""
    out_of_order: int = 0
    """Message frames whose seq was not above the previous one on their connection."""
    last_receipt: float | None = None
    cpu_s: float = 0.0
    """This process's CPU time over the step's window (the generator's own cost)..."""
    window_s: float = 0.0
    """...and that window's wall time."""
    timeline: bool = False
    """Whether `arrivals` are kept."""


@dataclass(frozen=True)
class Paged:
    latencies_ms: list[float]
    messages: list[int]


@dataclass(frozen=True)
class Failed:
    error: str


# -- the processes ----------------------------------------------------------------------


def _process_main(pipe: multiprocessing.connection.Connection, *args: Any) -> None:
    from bench._generator import serve  # the client processes' side

    serve(pipe, *args)


class ClientProcesses:
    """`count` client processes against `server`; every process is stopped on exit,
    then terminated, then killed."""

    def __init__(self, count: int, server: RunningServer, name: str) -> None:
        context = multiprocessing.get_context("spawn")  # no inherited threads or sockets
        self._processes: list[Any] = []
        self._pipes: list[multiprocessing.connection.Connection] = []
        self._asked: list[int] = []
        try:
            for index in range(count):
                ours, theirs = context.Pipe()
                process = context.Process(
                    target=_process_main,
                    args=(theirs, index, count, HOST, server.port, server.wire),
                    name=f"{name}-{index}",
                    daemon=True,
                )
                process.start()
                theirs.close()
                self._processes.append(process)
                self._pipes.append(ours)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> ClientProcesses:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def send(self, commands: Any) -> None:
        """Command ``commands[i]`` to process ``i`` (None: nothing), or the one command
        to every process; `gather` the answers."""
        if not isinstance(commands, Sequence):
            commands = [commands] * len(self._pipes)
        self._asked = [i for i, command in enumerate(commands) if command is not None]
        for i in self._asked:
            self._pipes[i].send(commands[i])

    def gather(self, kind: type[T], timeout_s: float) -> list[T]:
        """The answers of type `kind` to the last `send`, in process order."""
        answers: dict[int, T] = {}
        deadline = time.monotonic() + timeout_s
        while len(answers) < len(self._asked):
            waiting = [self._pipes[i] for i in self._asked if i not in answers]
            ready = multiprocessing.connection.wait(waiting, max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError(f"no {kind.__name__} from every client process in {timeout_s} s")
            for pipe in ready:
                assert isinstance(pipe, multiprocessing.connection.Connection)
                index = self._pipes.index(pipe)
                try:
                    answer = pipe.recv()
                except EOFError:
                    raise RuntimeError(f"client process {index} died") from None
                if isinstance(answer, Failed):
                    raise RuntimeError(f"client process {index} failed:\n{answer.error}")
                if not isinstance(answer, kind):
                    raise RuntimeError(f"client process {index} answered {answer!r}, not {kind}")
                answers[index] = answer
        return [answers[i] for i in sorted(answers)]

    def ask(self, commands: Any, kind: type[T], timeout_s: float) -> list[T]:
        self.send(commands)
        return self.gather(kind, timeout_s)

    def tallies(self, number: int, drain_s: float, timeout_s: float) -> list[Tally]:
        """After `Step` `number` was sent: the seqs acked, then each process's tally
        once every delivery of them has arrived, or `drain_s` has passed."""
        acked = frozenset(seq for answer in self.gather(Acked, timeout_s) for seq in answer.seqs)
        return self.ask(Expect(number, acked, time.time() + drain_s), Tally, timeout_s)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ask(Stop(), Done, STOP_TIMEOUT_S)
        for process in self._processes:
            for end in (lambda: None, process.terminate, process.kill):
                if process.is_alive():
                    end()
                    process.join(STOP_TIMEOUT_S)
        for pipe in self._pipes:
            pipe.close()
        self._processes, self._pipes = [], []
