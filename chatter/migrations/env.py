"""Alembic's environment for Chatter: offline (SQL script) and online (a live server).

The URL comes from ``config.attributes`` when Chatter runs migrations itself; from the
``alembic`` command line it comes from ``DATABASE_URL``, or, with none set,
from the embedded server in ``CHATTER_DATA_DIR`` (started if needed).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from chatter.database import sqlalchemy_url

config = context.config


def _url() -> str:
    url = config.attributes.get("sqlalchemy.url")
    if isinstance(url, str):
        return url
    from chatter.config import Settings
    from chatter.database import EmbeddedPostgres

    settings = Settings.from_env()
    if settings.database_url:
        return sqlalchemy_url(settings.database_url)
    return sqlalchemy_url(EmbeddedPostgres(settings.resolved_data_dir).start())


def run_migrations_offline() -> None:
    """Write the SQL to stdout instead of running it (``alembic upgrade --sql``)."""
    context.configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on a live connection, each in a transaction."""
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
