"""Alembic environment: runs migrations on a given connection or BASINWATCH_DATABASE_URL."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine

config = context.config


def run_migrations_online() -> None:
    """Run migrations on ``config.attributes['connection']`` or a new engine."""
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=None)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("BASINWATCH_DATABASE_URL")
    if not url:
        raise RuntimeError("Set BASINWATCH_DATABASE_URL to a postgresql+psycopg:// URL.")
    engine = create_engine(url)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=None)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("BasinWatch migrations run online only.")
run_migrations_online()
