"""The database commands of the ``chatter`` command line, run as a user would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from chatter.database import EmbeddedPostgres
from chatter.seed import DEMO_USERS


def _environment(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without any database settings, plus `extra`."""
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CHATTER_DATA_DIR")}
    return {**base, **extra}


def _chatter(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "web", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=_environment(env),
    )


def test_seed_twice_on_the_embedded_server_keeps_one_set_of_demo_users(tmp_path: Path) -> None:
    env = {"CHATTER_DATA_DIR": str(tmp_path)}
    first = _chatter("db", "seed", "--messages", "120", env=env)
    assert first.returncode == 0, first.stderr
    assert "seeded 120 messages" in first.stdout
    second = _chatter("db", "seed", "--messages", "30", env=env)
    assert second.returncode == 0, second.stderr

    server = EmbeddedPostgres(tmp_path)  # the data survived; the CLI stopped its server
    try:
        with psycopg.connect(server.start()) as conn:
            users = conn.execute("SELECT count(*) FROM users").fetchone()
            messages = conn.execute("SELECT count(*) FROM messages").fetchone()
    finally:
        server.close()
    assert users == (len(DEMO_USERS),)
    assert messages == (150,)


def test_commands_use_database_url_and_never_start_a_server(
    empty_database: str, tmp_path: Path
) -> None:
    url = empty_database
    env = {"DATABASE_URL": url, "CHATTER_DATA_DIR": str(tmp_path / "unused")}
    for command in (["migrate"], ["db", "rollback"], ["db", "reset"]):
        result = _chatter(*command, env=env)
        assert result.returncode == 0, result.stderr
    assert not (tmp_path / "unused").exists()
    with psycopg.connect(url) as conn:
        version = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert version == ("0005",)


def test_bad_configuration_is_a_clear_error(tmp_path: Path) -> None:
    result = _chatter("migrate", env={"CHATTER_ENV": "staging"})
    assert result.returncode == 2
    assert "CHATTER_ENV must be one of dev, test, prod, got 'staging'" in result.stderr


def test_alembics_own_command_line_works_from_the_repository_root(empty_database: str) -> None:
    env = _environment({"DATABASE_URL": empty_database})
    root = Path(__file__).resolve().parents[2]
    alembic = str(Path(sys.executable).parent / "alembic")
    for command in (["upgrade", "head"], ["downgrade", "base"], ["upgrade", "head"]):
        result = subprocess.run(
            [alembic, *command], cwd=root, env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
    current = subprocess.run(
        [alembic, "current"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    assert "0005 (head)" in current.stdout


def test_serve_exits_non_zero_when_its_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = _chatter("serve", "--port", port, env={"CHATTER_DATA_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "Address already in use" in result.stderr


def test_serve_takes_the_metrics_port_as_a_flag_and_checks_it(tmp_path: Path) -> None:
    result = _chatter(
        "serve",
        "--port",
        "4100",
        "--metrics-port",
        "4100",
        env={"CHATTER_DATA_DIR": str(tmp_path)},
    )
    assert result.returncode == 2
    assert "CHATTER_METRICS_PORT must differ from PORT (4100)" in result.stderr


def _db_serve(data_dir: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "web", "db", "serve", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_environment(env or {}),
    )


@pytest.mark.parametrize("stop_with", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_db_serve_shares_a_migrated_embedded_database_until_a_signal(
    tmp_path: Path, stop_with: signal.Signals
) -> None:
    process = _db_serve(tmp_path)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # blocks until the database is up and migrated
        assert line.startswith("DATABASE_URL="), (line, process.stderr and process.stderr.read())
        url = line.removeprefix("DATABASE_URL=").strip()

        # Another process (this one) uses it as any node would.
        with psycopg.connect(url) as conn:
            version = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        assert version == ("0005",)

        process.send_signal(stop_with)
        assert process.wait(timeout=60) == 0
        assert process.stdout.read() == ""  # one line on stdout, no more
    finally:
        process.kill()
        process.wait()

    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2).close()


def test_db_serve_refuses_a_database_url(tmp_path: Path, empty_database: str) -> None:
    process = _db_serve(tmp_path / "unused", {"DATABASE_URL": empty_database})
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 2
    assert "db serve runs the embedded PostgreSQL; unset DATABASE_URL" in stderr
    assert not (tmp_path / "unused").exists()
