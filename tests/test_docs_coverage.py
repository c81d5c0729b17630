"""The docs and the code name the same flags and keys.

Every command-line flag (walked from the argparse parser), every config key (walked from the
pydantic models, recursively) and every web-config key appears in README.md or docs/*.md; and
every `--flag`, every dotted config key and every key of a YAML config block the docs name
exists. Failures list exactly what is missing or unknown.
"""

from __future__ import annotations

import argparse
import re
import typing
from pathlib import Path

import yaml
from pydantic import BaseModel

from qpu_exporter import websecurity
from qpu_exporter.cli import _parser
from qpu_exporter.config import Config

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Flags of other programs the docs show in their commands (Prometheus, promtool, Docker, pip,
# pytest, kubectl, ...): not ours, so not checked against our parser.
FOREIGN_FLAGS = {
    "--config.file", "--storage.tsdb.path", "--storage.tsdb.retention.time", "--web.enable-lifecycle",
    "--web.enable-remote-write-receiver", "--storage.path", "--cluster.listen-address", "--build-arg",
    "--server-side", "--from-literal", "--durations", "--no-install-recommends", "--short",
    "--basetemp", "--build", "--upgrade", "--query.lookback-delta", "--rules.alert.resend-delay",
    "--rules.alert.for-grace-period", "--now", "--web.enable-admin-api",
}


def _docs_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in DOCS)


def _our_flags() -> dict[str, set[str]]:
    """flag -> subcommands that take it."""
    out: dict[str, set[str]] = {}
    parser = _parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                for a in sub._actions:
                    for opt in a.option_strings:
                        if opt.startswith("--") and opt != "--help":
                            out.setdefault(opt, set()).add(name)
        for opt in action.option_strings:
            if opt.startswith("--") and opt != "--help":
                out.setdefault(opt, set()).add("")
    return out


def _models(annotation) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out = []
    for arg in typing.get_args(annotation):
        out += _models(arg)
    return out


def config_keys(model: type[BaseModel] = Config, prefix: str = "") -> dict[str, set[str]]:
    """dotted path -> its last segment, for every key of the config (list items and union
    members share their parent's path: providers.backends, providers.incidents.qubit, ...)."""
    out: dict[str, set[str]] = {}
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        out.setdefault(path, set()).add(name)
        for sub in _models(info.annotation):
            for p, names in config_keys(sub, path + ".").items():
                out.setdefault(p, set()).update(names)
    return out


WEB_KEYS = {
    **{k: k for k in websecurity._TOP_KEYS},
    **{f"tls_server_config.{k}": k for k in websecurity._TLS_KEYS},
    "http_server_config.http2": "http2", "http_server_config.headers": "headers",
    "rate_limit.interval": "interval", "rate_limit.burst": "burst",
}


def _mentioned(key: str, text: str) -> bool:
    """As a YAML key (`key:`), or inside a code span (`schedule.key`, `key`)."""
    k = re.escape(key)
    return bool(re.search(rf"(?<![\w.-]){k}\s*:", text) or re.search(rf"`[^`\n]*(?<![\w-]){k}(?![\w-])[^`\n]*`", text))


def test_every_flag_and_key_appears_in_the_docs():
    text = _docs_text()
    missing = [f"flag {flag} ({', '.join(sorted(s for s in subs if s)) or 'top level'})"
               for flag, subs in sorted(_our_flags().items()) if not re.search(rf"{re.escape(flag)}(?![\w.-])", text)]
    missing += [f"config key {path}" for path, names in sorted(config_keys().items())
                if not any(_mentioned(n, text) for n in names)]
    missing += [f"web config key {path}" for path, name in sorted(WEB_KEYS.items()) if not _mentioned(name, text)]
    assert not missing, "not in README.md or docs/*.md:\n  " + "\n  ".join(missing)


def _yaml_blocks(text: str) -> list[str]:
    return re.findall(r"```ya?ml\n(.*?)```", text, re.S)


def _unknown_keys(data, known_paths: set[str], prefix: str = "") -> list[str]:
    out = []
    if isinstance(data, list):
        for item in data:
            out += _unknown_keys(item, known_paths, prefix)
    elif isinstance(data, dict):
        for key, value in data.items():
            path = f"{prefix}{key}"
            if path not in known_paths and isinstance(value, dict) and value and all(
                    f"{prefix}{k}" in known_paths for k in value):
                out += _unknown_keys(value, known_paths, prefix)  # a key of a mapping: budgets: {chem: {...}}
                continue
            if path not in known_paths:
                out.append(path)
                continue
            if isinstance(value, (dict, list)) and any(p.startswith(path + ".") for p in known_paths):
                out += _unknown_keys(value, known_paths, path + ".")
    return out


def _benchmark_flags() -> set[str]:
    return {m for p in (ROOT / "benchmarks").glob("*.py")
            for m in re.findall(r"add_argument\(\s*\"(--[a-z0-9.-]+)\"", p.read_text(encoding="utf-8"))}


def test_every_flag_and_key_the_docs_name_exists():
    text = _docs_text()
    ours = set(_our_flags()) | _benchmark_flags()
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9.-]*[a-z0-9]", text))
    unknown = [f"flag {f}" for f in sorted(named - ours - FOREIGN_FLAGS)]
    config_paths = set(config_keys())
    web_paths = set(WEB_KEYS) | {f"http_server_config.headers.{h}" for h in websecurity.HEADERS}
    top = {p for p in config_paths if "." not in p}
    for block in _yaml_blocks(text):
        try:
            data = yaml.safe_load(block)
        except yaml.YAMLError:
            continue
        if not isinstance(data, dict):
            continue
        if set(data) & top and not set(data) & set(websecurity._TOP_KEYS):
            unknown += [f"config key {p} (YAML block)" for p in _unknown_keys(data, config_paths)]
        elif set(data) <= set(websecurity._TOP_KEYS):
            unknown += [f"web config key {p} (YAML block)" for p in _unknown_keys(data, web_paths)
                        if not p.startswith("basic_auth_users.")]
    for path in sorted(set(re.findall(r"`((?:%s)(?:\.[a-z0-9_]+)+)`" % "|".join(sorted(top)), text))):
        if path not in config_paths:
            unknown.append(f"config key {path}")
    assert not unknown, "named in README.md or docs/*.md but not in the code:\n  " + "\n  ".join(unknown)
