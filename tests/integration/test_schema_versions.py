"""What a node does with a schema older or newer than its release's, and nodes
that migrate together (docs/DEPLOYMENT.md, "Schema versions and migrations")."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest

from chatter.database import migrate, rollback
from chatter.schema import SchemaBehind, SchemaState, prepare, schema_of
from tests.harness.process import StartServe

FUTURE_REVISION = "9999_from_a_later_release"


def _stamp(conninfo: str, revision: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("UPDATE alembic_version SET version_num = %s", (revision,))


def test_a_node_migrates_an_older_schema_before_serving(empty_database: str) -> None:
    migrate(empty_database)
    rollback(empty_database, 2)
    older = schema_of(empty_database)
    assert older.state is SchemaState.OLDER
    assert prepare(empty_database, may_migrate=True).state is SchemaState.CURRENT


def test_an_empty_database_is_an_older_schema(empty_database: str) -> None:
    schema = schema_of(empty_database)
    assert (schema.revision, schema.state) == (None, SchemaState.OLDER)


def test_a_node_told_not_to_migrate_refuses_an_older_schema_naming_the_command(
    empty_database: str,
) -> None:
    migrate(empty_database)
    rollback(empty_database)
    with pytest.raises(SchemaBehind, match="run `chatter migrate`") as refused:
        prepare(empty_database, may_migrate=False)
    assert refused.value.schema.state is SchemaState.OLDER
    assert schema_of(empty_database).state is SchemaState.OLDER  # left as it was


def test_a_node_serves_on_a_newer_schema_with_a_warning(
    empty_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    migrate(empty_database)
    _stamp(empty_database, FUTURE_REVISION)
    with caplog.at_level(logging.WARNING, logger="chatter.schema"):
        schema = prepare(empty_database, may_migrate=True)
    assert (schema.state, schema.revision) == (SchemaState.NEWER, FUTURE_REVISION)
    assert f"at revision {FUTURE_REVISION}, newer than this release knows" in caplog.text
    assert schema_of(empty_database).revision == FUTURE_REVISION  # not touched


def test_nodes_migrating_together_migrate_once(empty_database: str) -> None:
    failures: list[BaseException] = []
    start = threading.Barrier(4)

    def node() -> None:
        start.wait()
        try:
            migrate(empty_database)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=node) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    assert schema_of(empty_database).state is SchemaState.CURRENT


def test_serve_with_no_migrate_on_an_older_schema_exits_2_saying_what_to_run(
    empty_database: str, tmp_path: Path
) -> None:
    migrate(empty_database)
    rollback(empty_database)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATTER_")}
    env.update(DATABASE_URL=empty_database, CHATTER_DATA_DIR=str(tmp_path), CHATTER_ENV="test")
    result = subprocess.run(
        [sys.executable, "-m", "web", "serve", "--port", "0", "--no-migrate"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 2, result.stderr
    assert "Not serving: the database schema is at revision" in result.stderr
    assert "run `chatter migrate`" in result.stderr


def test_serve_on_a_newer_schema_answers_and_logs_the_warning(
    empty_database: str, start_serve: StartServe
) -> None:
    migrate(empty_database)
    _stamp(empty_database, FUTURE_REVISION)
    node = start_serve(empty_database)  # healthy: /healthz answered 200
    assert f"at revision {FUTURE_REVISION}, newer than this release knows" in node.log()
