"""Generator of the qpu-exporter Grafana dashboards (grafana-foundation-sdk 0.0.21).

    from qpudash import render_dashboards, render_docs, load_settings
"""

from .render import BOARDS, check_files, iter_panels, output_files, render_dashboards, render_docs
from .settings import Settings, load_settings

__all__ = ["BOARDS", "Settings", "check_files", "output_files", "iter_panels", "load_settings", "render_dashboards", "render_docs"]
