"""End to end: the docs' QAOA example (docs/instrument.md, run as written) and a canary workload on
a fake IBM backend and Braket's LocalSimulator push to the real Pushgateway (Debian
prometheus-pushgateway); the real Prometheus scrapes it with honor_labels. The series must arrive
with the values the libraries' registries hold, and every panel of the "QPU workloads / Runs"
dashboard must return data from them."""

from __future__ import annotations

import json
import math
import re
import socket
import sys
import urllib.parse

import pytest
from prometheus_client import generate_latest

from conftest import REPO, http_get, parse_samples, wait_until

sys.path.insert(0, str(REPO / "dashboards"))

from qpudash.queries import panel_queries, substitute, variable_queries  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240),
              pytest.mark.filterwarnings("ignore:The SamplerV2 class is deprecated:DeprecationWarning")]

DOC = REPO / "docs" / "instrument.md"
BOARD = REPO / "dashboards" / "json" / "qpu-runs.json"
# Grafana's built-ins: windows covering the whole test.
BUILTINS = {"__rate_interval": "5m", "__interval": "2s", "__interval_ms": "2000",
            "__range": "10m", "__range_s": "600", "__range_ms": "600000"}


def docs_example() -> str:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## A complete example"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def _run_canary(gateway: str):
    """A second workload: a Bell check on a fake IBM backend in local testing mode (it has a
    calibration date), retried after a refused submission, and on Braket's local simulator."""
    from braket.circuits import Circuit
    from braket.devices import LocalSimulator
    from qiskit import QuantumCircuit
    from qiskit.transpiler import generate_preset_pass_manager
    from qiskit_ibm_runtime import SamplerV2
    from qiskit_ibm_runtime.fake_provider import FakeManilaV2

    from qpu_exporter.instrument import Instrumentation

    inst = Instrumentation(workload="bell-canary", fidelity_objective=0.999)
    backend = FakeManilaV2()
    bell = QuantumCircuit(2, name="bell-check")
    bell.h(0)
    bell.cx(0, 1)
    bell.measure_all()
    isa = generate_preset_pass_manager(optimization_level=1, backend=backend, seed_transpiler=1).run(bell)
    sampler = inst.wrap(SamplerV2(mode=backend), reference="ideal")
    device = inst.wrap(LocalSimulator(), reference="ideal")
    with pytest.raises(ValueError):
        sampler.run([isa], shots=0)

    def check() -> None:  # one round: the Bell check on both backends, then a push
        sampler.run([isa], shots=500).result()
        device.run(Circuit().h(0).cnot(0, 1), shots=300).result()
        assert inst.push(gateway, job="bell-canary")

    check()
    return inst, check


