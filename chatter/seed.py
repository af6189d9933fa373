"""Demo data: a handful of users and as many messages as asked for.

Messages go in with COPY, in one transaction holding the seq lock, so a
million of them take seconds, not the hours row-by-row inserts would. The demo
users are upserted by name, so seeding twice adds messages but no new users.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from chatter.queries import SEQ_LOCK_KEY
from chatter.usernames import username_key

__all__ = ["DEMO_USERS", "seed"]

DEMO_USERS = ("ada", "grace", "alan", "barbara", "edsger", "joe", "margaret", "linus")

_LINES = (
    "Hello, everyone!",
    "Has anyone tried killing the room actor? Nothing was lost.",
    "Supervisors restart what crashes; the rest keeps running.",
    "One for one, one for all, rest for one.",
    "Let it crash 💥",
    "مرحبا بالجميع",
    "The seq column keeps every message in commit order.",
    "Messages are stored before anyone sees them.",
)

PROGRESS_EVERY = 100_000


def seed(
    conninfo: str,
    messages: int,
    *,
    progress: Callable[[int, int], None] | None = None,
    rng: random.Random | None = None,
) -> int:
    """Upsert the demo users and add `messages` messages; returns how many were added."""
    rng = rng or random.Random(2026)
    with psycopg.connect(conninfo) as conn:
        user_ids = _upsert_demo_users(conn)
        if messages <= 0:
            return 0
        start = datetime.now(UTC) - timedelta(seconds=messages)
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SEQ_LOCK_KEY,))
            with conn.cursor().copy(
                "COPY messages (user_id, body, inserted_at) FROM STDIN"
            ) as copy:
                authors = set()
                for n in range(messages):
                    line = _LINES[n % len(_LINES)]
                    author = rng.choice(user_ids)
                    authors.add(author)
                    copy.write_row((author, f"{line} (#{n + 1})", start + timedelta(seconds=n)))
                    if progress is not None and (n + 1) % PROGRESS_EVERY == 0:
                        progress(n + 1, messages)
            # Who posted is listed in welcomes (`users.posted`, issue #17).
            conn.execute(
                "UPDATE users SET posted = true WHERE id = ANY(%s) AND NOT posted",
                (list(authors),),
            )
        if progress is not None and messages % PROGRESS_EVERY:
            progress(messages, messages)
    return messages


def _upsert_demo_users(conn: psycopg.Connection[Any]) -> list[Any]:
    ids = []
    with conn.transaction():
        for name in DEMO_USERS:
            row = conn.execute(
                "INSERT INTO users (username, username_key, last_seen_at) "
                "VALUES (%s, %s, now() - interval '1 day') "
                "ON CONFLICT (username_key) DO UPDATE SET updated_at = now() RETURNING id",
                (name, username_key(name)),
            ).fetchone()
            assert row is not None
            ids.append(row[0])
    return ids
