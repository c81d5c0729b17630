"""Which workload a job belongs to, from the tags the provider reports on it.

Pure bookkeeping, no I/O: providers put a job's tags on ``JobRecord.tags`` as (key, value)
pairs; ``WorkloadBook`` turns the value of the configured key (``workloads.tag``) into the
``workload`` label of the per-workload series (docs/workloads.md):

* no such tag, or an empty value: ``untagged``;
* a value that is kept: the value itself (a label value, sanitised below);
* a value first seen while fewer than ``workloads.max`` values are kept: kept from now on;
* anything else goes to ``other`` with a reason, counted in
  ``qpu_workload_tag_rejections_total``: ``overflow`` (the kept set is full), ``too_long``,
  ``looks_secret``, ``invalid`` (nothing left after sanitising), ``ambiguous`` (one job with
  several different values of the key).

The kept set lives in the state, shared by every exporter on the database: a value kept once
stays kept across restarts, reloads and config changes, so a job's label never depends on
arrival order after a restart, replicas label a value alike, and counters never move between
labels. The store decides and writes newly kept values in the transaction that counts the jobs
that brought them, holding the kept set's lock (store/core.py); this book caches the set.

Label values never carry secrets: only the configured key's value is read (no other tag is
looked at, nothing is logged or stored but the resulting label), values are reduced to
letters, digits and ``-_.``, at most ``MAX_LABEL_CHARS`` long, and values that look like
credentials (token prefixes, long opaque strings, words like "password") are refused.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Container, Iterable

UNTAGGED = "untagged"
OTHER = "other"
RESERVED = (UNTAGGED, OTHER)
MAX_LABEL_CHARS = 63  # as Kubernetes label values: long enough for names, too short for most keys

# Rejection reasons (the `reason` label of qpu_workload_tag_rejections_total).
OVERFLOW, TOO_LONG, LOOKS_SECRET, INVALID, AMBIGUOUS = "overflow", "too_long", "looks_secret", "invalid", "ambiguous"

_KEEP = r"\w.\-"  # unicode letters and digits, underscore, dot, dash
_EDGES = re.compile(rf"^[^{_KEEP}]+|[^{_KEEP}]+$")
_INNER = re.compile(rf"[^{_KEEP}]+")
# Credential shapes, checked on the raw value: well-known token prefixes (AWS access key ids,
# GitHub, GitLab, Slack, OpenAI/Stripe-style keys, Google API keys, JWTs, PEM blocks) ...
_SECRET_PREFIX = re.compile(
    r"(?:^|[^A-Za-z0-9])(?:A[KS]IA[A-Z0-9]{12,}|gh[pousr]_[A-Za-z0-9]{10,}|github_pat_|glpat-|xox[abprs]-"
    r"|[sr]k[-_](?:live_|test_|proj-)?[A-Za-z0-9]{12,}|AIza[A-Za-z0-9_\-]{20,}|eyJ[A-Za-z0-9_\-]{10,}|-----BEGIN)"
)
# ... words that announce one ...
_SECRET_WORDS = re.compile(r"passw(?:or)?d|secret|token|api[-_]?key|bearer|credential|private[-_]?key", re.IGNORECASE)
# ... and long opaque runs of letters and digits (keys, hashes): 24+ characters mixing both.
_OPAQUE_RUN = re.compile(r"[A-Za-z0-9+/=]{24,}")


def label_value(raw: str) -> tuple[str | None, str]:
    """(label value, "") for a usable tag value; (None, "") for an empty one (untagged);
    (None, reason) for one that must not become a label."""
    text = unicodedata.normalize("NFKC", raw).strip()
    if not text:
        return None, ""
    if _looks_secret(text):
        return None, LOOKS_SECRET
    # Quotes, spaces, newlines, slashes, colons ...: trimmed at the ends, one '_' inside.
    text = _INNER.sub("_", _EDGES.sub("", text))
    if not text:
        return None, INVALID
    if len(text) > MAX_LABEL_CHARS:
        return None, TOO_LONG
    return text, ""


def _looks_secret(text: str) -> bool:
    if _SECRET_PREFIX.search(text) or _SECRET_WORDS.search(text):
        return True
    return any(re.search(r"[0-9]", run) and re.search(r"[A-Za-z]", run) for run in _OPAQUE_RUN.findall(text))


def is_clean(name: str) -> bool:
    """Whether ``name`` is its own label value (config keys must be)."""
    return label_value(name) == (name, "")


class WorkloadBook:
    """The kept workload values and the resolution of a job's tags. Thread-safe.

    Standing alone (``resolve``) the book keeps values in memory. With a store, the kept set
    is the state's, shared by every exporter on the database, and this book is its cache: the
    store resolves a batch of jobs with ``candidate`` / ``wanted`` / ``admit`` / ``label``
    inside the transaction that counts them, and ``adopt`` moves the cache forward only after
    that transaction committed."""

    def __init__(self, tag: str, max_values: int, kept: Iterable[str] = (), configured: Iterable[str] = ()):
        self.tag = tag
        self.max_values = max_values
        self._lock = threading.Lock()
        self._alone = threading.Lock()  # serialises resolve's admission
        self._kept: dict[str, None] = dict.fromkeys(kept)  # insertion order = order kept
        # Values named in the config (budgets, objectives) are always kept, whatever `max`
        # says: a budget must never watch a label its jobs could not reach.
        self._configured = [n for n in dict.fromkeys(configured) if n not in RESERVED]
        self._unsaved: dict[str, None] = dict.fromkeys(n for n in self._configured if n not in self._kept)
        self._kept.update(self._unsaved)

    def kept(self) -> list[str]:
        with self._lock:
            return list(self._kept)

    def candidate(self, tags: Iterable[tuple[str, str]]) -> tuple[str, str]:
        """(label, rejection reason or "") for a job's tags, before the kept set is asked: a
        label without a reason that is not reserved is kept only if ``label`` says so."""
        values = {v for k, v in tags if k == self.tag}
        if not values:
            return UNTAGGED, ""
        labels = {label_value(v) for v in values}
        if len(labels) > 1:
            return OTHER, AMBIGUOUS
        ((label, reason),) = labels
        if label is None:
            return (OTHER, reason) if reason else (UNTAGGED, "")
        return label, ""

    def wanted(self, candidates: Iterable[tuple[str, str]]) -> list[str]:
        """Values the kept set must be asked about, in order: config-named values not yet saved,
        then candidate values this book does not know as kept. Empty in the steady state."""
        with self._lock:
            out = dict.fromkeys(self._unsaved)
            out.update((label, None) for label, reason in candidates
                       if not reason and label not in RESERVED and label not in self._kept)
        return list(out)

    def admit(self, stored: list[str], wanted: Iterable[str]) -> list[str]:
        """Which of ``wanted`` to add to the ``stored`` kept set: config-named values always,
        others in order while fewer than ``max`` values are kept. Pure."""
        have = set(stored)
        add: list[str] = []
        for name in wanted:
            if name in have:
                continue
            if name in self._configured or len(stored) + len(add) < self.max_values:
                add.append(name)
                have.add(name)
        return add

    def label(self, candidate: tuple[str, str], kept: Container[str] | None = None) -> tuple[str, str]:
        """The job's (workload label, rejection reason or ""), with ``kept`` the kept set the
        transaction read (None: this book's)."""
        label, reason = candidate
        if reason or label in RESERVED:
            return label, reason
        if kept is None:
            with self._lock:
                known = label in self._kept
        else:
            known = label in kept
        return (label, "") if known else (OTHER, OVERFLOW)

    def adopt(self, kept: Iterable[str]) -> None:
        """The kept set a committed transaction read and wrote: known from now on, and saved."""
        with self._lock:
            for name in kept:
                self._kept.setdefault(name, None)
                self._unsaved.pop(name, None)

    def resolve(self, tags: Iterable[tuple[str, str]]) -> tuple[str, str]:
        """(workload label, rejection reason or "") for a job's tags, keeping a new value in
        this book alone (no store: tests, benchmarks)."""
        candidate = self.candidate(tags)
        with self._alone:
            self.adopt(self.admit(self.kept(), self.wanted([candidate])))
        return self.label(candidate)
