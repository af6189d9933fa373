"""Scenario 5, storage: messages stored per second, group commit against one transaction each.

Both ways run in this process, in the same run, on the same embedded
PostgreSQL 18 (its default durability: ``fsync`` and ``synchronous_commit``
on), storing the same number of messages with the same number of stores in
flight, through the same client (`chatter.persistence.Persistence`) and the
same SQL:

- **group commit**: Chatter's `PersistenceActor` as it is. A store joins the
  pending batch; every store that arrives while a commit is in flight lands in
  the next one, committed in one transaction.
- **one transaction per message**: the same actor with batching taken out
  (`_OneByOne`): each store is committed on its own as it arrives.

The callers keep `CONCURRENCY` stores in flight (as that many sessions each
posting), each new one sent as an earlier one is answered. The rounds
alternate (one by one, group, one by one, group) so that a drift of the
machine does not favour either. The number of transactions is read back from
PostgreSQL (distinct ``xmin`` of the rows stored), not taken from the actor.

Quick: 500 messages a way, one round.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.clients import FILLER
from bench.report import Progress, Section, Target, bullets, table
from bench.servers import embedded_database
from bench.stats import percentiles
from chatter.persistence import NAME, Persistence, Store, StoreResult
from chatter.persistence_actor import PersistenceActor
from supervision import ChildSpec, Future, Registry, Supervisor, start_link

__all__ = ["FULL", "QUICK", "Settings", "run"]

GROUP, ONE_BY_ONE = "group", "single"
ONE_BY_ONE_NAME = "persistence-one-by-one"
TARGET_RATIO = 5.0
STOP_TIMEOUT_S = 10.0
STORE_TIMEOUT_S = 60.0
"""Longest wait for every store of a round to be answered."""


@dataclass(frozen=True)
class Settings:
    messages: int
    """Per way and round."""
    rounds: int
    concurrency: int


FULL = Settings(messages=4_000, rounds=2, concurrency=100)
QUICK = Settings(messages=500, rounds=1, concurrency=100)


class _OneByOne(PersistenceActor):
    """The persistence actor without group commit: each store its own transaction."""

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Store):
            self._commit([message])
            return None
        return super().on_receive(message)


@dataclass(frozen=True)
class RoundResult:
    way: str
    messages: int
    seconds: float
    latencies_ms: list[float]


def _store_round(
    persistence: Persistence, user_id: Any, way: str, number: int, settings: Settings
) -> RoundResult:
    """Store `settings.messages` messages keeping `settings.concurrency` in flight: each
    store takes a place, its answer gives it back; all are answered once every place is
    taken again."""
    places = threading.Semaphore(settings.concurrency)
    deadline = time.monotonic() + STORE_TIMEOUT_S
    latencies: list[float] = []
    errors: list[BaseException] = []

    def answered(sent: float) -> Callable[[Future[StoreResult]], None]:
        def done(future: Future[StoreResult]) -> None:
            latencies.append((time.perf_counter() - sent) * 1000.0)
            try:
                future.get(timeout=0)
            except BaseException as error:
                errors.append(error)
            places.release()

        return done

    def take_place() -> None:
        if not places.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise TimeoutError(f"{way}: stores unanswered after {STORE_TIMEOUT_S} s")

    began = time.perf_counter()
    for i in range(settings.messages):
        take_place()
        store = persistence.store(
            user_id, "storage", f"storage {way} {number} {i} {FILLER}", f"{way}-{number}-{i}"
        )
        store.add_done_callback(answered(time.perf_counter()))
    for _ in range(settings.concurrency):
        take_place()
    seconds = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"{way}: {len(errors)} stores failed; first: {errors[0]!r}")
    return RoundResult(way, settings.messages, seconds, latencies)


def _transactions(conninfo: str, way: str) -> tuple[int, int]:
    """Rows stored by `way` and the transactions that committed them."""
    import psycopg

    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT xmin::text) FROM messages WHERE client_id LIKE %s",
            (f"{way}-%",),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _durability(conninfo: str) -> str:
    import psycopg

    with psycopg.connect(conninfo) as conn:
        values = [
            f"{name} {conn.execute(f'SHOW {name}').fetchone()[0]}"  # type: ignore[index]
            for name in ("fsync", "synchronous_commit", "wal_sync_method")
        ]
    return ", ".join(values)


def run(quick: bool, progress: Progress) -> Section:
    """Store with and without group commit, alternating rounds; everything started
    is stopped on return."""
    settings = QUICK if quick else FULL
    results: list[RoundResult] = []
    with embedded_database("storage", progress) as database:
        conninfo, registry = database.conninfo, Registry()
        specs = [
            ChildSpec(NAME, lambda: PersistenceActor.start(conninfo), name=NAME),
            ChildSpec(ONE_BY_ONE_NAME, lambda: _OneByOne.start(conninfo), name=ONE_BY_ONE_NAME),
        ]
        root = start_link(Supervisor.child_spec("storage-bench", specs, registry=registry))
        try:
            ways = {
                GROUP: Persistence(registry),
                ONE_BY_ONE: Persistence(registry, ONE_BY_ONE_NAME),
            }
            user = ways[GROUP].upsert_user("storage").get(timeout=STORE_TIMEOUT_S)
            for number in range(settings.rounds):
                for way in (ONE_BY_ONE, GROUP):
                    progress(
                        f"[storage] round {number + 1}: {settings.messages:,} messages, "
                        f"{way}, {settings.concurrency} in flight"
                    )
                    result = _store_round(ways[way], user.id, way, number, settings)
                    progress(f"[storage] {way}: {result.messages / result.seconds:,.0f} messages/s")
                    results.append(result)
        finally:
            root.stop(timeout=STOP_TIMEOUT_S)
        counted = {way: _transactions(conninfo, way) for way in (GROUP, ONE_BY_ONE)}
        durability = _durability(conninfo)

    figures: dict[str, float] = {}
    for way in (GROUP, ONE_BY_ONE):
        mine = [r for r in results if r.way == way]
        stored, transactions = counted[way]
        expected = sum(r.messages for r in mine)
        if stored != expected:
            raise RuntimeError(f"{way}: {stored} rows stored, {expected} sent")
        latencies = [ms for r in mine for ms in r.latencies_ms]
        figures[f"{way}_messages_per_s"] = expected / sum(r.seconds for r in mine)
        figures[f"{way}_transactions"] = float(transactions)
        figures[f"{way}_messages_per_transaction"] = stored / transactions
        figures[f"{way}_store_p50_ms"], figures[f"{way}_store_p99_ms"] = percentiles(
            latencies, 50, 99
        )
    figures["messages_per_way"] = float(settings.messages * settings.rounds)
    ratio = figures[f"{GROUP}_messages_per_s"] / figures[f"{ONE_BY_ONE}_messages_per_s"]
    figures["group_over_single_ratio"] = ratio

    labels = {GROUP: "group commit (Chatter)", ONE_BY_ONE: "one transaction per message"}
    rows = [
        [
            labels[way],
            f"{figures['messages_per_way']:,.0f}",
            f"{figures[f'{way}_messages_per_s']:,.0f}",
            f"{figures[f'{way}_transactions']:,.0f}",
            f"{figures[f'{way}_messages_per_transaction']:.1f}",
            f"{figures[f'{way}_store_p50_ms']:.1f} ms",
            f"{figures[f'{way}_store_p99_ms']:.1f} ms",
        ]
        for way in (ONE_BY_ONE, GROUP)
    ]
    rows.append(["**ratio**", "", f"**{ratio:.1f}x**", "", "", "", ""])
    header = "way|messages|messages/s|transactions|messages per transaction|store p50|store p99"
    notes = [
        f"{settings.concurrency} stores in flight, {settings.rounds} alternating round(s) of "
        f"{settings.messages:,} messages per way; both through `Persistence.store`, the same "
        "actor code and SQL (an advisory lock, one INSERT from arrays, the commit); only "
        "the batching differs.",
        "Each commit waits for its WAL flush to disk; group commit shares that wait among "
        "every store that arrived meanwhile, which is where the ratio comes from.",
        f"Measured with {database.version} ({durability}).",
    ]
    target = Target(
        f"group commit at least {TARGET_RATIO:g}x one transaction per message",
        ratio >= TARGET_RATIO,
        f"{ratio:.1f}x",
        "" if ratio >= TARGET_RATIO else f"{TARGET_RATIO - ratio:.1f}x short",
    )
    markdown = table(header, rows, "<>>>>>>") + "\n\n" + bullets(notes)
    return Section("Storage (scenario 5)", markdown, figures, [target])
