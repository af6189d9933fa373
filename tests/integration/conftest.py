"""A real PostgreSQL 18 server for the whole session, and clean tables per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from chatter.database import EmbeddedPostgres, migrate


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    """The embedded server, started once (it takes well under a second) and migrated."""
    server = EmbeddedPostgres(Path(tmp_path_factory.mktemp("chatter-data")))
    migrate(server.start())
    yield server
    server.close()


@pytest.fixture
def database(postgres: EmbeddedPostgres) -> str:
    """The conninfo of a migrated database with empty tables."""
    conninfo = postgres.conninfo()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("TRUNCATE messages, users RESTART IDENTITY CASCADE")
    return conninfo
