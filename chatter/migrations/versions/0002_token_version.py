"""Identity tokens can be revoked: a version per user, bumped on Leave.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE users ADD COLUMN token_version integer NOT NULL DEFAULT 0")
    op.execute(
        "COMMENT ON COLUMN users.token_version IS "
        "'identity tokens carry it; Leave bumps it, so earlier tokens stop working'"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE users DROP COLUMN token_version")