def _query(port: int, promql: str) -> dict:
    code, body, _ = http_get(f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
    data = json.loads(body)
    assert code == 200 and data["status"] == "success", f"{promql}: {body[:300]!r}"
    return data["data"]


def _key(labels: dict) -> tuple:
    """Labels as a comparable key: no __name__, bucket bounds as numbers ("1" and "1.0" alike)."""
    return tuple(sorted((k, repr(float(v)) if k == "le" else v) for k, v in labels.items() if k != "__name__"))


def _values(port: int, promql: str) -> dict[tuple, float]:
    return {_key(r["metric"]): float(r["value"][1]) for r in _query(port, promql)["result"]}


def _finite(data: dict) -> bool:
    if data["resultType"] == "scalar":
        return math.isfinite(float(data["result"][1]))
    return any(math.isfinite(float(r["value"][1])) for r in data["result"])


def _board_problems(port: int, board: dict) -> dict[str, str]:
    values = dict(BUILTINS)
    for variable, selector, label in variable_queries(board):
        params = [("match[]", substitute(selector, values))] if selector else []
        code, body, _ = http_get(f"http://127.0.0.1:{port}/api/v1/label/{label}/values?" + urllib.parse.urlencode(params))
        assert code == 200, body
        if not json.loads(body)["data"]:
            return {variable["name"]: "no values"}
        values[variable["name"]] = variable["allValue"]  # All, as the board opens
    problems = {}
    for q in panel_queries(board):
        data = _query(port, substitute(q.expr, values))
        if not _finite(data):
            problems[f"{q.panel} / {q.ref_id}"] = f"no data: {q.expr}"
    return problems


def test_pushed_runs_reach_prometheus_and_fill_the_runs_board(start_pushgateway, start_prometheus, tmp_path,
                                                               monkeypatch):
    gateway = start_pushgateway()
    prom = start_prometheus([f"127.0.0.1:{gateway.port}"], job_extra={"honor_labels": True})
    wait_until(lambda: _values(prom.port, "up") and all(v == 1 for v in _values(prom.port, "up").values()), 60,
               "Prometheus scraping the Pushgateway")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PUSHGATEWAY", gateway.url)
    example: dict = {"__name__": "__main__"}
    exec(compile(docs_example(), str(DOC), "exec"), example)  # noqa: S102 - the documented example, as written
    qaoa = example["inst"]
    canary, check_again = _run_canary(gateway.url)
    # A second round once Prometheus has the first: rates (and latency quantiles) need counters
    # that moved between two scrapes, however fast the first round was.
    wait_until(lambda: _values(prom.port, 'qpu_client_shots_total{job="bell-canary"}'), 60, "the canary's first push")
    check_again()
    host = socket.gethostname()

    lines = [json.loads(x) for x in (tmp_path / "qaoa-runs.jsonl").read_text().splitlines()]
    assert len(lines) == example["evaluations"] > 3 and all(line["status"] == "ok" for line in lines)

    # Prometheus holds exactly what each registry holds, under the pushed job and the host as instance.
    expected = {}
    for inst, job in ((qaoa, "qaoa-ring4"), (canary, "bell-canary")):
        for name, labels, value in parse_samples(generate_latest(inst.registry).decode()):
            if name.endswith("_created"):
                continue
            expected[(name, _key({**labels, "job": job, "instance": host}))] = value
    names = {name for name, _ in expected}

    missing: dict = {}

    def arrived() -> bool:
        got = {}
        for name in names:
            for labels, value in _values(prom.port, f'{name}{{job=~"qaoa-ring4|bell-canary"}}').items():
                got[(name, labels)] = value
        missing.clear()
        missing.update({k: (v, got.get(k)) for k, v in expected.items() if k not in got or got[k] != pytest.approx(v)})
        return not missing

    try:
        wait_until(arrived, 60, "every pushed sample in Prometheus with its value", interval=1)
    except AssertionError:
        raise AssertionError(f"{len(missing)} samples missing or different (expected, got), e.g. "
                             f"{sorted(missing.items())[:3]}") from None

    def one(promql: str) -> float:
        [value] = _values(prom.port, promql).values()
        return value

    assert one('qpu_client_executions_total{job="qaoa-ring4", status="ok"}') == example["evaluations"]
    assert one('qpu_client_shots_total{job="qaoa-ring4"}') == 2000 * example["evaluations"]
    assert 0.5 < one('qpu_client_hellinger_fidelity_ratio{job="qaoa-ring4", circuit="qaoa-ring4"}') < 1
    assert one('qpu_client_hellinger_fidelity_ratio{job="qaoa-ring4"}') == pytest.approx(lines[-1]["hellinger_fidelity"])
    assert one('qpu_client_hellinger_fidelity_objective_ratio{job="qaoa-ring4"}') == 0.9
    assert not _values(prom.port, 'qpu_client_calibration_age_seconds{job="qaoa-ring4"}')  # Aer: absent
    # The fake backend's calibration is its snapshot's, years before the submission.
    assert one('qpu_client_calibration_age_seconds{job="bell-canary", backend="fake_manila"}') > 86400
    assert one('qpu_client_retries_total{job="bell-canary", backend="fake_manila"}') == 1
    assert one('qpu_client_executions_total{job="bell-canary", backend="fake_manila", status="failed"}') == 1

    board = json.loads(BOARD.read_text(encoding="utf-8"))
    last: dict = {}

    def board_has_data() -> bool:
        last["problems"] = _board_problems(prom.port, board)
        return not last["problems"]

    try:
        wait_until(board_has_data, 30, "every runs-board panel to return data", interval=1)
    except AssertionError:
        raise AssertionError("runs board panels without data:\n" + "\n".join(
            f"  {k}: {v}" for k, v in sorted(last.get("problems", {}).items()))) from None
