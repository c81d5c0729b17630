"""Exporter health and the Watchdog (rules/exporter.yml)."""

from __future__ import annotations

from .common import PB, Links, alert, for_duration, group, record, seconds

PBC = f"{PB}, collector"
COLLECTOR_AGE = "provider_backend_collector:qpu_exporter_collector_age:seconds"


def build(config: dict, links: Links) -> dict:
    cfg = config["exporter"]
    job = config["job_selector"]
    down, absent, failing, stale = cfg["down"], cfg["absent"], cfg["collector_failing"], cfg["data_stale"]
    collectors = "|".join(failing["collectors"])
    after = dict(sorted(stale["after_by_collector"].items()))
    stale_clauses = "\n  or ".join(
        f'{COLLECTOR_AGE}{{collector="{name}"}} > {seconds(limit, f"exporter.data_stale.after_by_collector.{name}")}'
        for name, limit in after.items()
    )
    oncall = links.dashboard("oncall")
    rules = [
        record(COLLECTOR_AGE, f"time() - max by ({PBC}) (qpu_exporter_collector_last_success_timestamp_seconds)"),
        alert(
            "QPUExporterDown",
            f"up{{{job}}} == 0",
            for_=for_duration(down, "exporter.down"),
            severity="page",
            concern="exporter",
            summary="Prometheus cannot scrape the qpu-exporter; QPU alerting is blind.",
            description=(
                "The qpu-exporter target {{ $labels.instance }} of job {{ $labels.job }} has failed every scrape "
                f"for more than {down['for']}."
            ),
            links=links,
        ),
        alert(
            "QPUExporterAbsent",
            f"absent(up{{{job}}})",
            for_=for_duration(absent, "exporter.absent"),
            severity="page",
            concern="exporter",
            summary="Prometheus has no qpu-exporter target at all; QPU alerting is blind.",
            description=(
                f"No target of {{{{ $labels.job }}}} has been discovered for more than {absent['for']} "
                f"(absent(up{{{job}}}))."
            ),
            links=links,
        ),
        alert(
            "QPUCollectorFailing",
            f'max by ({PBC}) (qpu_exporter_collector_success{{collector=~"{collectors}"}}) == 0',
            for_=for_duration(failing, "exporter.collector_failing"),
            severity="ticket",
            concern="exporter",
            summary="One of the exporter's collectors keeps failing to poll a provider.",
            description=(
                "The {{ $labels.collector }} collector for {{ $labels.provider }}/{{ $labels.backend }} has failed "
                f"every poll for more than {failing['for']}."
            ),
            links=links,
            dashboard=oncall,
        ),
        alert(
            "QPUExporterDataStale",
            # A failing collector has its own alert; this one catches polls that stopped happening.
            f"""
(
  {stale_clauses}
)
and on ({PBC}) max by ({PBC}) (qpu_exporter_collector_last_success_timestamp_seconds) > 0
unless on ({PBC}) max by ({PBC}) (qpu_exporter_collector_success) == 0
""",
            for_=for_duration(stale, "exporter.data_stale"),
            severity="ticket",
            concern="exporter",
            summary="The exporter serves data that has not been refreshed for too long.",
            description=(
                "The {{ $labels.collector }} data for {{ $labels.provider }}/{{ $labels.backend }} was last refreshed "
                "{{ $value | humanizeDuration }} ago although the collector reports no failure."
            ),
            links=links,
            dashboard=oncall,
        ),
        alert(
            "Watchdog",
            "vector(1)",
            for_="0m",
            # Routed to the dead-man's switch before any severity route; "ticket" keeps a broken
            # route from paging someone forever.
            severity="ticket",
            concern="meta",
            summary="Always firing: proves the Prometheus -> Alertmanager -> receiver path works.",
            description=(
                "This alert always fires. If the dead-man's switch stops receiving it, alerting is broken "
                "somewhere between Prometheus, Alertmanager and the receiver."
            ),
            links=links,
        ),
    ]
    return group("qpu-exporter", rules)
