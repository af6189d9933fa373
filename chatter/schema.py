"""The database's schema against this release's migrations, checked before a node serves.

Several nodes share one database and are upgraded one at a time, so a node may
meet a schema older than it needs (it is the first of a new release) or newer
than it knows (a later release has migrated already). `prepare` decides:

- older: migrate it, holding a PostgreSQL advisory lock so that nodes starting
  together migrate once (the others wait, then find it current); or, told not
  to migrate, refuse with `SchemaBehind`, which names the command to run;
- newer: serve on it, with a warning. Migrations are written expand-then-contract
  (a release's migrations keep the previous release working; what they make
  unused is dropped a release later), so an older node still works;
- current: nothing to do.

docs/DEPLOYMENT.md says how a rollout uses this.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

import psycopg

from chatter.database import CONNECT_TIMEOUT_S, alembic_config, migrate

__all__ = [
    "Schema",
    "SchemaBehind",
    "SchemaState",
    "prepare",
    "schema_of",
]

logger = logging.getLogger(__name__)


class SchemaState(enum.Enum):
    """The database's schema, from this release's point of view."""

    CURRENT = "current"
    OLDER = "older"
    NEWER = "newer"


@dataclass(frozen=True)
class Schema:
    """Where the database is (`revision`, None when never migrated) and where
    this release's migrations end (`head`)."""

    revision: str | None
    head: str
    state: SchemaState


class SchemaBehind(Exception):  # noqa: N818  (a state, as OTP names its errors)
    """The schema is older than this node needs, and it was told not to migrate."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        at = f"revision {schema.revision}" if schema.revision else "no revision (an empty database)"
        super().__init__(
            f"the database schema is at {at}; this node needs {schema.head}: run "
            "`chatter migrate` with this release first, or let the node migrate "
            "(CHATTER_MIGRATE=1)"
        )


def schema_of(conninfo: str) -> Schema:
    """Read the database's revision and place it against this release's migrations."""
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    script = ScriptDirectory.from_config(alembic_config(conninfo))
    head = script.get_current_head()
    assert head is not None, "the migrations have one head"
    revision = _revision(conninfo)
    if revision == head:
        state = SchemaState.CURRENT
    elif revision is None:
        state = SchemaState.OLDER
    else:
        try:
            known = script.get_revision(revision)
        except CommandError:
            known = None
        state = SchemaState.OLDER if known is not None else SchemaState.NEWER
    return Schema(revision, head, state)


def prepare(conninfo: str, *, may_migrate: bool) -> Schema:
    """Make the schema one this node can serve on, as the module says; the schema
    it serves on. Raises `SchemaBehind` when it is older and it `may_migrate` not."""
    schema = schema_of(conninfo)
    if schema.state is SchemaState.OLDER:
        if not may_migrate:
            raise SchemaBehind(schema)
        migrate(conninfo)  # under the migration lock
        before, schema = schema, schema_of(conninfo)
        logger.info(
            "Database schema migrated from %s to %s",
            before.revision or "nothing",
            schema.revision,
        )
    if schema.state is SchemaState.NEWER:
        logger.warning(
            "The database schema is at revision %s, newer than this release knows "
            "(its newest is %s): serving on it, as migrations keep the previous "
            "release working (docs/DEPLOYMENT.md)",
            schema.revision,
            schema.head,
        )
    return schema


def _revision(conninfo: str) -> str | None:
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as conn:
        exists = conn.execute("SELECT to_regclass('alembic_version') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return None
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return str(row[0]) if row else None
