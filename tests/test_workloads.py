"""Per-workload series: tag values as labels, the kept set, conservation, config."""

from __future__ import annotations

import multiprocessing
import random
import sqlite3
import time
from collections import defaultdict

import pytest

from conftest import parse_samples
from qpu_exporter.aggregates import job_increments
from qpu_exporter.config import ConfigError, Config, load_config
from qpu_exporter.model import JOB_CANCELLED, JOB_DONE, JOB_FAILED, BackendInfo, JobRecord, bounded_tags
from qpu_exporter.store import Store
from qpu_exporter.textformat import render
from qpu_exporter.view import FleetView
from qpu_exporter.workloads import (
    AMBIGUOUS,
    INVALID,
    LOOKS_SECRET,
    OTHER,
    OVERFLOW,
    TOO_LONG,
    UNTAGGED,
    WorkloadBook,
    label_value,
)

BACKEND_COUNTERS = ("qpu_jobs_total", "qpu_jobs_failed_total", "qpu_job_usage_seconds_total", "qpu_cost_usd_total")
TWINS = ("qpu_workload_jobs_total", "qpu_workload_jobs_failed_total", "qpu_workload_usage_seconds_total",
         "qpu_workload_cost_usd_total")


# --- tag values as label values -------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    ("chem", ("chem", "")),
    ("  chem\t", ("chem", "")),
    ('"chem"', ("chem", "")),  # quotes trimmed
    ("'ml-team'", ("ml-team", "")),
    ("chem\nml", ("chem_ml", "")),  # a newline never reaches a label
    ("a b/c:d=e", ("a_b_c_d_e", "")),
    ("Química", ("Química", "")),  # unicode letters are kept
    ("量子化学", ("量子化学", "")),
    ("ｃｈｅｍ", ("chem", "")),  # NFKC: full-width letters are the same team
    ("team.v2_final-3", ("team.v2_final-3", "")),
    ("x" * 63, ("x" * 63, "")),
    ("x" * 64, (None, TOO_LONG)),
    ("", (None, "")),
    ("   ", (None, "")),
    ('"\n"', (None, INVALID)),
    ("🚀", (None, INVALID)),
    ("AKIAIOSFODNN7EXAMPLE", (None, LOOKS_SECRET)),  # AWS access key id
    ("ghp_16C7e42F292c6912E7710c838347Ae178B4a", (None, LOOKS_SECRET)),
    ("sk-proj-abcdefghijklmnop1234", (None, LOOKS_SECRET)),
    ("xoxb-123-456-abc", (None, LOOKS_SECRET)),
    ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", (None, LOOKS_SECRET)),  # a JWT
    ("password=hunter2", (None, LOOKS_SECRET)),
    ("my API_KEY", (None, LOOKS_SECRET)),
    ("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b", (None, LOOKS_SECRET)),  # a hash / opaque key
    ("-----BEGIN PRIVATE KEY-----", (None, LOOKS_SECRET)),
    ("123e4567-e89b-12d3-a456-426614174000", ("123e4567-e89b-12d3-a456-426614174000", "")),  # a UUID is an id
])
def test_label_values_are_bounded_sanitised_and_never_secrets(raw, expected):
    assert label_value(raw) == expected


def test_bounded_tags_keeps_strings_and_cuts_long_ones():
    tags = bounded_tags([("team", "chem"), ("n", 3), (None, "x"), ("k", "v" * 1000)] + [(f"k{i}", "v") for i in range(100)])
    assert tags[0] == ("team", "chem") and ("n", 3) not in tags
    assert tags[1] == ("k", "v" * 256) and len(tags) == 64
    # A cut value is still too long to be a label.
    assert label_value(tags[1][1]) == (None, TOO_LONG)


# --- the kept set -----------------------------------------------------------------------------

