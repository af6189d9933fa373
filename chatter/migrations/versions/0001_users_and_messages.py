"""Users and messages.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE users (
            id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            username      text NOT NULL CHECK (char_length(username) BETWEEN 1 AND 64),
            username_key  text NOT NULL UNIQUE,
            inserted_at   timestamptz NOT NULL DEFAULT now(),
            updated_at    timestamptz NOT NULL DEFAULT now(),
            last_seen_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("COMMENT ON COLUMN users.username IS 'the name as the user typed it'")
    op.execute(
        "COMMENT ON COLUMN users.username_key IS "
        "'the name compared case-insensitively: NFKC, case-folded, NFKC again'"
    )
    # The people list shows the most recently active offline users.
    op.execute("CREATE INDEX users_last_seen_at_idx ON users (last_seen_at DESC)")

    op.execute(
        """
        CREATE TABLE messages (
            id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            seq          bigint NOT NULL GENERATED ALWAYS AS IDENTITY,
            user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            body         text NOT NULL CHECK (char_length(body) BETWEEN 1 AND 2000),
            client_id    text CHECK (char_length(client_id) BETWEEN 1 AND 64),
            inserted_at  timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT messages_seq_key UNIQUE (seq),
            CONSTRAINT messages_client_id_key UNIQUE (client_id)
        )
        """
    )
    op.execute(
        "COMMENT ON COLUMN messages.seq IS "
        "'room-wide order, assigned under the chatter seq advisory lock held until commit, "
        "so seq becomes visible in commit order'"
    )
    # The unique index on seq serves the newest N (backward scan), a page before a
    # seq (backward from it) and everything after a seq (forward from it).
    op.execute("CREATE INDEX messages_user_id_seq_idx ON messages (user_id, seq)")


def downgrade() -> None:
    op.execute("DROP TABLE messages")
    op.execute("DROP TABLE users")
