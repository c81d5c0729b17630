"""Deployment files: docker compose stack, Grafana provisioning, Kubernetes manifests, systemd unit.

Docker cannot run here, so the compose file is checked structurally (services, referenced files,
ports, volumes, the wiring between Prometheus, Alertmanager and Grafana); the Prometheus config is
checked by promtool together with the rules it loads; Kubernetes manifests are validated against the
Kubernetes JSON schemas (kubernetes-validate, offline) and the prometheus-operator CRDs
structurally; the systemd unit by systemd-analyze when present.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
REPLICAS = DEPLOY / "kubernetes-replicas"  # overlay: a Deployment on PostgreSQL instead of the StatefulSet
COMPOSE = DEPLOY / "docker-compose.yml"
EXPORTER_PORT = 9961
STATE_DIR = "/var/lib/qpu-exporter"
CREDENTIALS = {"QISKIT_IBM_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
KUBERNETES_VERSION = "1.30.0"


def _binary(name: str, required_in_ci: bool = True) -> str:
    path = shutil.which(name)
    if path:
        return path
    if required_in_ci and os.environ.get("CI"):
        pytest.fail(f"{name} is required in CI")
    pytest.skip(f"{name} not installed")


def _yaml(path: Path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _compose() -> dict:
    return _yaml(COMPOSE)


def _alert_job() -> str:
    selector = _yaml(ROOT / "alerts" / "config.yaml")["job_selector"]
    m = re.fullmatch(r'job="([^"]+)"', selector)
    assert m, selector
    return m.group(1)


def _mounts(service: dict) -> dict[str, str]:
    """container path -> source (host path relative to deploy/, or a named volume)."""
    out = {}
    for spec in service.get("volumes", []):
        parts = spec.split(":")
        out[parts[1]] = parts[0]
    return out


# --- docker compose ----------------------------------------------------------------------------

def test_compose_services_images_and_ports():
    compose = _compose()
    services = compose["services"]
    assert set(services) == {"qpu-exporter", "prometheus", "alertmanager", "grafana",
                             "postgres", "qpu-exporter-a", "qpu-exporter-b"}  # the last three: profile postgres
    host_ports = []
    for name, svc in services.items():
        image = svc.get("image", "")
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image tag ({image!r})"
        for port in svc.get("ports", []):
            host_ip, host_port, container_port = str(port).split(":")
            assert host_ip == "127.0.0.1", f"{name}: publish on loopback only ({port})"
            host_ports.append(int(host_port))
    assert len(host_ports) == len(set(host_ports)), "two services publish the same host port"
    # named volumes are declared, bind sources exist
    declared = set(compose.get("volumes", {}))
    for name, svc in services.items():
        for target, source in _mounts(svc).items():
            if source.startswith((".", "/")):
                assert (DEPLOY / source).exists(), f"{name}: bind source {source} missing"
            else:
                assert source in declared, f"{name}: volume {source} not declared"


def test_compose_exporter_service():
    svc = _compose()["services"]["qpu-exporter"]
    build = svc["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == (DEPLOY / "Dockerfile").resolve()
    command = svc["command"]
    assert command[0] == "serve"
    assert f"--web.listen-address=0.0.0.0:{EXPORTER_PORT}" in command
    assert svc["ports"] == [f"127.0.0.1:{EXPORTER_PORT}:{EXPORTER_PORT}"]
    mounts = _mounts(svc)
    state = svc["environment"]["QPU_EXPORTER_STATE_PATH"]
    assert state.startswith(STATE_DIR + "/") and STATE_DIR in mounts, "the state file must be on a volume"
    config_arg = next(a for a in command if a.startswith("--config="))
    config_path = config_arg.split("=", 1)[1]
    assert config_path in mounts and (DEPLOY / mounts[config_path]).is_file()
    assert svc.get("read_only") is True and svc.get("user", "").split(":")[0] != "0"
    for key in CREDENTIALS:  # passed through from the environment, never written in the file
        assert svc["environment"][key] == f"${{{key}:-}}"
    assert svc["healthcheck"]["test"][1:4] == ["python", "-m", "qpu_exporter.healthcheck"]  # asks /-/healthy


def test_compose_exporter_config_is_valid():
    from qpu_exporter.config import load_config

    svc = _compose()["services"]["qpu-exporter"]
    config_path = next(a for a in svc["command"] if a.startswith("--config=")).split("=", 1)[1]
    load_config(DEPLOY / _mounts(svc)[config_path])


def test_compose_prometheus_alertmanager_grafana_wiring():
    services = _compose()["services"]
    prom_mounts = _mounts(services["prometheus"])
    config_target = next(a for a in services["prometheus"]["command"] if a.startswith("--config.file=")).split("=", 1)[1]
    prom_config = _yaml(DEPLOY / prom_mounts[config_target])
    # rule files resolve inside the container to the mounted alerts/rules
    rules_dir = str(Path(config_target).parent / Path(prom_config["rule_files"][0]).parent)
    assert (DEPLOY / prom_mounts[rules_dir]).resolve() == (ROOT / "alerts" / "rules").resolve()
    # the scrape job is the one the alerts select, and targets the exporter service
    job = next(j for j in prom_config["scrape_configs"] if j["job_name"] == _alert_job())
    assert job["static_configs"][0]["targets"] == [f"qpu-exporter:{EXPORTER_PORT}"]
    am_target = prom_config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0]
    assert am_target.split(":")[0] == "alertmanager" and am_target.endswith(":9093")
    am_mounts = _mounts(services["alertmanager"])
    am_config = next(a for a in services["alertmanager"]["command"] if a.startswith("--config.file=")).split("=", 1)[1]
    assert (DEPLOY / am_mounts[am_config]).resolve() == (ROOT / "alerts" / "alertmanager.yml").resolve()
    # Grafana: provisioning mounted, datasource points at the prometheus service, dashboards path mounted
    g_mounts = _mounts(services["grafana"])
    provisioning = DEPLOY / g_mounts["/etc/grafana/provisioning"]
    datasources = _yaml(provisioning / "datasources" / "prometheus.yml")
    assert datasources["apiVersion"] == 1
    (ds,) = datasources["datasources"]
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090" and ds["isDefault"] is True
    providers = _yaml(provisioning / "dashboards" / "qpu-exporter.yml")["providers"]
    path = providers[0]["options"]["path"]
    assert (DEPLOY / g_mounts[path]).resolve() == (ROOT / "dashboards" / "json").resolve()
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (ROOT / "dashboards" / "json" / Path(home).name).is_file() and home.startswith(path + "/")


def test_compose_postgres_profile_runs_a_replica_pair_on_one_database():
    services = _compose()["services"]
    pair = [services["qpu-exporter-a"], services["qpu-exporter-b"]]
    assert services["postgres"]["profiles"] == ["postgres"] and all(svc["profiles"] == ["postgres"] for svc in pair)
    assert "profiles" not in services["qpu-exporter"], "the default stack is unchanged"
    db = services["postgres"]["environment"]
    instances = set()
    for svc in pair:
        env = svc["environment"]
        url = env["QPU_EXPORTER_STATE_URL"]
        assert url == f"postgresql://{db['POSTGRES_USER']}@postgres:5432/{db['POSTGRES_DB']}", "no password in the URL"
        # one password, from the environment (deploy/.env), for the server and the replicas
        assert env["QPU_EXPORTER_STATE_PASSWORD"] == db["POSTGRES_PASSWORD"] and env["QPU_EXPORTER_STATE_PASSWORD"].startswith("${")
        assert "QPU_EXPORTER_STATE_PATH" not in env and STATE_DIR not in _mounts(svc)
        instances.add(env["QPU_EXPORTER_INSTANCE"])
        assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert svc.get("read_only") is True and svc["cap_drop"] == ["ALL"]
        for key in CREDENTIALS:
            assert env[key] == f"${{{key}:-}}"
    assert len(instances) == 2, "each replica needs its own instance name"
    from qpu_exporter.config import load_config

    config_path = next(a for a in pair[0]["command"] if a.startswith("--config=")).split("=", 1)[1]
    config = load_config(DEPLOY / _mounts(pair[0])[config_path])
    assert config.state_url is None, "the database comes from the environment"
    # Prometheus scrapes each replica as a target of the exporter job (when the profile runs).
    prom = _yaml(DEPLOY / "prometheus" / "prometheus.yml")
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == _alert_job())
    assert sorted(job["dns_sd_configs"][0]["names"]) == ["qpu-exporter-a", "qpu-exporter-b"]
    assert job["dns_sd_configs"][0]["port"] == EXPORTER_PORT


def test_dockerfile_runs_unprivileged_on_all_interfaces():
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    user = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert user and user[-1].split(":")[0] not in ("0", "root")
    assert re.search(rf"^EXPOSE\s+{EXPORTER_PORT}\b", text, re.M)
    cmd = json.loads(re.findall(r"^CMD\s+(\[.*\])", text, re.M)[-1])
    assert f"--web.listen-address=0.0.0.0:{EXPORTER_PORT}" in cmd
    assert f"QPU_EXPORTER_STATE_PATH={STATE_DIR}/" in text and f'VOLUME ["{STATE_DIR}"]' in text
    for src in re.findall(r"^COPY\s+(?!--from)(.+)\s+\S+$", text, re.M):
        for item in src.split():
            assert (ROOT / item).exists(), f"Dockerfile copies {item}, missing from the build context"


def test_prometheus_config_passes_promtool(tmp_path):
    """promtool check config on the shipped config, laid out as in the container (rules/ beside it)."""
    promtool = _binary("promtool")
    shutil.copy(DEPLOY / "prometheus" / "prometheus.yml", tmp_path / "prometheus.yml")
    (tmp_path / "rules").symlink_to(ROOT / "alerts" / "rules")
    result = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    n_files = len(list((ROOT / "alerts" / "rules").glob("*.yml")))
    assert result.stdout.count("SUCCESS") >= 1 + n_files, result.stdout  # the config and every rule file


# --- Kubernetes --------------------------------------------------------------------------------

def _k8s_docs() -> list[tuple[str, dict]]:
    kustomization = _yaml(K8S / "kustomization.yaml")
    docs = []
    for name in kustomization["resources"]:
        path = K8S / name
        assert path.is_file(), f"kustomization lists missing {name}"
        docs += [(name, d) for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return docs


def _one(kind: str) -> dict:
    (doc,) = [d for _, d in _k8s_docs() if d["kind"] == kind]
    return doc


def test_kubernetes_core_manifests_validate_against_schemas():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    core = [(n, d) for n, d in _k8s_docs() if "monitoring.coreos.com" not in d["apiVersion"]]
    core.append(("secret.example.yaml", _yaml(K8S / "secret.example.yaml")))
    assert {d["kind"] for _, d in core} >= {"StatefulSet", "Service", "ConfigMap", "Secret"}
    for name, doc in core:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name} {doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")


def test_kubernetes_schema_validation_catches_a_typo():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    sts = _one("StatefulSet")
    sts["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, KUBERNETES_VERSION, strict=True)


def test_statefulset_security_resources_and_credentials():
    sts = _one("StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert f"--web.listen-address=0.0.0.0:{EXPORTER_PORT}" in container["args"]
    env = {e["name"]: e for e in container["env"]}
    assert env["QPU_EXPORTER_STATE_PATH"]["value"].startswith(STATE_DIR + "/")
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert not mounts[STATE_DIR].get("readOnly"), "the state directory must be writable"
    claim_names = {c["metadata"]["name"] for c in sts["spec"]["volumeClaimTemplates"]}
    assert mounts[STATE_DIR]["name"] in claim_names
    for key in CREDENTIALS:
        ref = env[key]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "qpu-exporter-credentials" and ref["key"] == key
    assert set(_yaml(K8S / "secret.example.yaml")["stringData"]) == CREDENTIALS
    requests = container["resources"]["requests"]
    # Sized from measurement: ~550 MB RSS once probes ran on the default fleet (deploy/README.md).
    assert requests["memory"] == "640Mi" and "cpu" in requests and container["resources"]["limits"]["memory"] == "1Gi"
    assert container["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    assert container["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    assert "--shard" in (K8S / "statefulset.yaml").read_text() and "550 MB" in (K8S / "statefulset.yaml").read_text()
    # the configured exporter config is valid
    from qpu_exporter.config import Config

    config_map = next(d for _, d in _k8s_docs() if d["metadata"]["name"] == "qpu-exporter-config")
    assert {v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v} == {"qpu-exporter-config"}
    Config.model_validate(yaml.safe_load(config_map["data"]["config.yaml"]))


def test_service_and_servicemonitor_match():
    sts, svc, sm = _one("StatefulSet"), _one("Service"), _one("ServiceMonitor")
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    assert sts["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    container_ports = {p["name"]: p["containerPort"] for p in sts["spec"]["template"]["spec"]["containers"][0]["ports"]}
    (port,) = svc["spec"]["ports"]
    assert port["targetPort"] in container_ports and container_ports[port["targetPort"]] == EXPORTER_PORT
    # prometheus-operator names the job after the Service: it must be the job the alerts select
    assert svc["metadata"]["name"] == _alert_job() and "jobLabel" not in sm["spec"]
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["port"] == port["name"] and endpoint["path"] == "/metrics"
    assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme", "tlsConfig", "basicAuth", "honorLabels"}


def test_generated_kubernetes_manifests_are_in_sync():
    result = subprocess.run([sys.executable, str(K8S / "generate.py"), "--check"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_prometheusrule_carries_every_rule_group(tmp_path):
    rule = _one("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["metadata"]["name"]
    expected = [g for p in sorted((ROOT / "alerts" / "rules").glob("*.yml")) for g in _yaml(p)["groups"]]
    assert rule["spec"]["groups"] == expected
    assert set(rule["spec"]) == {"groups"}
    names = [g["name"] for g in rule["spec"]["groups"]]
    assert len(names) == len(set(names)), "group names must be unique within a PrometheusRule"
    promtool = _binary("promtool")
    (tmp_path / "spec.yml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    result = subprocess.run([promtool, "check", "rules", str(tmp_path / "spec.yml")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_configmaps_for_the_grafana_sidecar():
    maps = [d for _, d in _k8s_docs() if d["kind"] == "ConfigMap" and d["metadata"]["labels"].get("grafana_dashboard") == "1"]
    files = {name: text for m in maps for name, text in m["data"].items()}
    expected = {p.name: p.read_text(encoding="utf-8") for p in (ROOT / "dashboards" / "json").glob("*.json")}
    assert files == expected
    for m in maps:
        # ConfigMaps are limited to 1 MiB; client-side apply also stores a copy in an annotation (256 KiB)
        assert sum(len(t.encode()) for t in m["data"].values()) < 256 * 1024


def test_kustomize_builds_when_kubectl_is_present():
    kubectl = _binary("kubectl", required_in_ci=False)
    result = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert {d["metadata"].get("namespace") for d in docs} == {"monitoring"}
    assert len(docs) == len(_k8s_docs())


def _replica_docs() -> list[tuple[str, dict]]:
    kustomization = _yaml(REPLICAS / "kustomization.yaml")
    assert kustomization["resources"][0] == "../kubernetes" and kustomization["namespace"] == "monitoring"
    return [(name, d) for name in kustomization["resources"][1:]
            for d in yaml.safe_load_all((REPLICAS / name).read_text(encoding="utf-8")) if d]


def test_kubernetes_replicas_deployment_on_postgresql():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    docs = _replica_docs() + [("secret.example.yaml", _yaml(REPLICAS / "secret.example.yaml"))]
    for name, doc in docs:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"kubernetes-replicas/{name} {doc['kind']}: {exc.message} at {list(exc.path)}")
    dep = next(d for _, d in docs if d["kind"] == "Deployment")
    pdb = next(d for _, d in docs if d["kind"] == "PodDisruptionBudget")
    secret = next(d for _, d in docs if d["kind"] == "Secret")
    # It replaces the base's StatefulSet: same name and labels, so Service and ServiceMonitor fit.
    patch = yaml.safe_load(_yaml(REPLICAS / "kustomization.yaml")["patches"][0]["patch"])
    assert patch["$patch"] == "delete" and patch["kind"] == "StatefulSet" and patch["metadata"]["name"] == _one("StatefulSet")["metadata"]["name"]
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert _one("Service")["spec"]["selector"].items() <= pod_labels.items()
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items() and pdb["spec"]["minAvailable"] == 1
    assert dep["spec"]["replicas"] == 2
    pod = dep["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    for key in ("QPU_EXPORTER_STATE_URL", "QPU_EXPORTER_STATE_PASSWORD"):  # the state from a Secret
        ref = env[key]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
    assert ":" not in secret["stringData"]["QPU_EXPORTER_STATE_URL"].split("@")[0].removeprefix("postgresql://")
    assert env["QPU_EXPORTER_INSTANCE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert "QPU_EXPORTER_STATE_PATH" not in env and not any(v.get("persistentVolumeClaim") for v in pod["volumes"])
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    for key in CREDENTIALS:
        assert env[key]["valueFrom"]["secretKeyRef"]["name"] == "qpu-exporter-credentials"


def test_kustomize_builds_the_replicas_when_kubectl_is_present():
    kubectl = _binary("kubectl", required_in_ci=False)
    result = subprocess.run([kubectl, "kustomize", str(REPLICAS)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(result.stdout) if d]
    assert "StatefulSet" not in kinds and kinds.count("Deployment") == 1 and "PodDisruptionBudget" in kinds


# --- systemd -----------------------------------------------------------------------------------

UNIT = DEPLOY / "systemd" / "qpu-exporter.service"
HARDENING = {
    "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
    "PrivateDevices": "yes", "DynamicUser": "yes", "StateDirectory": "qpu-exporter", "CapabilityBoundingSet": "",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes", "ProtectControlGroups": "yes", "RestrictSUIDSGID": "yes",
}


def _unit() -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        else:
            key, _, value = line.partition("=")
            current.setdefault(key, []).append(value)
    return sections


def test_systemd_unit_structure():
    unit = _unit()
    assert set(unit) == {"Unit", "Service", "Install"}
    service = unit["Service"]
    for key, value in HARDENING.items():
        assert service.get(key, [None])[-1] == value, f"{key}={value} expected"
    (exec_start,) = service["ExecStart"]
    assert " serve " in exec_start and "--web.listen-address=127.0.0.1:9961" in exec_start
    state_env = next(v for v in service["Environment"] if v.startswith("QPU_EXPORTER_STATE_PATH="))
    assert state_env.split("=", 1)[1].startswith("/var/lib/qpu-exporter/"), "state must be in the StateDirectory"
    assert any(v.startswith("-/etc/qpu-exporter/") for v in service["EnvironmentFile"])
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    configparser.ConfigParser(strict=False, interpolation=None).read_string(UNIT.read_text())  # plain INI


def _unit_for_this_machine(tmp_path: Path, text: str | None = None) -> Path:
    """The unit with ExecStart pointing at this venv's qpu-exporter (verify checks the binary exists)."""
    binary = Path(sys.executable).parent / "qpu-exporter"
    copy = tmp_path / "qpu-exporter.service"
    copy.write_text((text or UNIT.read_text()).replace("/opt/qpu-exporter/bin/qpu-exporter", str(binary)))
    return copy


