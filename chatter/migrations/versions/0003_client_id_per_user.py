"""A client_id is unique per user, not across the room.

A `client_id` makes posting idempotent: a client that resends a post it is not
sure was stored gets the stored one back. Unique across the whole room, it let
anyone who guessed another client's id first have that client's post acked
with the guesser's message and dropped. Scoped to the poster (as Matrix scopes
a transaction id to its device), the same id from another user is another post.

Upgrade: the room-wide unique constraint `messages_client_id_key` becomes
`messages_user_id_client_id_key` on (user_id, client_id). Every existing row
satisfies it already. The persistence actor's insert names that pair in its
``ON CONFLICT`` clause, so the code of this revision needs it.

Downgrade: the room-wide constraint comes back, and with it the rule that one
client_id is stored once in the room. Rows stored since the upgrade may break
it (the same client_id from two users). Those messages are all kept, but only
the earliest (lowest seq) of each such client_id keeps it; the later ones have
their client_id set to NULL, as a post that carried none would. A client_id
only matters while its poster may still resend the post (seconds to minutes),
so this costs nothing but idempotency for resends of those few posts that are
still in flight at the moment of the downgrade. It is not undone by upgrading
again. Writers are locked out of `messages` meanwhile, so that no new
collision is stored between the clean-up and the constraint.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE messages
            DROP CONSTRAINT messages_client_id_key,
            ADD CONSTRAINT messages_user_id_client_id_key UNIQUE (user_id, client_id)
        """
    )
    op.execute(
        "COMMENT ON COLUMN messages.client_id IS "
        "'the poster''s idempotency key: unique per user, so a resend is stored once'"
    )


def downgrade() -> None:
    # Readers go on; writers wait until this transaction (one per migration) ends.
    op.execute("LOCK TABLE messages IN SHARE ROW EXCLUSIVE MODE")
    op.execute(
        """
        UPDATE messages AS m
        SET client_id = NULL
        FROM (
            SELECT id, row_number() OVER (PARTITION BY client_id ORDER BY seq) AS n
            FROM messages
            WHERE client_id IS NOT NULL
        ) AS ranked
        WHERE m.id = ranked.id AND ranked.n > 1
        """
    )
    op.execute(
        """
        ALTER TABLE messages
            DROP CONSTRAINT messages_user_id_client_id_key,
            ADD CONSTRAINT messages_client_id_key UNIQUE (client_id)
        """
    )
    op.execute("COMMENT ON COLUMN messages.client_id IS NULL")