def test_resolution_untagged_kept_overflow_reserved_and_ambiguous():
    book = WorkloadBook("team", max_values=2, configured=["finance"])
    assert book.resolve([]) == (UNTAGGED, "")
    assert book.resolve([("project", "chem")]) == (UNTAGGED, "")  # another key is not read
    assert book.resolve([("team", "")]) == (UNTAGGED, "")
    assert book.resolve([("team", "chem")]) == ("chem", "")
    assert book.resolve([("team", "ml")]) == (OTHER, OVERFLOW)  # finance (configured) + chem fill max=2
    assert book.resolve([("team", "finance")]) == ("finance", "")
    assert book.resolve([("team", "chem"), ("team", " chem ")]) == ("chem", "")  # same label twice
    assert book.resolve([("team", "chem"), ("team", "ml")]) == (OTHER, AMBIGUOUS)
    assert book.resolve([("team", "other")]) == (OTHER, "")  # the reserved names mean themselves
    assert book.resolve([("team", "untagged")]) == (UNTAGGED, "")
    assert book.resolve([("team", "AKIAIOSFODNN7EXAMPLE")]) == (OTHER, LOOKS_SECRET)
    assert book.resolve([("Team", "chem2")]) == (UNTAGGED, "")  # keys match exactly, as AWS tags do
    assert book.kept() == ["finance", "chem"]


def test_admission_against_a_shared_kept_set():
    """With a store the kept set is the state's: the book asks it about config-named values not
    yet saved and values it does not know, and admits those while the set has room."""
    book = WorkloadBook("team", max_values=2, configured=["finance"])
    candidates = [book.candidate([("team", v)]) for v in ("chem", "ml", "finance", "chem")]
    candidates += [book.candidate([("team", "x" * 80)]), book.candidate([])]
    assert book.wanted(candidates) == ["finance", "chem", "ml"]
    assert book.admit([], book.wanted(candidates)) == ["finance", "chem"]
    # Another exporter filled the set first: the config-named value is still kept, chem is not.
    assert book.admit(["qa", "chem2"], book.wanted(candidates)) == ["finance"]
    assert book.label(candidates[0], {"qa", "chem2", "finance"}) == (OTHER, OVERFLOW)
    assert book.label(candidates[0], {"chem"}) == ("chem", "")
    assert book.label(candidates[4], set()) == (OTHER, TOO_LONG)
    book.adopt(["qa", "finance"])  # after the commit: known, saved, nothing more to ask
    assert book.kept() == ["finance", "qa"] and book.wanted([book.candidate([("team", "qa")])]) == []


def test_a_kept_value_stays_kept_after_max_shrinks():
    book = WorkloadBook("team", max_values=1, kept=["chem", "ml"])
    assert book.resolve([("team", "ml")]) == ("ml", "")
    assert book.resolve([("team", "qa")]) == (OTHER, OVERFLOW)


# --- store: one transaction, conservation, stable labels -------------------------------------------

def _job(i: int, rng: random.Random, backend: str = "b1", tags=None, unknown: bool = False) -> JobRecord:
    """A random finished job; ``unknown``: usage and cost may be None (not known yet)."""
    status = rng.choice([JOB_DONE, JOB_DONE, JOB_DONE, JOB_FAILED, JOB_CANCELLED])
    queue = rng.choice([None, rng.uniform(0, 20000)])
    maybe = (lambda x: rng.choice([None, x])) if unknown else (lambda x: x)
    return JobRecord("sim", backend, f"j{i}", status, 1000.0 + i, 1100.0 + i, queue, None if queue is None else 5.0,
                     maybe(rng.uniform(0, 30)), maybe(rng.uniform(0, 50)),
                     "execution_error" if status == JOB_FAILED else "",
                     tags=tags if tags is not None else rng.choice([(), (("team", rng.choice("abcdefg")),),
                                                                    (("team", "x" * 80),)]))


def _sums(counters) -> dict:
    out = defaultdict(float)
    for (name, labels), value in counters.items():
        d = dict(labels)
        if name in BACKEND_COUNTERS + TWINS:
            out[(name, d["provider"], d["backend"])] += value
    return out