def test_systemd_analyze_verify(tmp_path):
    analyze = _binary("systemd-analyze", required_in_ci=False)
    result = subprocess.run([analyze, "verify", str(_unit_for_this_machine(tmp_path))], capture_output=True, text=True, timeout=60)
    mine = [line for line in (result.stdout + result.stderr).splitlines() if "qpu-exporter.service" in line]
    assert result.returncode == 0 and not mine, result.stdout + result.stderr
    # the same check notices a misspelt directive
    bad = _unit_for_this_machine(tmp_path, UNIT.read_text().replace("ProtectSystem=", "ProtectSytem="))
    result = subprocess.run([analyze, "verify", str(bad)], capture_output=True, text=True, timeout=60)
    assert "Unknown key" in result.stdout + result.stderr


def test_systemd_sandbox_exposure_is_low(tmp_path):
    analyze = _binary("systemd-analyze", required_in_ci=False)
    result = subprocess.run([analyze, "security", "--offline=yes", str(_unit_for_this_machine(tmp_path))],
                            capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout + result.stderr)
    if m is None:
        pytest.skip("this systemd-analyze has no offline security mode")
    assert float(m.group(1)) <= 2.0, result.stdout[-2000:]


def test_image_carries_its_revision_and_a_healthcheck_that_works_with_auth(monkeypatch):
    """The revision comes from a required build arg into the environment build_info reads; the
    HEALTHCHECK runs the exporter's own healthcheck (200, 401 or 429 = alive; it is exercised
    against a live TLS + basic-auth exporter in test_websecurity.py)."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    stages = re.split(r"^FROM\s", text, flags=re.M)[1:]
    assert len(stages) == 2
    build, final = stages
    assert re.search(r"^ARG REVISION$", build, re.M) and re.search(r'test -n "\$REVISION" \|\|', build)
    assert re.search(r"^ARG REVISION$", final, re.M)
    assert "QPU_EXPORTER_REVISION=${REVISION}" in final and 'org.opencontainers.image.revision="${REVISION}"' in final
    monkeypatch.setenv("QPU_EXPORTER_REVISION", "0123456789ab")
    from qpu_exporter.app import revision

    assert revision() == "0123456789ab"
    m = re.search(r"^HEALTHCHECK .*\n\s*CMD (\[.*\])", text, re.M)
    cmd = json.loads(m.group(1))
    assert cmd == ["python", "-m", "qpu_exporter.healthcheck", f"127.0.0.1:{EXPORTER_PORT}"]
    svc = _compose()["services"]["qpu-exporter"]
    assert svc["healthcheck"]["test"] == ["CMD", *cmd]
    assert svc["build"]["args"]["REVISION"].startswith("${QPU_EXPORTER_REVISION:?")
    # Nothing listens on this port: the healthcheck says so and fails.
    from conftest import free_port

    r = subprocess.run([sys.executable, "-m", "qpu_exporter.healthcheck", f"127.0.0.1:{free_port()}"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "refused" in r.stderr.lower()
