"""A short fault drill in the suite: faults of every class mixed into real polls; the last
good data stays served, staleness is bounded by the backoff cap, and no job is lost or
counted twice (benchmarks/fault_drill.py runs the long version for docs/reliability.md)."""

from __future__ import annotations

from qpu_exporter.faultdrill import FAULT_KINDS, run_drill


def test_fault_drill_loses_nothing(tmp_path):
    report = run_drill(rounds=150, fault_rate=0.4, tmp_dir=tmp_path, seed=3)
    assert all(report.faults_injected[k] > 0 for k in FAULT_KINDS), report.faults_injected
    assert report.polls_failed > 30 and report.polls_recovered > 10
    assert report.polls_skipped_backoff > 0, "failing collectors must back off"
    assert report.calibration_served_throughout
    assert report.jobs_produced > 100
    assert report.jobs_lost == 0 and report.jobs_recorded == report.jobs_produced
    assert report.jobs_counted == report.jobs_recorded, "every recorded job counted exactly once"
    # Backoff is capped at 8 intervals, a 429's Retry-After is 2 intervals: staleness stays bounded.
    assert report.max_staleness_seconds <= 16 * 60 * 60