def _assert_conserved(counters):
    sums = _sums(counters)
    keys = {(p, b) for _, p, b in sums}
    assert keys
    for p, b in keys:
        for backend_name, twin in zip(BACKEND_COUNTERS, TWINS, strict=True):
            assert sums[(twin, p, b)] == pytest.approx(sums[(backend_name, p, b)], abs=1e-9), (backend_name, p, b)
    buckets = defaultdict(float)
    for (name, labels), value in counters.items():
        d = dict(labels)
        if name in ("qpu_job_queue_duration_seconds_bucket", "qpu_workload_queue_duration_seconds_bucket"):
            buckets[(name.startswith("qpu_workload"), d["backend"], d["le"])] += value
    assert buckets and all(buckets[(True, b, le)] == buckets[(False, b, le)] for _, b, le in buckets)


def test_increments_conserve_with_unknown_usage_and_cost():
    """An unknown usage or cost moves neither the backend nor the workload counter; the job counts."""
    rng = random.Random(4)
    book = WorkloadBook("team", max_values=3)
    counters: dict = defaultdict(float)
    jobs = [_job(i, rng, backend=rng.choice(["b1", "b2"]), unknown=True) for i in range(400)]
    assert any(j.cost_usd is None for j in jobs) and any(j.usage_seconds is None for j in jobs)
    for job in jobs:
        for name, labels, delta in job_increments(job, *book.resolve(job.tags)):
            counters[(name, tuple(sorted(labels.items())))] += delta
    _assert_conserved(counters)
    assert sum(v for (n, _), v in counters.items() if n == "qpu_workload_jobs_total") == 400
    assert sum(v for (n, _), v in counters.items() if n == "qpu_workload_cost_usd_total") == pytest.approx(
        sum(j.cost_usd for j in jobs if j.cost_usd is not None))


def test_store_counts_each_job_once_under_one_workload_and_conserves(tmp_path):
    rng = random.Random(5)
    store = Store(tmp_path / "s.db")
    book = WorkloadBook("team", max_values=3)
    jobs = [_job(i, rng, backend=rng.choice(["b1", "b2"])) for i in range(300)]
    new = store.record_jobs(jobs[:200], job_increments, now=1.0, workloads=book)
    assert len(new) == 200
    again = store.record_jobs(jobs[100:], job_increments, now=2.0, workloads=book)  # overlap: counted once
    assert {j.job_id for j in again} == {j.job_id for j in jobs[200:]}
    counters = store.counters()
    _assert_conserved(counters)
    total = sum(v for (n, _), v in counters.items() if n == "qpu_workload_jobs_total")
    assert total == 300
    workloads = {dict(k)["workload"] for n, k in counters if n == "qpu_workload_jobs_total"}
    assert workloads == {UNTAGGED, OTHER, *book.kept()} and len(book.kept()) == 3
    reasons = {dict(k)["reason"] for n, k in counters if n == "qpu_workload_tag_rejections_total"}
    assert reasons == {OVERFLOW, TOO_LONG}
    rejected = sum(v for (n, _), v in counters.items() if n == "qpu_workload_tag_rejections_total")
    other = sum(v for (n, k), v in counters.items() if n == "qpu_workload_jobs_total" and dict(k)["workload"] == OTHER)
    assert rejected == other
    # Each job row holds its workload; a job's workload is the one it was counted under.
    db = sqlite3.connect(tmp_path / "s.db")
    rows = dict(db.execute("SELECT job_id, workload FROM jobs"))
    assert len(rows) == 300 and None not in rows.values()
    per_label = defaultdict(int)
    for w in rows.values():
        per_label[w] += 1
    for (n, k), v in counters.items():
        if n == "qpu_workload_jobs_total":
            per_label[dict(k)["workload"]] -= v
    assert not any(per_label.values())
    store.close()


