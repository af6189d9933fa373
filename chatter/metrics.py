"""Chatter's metrics: what the tree counts, in a Prometheus registry of its own.

Every running tree has one `ChatMetrics`, made by `start_tree` and handed to
the actors that count (persistence, presence, room, sessions); ``GET /metrics``
serves its registry (see docs/OBSERVABILITY.md for every metric). Nothing uses
prometheus-client's global default registry, so several servers in one process
(the tests) count apart, and a restarted actor keeps counting where the last
incarnation stopped: the counters belong to the tree, not to an incarnation.

Two ways of measuring, each where it is cheap:

- Counters and histograms are updated by the actor that sees the event, once
  per event and never per receiver: the room adds a whole fan-out's deliveries
  in one ``inc(n)``, persistence a whole batch's messages in one ``inc(k)``.
- Gauges that describe a state (mailbox depths, sessions, the database pool)
  are read when Prometheus scrapes, by `_TreeCollector`, so that nothing on a
  hot path keeps them up to date. The one exception is online users, which
  presence sets as names come and go (rare events, and presence's state is
  its own to read).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from psycopg_pool import ConnectionPool

from chatter.errors import ErrorCode
from supervision import EventKind, EventStream, Registry, SupervisionEvent, mailbox_depth

__all__ = [
    "BATCH_SIZE_BUCKETS",
    "LATENCY_BUCKETS_S",
    "MAILBOX_ACTORS",
    "ChatMetrics",
    "inbox_depth",
]

logger = logging.getLogger(__name__)

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Latency buckets, seconds: a commit takes about a millisecond here, the
design's p99 bound is 250 ms, and a store fails by about 5 s."""

BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
"""Group-commit batch sizes, messages: one alone up to a burst of a full room."""

MAILBOX_ACTORS = ("room", "presence", "persistence")
"""The registered names whose mailbox depth is reported."""

SUPERVISED_CHILDREN = ("persistence", "lease", "presence", "room", "listener", "sessions")
"""The root's children, listed in ``chatter_actor_restarts_total`` from zero."""


