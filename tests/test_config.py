"""Config validation: bad files exit 2 with one line naming the key and the problem."""

from __future__ import annotations

import pytest

from conftest import REPO, run_cli
from qpu_exporter.config import ConfigError, load_config, parse_duration


def _serve_with(tmp_path, text: str):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    return run_cli("serve", "--config", str(cfg), "--web.listen-address", "127.0.0.1:0", cwd=tmp_path)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("providers:\n  - kind: simulated\n    bogus: 1\n", "providers[0].bogus: unknown key"),
        ("schedule:\n  calibration_interval: 5 minutes\n", "schedule.calibration_interval: invalid duration '5 minutes'"),
        ("providers:\n  - kind: simulated\n    backends: [fake_nowhere]\n", "providers[0].backends: unknown backend 'fake_nowhere'"),
        ("providers:\n  - kind: quantum_cloud\n", "providers[0]"),
        ("providers:\n  - kind: simulated\n    incidents:\n      - {backend: fake_fez, kind: t1_drop, at: soon}\n",
         "providers[0].incidents[0].at: invalid duration 'soon'"),
        ("providers:\n  - kind: simulated\n    backends: [fake_fez]\n    incidents:\n      - {backend: fake_torino, kind: offline}\n",
         "incidents[0].backend: 'fake_torino' is not one of this provider's backends"),
        ("providers:\n  - kind: simulated\n    incidents:\n      - {backend: fake_fez, kind: meteor}\n",
         "providers[0].incidents[0].kind"),
        ("providers:\n  - kind: ibm\n    billing: {plan: flex}\n",
         "providers[0].billing: usd_per_qpu_second: required for plan flex"),
        ("providers:\n  - kind: ibm\n    usd_per_qpu_second: 1.6\n", "providers[0].usd_per_qpu_second: unknown key"),
        ("providers:\n  - kind: braket\n    regions: [eu north 1]\n", "providers[0].regions: not an AWS region name"),
        ("schedule: [1, 2]\n", "schedule"),
        ("providers: [\n", "line "),
        ("- just\n- a list\n", "top level must be a mapping"),
    ],
)
def test_bad_config_exits_2_with_one_line(tmp_path, text, expected):
    result = _serve_with(tmp_path, text)
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0], lines[0]
    assert str(tmp_path / "bad.yaml") in lines[0]
    assert "Traceback" not in result.stderr


def test_a_price_table_with_a_key_it_does_not_use_is_refused(tmp_path):
    table = tmp_path / "prices.json"
    table.write_text('{"braket": {"default_per_task_usd": 0.3, "devices": {}}, "ibm": {"per_qpu_second_usd": 1.6}}')
    result = _serve_with(tmp_path, f"providers:\n  - kind: braket\n    price_table: {table}\n")
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{table}: ibm: unknown key" in lines[0], result.stderr
    checked = run_cli("check-config", str(tmp_path / "bad.yaml"), cwd=tmp_path)  # refused there too
    assert checked.returncode == 2 and f"{table}: ibm: unknown key" in checked.stderr, checked


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_unreadable_config_file(tmp_path, kind):
    path = tmp_path / "nope.yaml"
    if kind == "directory":
        path.mkdir()
    result = run_cli("serve", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot read config file" in lines[0] and str(path) in lines[0], result.stderr


def test_bad_listen_address(tmp_path):
    result = run_cli("serve", "--web.listen-address", "localhost", cwd=tmp_path)
    assert result.returncode == 2
    assert "--web.listen-address" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_check_config_accepts_the_shipped_example():
    result = run_cli("check-config", str(REPO / "deploy/examples/simulated.yaml"))
    assert result.returncode == 0, result.stderr


def test_example_matches_design_section_5():
    cfg = load_config(REPO / "deploy/examples/simulated.yaml")
    sim = cfg.providers[0]
    assert sim.backends == ["fake_sherbrooke", "fake_torino"] and sim.seed == 7 and sim.speedup == 60
    drop, offline = sim.incidents
    assert (drop.kind, drop.qubit, drop.factor, drop.at, drop.duration) == ("t1_drop", 3, 0.2, 30, 7200)
    assert (offline.kind, offline.at, offline.duration) == ("offline", 60, 600)
    assert cfg.schedule.calibration_interval == 300 and cfg.schedule.jobs_interval == 60
    assert cfg.probes.budget.shots_per_day == 200000 and cfg.probes.budget.usd_per_day == 50


def test_default_fleet_is_eagle_heron_r2_heron_r3():
    from qpu_exporter.providers.fake_snapshots import load_snapshot, processor_name

    cfg = load_config(None)
    (sim,) = cfg.providers
    assert sorted(processor_name(load_snapshot(b)[0]) for b in sim.backends) == ["Eagle r3", "Heron r2", "Heron r3"]


def test_state_path_env_override(tmp_path, monkeypatch):
    monkeypatch.setenv("QPU_EXPORTER_STATE_PATH", str(tmp_path / "x.db"))
    assert load_config(None).state_path == tmp_path / "x.db"


@pytest.mark.parametrize("text, seconds", [("30s", 30), ("5m", 300), ("2h", 7200), ("1d", 86400), ("250ms", 0.25), (45, 45)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "5", "-1s", "1y", "s", True, None])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_ibm_token_is_not_a_config_key(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("providers:\n  - kind: ibm\n    token: abc123\n")
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert "providers[0].token: unknown key" in str(err.value)
    assert "abc123" not in str(err.value)
