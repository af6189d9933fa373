"""Several nodes share one database: node leases and the names claimed under them.

A node holds a lease (`node_leases`), renewed every couple of seconds and
expiring on the database's clock; every online name is a row of `name_claims`
under the lease of the node whose connection holds it, one row per look-alike
key of the name (so a name and its look-alikes are taken together, across
nodes). A claim whose lease has expired holds nothing: any node may take the
name. A lease is deleted when its node stops, and its claims with it.

Downgrade drops both tables: a node of an older revision keeps names in its own
memory only, as before.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE node_leases (
            lease_id uuid PRIMARY KEY,
            node_id text NOT NULL,
            started_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL
        )
        """
    )
    op.execute(
        "COMMENT ON TABLE node_leases IS "
        "'one row per running node: its names count only while expires_at is ahead'"
    )
    op.execute(
        """
        CREATE TABLE name_claims (
            look_alike text PRIMARY KEY,
            username_key text NOT NULL,
            username text NOT NULL,
            lease_id uuid NOT NULL REFERENCES node_leases (lease_id) ON DELETE CASCADE,
            session_id text NOT NULL,
            confirmed boolean NOT NULL DEFAULT false,
            claimed_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX name_claims_holder ON name_claims (lease_id, session_id)")
    op.execute(
        "COMMENT ON TABLE name_claims IS "
        "'names held by connections, one row per look-alike key; "
        "online when confirmed and the lease is live'"
    )


def downgrade() -> None:
    op.execute("DROP TABLE name_claims")
    op.execute("DROP TABLE node_leases")
