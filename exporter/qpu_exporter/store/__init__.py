"""Persistence: SQLite by default, PostgreSQL for replicas and shards; versioned migrations.

``Store`` (core.py) is the one interface the rest of the exporter uses; engine.py opens either
database, schema.py runs the Alembic migrations in migrations/, copy.py is ``migrate-state``.
"""

from .core import (
    DEFAULT_INSTANCE, SHARED_COUNTERS, CounterIncrement, LabelKey, Store,
)
from .errors import StateError, StorageError
from .snapshots import snapshot_from_dict, snapshot_to_dict

__all__ = ["Store", "StateError", "StorageError", "LabelKey", "CounterIncrement", "snapshot_from_dict",
           "snapshot_to_dict", "DEFAULT_INSTANCE", "SHARED_COUNTERS"]
