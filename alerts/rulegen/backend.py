"""Backend availability and queue rules (rules/backend.yml)."""

from __future__ import annotations

from .common import PB, WINDOW_CLOSED, Links, alert, for_duration, group, number, record

PENDING_AVG = "provider_backend:qpu_backend_pending_jobs:avg_over_time{w}"
PENDING_STDDEV = "provider_backend:qpu_backend_pending_jobs:stddev_over_time{w}"
PENDING_ZSCORE = "provider_backend:qpu_backend_pending_jobs:zscore{w}"


def build(config: dict, links: Links) -> dict:
    cfg = config["backend"]
    down, maint, queue = cfg["down"], cfg["maintenance"], cfg["queue_anomaly"]
    w = str(queue["baseline_window"])
    avg, stddev, zscore = (name.format(w=w) for name in (PENDING_AVG, PENDING_STDDEV, PENDING_ZSCORE))
    oncall = links.dashboard("oncall")
    rules = [
        record(avg, f"max by ({PB}) (avg_over_time(qpu_backend_pending_jobs[{w}]))"),
        record(stddev, f"max by ({PB}) (stddev_over_time(qpu_backend_pending_jobs[{w}]))"),
        record(zscore, f"(max by ({PB}) (qpu_backend_pending_jobs) - {avg}) / {stddev}"),
        alert(
            "QPUBackendDown",
            f"""
max by ({PB}) (qpu_backend_up) == 0
unless on ({PB}) {WINDOW_CLOSED}
unless on ({PB}) (max by ({PB}) (qpu_backend_maintenance) == 1)
""",
            for_=for_duration(down, "backend.down"),
            severity="page",
            concern="backend",
            summary="A QPU backend is not operational while it should be available.",
            description=(
                "{{ $labels.provider }}/{{ $labels.backend }} has reported not operational for more than "
                f"{down['for']} inside its availability window and with no provider maintenance announced."
            ),
            links=links,
            dashboard=oncall,
        ),
        alert(
            "QPUBackendMaintenance",
            f"max by ({PB}) (qpu_backend_maintenance) == 1",
            for_=for_duration(maint, "backend.maintenance"),
            severity="ticket",
            concern="backend",
            summary="The provider reports a QPU backend in maintenance; its pages are inhibited.",
            description=(
                "{{ $labels.provider }}/{{ $labels.backend }} has been in provider maintenance for more than "
                f"{maint['for']}; Alertmanager holds the page alerts of this backend until it ends."
            ),
            links=links,
            dashboard=oncall,
        ),
        alert(
            "QPUQueueDepthAnomaly",
            f"""
max by ({PB}) (qpu_backend_pending_jobs) >= {number(queue['min_pending_jobs'], 'backend.queue_anomaly.min_pending_jobs')}
and on ({PB}) {zscore} > {number(queue['zscore'], 'backend.queue_anomaly.zscore')}
and on ({PB}) max by ({PB}) (qpu_backend_pending_jobs) > {number(queue['min_ratio_to_baseline'], 'backend.queue_anomaly.min_ratio_to_baseline')} * {avg}
unless on ({PB}) {WINDOW_CLOSED}
""",
            for_=for_duration(queue, "backend.queue_anomaly"),
            severity="ticket",
            concern="backend",
            summary="A QPU backend's queue is far deeper than usual.",
            description=(
                '{{ $value | printf "%.0f" }} jobs are pending on {{ $labels.provider }}/{{ $labels.backend }}, '
                f"more than {queue['zscore']} standard deviations and {queue['min_ratio_to_baseline']}x above "
                f"its {w} average, for more than {queue['for']}."
            ),
            links=links,
            dashboard=oncall,
        ),
    ]
    return group("qpu-backend", rules)
