"""One person, several connections; and the people listed are those who posted.

Issue #17. Two changes:

- `name_claims` holds one row per look-alike key *per holding connection*, not
  per name: the tabs of one browser (connections presenting a valid token of
  the name) hold the name together, on any node. The primary key becomes
  (look_alike, lease_id, session_id). That a look-alike key has one name among
  its live holders is no longer a constraint: claims take an advisory lock per
  look-alike key (`chatter.node_queries`) and check under it. `ended` marks
  the rows of connections whose name was let go elsewhere (a Leave in another
  tab): they hold nothing, and their node tells its connection why.
- `users.posted`: whether the user has posted at least once, set by the
  statement that stores their first message. The welcome lists (and counts)
  people who posted, plus whoever is online; a name typed and abandoned is
  not listed. Existing rows are set from `messages`; a partial index serves
  the most recently seen posters.

Downgrade drops both columns and the index; rows of a name held by several
connections are reduced to one per look-alike key (the oldest claim), so the
old primary key holds again.

Not "expand, then contract" (docs/DEPLOYMENT.md): a node of the previous
release claims with ``ON CONFLICT (look_alike)``, which the new primary key no
longer serves, so it cannot claim names on this schema. Upgrade (and roll back)
with every node stopped; CHANGELOG.md says so.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE users ADD COLUMN posted boolean NOT NULL DEFAULT false")
    op.execute(
        "UPDATE users u SET posted = true WHERE EXISTS "
        "(SELECT 1 FROM messages m WHERE m.user_id = u.id)"
    )
    op.execute(
        "COMMENT ON COLUMN users.posted IS "
        "'has posted at least once: listed in welcomes while offline'"
    )
    op.execute(
        "CREATE INDEX users_posted_last_seen_at_idx ON users (last_seen_at DESC) WHERE posted"
    )
    op.execute("ALTER TABLE name_claims DROP CONSTRAINT name_claims_pkey")
    op.execute("ALTER TABLE name_claims ADD PRIMARY KEY (look_alike, lease_id, session_id)")
    op.execute("ALTER TABLE name_claims ADD COLUMN ended text")
    op.execute(
        "COMMENT ON COLUMN name_claims.ended IS "
        "'why the name was let go for this connection elsewhere (left): it holds nothing'"
    )
    op.execute(
        "COMMENT ON TABLE name_claims IS "
        "'names held by connections, one row per look-alike key and connection; "
        "online when confirmed, not ended and the lease is live'"
    )


def downgrade() -> None:
    op.execute("DELETE FROM name_claims WHERE ended IS NOT NULL")
    op.execute(
        "DELETE FROM name_claims c USING name_claims o WHERE c.look_alike = o.look_alike "
        "AND (c.claimed_at, c.lease_id, c.session_id) > (o.claimed_at, o.lease_id, o.session_id)"
    )
    op.execute("ALTER TABLE name_claims DROP COLUMN ended")
    op.execute("ALTER TABLE name_claims DROP CONSTRAINT name_claims_pkey")
    op.execute("ALTER TABLE name_claims ADD PRIMARY KEY (look_alike)")
    op.execute(
        "COMMENT ON TABLE name_claims IS "
        "'names held by connections, one row per look-alike key; "
        "online when confirmed and the lease is live'"
    )
    op.execute("DROP INDEX users_posted_last_seen_at_idx")
    op.execute("ALTER TABLE users DROP COLUMN posted")
