"""GET /metrics on a real server: read before and after real traffic, every
counter moves by exactly what was sent, and the gauges read at scrape time
say what is there now."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from chatter import persistence, presence, room
from chatter.config import Environment, Settings
from chatter.database import pool_size
from chatter.errors import ConfigError
from chatter.persistence import Persistence, Read
from chatter.presence import Online
from chatter.queries import SEQ_LOCK_KEY
from chatter.reply import FutureRecipient
from chatter.room import PresenceChanged
from chatter.throttle import POST_BURST
from supervision import EventKind, inject_crash
from tests.harness.client import Client
from tests.harness.http import fetch, request
from tests.harness.server import ChatServer, ServerFactory
from tests.harness.waiting import TIMEOUT_S, eventually
from web.server import BackgroundServer

Labels = frozenset[tuple[str, str]]


class Samples(dict[tuple[str, Labels], float]):
    """One scrape: every sample by name and labels."""

    @classmethod
    def parse(cls, text: str) -> Samples:
        samples = cls()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return samples

    def value(self, name: str, **labels: str) -> float:
        return self[(name, frozenset(labels.items()))]

    def moved(self, before: Samples, name: str, **labels: str) -> float:
        """How far a sample moved since `before` (absent then counts as 0)."""
        key = (name, frozenset(labels.items()))
        return self[key] - before.get(key, 0.0)


async def scrape(base_url: str) -> Samples:
    """GET /metrics over loopback, parsed."""
    response = await fetch(base_url + "/metrics")
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return Samples.parse(response.body.decode())


def scrape_now(server: ChatServer) -> Samples:
    return asyncio.run(scrape(server.url))


async def messages_until(client: Client, count: int) -> None:
    """Read until the client has received `count` message frames."""
    await client.read_until(lambda: len(client.received("message")) >= count, f"{count} messages")


def test_counters_move_by_exactly_the_traffic_sent(server: ChatServer) -> None:
    burst = POST_BURST + 3  # enough that the bucket refuses some, whatever the timing

    async def scenario(server: ChatServer) -> None:
        before = await scrape(server.url)
        ann, bob, cat = [await server.welcomed() for _ in range(3)]
        await ann.join("ann")
        for n in range(burst):
            await ann.post(f"post {n}", f"p-{n}")
        answers = [await ann.answer_to(f"p-{n}") for n in range(burst)]
        acked = sum(1 for a in answers if a["type"] == "ack")
        rate_limited = sum(1 for a in answers if a.get("code") == "rate_limited")
        assert acked + rate_limited == burst, answers
        assert rate_limited >= 1, answers
        await bob.send("this is not JSON")
        assert (await bob.expect("error"))["code"] == "bad_request"
        await cat.post("no name yet", "c-1")
        assert (await cat.expect("error", client_id="c-1"))["code"] == "identity_required"
        for client in (ann, bob, cat):
            await messages_until(client, acked)

        after = await scrape(server.url)
        assert after.moved(before, "chatter_messages_stored_total") == acked
        assert after.moved(before, "chatter_deliveries_total") == acked * 3
        refused = {
            code: after.moved(before, "chatter_frames_refused_total", code=code)
            for code in ("bad_request", "identity_required", "rate_limited", "invalid_body")
        }
        assert refused == {
            "bad_request": 1,
            "identity_required": 1,
            "rate_limited": rate_limited,
            "invalid_body": 0,
        }
        assert after.moved(before, "chatter_post_ack_seconds_count") == acked
        assert after.moved(before, "chatter_store_seconds_count") == acked
        assert after.moved(before, "chatter_commit_batch_size_sum") == acked
        assert 1 <= after.moved(before, "chatter_commit_batch_size_count") <= acked
        assert after.moved(before, "chatter_post_ack_seconds_sum") > 0
        # The gauges: what is open now.
        assert after.value("chatter_connections_open") == 3
        assert after.value("chatter_sessions") == 3
        assert after.value("chatter_online_users") == 1
        assert before.value("chatter_sessions") == before.value("chatter_online_users") == 0

    server.run(scenario)


def test_a_killed_actor_counts_one_restart_for_its_child_only(server: ChatServer) -> None:
    before = scrape_now(server)
    for name in (room.NAME, persistence.NAME):
        inject_crash(server.whereis(name), f"killed by test_metrics: {name}")
        server.log.wait(EventKind.RESTARTED, name, TIMEOUT_S)
    after = scrape_now(server)
    moved = {
        child: after.moved(before, "chatter_actor_restarts_total", child=child)
        for child in ("room", "persistence", "presence", "sessions")
    }
    assert moved == {"room": 1, "persistence": 1, "presence": 0, "sessions": 0}


def test_mailbox_depth_is_what_waits_in_each_inbox_when_scraped(server: ChatServer) -> None:
    registry = server.tree.registry

    def fill_and_collect() -> Samples:
        # On the loop that runs the room and presence: they cannot drain
        # until this returns, so the depth is exactly what was told.
        for _ in range(3):
            registry.tell(room.NAME, PresenceChanged(("nobody",), ()))
        for _ in range(2):
            registry.tell(presence.NAME, Online(reply_to=FutureRecipient()))
        return Samples.parse(generate_latest(server.tree.metrics.registry).decode())

    full = server.call(fill_and_collect)
    assert full.value("chatter_mailbox_depth", actor="room") == 3
    assert full.value("chatter_mailbox_depth", actor="presence") == 2
    assert full.value("chatter_mailbox_depth", actor="persistence") >= 0
    drained = scrape_now(server)  # served on the loop after the drains ran
    assert drained.value("chatter_mailbox_depth", actor="room") == 0
    assert drained.value("chatter_mailbox_depth", actor="presence") == 0


def test_pool_gauges_show_a_connection_lent_to_a_read_while_it_runs(server: ChatServer) -> None:
    entered, release = threading.Event(), threading.Event()

    def held_read(conn: Any) -> int:
        entered.set()
        release.wait(TIMEOUT_S)
        return 1

    pool = server.tree.metrics.pool
    assert pool is not None
    pool.wait(TIMEOUT_S)  # until the pool has opened its first connections

    # Presence and the room read on every tick of the commit listener: look
    # between two of those reads.
    async def nothing_lent() -> bool:
        return (await scrape(server.url)).value("chatter_db_pool_in_use") == 0

    asyncio.run(eventually(nothing_lent, "a moment with no connection lent"))
    idle = scrape_now(server)
    assert idle.value("chatter_db_pool_waiting") == 0
    assert idle.value("chatter_db_pool_max_connections") == pool_size()
    reply = FutureRecipient()
    server.tree.registry.tell(persistence.NAME, Read(held_read, reply_to=reply))
    assert entered.wait(TIMEOUT_S)
    try:
        busy = scrape_now(server)
    finally:
        release.set()
    assert reply.future.get(timeout=TIMEOUT_S).value == 1
    assert busy.value("chatter_db_pool_in_use") >= 1  # ours (a tick's read may be lent too)
    assert busy.value("chatter_db_pool_connections") >= 1


def test_two_servers_in_one_process_count_apart(
    server: ChatServer, start_server: ServerFactory
) -> None:
    other = start_server()

    async def scenario(server: ChatServer) -> None:
        ann = await server.joined("ann")
        await ann.post("only here", "o-1")
        assert (await ann.answer_to("o-1"))["type"] == "ack"

    server.run(scenario)
    assert scrape_now(server).value("chatter_messages_stored_total") == 1
    assert scrape_now(other).value("chatter_messages_stored_total") == 0


@pytest.mark.parametrize(
    ("env", "metrics", "status"),
    [
        (Environment.DEV, None, 200),
        (Environment.TEST, None, 200),
        (Environment.PROD, None, 404),
        (Environment.PROD, True, 200),
        (Environment.TEST, False, 404),
    ],
)
def test_metrics_are_served_by_default_except_in_prod(
    start_server: ServerFactory, env: Environment, metrics: bool | None, status: int
) -> None:
    server = start_server(Settings(env=env, secret_key_base="s" * 32, metrics=metrics))
    assert request(server.url + "/metrics").status == status
    assert request(server.url + "/healthz").status == 200  # health stays public either way


@pytest.mark.parametrize(
    ("environ", "enabled"),
    [
        ({}, True),
        ({"CHATTER_ENV": "prod"}, False),
        ({"CHATTER_ENV": "prod", "CHATTER_METRICS": "1"}, True),
        ({"CHATTER_ENV": "prod", "CHATTER_METRICS": "on"}, True),
        ({"CHATTER_METRICS": "0"}, False),
        ({"CHATTER_ENV": "prod", "CHATTER_METRICS_PORT": "9100"}, True),
    ],
)
def test_chatter_metrics_turns_the_endpoint_on_and_off(
    environ: dict[str, str], enabled: bool
) -> None:
    settings = Settings.from_env(
        {"SECRET_KEY_BASE": "s" * 32, "DATABASE_URL": "postgresql:///chatter", **environ}
    )
    assert settings.metrics_enabled is enabled
    assert settings.metrics_on_public_port is (enabled and "CHATTER_METRICS_PORT" not in environ)


@pytest.mark.parametrize(
    ("environ", "complaint"),
    [
        ({"CHATTER_METRICS": "maybe"}, "CHATTER_METRICS must be one of"),
        ({"CHATTER_METRICS_PORT": "x"}, "CHATTER_METRICS_PORT must be an integer"),
        ({"CHATTER_METRICS_PORT": "70000"}, "CHATTER_METRICS_PORT must be 0..65535"),
        ({"PORT": "4000", "CHATTER_METRICS_PORT": "4000"}, "must differ from PORT"),
    ],
)
def test_bad_metrics_settings_are_refused_naming_the_setting(
    environ: dict[str, str], complaint: str
) -> None:
    with pytest.raises(ConfigError, match=complaint):
        Settings.from_env(environ)


def test_a_metrics_port_serves_metrics_there_and_not_on_the_public_port(
    database: str, tmp_path: Path
) -> None:
    settings = Settings(
        env=Environment.PROD,
        secret_key_base="s" * 32,
        host="127.0.0.1",
        port=0,
        metrics_port=0,
        data_dir=tmp_path,
    )
    server = BackgroundServer(settings, database)
    try:
        bound = server.running.settings
        public = f"http://127.0.0.1:{bound.port}"
        private = f"http://127.0.0.1:{bound.metrics_port}"
        assert request(public + "/metrics").status == 404
        assert request(public + "/healthz").status == 200
        samples = asyncio.run(scrape(private))
        assert samples.value("chatter_messages_stored_total") == 0
        assert samples.value("chatter_connections_open") == 0
        assert request(private + "/healthz").status == 404
    finally:
        assert server.stop() == 0


def test_a_busy_persistence_thread_shows_its_waiting_messages(
    server: ChatServer, database: str
) -> None:
    store = Persistence(server.tree.registry)
    ann = store.upsert_user("ann").get(timeout=TIMEOUT_S)
    with psycopg.connect(database, autocommit=True) as blocker:
        # Hold the seq lock: the next commit waits for it on persistence's thread.
        blocker.execute("SELECT pg_advisory_lock(%s)", (SEQ_LOCK_KEY,))
        stored = store.store(ann.id, "ann", "held up")
        waiting_for_the_lock(blocker)
        for _ in range(3):
            store.touch_user(ann.id)
        busy = scrape_now(server)
        blocker.execute("SELECT pg_advisory_unlock(%s)", (SEQ_LOCK_KEY,))
    assert not stored.get(timeout=TIMEOUT_S).duplicate
    # The three touches wait behind the store; a read presence asked for
    # meanwhile (its tick, or the users it re-reads after a write) may wait too.
    assert busy.value("chatter_mailbox_depth", actor="persistence") >= 3


def waiting_for_the_lock(conn: psycopg.Connection[Any]) -> None:
    """Until another session waits for an advisory lock (PostgreSQL has no
    notification for that, so ask it until it says so)."""
    query = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    asyncio.run(
        eventually(lambda: conn.execute(query).fetchone() == (1,), "the commit waits for the lock")
    )
