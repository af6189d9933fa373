"""Load over several nodes of one cluster: a group of client processes per node.

`open_groups` opens a share of the connections on each node, each share from
client processes of its own (`bench.clients`), so that every delivery is known
to have been received on a given node; `run_step` runs one step over every group as
`bench.fanout` runs one over a single server (posts spread evenly over time and
senders, the nodes' posts interleaved; each node's CPU, PostgreSQL's and each
client process's metered over the posting window; a drain until every acked
message has reached every connection open at the start). `read_counters` reads a
node's ``/metrics``.
"""

from __future__ import annotations

import contextlib
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

from bench.clients import Acked, ClientProcesses, Done, Expect, Join, Open, Opened, Step, Tally
from bench.report import Progress
from bench.servers import HOST, Database, Meter, RunningServer, ServerSample
from bench.stats import StepResult, aggregate, percent

__all__ = [
    "COUNTERS",
    "NodeGroup",
    "NodeStep",
    "acked_seqs",
    "lost_deliveries",
    "open_groups",
    "read_counters",
    "run_step",
    "split_evenly",
]

STEP_LEAD_S = 0.3
"""Time between sending a step's plan and its start, for every process to get it."""
ANSWER_SLACK_S = 30.0
"""How much longer than its own deadlines a client process may take to answer."""
CONNECT_TIMEOUT_S = 180.0
"""Longest wait for every connection of a step."""
SCRAPE_TIMEOUT_S = 5.0
"""Longest wait for a node's ``/metrics``."""


@dataclass(frozen=True)
class NodeGroup:
    """One node's share of a step's connections."""

    node: RunningServer
    clients: ClientProcesses
    """The client processes holding them..."""
    senders: int
    """...and how many of them post."""


@dataclass(frozen=True)
class NodeStep:
    """One step over several nodes."""

    result: StepResult
    """Over every node's clients."""
    tallies: list[list[Tally]]
    """Each node's clients' tallies, in node order."""
    node_cpu_percent: list[float]
    """Each node's CPU over the posting window, % of one CPU."""


def split_evenly(total: int, parts: int) -> list[int]:
    """`total` in `parts` as even as can be, the larger shares first."""
    return [total // parts + (1 if part < total % parts else 0) for part in range(parts)]


def open_groups(
    stack: contextlib.ExitStack,
    nodes: Sequence[RunningServer],
    connections: int,
    senders: Sequence[int],
    generators: int,
    progress: Progress,
) -> list[NodeGroup]:
    """`connections` split over `nodes`, each share held by `generators` / nodes
    client processes; `senders[k]` of node k's join (names never repeated across
    nodes: a name is taken on every node)."""
    if generators % len(nodes):
        raise ValueError(f"{generators} client processes do not split over {len(nodes)} nodes")
    shares = split_evenly(connections, len(nodes))
    groups = [
        NodeGroup(
            node,
            stack.enter_context(ClientProcesses(generators // len(nodes), node, "cluster")),
            posting,
        )
        for node, posting in zip(nodes, senders, strict=True)
    ]
    progress(
        f"[cluster] opening {connections:,} connections over {len(nodes)} node(s) "
        f"({', '.join(f'{share:,}' for share in shares)})"
    )
    for group, share in zip(groups, shares, strict=True):
        group.clients.send(Open(share))
    for group in groups:
        with group.node.blamed():
            group.clients.gather(Opened, CONNECT_TIMEOUT_S)
    names_from = 0
    for group in groups:
        if group.senders:
            join = Join(group.senders, names_from=names_from)
            group.clients.ask(join, Done, CONNECT_TIMEOUT_S)
            names_from += group.senders
    return groups


def _together(samples: Sequence[ServerSample]) -> ServerSample:
    """The nodes' samples as one server's: their CPU, RSS and threads added up;
    PostgreSQL's and the machine's from the first (the one metering them)."""
    first = samples[0]
    return ServerSample(
        window_s=first.window_s,
        cpu_s=sum(s.cpu_s for s in samples),
        db_cpu_s=first.db_cpu_s,
        peak_rss_kib=sum(s.peak_rss_kib for s in samples),
        peak_threads=sum(s.peak_threads for s in samples),
        host_busy_percent=first.host_busy_percent,
        cpus=first.cpus,
    )


def run_step(
    groups: Sequence[NodeGroup],
    label: str,
    rate_per_s: float,
    duration_s: float,
    drain_s: float,
    database: Database,
) -> NodeStep:
    """One step over every group: post at `rate_per_s` over all senders (each node's
    share from its own senders, the nodes' posts interleaved), then drain."""
    senders = sum(group.senders for group in groups)
    start_at = time.time() + STEP_LEAD_S
    end_at = start_at + duration_s
    posting = 0
    for group in groups:
        share, offset = rate_per_s, 0.0  # a node without senders posts nothing
        if group.senders:
            share, offset = rate_per_s * group.senders / senders, posting / rate_per_s
            posting += 1
        group.clients.send(Step(1, share, start_at + offset, duration_s, end_at + drain_s))
    time.sleep(max(0.0, start_at - time.time()))
    meters = [
        Meter(group.node.pid, database.postmaster if k == 0 else None)
        for k, group in enumerate(groups)
    ]
    samples = [meters[0].until(end_at), *(meter.stop() for meter in meters[1:])]
    timeout_s = drain_s + ANSWER_SLACK_S
    acked = frozenset(
        seq
        for group in groups
        for answer in group.clients.gather(Acked, timeout_s)
        for seq in answer.seqs
    )
    expect = Expect(1, acked, time.time() + drain_s)
    for group in groups:
        group.clients.send(expect)
    tallies = [group.clients.gather(Tally, timeout_s) for group in groups]
    every = [tally for node_tallies in tallies for tally in node_tallies]
    result = aggregate(label, rate_per_s, duration_s, start_at, every, _together(samples))
    cpu = [percent(sample.cpu_s, sample.window_s) for sample in samples]
    return NodeStep(result, tallies, cpu)


# -- /metrics ---------------------------------------------------------------------------


COUNTERS = {
    "notify": ("chatter_wakes_total", 'cause="notify"'),
    "tick": ("chatter_wakes_total", 'cause="tick"'),
    "stored": ("chatter_messages_stored_total", ""),
    "log_reads": ("chatter_log_reads_total", ""),
}
"""What is read of each node's ``/metrics``: a name and its labels as written there."""


def read_counters(node: RunningServer) -> dict[str, float]:
    """A node's `COUNTERS`, now."""
    url = f"http://{HOST}:{node.port}/metrics"
    with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_S) as answer:
        lines = answer.read().decode().splitlines()
    found = {}
    for key, (name, labels) in COUNTERS.items():
        wanted = f"{name}{{{labels}}} " if labels else f"{name} "
        line = next((line for line in lines if line.startswith(wanted)), None)
        if line is None:
            raise RuntimeError(f"{node.label}'s /metrics has no {wanted.strip()}")
        found[key] = float(line.split()[-1])
    return found


def lost_deliveries(tallies: Sequence[Tally], acked: frozenset[int]) -> int:
    """Of `acked`, the deliveries `tallies`' connections open at the start lack
    (`bench.stats.aggregate`'s *lost*, for some of a step's clients)."""
    return sum(max(0, t.connections - t.counts.get(seq, 0)) for t in tallies for seq in acked)


def acked_seqs(step: NodeStep) -> frozenset[int]:
    """Every seq acked in `step`, on any node."""
    return frozenset(seq for tallies in step.tallies for t in tallies for seq in t.acked)