def test_kept_values_survive_a_restart_and_keep_their_labels(tmp_path):
    store = Store(tmp_path / "s.db")
    book = WorkloadBook("team", max_values=2)
    rng = random.Random(1)
    store.record_jobs([_job(0, rng, tags=(("team", "chem"),)), _job(1, rng, tags=(("team", "ml"),))],
                      job_increments, 1.0, workloads=book)
    store.close()
    store = Store(tmp_path / "s.db")
    assert store.kept_workloads() == ["chem", "ml"]
    book = WorkloadBook("team", max_values=2, kept=store.kept_workloads())
    # After the restart a new value arrives first: it must not take chem's or ml's place.
    store.record_jobs([_job(2, rng, tags=(("team", "qa"),)), _job(3, rng, tags=(("team", "ml"),))],
                      job_increments, 2.0, workloads=book)
    labels = {dict(k)["workload"]: v for (n, k), v in store.counters().items() if n == "qpu_workload_jobs_total"}
    assert labels == {"chem": 1, "ml": 2, OTHER: 1}
    store.close()


def _labels_counted(store: Store) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for (n, k), v in store.counters().items():
        if n == "qpu_workload_jobs_total":
            out[dict(k)["workload"]] += v
    return dict(out)


def test_replicas_share_the_kept_set_and_label_a_value_alike(state):
    """Two exporters on one database (both engines) see the same jobs in a different order: each
    counts every job, and a value one kept is that value for the other, also one it never saw."""
    a, b = state.store(instance="replica-a"), state.store(instance="replica-b")
    book_a, book_b = WorkloadBook("team", 2, a.kept_workloads()), WorkloadBook("team", 2, b.kept_workloads())
    rng = random.Random(6)
    chem, qa, ml = (_job(i, rng, tags=(("team", v),)) for i, v in enumerate(("chem", "qa", "ml")))
    a.record_jobs([chem], job_increments, 1.0, workloads=book_a)
    b.record_jobs([qa, chem], job_increments, 2.0, workloads=book_b)  # chem: from the state, not b's cache
    a.record_jobs([ml, qa], job_increments, 3.0, workloads=book_a)  # the set is full: ml overflows
    b.record_jobs([ml], job_increments, 4.0, workloads=book_b)
    assert _labels_counted(a) == _labels_counted(b) == {"chem": 1, "qa": 1, OTHER: 1}
    assert sorted(a.kept_workloads()) == sorted(book_b.kept()) == ["chem", "qa"]
    a.close()
    b.close()


def _keeping_worker(target: str, password: str | None, i: int, start, out) -> None:
    store = Store(target, password=password, instance=f"w{i}")
    book = WorkloadBook("team", 3)
    jobs = [JobRecord("sim", "b1", f"w{i}-{k}", JOB_DONE, 1, 2, None, None, 1.0, 1.0, tags=(("team", f"v{i}{k}"),))
            for k in range(2)]
    start.wait()
    store.record_jobs(jobs, job_increments, 1.0, workloads=book)
    out.put(_labels_counted(store))
    store.close()


def test_racing_exporters_never_keep_more_than_max_together(state):
    """Four processes each bring two new values at once, with max 3: exactly three are kept,
    each counted under itself by the process that brought it, every other one under other."""
    state.store().close()  # migrate once, before the race
    ctx = multiprocessing.get_context("fork")  # no open connection to inherit
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_keeping_worker, args=(state.target, state.password, i, start, out)) for i in range(4)]
    for p in procs:
        p.start()
    time.sleep(0.1)
    start.set()
    counted = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    store = state.store()
    kept = store.kept_workloads()
    store.close()
    assert len(kept) == 3
    themselves = {w for c in counted for w in c if w != OTHER}
    assert themselves == set(kept)
    assert sum(c.get(OTHER, 0) for c in counted) == 8 - 3


