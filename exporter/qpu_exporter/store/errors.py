"""The store's two kinds of failure."""

from __future__ import annotations


class StateError(Exception):
    """The state cannot be used at all (at open): the message says why and how to recover."""


class StorageError(Exception):
    """One read or write failed (disk full, database down, lock timeout). The caller keeps
    serving from memory, counts it and tries again later; the message is one line and never
    carries a password or the statement's parameters."""


def one_line(exc: BaseException, limit: int = 300) -> str:
    """The driver's own message (not SQLAlchemy's wrapper with the SQL and parameters), first
    line only, bounded."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return (text[0] if text else type(orig).__name__)[:limit]
