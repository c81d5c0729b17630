"""End to end with real processes: the exporter's simulated incidents -> Prometheus loading
the shipped rules -> Alertmanager with the shipped routing -> a local webhook.

Rules are rendered from alerts/config.yaml with the fast override (seconds instead of
minutes); Alertmanager runs the shipped alertmanager.yml with only its timings shortened and
its receivers pointed at the test's webhook, so routes and inhibitions are the real ones.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

from conftest import REPO, free_port, http_get, require_binary, wait_until

EXPORTER_CONFIG = """
providers:
  - kind: simulated
    backends: [fake_fez, fake_sherbrooke]
    seed: 3
    speedup: 3600
    dynamics: calm              # the injected incidents are the only faults
    measurement_interval: 1h    # one new measurement per qubit per wall second
    incidents:
      - {backend: fake_fez, qubit: 3, kind: t1_drop, factor: 0.2, at: 20h, duration: 30d}
      - {backend: fake_sherbrooke, qubit: 5, kind: t1_drop, factor: 0.2, at: 20h, duration: 30d}
      - {backend: fake_sherbrooke, kind: offline, at: 0s, duration: 30d}
schedule: {calibration_interval: 1s, jobs_interval: 1s}
drift: {warmup: 10}
probes: {enabled: false}   # not under test here; saves CPU
state_path: STATE_PATH
"""


def _ts(rfc3339: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


class _Webhook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        payload = json.loads(body)
        for alert in payload["alerts"]:
            self.received.append((time.time(), self.path, payload["receiver"], alert))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def _alertmanager_config(webhook: str) -> dict:
    cfg = yaml.safe_load((REPO / "alerts/alertmanager.yml").read_text())

    def shorten(route):
        for key, value in (("group_wait", "1s"), ("group_interval", "2s"), ("repeat_interval", "1h")):
            if key in route:
                route[key] = value
        for child in route.get("routes", []):
            shorten(child)

    shorten(cfg["route"])
    for receiver in cfg["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook + "/" + receiver["name"]
    return cfg


@contextlib.contextmanager
def alerting_stack(tmp_path, handler):
    """The rules rendered with the fast override, a webhook server running ``handler`` and
    Alertmanager with the shipped routing pointed at it; yields (rule files, Alertmanager's
    host:port). Prometheus is started by the test, with ``prometheus_args``."""
    am_bin = require_binary("prometheus-alertmanager")
    rules_dir = tmp_path / "rules"
    subprocess.run([sys.executable, str(REPO / "alerts/generate.py"), "--config", str(REPO / "alerts/config.fast.yaml"),
                    "--out", str(rules_dir)], check=True, capture_output=True, timeout=60)
    hook = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    am_port = free_port()
    (tmp_path / "am.yml").write_text(yaml.safe_dump(_alertmanager_config(f"http://127.0.0.1:{hook.server_port}")))
    am = subprocess.Popen(
        [am_bin, f"--config.file={tmp_path / 'am.yml'}", f"--storage.path={tmp_path / 'am'}",
         f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="],
        stdout=(tmp_path / "am.log").open("wb"), stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: http_get(f"http://127.0.0.1:{am_port}/-/ready")[0] == 200, 30, "alertmanager ready")
        yield [str(p) for p in sorted(rules_dir.glob("*.yml"))], f"127.0.0.1:{am_port}"
    finally:
        am.terminate()
        am.wait(timeout=10)
        hook.shutdown()


# Alerts that fire before the notifier has found Alertmanager (the always-on Watchdog) are
# otherwise re-sent only after 1m.
prometheus_args = ["--rules.alert.resend-delay=2s"]


def test_incidents_page_and_ticket_with_runbooks_and_inhibition(start_exporter, start_prometheus, tmp_path):
    _Webhook.received = []
    with alerting_stack(tmp_path, _Webhook) as (rule_files, am_address):
        am_port = am_address.rsplit(":", 1)[1]
        started = time.time()
        ex = start_exporter(EXPORTER_CONFIG)
        prom = start_prometheus([f"127.0.0.1:{ex.port}"], rule_files=rule_files, alertmanager=am_address,
                                extra_args=prometheus_args)
        incident_at = started + 20  # 20 simulated hours at speedup 3600

        def delivered(alertname, backend=None, receiver=None):
            return [
                (t, path, rcv, a) for t, path, rcv, a in _Webhook.received
                if a["labels"]["alertname"] == alertname and a["status"] == "firing"
                and (backend is None or a["labels"].get("backend") == backend)
                and (receiver is None or rcv == receiver)
            ]

        down = wait_until(lambda: delivered("QPUBackendDown", "fake_sherbrooke"), 60, "backend-down page")
        _, path, receiver, alert = down[0]
        assert receiver == "pager" and alert["labels"]["severity"] == "page"
        assert alert["annotations"]["runbook_url"].endswith("alerts/runbooks/QPUBackendDown.md")
        assert (REPO / "alerts/runbooks/QPUBackendDown.md").exists()

        # Hourly samples of the calm fleet's slow noise can alarm elsewhere too; the incident's
        # qubit is the one that must arrive.
        def q3_drift():
            return [d for d in delivered("QPUQubitCoherenceDrift", "fake_fez") if d[3]["labels"].get("qubit") == "3"]

        drift = wait_until(q3_drift, 90, "T1 drift ticket for qubit 3")
        t_drift, _, receiver, alert = drift[0]
        assert receiver == "ticket" and alert["labels"]["severity"] == "ticket"
        assert alert["labels"]["series"] in ("t1:q3", "t2:q3")
        assert alert["annotations"]["runbook_url"].endswith("alerts/runbooks/QPUQubitCoherenceDrift.md")
        print(f"incident -> webhook: {t_drift - incident_at:.1f} s")

        # The same drift on the down backend fires in Prometheus but is inhibited in Alertmanager.
        def firing_in_prometheus():
            return prom.query('ALERTS{alertname="QPUQubitCoherenceDrift",backend="fake_sherbrooke",alertstate="firing"}')
        wait_until(firing_in_prometheus, 60, "drift alert on the down backend firing in Prometheus")
        wait_until(lambda: http_get(f"http://127.0.0.1:{am_port}/api/v2/alerts?filter=alertname%3D%22QPUQubitCoherenceDrift%22")[0] == 200
                   and any(a["labels"].get("backend") == "fake_sherbrooke" for a in json.loads(
                       http_get(f"http://127.0.0.1:{am_port}/api/v2/alerts?filter=alertname%3D%22QPUQubitCoherenceDrift%22")[1])),
                   30, "alertmanager to hold the inhibited alert")
        code, body, _ = http_get(f"http://127.0.0.1:{am_port}/api/v2/alerts?filter=alertname%3D%22QPUQubitCoherenceDrift%22")
        held = [a for a in json.loads(body) if a["labels"].get("backend") == "fake_sherbrooke"]
        assert held and all(a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"] for a in held), held
        # Inhibition holds while the source fires: nothing that started after the backend-down
        # page reached Alertmanager may be delivered. (Hourly samples of the calm fleet can
        # alarm before the page's `for:` elapsed; those are not covered by the rule.)
        down_at = _ts(down[0][3]["startsAt"]) + 3  # the page reaches Alertmanager within a few seconds
        leaked = [d for d in delivered("QPUQubitCoherenceDrift", "fake_sherbrooke") if _ts(d[3]["startsAt"]) > down_at]
        assert not leaked, f"inhibited alert reached a receiver: {leaked[0][3]['labels']}"
        # The Watchdog reaches the dead-man's switch.
        wait_until(lambda: delivered("Watchdog", receiver="deadmans-switch"), 30, "watchdog delivery")
