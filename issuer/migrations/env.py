"""Alembic environment: always run with the connection ``issuer.store.migrate`` passes in."""

from __future__ import annotations

from alembic import context

from issuer.store import VERSION_TABLE, Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,  # its own name, should the issuer share a database with a mirror
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite needs table rebuilds to ALTER
)
with context.begin_transaction():
    context.run_migrations()