def test_migrate_state_carries_the_kept_set_and_the_jobs_workloads(tmp_path, pg_state, monkeypatch):
    from qpu_exporter.cli import main

    source = Store(tmp_path / "s.db")
    rng = random.Random(8)
    session = JobRecord("sim", "b1", "charge", JOB_DONE, 1, 2, None, None, 3.0, 4.0, counts_as_job=False)
    source.record_jobs([_job(0, rng, tags=(("team", "chem"),)), session], job_increments, 1.0,
                       workloads=WorkloadBook("team", 5))
    before = (source.kept_workloads(), sorted(source.workload_jobs()), _labels_counted(source))
    source.close()
    monkeypatch.setenv("QPU_EXPORTER_STATE_PASSWORD", pg_state.password)
    assert main(["migrate-state", "--from", str(tmp_path / "s.db"), "--to", pg_state.target]) == 0
    target = pg_state.store(instance="default")
    assert (target.kept_workloads(), sorted(target.workload_jobs()), _labels_counted(target)) == before
    assert sorted(r[-1] for r in before[1]) == [False, True]  # the job, and the charge that is none
    target.close()


def test_a_failed_transaction_keeps_nothing(tmp_path):
    """A value is kept only with the jobs that brought it: a failed transaction leaves neither
    the state nor the book's cache changed, and the next one decides again."""
    store = Store(tmp_path / "s.db")
    book = WorkloadBook("team", max_values=5, configured=["finance"])
    rng = random.Random(2)

    def broken(job, workload, rejected):
        raise sqlite3.OperationalError("disk I/O error")

    with pytest.raises(sqlite3.OperationalError):
        store.record_jobs([_job(0, rng, tags=(("team", "chem"),))], broken, 1.0, workloads=book)
    assert store.kept_workloads() == [] and store.job_count() == 0
    assert book.kept() == ["finance"] and book.wanted([]) == ["finance"]  # still to be saved
    store.record_jobs([_job(1, rng, tags=(("team", "ml"),))], job_increments, 2.0, workloads=book)
    assert store.kept_workloads() == ["finance", "ml"] and book.wanted([]) == []
    store.close()


def test_a_state_of_the_previous_revision_gains_the_kept_set(tmp_path):
    """A state at revision 0002 (jobs already have a workload column, nothing is kept yet) is
    upgraded: its jobs stay, count as jobs, and new jobs store their workload."""
    from alembic import command
    from alembic.config import Config as AlembicConfig
    from sqlalchemy import create_engine

    from qpu_exporter.store import schema

    path = tmp_path / "old.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(schema.MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002")
        conn.exec_driver_sql("INSERT INTO jobs VALUES ('default','sim','b1','old','done',1,2,NULL,NULL,1,1,'',1,NULL)")
    engine.dispose()
    store = Store(path)
    rng = random.Random(3)
    store.record_jobs([_job(7, rng, tags=(("team", "chem"),))], job_increments, 1.0,
                      workloads=WorkloadBook("team", 5))
    db = sqlite3.connect(path)
    assert {j: (w, bool(c)) for j, w, c in db.execute("SELECT job_id, workload, counts_as_job FROM jobs")} == {
        "old": (None, True), "j7": ("chem", True)}
    assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(schema.HEAD,)]
    db.close()
    assert store.kept_workloads() == ["chem"]
    store.close()


# --- exposition ---------------------------------------------------------------------------------

def _render(store: Store, view: FleetView, workloads_cfg=None) -> str:
    from qpu_exporter.exposition import families, workload_config_families

    extra = [] if workloads_cfg is None else workload_config_families(workloads_cfg)
    return render(families(view.copy(), store.counters(), version="t", revision="t", daily_budget_usd=1,
                           extra=extra, workloads=workloads_cfg is not None)).decode()


