"""Static checks of the alerting mixin: promtool/amtool, structure, runbooks, generated files.

Needs the Debian binaries promtool and amtool; with CI set, a missing binary is a failure, not a skip.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "alerts"
RULES = ALERTS / "rules"
TESTS = ALERTS / "tests"
RUNBOOKS = ALERTS / "runbooks"
AM_CONFIG = ALERTS / "alertmanager.yml"
GENERATE = ALERTS / "generate.py"
README = ALERTS / "README.md"

RULE_FILES = sorted(RULES.glob("*.yml"))
RUNBOOK_SECTIONS = ("## Meaning", "## Impact", "## Diagnosis", "## Mitigation", "## Escalation")
# An always-firing alert cannot have a near miss.
ALWAYS_FIRING = {"Watchdog"}
RECORD_NAME = re.compile(r"^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$")


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found; run: sudo apt-get install -y --no-install-recommends prometheus prometheus-alertmanager"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _run(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=60)


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _rules(kind: str) -> list[dict]:
    return [rule for path in RULE_FILES for group in _load(path)["groups"] for rule in group["rules"] if kind in rule]


def _alert_names() -> set[str]:
    return {rule["alert"] for rule in _rules("alert")}


def _test_cases() -> list[dict]:
    return [case for path in sorted(TESTS.glob("*_test.yml")) for group in _load(path)["tests"] for case in group.get("alert_rule_test", [])]


def test_every_concern_is_rendered():
    assert [p.name for p in RULE_FILES] == sorted(
        ["backend.yml", "calibration.yml", "drift.yml", "probes.yml", "jobs.yml", "cost.yml", "exporter.yml",
         "runs.yml", "workloads.yml"]
    )


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules(rule_file: Path):
    result = _run(_binary("promtool"), "check", "rules", rule_file)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests(rule_file: Path):
    test_file = TESTS / f"{rule_file.stem}_test.yml"
    assert test_file.exists(), f"{rule_file.name} has no test file {test_file.name}"
    assert _load(test_file)["rule_files"] == [f"../rules/{rule_file.name}"]
    result = _run(_binary("promtool"), "test", "rules", test_file.name, cwd=TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_case_and_a_near_miss():
    fires: dict[str, list[dict]] = {}
    quiet: set[str] = set()
    for case in _test_cases():
        if case.get("exp_alerts"):
            fires.setdefault(case["alertname"], []).extend(case["exp_alerts"])
        else:
            quiet.add(case["alertname"])
    for name in sorted(_alert_names()):
        assert name in fires, f"{name}: no test case where it fires"
        for expected in fires[name]:
            assert expected.get("exp_labels", {}).get("severity") in ("page", "ticket"), f"{name}: labels not asserted"
            assert {"summary", "description", "runbook_url"} <= set(expected.get("exp_annotations", {})), (
                f"{name}: annotations not asserted"
            )
        if name not in ALWAYS_FIRING:
            assert name in quiet, f"{name}: no near-miss case where it stays silent"


def test_alert_labels_and_annotations():
    for rule in _rules("alert"):
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("page", "ticket"), name
        annotations = rule["annotations"]
        for key in ("summary", "description", "runbook_url"):
            assert annotations.get(key, "").strip(), f"{name}: missing {key}"
        assert annotations["runbook_url"].endswith(f"/alerts/runbooks/{name}.md"), name
        if name not in ALWAYS_FIRING:
            assert "{{" in annotations["description"], f"{name}: description shows no value or label"
        if "dashboard_url" in annotations:
            assert re.search(r"/d/qpu-(executive|oncall|qubit|workloads|runs)\b", annotations["dashboard_url"]), name


def test_runbooks_match_alerts():
    runbooks = {p.stem for p in RUNBOOKS.glob("*.md")}
    alerts = _alert_names()
    assert alerts - runbooks == set(), "alerts without a runbook"
    assert runbooks - alerts == set(), "runbooks without an alert"
    for name in sorted(runbooks):
        text = (RUNBOOKS / f"{name}.md").read_text(encoding="utf-8")
        assert text.startswith(f"# {name}\n"), name
        positions = [text.find(section) for section in RUNBOOK_SECTIONS]
        assert -1 not in positions and positions == sorted(positions), f"{name}: sections missing or out of order"


def test_runbooks_give_the_cli_steps():
    texts = {p.stem: p.read_text(encoding="utf-8") for p in RUNBOOKS.glob("*.md")}
    for name in ("QPUQubitCoherenceDrift", "QPUReadoutErrorDrift", "QPUGateErrorDrift", "QPUProbeEPCRegression"):
        assert "qpu-exporter backtest" in texts[name], name
    for name in ("QPUBackendDown", "QPUProbeFailing", "QPUProbeEPCRegression", "QPUCalibrationStale"):
        assert "qpu-exporter probe --backend" in texts[name], name


def test_recording_rule_names_follow_convention_and_are_documented():
    readme = README.read_text(encoding="utf-8")
    names = [rule["record"] for rule in _rules("record")]
    assert len(names) == len(set(names)), "duplicate recording rule"
    for name in names:
        assert RECORD_NAME.match(name), f"{name} is not level:metric:operations"
        assert f"`{name}`" in readme, f"{name} is not listed in alerts/README.md"
    for alert in _alert_names():
        assert f"`{alert}`" in readme, f"{alert} is not listed in alerts/README.md"


def test_amtool_check_config():
    result = _run(_binary("amtool"), "check-config", AM_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("receiver", "labels"),
    [
        ("pager", ["alertname=QPUBackendDown", "severity=page", "provider=ibm", "backend=ibm_fez"]),
        ("ticket", ["alertname=QPUCalibrationStale", "severity=ticket", "provider=ibm", "backend=ibm_fez"]),
        ("deadmans-switch", ["alertname=Watchdog", "severity=ticket"]),
        ("ticket", ["alertname=SomethingWithoutSeverity"]),
        ("team-chem", ["alertname=QPUWorkloadCostBudgetBurn", "severity=page", "concern=workloads", "workload=chem"]),
        ("pager", ["alertname=QPUWorkloadCostBudgetBurn", "severity=page", "concern=workloads", "workload=ml"]),
        ("ticket", ["alertname=QPUWorkloadErrorBudgetBurn", "severity=ticket", "concern=workloads", "workload=ml"]),
    ],
    ids=["page", "ticket", "watchdog", "default", "workload-team", "workload-page", "workload-ticket"],
)
def test_amtool_routes(receiver: str, labels: list[str]):
    result = _run(_binary("amtool"), "config", "routes", "test", f"--config.file={AM_CONFIG}", f"--verify.receivers={receiver}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_amtool_route_test_can_fail():
    result = _run(
        _binary("amtool"), "config", "routes", "test", f"--config.file={AM_CONFIG}", "--verify.receivers=pager",
        "alertname=Watchdog", "severity=ticket",
    )
    assert result.returncode != 0


def test_inhibitions_match_the_rules():
    config = _load(AM_CONFIG)
    concerns = {rule["labels"]["concern"] for rule in _rules("alert")}
    alerts = _alert_names()
    for inhibit in config["inhibit_rules"]:
        for matcher in inhibit["source_matchers"] + inhibit["target_matchers"]:
            label, _, value = re.match(r'(\w+)(=~|=)"(.*)"', matcher).groups()
            if label == "alertname":
                assert value in alerts, matcher
            if label == "concern":
                assert set(value.split("|")) <= concerns, matcher


def test_generated_rules_are_current():
    result = _run(sys.executable, GENERATE, "--check")
    assert result.returncode == 0, result.stderr


def test_check_detects_a_stale_file(tmp_path: Path):
    shutil.copytree(RULES, tmp_path / "rules")
    path = tmp_path / "rules" / "backend.yml"
    path.write_text(path.read_text(encoding="utf-8").replace("for: 10m", "for: 11m"), encoding="utf-8")
    result = _run(sys.executable, GENERATE, "--check", "--out", tmp_path / "rules")
    assert result.returncode == 1
    assert "backend.yml" in result.stderr


def test_override_config_renders_valid_rules(tmp_path: Path):
    out = tmp_path / "fast"
    result = _run(sys.executable, GENERATE, "--config", ALERTS / "config.fast.yaml", "--out", out)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.glob("*.yml")) == [p.name for p in RULE_FILES]
    down = next(r for r in yaml.safe_load((out / "backend.yml").read_text())["groups"][0]["rules"] if r.get("alert") == "QPUBackendDown")
    assert down["for"] == "10s"
    check = _run(_binary("promtool"), "check", "rules", *sorted(out.glob("*.yml")))
    assert check.returncode == 0, check.stdout + check.stderr


def test_override_with_unknown_key_is_rejected(tmp_path: Path):
    override = tmp_path / "typo.yaml"
    override.write_text("backend:\n  down: {fro: 10s}\n", encoding="utf-8")
    result = _run(sys.executable, GENERATE, "--config", override, "--out", tmp_path / "out")
    assert result.returncode == 2
    assert "backend.down.fro" in result.stderr
    assert not (tmp_path / "out").exists()


def test_unit_tests_catch_a_changed_threshold(tmp_path: Path):
    """The promtool tests pin the default config: a longer `for:` must make them fail."""
    override = tmp_path / "slow.yaml"
    override.write_text("backend:\n  down: {for: 30m}\n", encoding="utf-8")
    rules = tmp_path / "rules"
    assert _run(sys.executable, GENERATE, "--config", override, "--out", rules).returncode == 0
    tests = tmp_path / "tests"
    tests.mkdir()
    shutil.copy(TESTS / "backend_test.yml", tests / "backend_test.yml")
    result = _run(_binary("promtool"), "test", "rules", "backend_test.yml", cwd=tests)
    assert result.returncode == 1
    assert "QPUBackendDown" in result.stdout + result.stderr
