"""qpu-exporter: a Prometheus exporter and observability stack for quantum computers."""

__version__ = "0.1.0"
