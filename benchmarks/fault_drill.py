"""Fault drill: provider timeouts, 5xx, 429s and malformed payloads mixed into the polls of
the real poller and store; prints what was attempted, failed, recovered, how stale data got
and how many jobs were lost (must be 0). Run: .venv/bin/python benchmarks/fault_drill.py"""

from __future__ import annotations

import logging
import sys
import tempfile

from qpu_exporter.faultdrill import run_drill


def main() -> int:
    logging.disable(logging.WARNING)  # thousands of expected "poll failed" lines
    rows = []
    for rate in (0.1, 0.3, 0.6):
        with tempfile.TemporaryDirectory() as d:
            rows.append((rate, run_drill(rounds=600, fault_rate=rate, tmp_dir=d, seed=7)))
    print("| fault rate | polls attempted | failed | recovered | skipped (backoff) | faults injected "
          "(timeout/5xx/429/malformed) | max staleness | jobs produced | recorded | counted | lost | wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    ok = True
    for rate, r in rows:
        f = r.faults_injected
        print(f"| {rate:.0%} | {r.polls_attempted} | {r.polls_failed} | {r.polls_recovered} | {r.polls_skipped_backoff} | "
              f"{f['timeout']}/{f['http_5xx']}/{f['rate_limited']}/{f['malformed']} | {r.max_staleness_seconds / 60:.0f} min | "
              f"{r.jobs_produced} | {r.jobs_recorded} | {r.jobs_counted:.0f} | {r.jobs_lost} | {r.wall_seconds:.1f} |")
        ok &= r.jobs_lost == 0 and r.jobs_counted == r.jobs_recorded and r.calibration_served_throughout
    print("\ndata lost: none" if ok else "\nDATA LOST or miscounted")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