def test_without_a_workloads_block_nothing_changes(tmp_path):
    """The same jobs with and without workloads: the backend series are identical, and without
    the block no qpu_workload_ family appears at all."""
    rng = random.Random(9)
    jobs = [_job(i, rng) for i in range(100)]
    view = FleetView()
    view.set_backend(BackendInfo("sim", "b1", 5, "p"))
    plain, tagged = Store(tmp_path / "a.db"), Store(tmp_path / "b.db")
    plain.record_jobs(jobs, job_increments, 1.0)
    cfg = Config.model_validate({"workloads": {"budgets": {"a": {"usd_per_day": 10}}}}).workloads
    tagged.record_jobs(jobs, job_increments, 1.0, workloads=WorkloadBook("team", 50))
    without, with_ = _render(plain, view), _render(tagged, view, cfg)
    assert "qpu_workload" not in without
    assert "qpu_workload_jobs_total" in with_ and 'qpu_workload_cost_budget_daily_usd{workload="a"} 10.0' in with_
    stripped = "\n".join(line for line in with_.splitlines() if "qpu_workload" not in line)
    assert stripped == without.rstrip("\n")
    assert [r[0] for r in sqlite3.connect(tmp_path / "a.db").execute("SELECT DISTINCT workload FROM jobs")] == [None]


def test_every_workload_seen_on_a_backend_has_all_its_series(tmp_path):
    store = Store(tmp_path / "s.db")
    view = FleetView()
    view.set_backend(BackendInfo("sim", "b1", 5, "p"))
    done = JobRecord("sim", "b1", "j1", JOB_DONE, 1, 2, None, None, 1.0, 2.0, tags=(("team", "chem"),))
    store.record_jobs([done], job_increments, 1.0, workloads=WorkloadBook("team", 5))
    text = _render(store, view, Config.model_validate({"workloads": {}}).workloads)
    samples = parse_samples(text)
    chem = {n for n, lab, _ in samples if lab.get("workload") == "chem"}
    assert {"qpu_workload_jobs_total", "qpu_workload_jobs_failed_total", "qpu_workload_usage_seconds_total",
            "qpu_workload_cost_usd_total", "qpu_workload_queue_duration_seconds_bucket",
            "qpu_workload_queue_duration_seconds_count"} <= chem
    store.close()


def test_a_cached_histogram_rebuild_equals_a_fresh_one(tmp_path):
    """The histogram cache redoes only the keys whose counts moved; the bytes must equal a
    rendering without cache after every change."""
    from qpu_exporter.exposition import families

    rng = random.Random(11)
    store = Store(tmp_path / "s.db")
    book = WorkloadBook("team", 3)
    view = FleetView()
    for b in ("b1", "b2"):
        view.set_backend(BackendInfo("sim", b, 5, "p"))
    cache: dict = {}

    def text(cache_arg):
        return render(families(view.copy(), store.counters(), version="t", revision="t", daily_budget_usd=1,
                               workloads=True, histogram_cache=cache_arg))

    for step in range(4):
        jobs = [_job(100 * step + i, rng, backend=rng.choice(["b1", "b2"])) for i in range(20)]
        store.record_jobs(jobs, job_increments, float(step), workloads=book)
        cached = text(cache)
        assert cached == text(None), f"step {step}"
        assert b"qpu_workload_queue_duration_seconds_bucket" in cached
    assert cache
    store.close()


# --- config -----------------------------------------------------------------------------------------

def _load(tmp_path, text: str):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return load_config(path)


