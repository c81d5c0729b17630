"""Alembic environment: the store hands over an open connection inside its own transaction
(store/schema.py), so a migration runs under the store's locks and commits with it."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None, transaction_per_migration=False)
with context.begin_transaction():
    context.run_migrations()
