"""Renders qpu-exporter's Prometheus rules from alerts/config.yaml (mixin style)."""

from .config import ConfigError, load_config
from .render import CONCERNS, render_all

__all__ = ["CONCERNS", "ConfigError", "load_config", "render_all"]
