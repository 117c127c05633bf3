"""Alembic environment: always run with the connection ``indexer.db.migrate`` passes in."""

from __future__ import annotations

from alembic import context

from indexer.schema import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite needs table rebuilds to ALTER
)
with context.begin_transaction():
    context.run_migrations()