class ChatMetrics:
    """The tree's metrics and the registry that serves them.

    Thread-safe: counters and histograms may be updated from any actor's thread.
    """

    registry: CollectorRegistry
    """This tree's own registry (never prometheus-client's global one)."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        counter = functools.partial(Counter, registry=registry)
        histogram = functools.partial(Histogram, registry=registry)
        self.messages_stored = counter(
            "chatter_messages_stored",
            "Messages committed to the database (a repeated client_id is not counted again).",
        )
        self.deliveries = counter(
            "chatter_deliveries",
            "Message frames fanned out to sessions, one per live session per message.",
        )
        self.frames_refused = counter(
            "chatter_frames_refused",
            "Error frames sent to clients, by error code.",
            ["code"],
        )
        for code in ErrorCode:
            self.frames_refused.labels(code.value)  # present from zero, for rate()
        self.post_ack_seconds = histogram(
            "chatter_post_ack_seconds",
            "From a session taking a post to the ack being written, seconds.",
            buckets=LATENCY_BUCKETS_S,
        )
        self.store_seconds = histogram(
            "chatter_store_seconds",
            "From a store request reaching persistence to its commit, seconds.",
            buckets=LATENCY_BUCKETS_S,
        )
        self.wakes = counter(
            "chatter_wakes",
            "Wake-ups of the room by the commit listener: a notification of a commit "
            "(by any node) or the tick.",
            ["cause"],
        )
        for cause in ("notify", "tick"):
            self.wakes.labels(cause)
        self.log_reads = counter(
            "chatter_log_reads",
            "Reads of the messages log by the room after the last seq it sent "
            "(another node committed, a wake-up, or a gap after a spent seq).",
        )
        recalls = counter(
            "chatter_welcome_recalls",
            "Welcomes' messages asked of the room, by answer: remembered (no read of "
            "the database), or not (the session reads the log).",
            ["answer"],
        )
        self.recalls_remembered = recalls.labels("remembered")
        self.recalls_not_remembered = recalls.labels("not_remembered")
        self.commit_batch_size = histogram(
            "chatter_commit_batch_size",
            "Messages committed per group-commit transaction.",
            buckets=BATCH_SIZE_BUCKETS,
        )
        self.actor_restarts = counter(
            "chatter_actor_restarts",
            "Restarts of a supervised actor by its supervisor, by child id.",
            ["child"],
        )
        for child in SUPERVISED_CHILDREN:
            self.actor_restarts.labels(child)
        self.online_users = Gauge(
            "chatter_online_users",
            "Users holding a name on an open connection, on any node.",
            registry=registry,
        )
        self.online_users_here = Gauge(
            "chatter_online_users_here",
            "Users holding a name on an open connection to this node.",
            registry=registry,
        )
        self._pool: ConnectionPool | None = None

    @property
    def pool(self) -> ConnectionPool | None:
        """The pool being reported, if any."""
        return self._pool

    def watch_pool(self, pool: ConnectionPool | None) -> None:
        """Report this pool's use from now on (None: no pool, report nothing).
        Persistence calls it as it opens, rebuilds and closes its pool."""
        self._pool = pool  # one reference, swapped atomically

    def observe_tree(self, registry: Registry, events: EventStream, sessions_group: str) -> None:
        """Count restarts from the tree's event stream, and read its mailboxes,
        sessions and pool at scrape time."""
        events.subscribe(self._on_event)
        self.registry.register(_TreeCollector(registry, sessions_group, lambda: self._pool))

    def _on_event(self, event: SupervisionEvent) -> None:
        # Called on the supervisor's thread: one locked increment, nothing more.
        if event.kind is EventKind.RESTARTED and event.child is not None:
            self.actor_restarts.labels(event.child).inc()


def inbox_depth(ref: Any) -> int:
    """How many messages wait in an actor's inbox."""
    return mailbox_depth(ref)


class _TreeCollector(Collector):
    """Gauges read when scraped: nothing on a hot path updates them."""

    def __init__(
        self,
        registry: Registry,
        sessions_group: str,
        pool: Callable[[], ConnectionPool | None],
    ) -> None:
        self._registry = registry
        self._sessions_group = sessions_group
        self._pool = pool

    def collect(self) -> Iterable[Any]:
        return list(self._families())

    def _families(self) -> Iterator[GaugeMetricFamily]:
        sessions = GaugeMetricFamily(
            "chatter_sessions", "Live session actors (one per open chat connection)."
        )
        sessions.add_metric([], len(self._registry.members(self._sessions_group)))
        yield sessions

        depth = GaugeMetricFamily(
            "chatter_mailbox_depth",
            "Messages waiting in an actor's inbox (0 while it restarts: the registry holds them).",
            labels=["actor"],
        )
        for name in MAILBOX_ACTORS:
            ref = self._registry.whereis(name)
            depth.add_metric([name], inbox_depth(ref) if ref is not None else 0)
        yield depth

        pool = self._pool()
        if pool is None:
            return
        try:
            stats = pool.get_stats()
        except Exception:  # a pool being closed under us: skip it this scrape
            logger.debug("Could not read the pool's stats", exc_info=True)
            return
        size, available = stats.get("pool_size", 0), stats.get("pool_available", 0)
        for name, documentation, value in (
            ("chatter_db_pool_connections", "Connections the pool holds or is opening.", size),
            (
                "chatter_db_pool_max_connections",
                "The most the pool may open.",
                stats.get("pool_max", 0),
            ),
            (
                "chatter_db_pool_in_use",
                "Connections not idle in the pool: lent out, or being opened or returned.",
                max(0, size - available),
            ),
            (
                "chatter_db_pool_waiting",
                "Requests waiting for a connection now.",
                stats.get("requests_waiting", 0),
            ),
        ):
            family = GaugeMetricFamily(name, documentation)
            family.add_metric([], value)
            yield family
