"""state_url, instance and the state password: accepted means enforced, refused with one line,
and the password only ever from the environment or libpq's own sources (real PostgreSQL with
password authentication)."""

from __future__ import annotations

import os

import pytest

from qpu_exporter.cli import main
from qpu_exporter.config import ConfigError, load_config
from qpu_exporter.store import StateError, Store


def _config(tmp_path, text: str):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


@pytest.fixture(autouse=True)
def _logging_restored():
    """`serve` sets up logging for its process; in this process the next tests keep theirs."""
    import logging

    root, ours = logging.getLogger(), logging.getLogger("qpu_exporter")
    saved = root.handlers[:], root.level, ours.level
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    ours.setLevel(saved[2])


@pytest.fixture(autouse=True)
def _no_state_env(monkeypatch):
    for name in ("QPU_EXPORTER_STATE_PATH", "QPU_EXPORTER_STATE_URL", "QPU_EXPORTER_STATE_PASSWORD",
                 "QPU_EXPORTER_INSTANCE", "PGPASSWORD", "PGPASSFILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("text, needle", [
    ("state_url: postgresql://qpu:s3cret-pw@db:5432/qpu\n", "password in the config file is refused"),
    ("state_url: postgresql://qpu@db:5432/qpu?password=s3cret-pw\n", "password in the config file is refused"),
    ("state_url: postgresql://qpu@db/qpu\nstate_path: /tmp/x.db\n", "not both"),
    ("state_url: mysql://qpu@db/qpu\n", "unsupported scheme"),
    ("state_url: postgresql://qpu@db:5432/\n", "names no database"),
    ("state_url: ./state.db\n", "not a URL"),
    ("instance: 'two words'\n", "invalid instance name"),
])
def test_bad_state_settings_are_refused_with_one_line_and_no_secret(tmp_path, capsys, text, needle):
    path = _config(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert needle in str(err.value) and "\n" not in str(err.value) and "s3cret-pw" not in str(err.value)
    for argv in (["check-config", str(path)], ["serve", "--config", str(path), "--web.listen-address", "127.0.0.1:0"]):
        assert main(argv) == 2
        err_text = capsys.readouterr().err
        assert err_text.count("\n") == 1 and needle in err_text and "s3cret-pw" not in err_text


def test_environment_overrides_and_precedence(tmp_path, monkeypatch):
    path = _config(tmp_path, "state_path: /var/lib/x.db\n")
    assert load_config(path).state_target() == load_config(path).state_path
    monkeypatch.setenv("QPU_EXPORTER_STATE_PATH", str(tmp_path / "env.db"))
    monkeypatch.setenv("QPU_EXPORTER_STATE_URL", "postgresql://qpu:from-a-secret@db:5432/qpu")
    monkeypatch.setenv("QPU_EXPORTER_INSTANCE", "replica-a")
    config = load_config(path)
    # A URL (from the environment: a Secret may carry its password) is used instead of the file.
    assert config.state_target() == "postgresql://qpu:from-a-secret@db:5432/qpu"
    assert config.instance == "replica-a"
    monkeypatch.setenv("QPU_EXPORTER_INSTANCE", "bad name")
    with pytest.raises(ConfigError, match="instance"):
        load_config(path)


def test_instance_defaults(tmp_path, pg_state):
    import socket

    assert Store(tmp_path / "s.db").instance == "default"  # a SQLite file is its own exporter's
    store = pg_state.store()
    assert store.instance == socket.gethostname()
    store.close()


def test_every_password_source_and_a_wrong_one(tmp_path, monkeypatch, pg_state, postgres):
    url = pg_state.target
    config = load_config(_config(tmp_path, f"state_url: {url}\n"))
    with pytest.raises(StateError) as err:  # no password anywhere: one line from the server
        Store.from_config(config)
    assert "\n" not in str(err.value) and "password" in str(err.value) and url in str(err.value)

    monkeypatch.setenv("QPU_EXPORTER_STATE_PASSWORD", postgres.password)
    Store.from_config(config).close()
    monkeypatch.delenv("QPU_EXPORTER_STATE_PASSWORD")

    monkeypatch.setenv("PGPASSWORD", postgres.password)  # libpq's environment variable
    Store.from_config(config).close()
    monkeypatch.delenv("PGPASSWORD")

    passfile = tmp_path / "pgpass"  # libpq's password file
    passfile.write_text(f"127.0.0.1:{postgres.port}:*:qpu:{postgres.password}\n")
    os.chmod(passfile, 0o600)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    Store.from_config(config).close()
    monkeypatch.delenv("PGPASSFILE")

    monkeypatch.setenv("QPU_EXPORTER_STATE_PASSWORD", "wrong-" + postgres.password)
    with pytest.raises(StateError) as err:
        Store.from_config(config)
    assert "password authentication failed" in str(err.value) and postgres.password not in str(err.value)


def test_where_the_state_lives_needs_a_restart(tmp_path):
    from qpu_exporter.config import Config
    from qpu_exporter.reload import restart_only_changes

    running = Config(state_url="postgresql://qpu@db:5432/qpu", instance="replica-a")
    assert restart_only_changes(running, running.model_copy(update={"state_url": "postgresql://qpu@db2/qpu"})) == ["state_url"]
    assert restart_only_changes(running, running.model_copy(update={"instance": "replica-b"})) == ["instance"]
