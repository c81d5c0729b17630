"""Braket task failure classes: a bounded class from a FAILED task's failure reason text (the
text itself is never exported: it can quote the submitted program)."""

from __future__ import annotations

import re

_FAILURE_CLASSES = (
    ("timeout", re.compile(r"time(d)? ?out|time limit")),
    ("invalid_input", re.compile(r"validat|invalid|not supported|unsupported|exceed|too (many|large|deep)")),
    ("device_unavailable", re.compile(r"offline|unavailable|maintenance|retired|not available")),
    ("internal_error", re.compile(r"internal|service error|unexpected")),
)


def failure_class(reason: str | None) -> str:
    if not reason:
        return "unknown"
    text = reason.lower()
    for name, pattern in _FAILURE_CLASSES:
        if pattern.search(text):
            return name
    return "execution_error"