@pytest.mark.parametrize("text, expected", [
    ("workloads: {max: 0}\n", "workloads.max"),
    ("workloads: {tag: 'team:x'}\n", "workloads.tag"),
    ("workloads: {tag: ''}\n", "workloads.tag"),
    ("workloads: {budgets: {chem: {usd_per_day: 0}}}\n", "workloads.budgets.chem.usd_per_day"),
    ("workloads: {budgets: {chem: {usd: 5}}}\n", "workloads.budgets.chem.usd_per_day: Field required"),
    ("workloads: {budgets: {'a b': {usd_per_day: 5}}}\n", "not a workload label value"),
    ("workloads: {objectives: {chem: {job_success: 1.5}}}\n", "workloads.objectives.chem.job_success"),
    ("workloads: {objectives: {chem: {queue_seconds: soon}}}\n", "workloads.objectives.chem.queue_seconds"),
    ("workloads: {max: 1, budgets: {a: {usd_per_day: 1}, b: {usd_per_day: 1}}}\n", "more than max (1)"),
    ("workloads: {bogus: 1}\n", "workloads.bogus: unknown key"),
    ("providers:\n  - {kind: simulated, workload_tags: [chem]}\n", "providers[0].workload_tags"),
    ("providers:\n  - {kind: simulated, workload_tags: [chem]}\nworkloads: {tag: project}\n",
     "providers[0].workload_tags"),
    ("providers:\n  - {kind: simulated, workload_tags: [other]}\nworkloads: {}\n", "providers[0].workload_tags"),
])
def test_bad_workloads_config_is_one_line_naming_the_key(tmp_path, text, expected):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, text)
    message = str(err.value)
    assert expected in message and "\n" not in message, message


def test_the_contract_example_and_the_demo_default(tmp_path):
    cfg = _load(tmp_path, "workloads:\n  tag: team\n  max: 50\n  budgets:\n    chem: {usd_per_day: 500}\n"
                          "  objectives:\n    chem: {job_success: 0.995, queue_seconds: 3600}\n")
    w = cfg.workloads
    assert (w.tag, w.max, w.budgets["chem"].usd_per_day) == ("team", 50, 500)
    assert (w.objectives["chem"].job_success, w.objectives["chem"].queue_seconds) == (0.995, 3600)
    assert _load(tmp_path, "providers: [{kind: simulated}]\n").workloads is None
    demo = load_config(None)
    assert demo.providers[0].workload_tags == ["chem", "finance", "ml"] and demo.workloads.tag == "team"
    assert set(demo.workloads.budgets) == {"chem", "finance", "ml"}


# --- report ---------------------------------------------------------------------------------------

def test_report_draws_cost_and_success_per_workload(tmp_path):
    from conftest import run_cli
    from qpu_exporter.providers.simulated.config import SimulatedProviderConfig
    from qpu_exporter.providers.simulated.provider import SimulatedProvider
    from qpu_exporter.report import workload_totals

    origin = 1_700_000_000.0
    now = [origin]
    cfg = SimulatedProviderConfig(kind="simulated", backends=["fake_fez"], seed=3, speedup=3600,
                                  workload_tags=["chem", "finance", "ml"])
    sim = SimulatedProvider(cfg, origin=origin, clock=lambda: now[0])
    now[0] = origin + 40  # 40 simulated hours of jobs
    jobs = sim.jobs("fake_fez", None)
    store = Store(tmp_path / "s.db")
    store.record_jobs(jobs, job_increments, now[0], workloads=WorkloadBook("team", 50))
    totals = workload_totals(store.counters())
    store.close()
    by_team: dict = defaultdict(lambda: [0, 0, 0.0])
    for j in jobs:
        team = dict(j.tags).get("team", UNTAGGED)
        by_team[team][0] += 1
        by_team[team][1] += j.status == JOB_FAILED
        by_team[team][2] += j.cost_usd
    assert set(totals) == {"chem", "finance", "ml", UNTAGGED}
    for team, (n, failed, cost) in by_team.items():
        assert (totals[team]["jobs"], totals[team]["failed"]) == (n, failed)
        assert totals[team]["cost_usd"] == pytest.approx(cost)
    config = tmp_path / "c.yaml"
    config.write_text(f"state_path: {tmp_path / 's.db'}\nworkloads:\n  budgets: {{chem: {{usd_per_day: 5000}}}}\n"
                      "  objectives: {ml: {job_success: 0.97}}\n")
    out = tmp_path / "report"
    result = run_cli("report", "--out", str(out), "--config", str(config))
    assert result.returncode == 0, result.stderr
    page = out / "workloads.png"
    assert str(page) in result.stdout.split()
    assert page.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and page.stat().st_size > 20_000
