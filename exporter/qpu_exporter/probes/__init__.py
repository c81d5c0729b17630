"""Randomized-benchmarking probes: targets, budget, execution, metrics (docs/probes.md).

``targets`` picks what to probe, ``budget`` prices probes and guards the spend ledger,
``agreement`` is the cross-device Bell check, ``runner`` runs one probe end to end,
``feed`` holds the latest results as metric families, ``cli`` implements ``probe``/``check``.
Importing this package does not import qiskit; the runner does so on the first probe.
"""
