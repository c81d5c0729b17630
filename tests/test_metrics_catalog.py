"""docs/metrics.md, the catalog and what the exporter serves stay in sync."""

from __future__ import annotations

import re

from conftest import REPO
from qpu_exporter.catalog import CLIENT_SPECS, SPECS, render_markdown


def test_docs_metrics_md_is_generated_from_the_catalog():
    committed = (REPO / "docs/metrics.md").read_text()
    assert committed == render_markdown(), "run: qpu-exporter docs metrics > docs/metrics.md"


def test_catalog_names_follow_prometheus_conventions():
    assert not SPECS.keys() & CLIENT_SPECS.keys()
    for name, spec in {**SPECS, **CLIENT_SPECS}.items():
        assert re.fullmatch(r"qpu_[a-z0-9_]+", name), name
        assert name.endswith("_total") == (spec.type == "counter"), name
        assert not re.search(r"_(percent|milliseconds|microseconds|nanoseconds|gigahertz)$", name), name
        assert spec.help.endswith("."), name


def test_everything_served_is_documented_and_everything_documented_is_served(start_exporter):
    from prometheus_client.parser import text_string_to_metric_families

    ex = start_exporter()
    served = {f.name for f in text_string_to_metric_families(ex.metrics())}
    ours = {n for n in served if n.startswith("qpu_")}
    documented = {n.removesuffix("_total") if SPECS[n].type == "counter" else n for n in SPECS}
    assert ours - documented == set(), "served but not in catalog.py / docs/metrics.md"
    assert documented - ours == set(), "documented but never served"
