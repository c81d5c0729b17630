"""Cost, usage and unknown-cost counts of one fixed, stubbed IBM + Braket history, run through
the real providers, poller and store (HTTP stubbed with `responses` for qiskit-ibm-runtime,
botocore answered in-process for Braket), next to what the providers actually bill for it.

    .venv/bin/python benchmarks/provider_cost.py
    PYTHONPATH=/tmp/qpu-main/exporter .venv/bin/python benchmarks/provider_cost.py   # another checkout

The history (2026-11-20, IBM Pay-As-You-Go at USD 1.60 per QPU second, Braket list prices):

* IBM ibm_sherbrooke: 6 job-mode jobs (20 s each, final at once); 2 jobs whose usage is still
  "pending" at the first poll (final 7 s and 9 s ten minutes later); a batch of 2 jobs (10 s
  each); a session of 3 jobs (20 s of quantum time each) whose active wall-clock time is 300 s.
* Braket Garnet: 2 completed on-demand tasks (1000 and 100 shots), 1 failed and 1 cancelled
  task (not billed), 1 task inside a Braket Direct reservation (500 shots, paid by the
  reservation), and 1 task queued an hour before the first poll that stays queued for two days
  while newer tasks finish, then completes (2000 shots) after a restart.
* Braket "Ankaa-9": a device in no price table and publishing no deviceCost, 1 completed task.

Polls: two at t0 and t0 + 10 min; a restart at t0 + 2 d (newer tasks finished); another
restart an hour later (the old task has completed). Works against the code of any checkout
that has the same poller, store and provider constructors (it adapts to either config shape).
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlparse

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures"
API = "https://quantum.cloud.ibm.com/api/v1"
CRN = "crn:v1:bluemix:public:quantum-computing:us-east:a/abc123:instance-1::"
T0 = datetime(2026, 11, 20, 9, 30, tzinfo=timezone.utc).timestamp()
DAY = 86400.0
RATE = 1.60  # IBM Pay-As-You-Go, USD per QPU second
GARNET = "arn:aws:braket:eu-north-1::device/qpu/iqm/Garnet"
ANKAA9 = "arn:aws:braket:eu-north-1::device/qpu/rigetti/Ankaa-9"


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- the history ---------------------------------------------------------------------------------

def ibm_history():
    """(jobs, metrics(job, now) -> dict, sessions(sid, now) -> dict, truth USD and seconds)."""
    jobs, usage = [], {}

    def job(job_id, created, seconds, session=None, pending_until=None):
        jobs.append({"id": job_id, "backend": "ibm_sherbrooke", "state": {"status": "Completed"},
                     "status": "Completed", "created": iso(created), "ended": iso(created + 120),
                     "session_id": session, "program": {"id": "sampler"}})
        usage[job_id] = (created, seconds, pending_until)

    for i in range(6):
        job(f"job{i}", T0 - 3600 + 60 * i, 20.0)
    job("pend7", T0 - 1800, 7.0, pending_until=T0 + 300)
    job("pend9", T0 - 1700, 9.0, pending_until=T0 + 300)
    job("batch1", T0 - 1500, 10.0, session="batch-1")
    job("batch2", T0 - 1490, 10.0, session="batch-1")
    for i in range(3):
        job(f"sess{i}", T0 - 1400 + 10 * i, 20.0, session="sess-1")

    def metrics(job_id, now):
        created, seconds, pending_until = usage[job_id]
        final = pending_until is None or now >= pending_until
        return {"timestamps": {"created": iso(created), "running": iso(created + 60), "finished": iso(created + 120)},
                "usage": {"qpu_charge_time_seconds": seconds if final else 0, "status": "completed" if final else "pending"}}

    def session(sid, now):
        mode = "batch" if sid.startswith("batch") else "dedicated"
        return {"id": sid, "backend_name": "ibm_sherbrooke", "mode": mode, "state": "closed",
                "elapsed_time": 300 if mode == "dedicated" else 25, "closed_at": iso(T0 - 1000)}

    billed_seconds = 6 * 20 + 7 + 9 + 2 * 10 + 300  # the session bills its active time, not its jobs'
    return jobs, metrics, session, billed_seconds, billed_seconds * RATE


def braket_tasks(phase: int) -> list[dict]:
    def task(n, status, shots, created, ended=None, device=GARNET):
        t = {"quantumTaskArn": f"arn:aws:braket:eu-north-1:123456789012:quantum-task/{n:08d}-0000-4000-8000-000000000000",
             "status": status, "deviceArn": device, "shots": shots, "outputS3Bucket": "b", "outputS3Directory": f"t/{n}",
             "createdAt": datetime.fromtimestamp(created, tz=timezone.utc)}
        if ended is not None:
            t["endedAt"] = datetime.fromtimestamp(ended, tz=timezone.utc)
        return t

    out = [task(1, "COMPLETED", 1000, T0 - 5400, T0 - 5000), task(2, "COMPLETED", 100, T0 - 4800, T0 - 4700),
           task(3, "FAILED", 500, T0 - 4200, T0 - 4100), task(4, "CANCELLED", 200, T0 - 3900, T0 - 3800),
           task(5, "COMPLETED", 500, T0 - 3000, T0 - 2900),  # in a reservation
           task(8, "COMPLETED", 300, T0 - 2000, T0 - 1900, device=ANKAA9)]
    old = (task(6, "QUEUED", 2000, T0 - 3600) if phase < 3
           else task(6, "COMPLETED", 2000, T0 - 3600, T0 + 2 * DAY + 1800))
    out.append(old)
    if phase >= 2:
        out.append(task(7, "COMPLETED", 100, T0 + 2 * DAY - 3000, T0 + 2 * DAY - 2900))
    return out


def braket_truth() -> float:
    garnet = (0.30 + 0.00145 * 1000) + (0.30 + 0.00145 * 100) + (0.30 + 0.00145 * 100) + (0.30 + 0.00145 * 2000)
    return garnet  # plus the reservation (paid per hour, not per task) and Ankaa-9 (no price)


# --- stubs at the network edge ----------------------------------------------------------------------

def ibm_stub(rs, history, clock):
    import jwt

    jobs, metrics, session, _, _ = history
    props = json.loads(gzip.open(FIX / "ibm" / "props_sherbrooke.json.gz").read())
    conf = json.loads(gzip.open(FIX / "ibm" / "conf_sherbrooke.json.gz").read())

    def iam(request):
        now = int(time.time())
        token = jwt.encode({"iat": now, "exp": now + 3600}, "k" * 32, algorithm="HS256")
        return 200, {}, json.dumps({"access_token": token, "refresh_token": "r", "token_type": "Bearer",
                                    "expires_in": 3600, "expiration": now + 3600})

    def job_list(request):
        q = {k: v[0] for k, v in parse_qs(urlparse(request.url).query).items()}
        pool = [] if q.get("pending") == "true" else jobs
        if "created_after" in q:
            floor = datetime.fromisoformat(q["created_after"].replace("Z", "+00:00")).timestamp()
            pool = [j for j in pool if datetime.fromisoformat(j["created"].replace("Z", "+00:00")).timestamp() >= floor]
        return 200, {}, json.dumps({"jobs": pool, "count": len(pool)})

    rs.add_callback("POST", "https://iam.cloud.ibm.com/identity/token", callback=iam)
    rs.add("POST", re.compile(r"https://api\.global-search-tagging\.cloud\.ibm\.com/v3/resources/search.*"),
           json={"items": [{"crn": CRN, "service_plan_unique_id": "plan-1", "name": "inst",
                            "doc": {"extensions": {"allocation": 1}}, "tags": []}]})
    rs.add("GET", re.compile(r"https://globalcatalog\.cloud\.ibm\.com/api/v1/.*"),
           json={"overview_ui": {"en": {"display_name": "Standard"}}, "metadata": {"pricing": {"type": "paid"}}})
    rs.add("GET", re.compile(re.escape(API) + r"/backends(\?.*)?$"), json={"devices": [{"name": "ibm_sherbrooke"}]})
    rs.add("GET", f"{API}/backends/ibm_sherbrooke/configuration", json={**conf, "backend_name": "ibm_sherbrooke"})
    rs.add("GET", re.compile(re.escape(f"{API}/backends/ibm_sherbrooke/properties") + r"(\?.*)?$"), json=props)
    rs.add_callback("GET", re.compile(re.escape(API) + r"/jobs(\?.*)?$"), callback=job_list)
    rs.add_callback("GET", re.compile(re.escape(API) + r"/jobs/[^/]+/metrics$"),
                    callback=lambda r: (200, {}, json.dumps(metrics(urlparse(r.url).path.split("/")[-2], clock()))))
    rs.add_callback("GET", re.compile(re.escape(API) + r"/sessions/[^/?]+$"),
                    callback=lambda r: (200, {}, json.dumps(session(urlparse(r.url).path.split("/")[-1], clock()))))


def braket_client_answers(client, phase: int) -> None:
    """Answers every Braket call in-process (whatever calls a version of the provider makes)."""
    from botocore.awsrequest import AWSResponse

    garnet = json.loads((FIX / "braket" / "get_device_Garnet.json").read_text())
    ankaa = json.loads((FIX / "braket" / "get_device_Ankaa-3.json").read_text())
    caps = json.loads(ankaa["deviceCapabilities"])
    caps["service"]["deviceCost"] = None  # publishes no price
    ankaa = {**ankaa, "deviceArn": ANKAA9, "deviceName": "Ankaa-9", "deviceCapabilities": json.dumps(caps)}
    devices = {GARNET: garnet, ANKAA9: ankaa}

    def keep_params(params, context, **_):
        context["api_params"] = dict(params)

    def answer(model, context, **_):
        params = context["api_params"]
        tasks = braket_tasks(phase)
        if model.name == "GetDevice":
            parsed = devices[params["deviceArn"]]
        elif model.name == "SearchQuantumTasks":
            filters = {f["name"]: f["values"][0] for f in params["filters"]}
            floor = datetime.fromisoformat(filters["createdAt"].replace("Z", "+00:00")).timestamp()
            parsed = {"quantumTasks": [t for t in tasks if t["deviceArn"] == filters["deviceArn"]
                                       and t["createdAt"].timestamp() >= floor]}
        elif model.name == "GetQuantumTask":
            t = next(t for t in tasks if t["quantumTaskArn"] == params["quantumTaskArn"])
            parsed = {**t, "deviceParameters": "{}", "failureReason": "The quantum task timed out."}
            if t["quantumTaskArn"].rsplit("/", 1)[1].startswith("00000005"):
                parsed["associations"] = [{"arn": "arn:aws:braket:eu-north-1:123456789012:reservation/r1",
                                           "type": "RESERVATION_TIME_WINDOW_ARN"}]
        else:
            raise AssertionError(f"unexpected Braket call {model.name}")
        parsed = {**parsed, "ResponseMetadata": {"HTTPStatusCode": 200, "HTTPHeaders": {}, "RetryAttempts": 0}}
        return AWSResponse("https://braket.eu-north-1.amazonaws.com", 200, {}, None), parsed

    client.meta.events.register("before-parameter-build.braket.*", keep_params)
    client.meta.events.register("before-call.braket.*", answer)


# --- the run ------------------------------------------------------------------------------------

def build(clock):
    """IBM and Braket providers from config, whichever config shape this checkout has."""
    from pydantic import ValidationError

    from qpu_exporter.config import Config
    from qpu_exporter.providers.factory import build_providers

    braket = {"kind": "braket", "region": "eu-north-1", "devices": [GARNET, ANKAA9]}
    for ibm in ({"kind": "ibm", "instance": CRN, "billing": {"plan": "pay_as_you_go"}},  # this branch
                {"kind": "ibm", "instance": CRN, "usd_per_qpu_second": RATE}):  # before #13
        try:
            config = Config.model_validate({"providers": [ibm, braket]})
            break
        except ValidationError:
            continue
    providers = build_providers(config, origin=T0, clock=clock)
    import boto3

    session = boto3.Session(region_name="eu-north-1", aws_access_key_id="x", aws_secret_access_key="y")
    providers[1]._boto_session = session
    for p in providers:
        p._environ = {"QISKIT_IBM_TOKEN": "benchmark-token"} if p.kind == "ibm" else None
    return providers


def run() -> dict:
    import responses

    from qpu_exporter.scheduler import Poller
    from qpu_exporter.store import Store
    from qpu_exporter.view import FleetView

    history = ibm_history()
    now = [T0]
    with tempfile.TemporaryDirectory() as tmp, responses.RequestsMock(assert_all_requests_are_fired=False) as rs:
        ibm_stub(rs, history, lambda: now[0])
        for phase, times in ((1, (T0, T0 + 600)), (2, (T0 + 2 * DAY,)), (3, (T0 + 2 * DAY + 3600,))):
            providers = build(lambda: now[0])  # a restart: new providers on the same state file
            braket_client_answers(providers[1].client("eu-north-1"), phase)
            store = Store(Path(tmp) / "state.db")
            poller = Poller(providers, store, FleetView(), clock=lambda: now[0])
            for t in times:
                now[0] = t
                for p in providers:
                    for name in poller.discover(p):
                        poller.poll_jobs(p, name)
            counters = store.counters()
            store.close()
    return counters


def main() -> int:
    logging.disable(logging.WARNING)
    import qpu_exporter

    counters = run()
    _, _, _, ibm_seconds, ibm_usd = ibm_history()
    rows: dict[tuple[str, str], dict] = {}
    for (name, labels), value in counters.items():
        lab = dict(labels)
        if "backend" not in lab or name not in ("qpu_jobs_total", "qpu_job_usage_seconds_total", "qpu_cost_usd_total",
                                                 "qpu_jobs_cost_unknown_total"):
            continue
        row = rows.setdefault((lab["provider"], lab["backend"]), {"unknown": {}})
        if name == "qpu_jobs_cost_unknown_total":
            row["unknown"][lab["reason"]] = row["unknown"].get(lab["reason"], 0) + value
        else:
            row[name] = row.get(name, 0.0) + value
    truth = {("ibm", "ibm_sherbrooke"): (ibm_seconds, f"{ibm_usd:.2f}"),
             ("braket", "Garnet"): (None, f"{braket_truth():.2f} + reservation"),
             ("braket", "Ankaa-9"): (None, "unpublished")}
    print(f"code: {Path(qpu_exporter.__file__).resolve().parents[1]}")
    print("| provider/backend | jobs | usage s | cost USD | cost unknown (jobs by reason) | billed usage s | billed USD |")
    print("|---|---|---|---|---|---|---|")
    for key in sorted(rows):
        r = rows[key]
        unknown = ", ".join(f"{k} {v:.0f}" for k, v in sorted(r["unknown"].items())) or "-"
        seconds, usd = truth.get(key, (None, "?"))
        usage = r.get("qpu_job_usage_seconds_total")
        print(f"| {key[0]}/{key[1]} | {r.get('qpu_jobs_total', 0):.0f} | {'-' if usage is None else f'{usage:.0f}'} | "
              f"{r.get('qpu_cost_usd_total', 0):.2f} | {unknown} | {seconds if seconds is not None else 'not published'} | {usd} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
