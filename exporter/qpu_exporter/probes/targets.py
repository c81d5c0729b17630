"""What to probe on a backend: configured targets, or automatic ones from the calibration."""

from __future__ import annotations

from dataclasses import dataclass

from ..model import ONE_QUBIT_RB_FIGURES, CalibrationSnapshot

ONE_QUBIT_BASIS = ("sx", "x")
# Braket reports one randomized-benchmarking figure per qubit (a reported EPC,
# ONE_QUBIT_RB_FIGURES) instead of per-gate errors. Its provider translates sx/x circuits to
# the device's native pulses (docs/providers.md), so a qubit with such a figure is probed like
# one with an sx calibration.
TWO_QUBIT_GATES = ("ecr", "cz", "cx")
# Qubit data a probe's design and noise model need; a qubit without it is not auto-probed.
REQUIRED_QUBIT_VALUES = ("t1", "t2", "readout_error")


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    provider: str
    backend: str
    qubits: tuple[int, ...]  # a pair in the native direction of its 2q gate
    interleaved: str | None = None

    @property
    def qubits_label(self) -> str:
        return "_".join(str(q) for q in self.qubits)

    def describe(self) -> str:
        extra = f" interleaved={self.interleaved}" if self.interleaved else ""
        return f"{self.provider}/{self.backend} qubits={self.qubits_label}{extra}"


def basis_gates_of(snap: CalibrationSnapshot) -> tuple[str, ...]:
    """The probe basis: rz (virtual) plus the 1q and 2q gates the calibration lists."""
    names = {g.gate for g in snap.gates}
    basis = ["rz"] + [g for g in ONE_QUBIT_BASIS if g in names]
    if len(basis) == 1 and names & set(ONE_QUBIT_RB_FIGURES):
        basis += ONE_QUBIT_BASIS
    two = [g for g in TWO_QUBIT_GATES if g in names]
    return tuple(basis + two[:1])


def two_qubit_gate_of(snap: CalibrationSnapshot) -> str | None:
    two = [g for g in basis_gates_of(snap) if g in TWO_QUBIT_GATES]
    return two[0] if two else None


def _good_qubits(snap: CalibrationSnapshot) -> list[int]:
    one_qubit = ("sx", *ONE_QUBIT_RB_FIGURES)
    sx_ok = {g.qubits[0] for g in snap.gates if g.gate in one_qubit and len(g.qubits) == 1 and g.operational
             and g.error is not None and 0 <= g.error.value < 0.5}
    return sorted(q.qubit for q in snap.qubits
                  if q.operational and q.qubit in sx_ok and all(k in q.values for k in REQUIRED_QUBIT_VALUES))


def native_pairs(snap: CalibrationSnapshot) -> list[tuple[float, tuple[int, int]]]:
    """(error, (control, target)) of every operational 2q gate between good qubits, best first,
    in a direction the device publishes the gate in (IQM keys its edges high-low, e.g. 10-5,
    and offers cz only that way). A gate published in both directions is kept once, lower
    index first."""
    gate = two_qubit_gate_of(snap)
    good = set(_good_qubits(snap))
    published = {tuple(g.qubits) for g in snap.gates if g.gate == gate and len(g.qubits) == 2 and g.operational}
    seen: dict[frozenset, tuple[float, tuple[int, int]]] = {}
    for g in snap.gates:
        if g.gate != gate or len(g.qubits) != 2 or not g.operational or g.error is None:
            continue
        if not (0 <= g.error.value < 0.5) or not set(g.qubits) <= good:
            continue
        key = frozenset(g.qubits)
        pair = tuple(g.qubits)
        if tuple(sorted(pair)) in published:
            pair = tuple(sorted(pair))
        if key not in seen or g.error.value < seen[key][0]:
            seen[key] = (g.error.value, pair)
    return sorted(seen.values())


def auto_targets(snap: CalibrationSnapshot, n_qubits: int, n_pairs: int) -> list[ProbeTarget]:
    """Pairs first (the first interleaved with the native 2q gate), then single qubits spread
    evenly over the good qubits. The first pair touches the first chosen qubit when it can, so
    one probe already covers a qubit's 1q and 2q view."""
    good = _good_qubits(snap)
    singles: list[int] = []
    if good and n_qubits > 0:
        k = min(n_qubits, len(good))
        idx = [round(i * (len(good) - 1) / max(k - 1, 1)) for i in range(k)]
        singles = [good[i] for i in dict.fromkeys(idx)]
    out: list[ProbeTarget] = []
    gate = two_qubit_gate_of(snap)
    pairs = native_pairs(snap)
    chosen: list[tuple[int, int]] = []
    for anchor in singles + [None]:
        if len(chosen) >= n_pairs:
            break
        for _, pair in pairs:
            if pair in chosen or (anchor is not None and anchor not in pair):
                continue
            if any(set(pair) & set(c) for c in chosen):
                continue
            chosen.append(pair)
            break
    for i, pair in enumerate(chosen):
        out.append(ProbeTarget(snap.provider, snap.backend, pair, gate if i == 0 else None))
    out += [ProbeTarget(snap.provider, snap.backend, (q,)) for q in singles]
    return out


def configured_targets(probes_config, provider: str, backend: str) -> list[ProbeTarget]:
    return [
        ProbeTarget(provider, backend, tuple(t.qubits), t.interleaved)
        for t in probes_config.targets
        if t.backend == backend and (t.provider is None or t.provider == provider)
    ]


def targets_for(probes_config, snap: CalibrationSnapshot) -> list[ProbeTarget]:
    explicit = configured_targets(probes_config, snap.provider, snap.backend)
    if explicit:
        return explicit
    return auto_targets(snap, probes_config.auto_qubits, probes_config.auto_pairs)


def check_target(target: ProbeTarget, snap: CalibrationSnapshot) -> str:
    """'' when the backend can run the target, else why not (one line)."""
    known = {q.qubit for q in snap.qubits}
    missing = [q for q in target.qubits if q not in known]
    if missing:
        return f"qubit(s) {missing} not in {target.backend}'s calibration"
    basis = basis_gates_of(snap)
    if target.interleaved and target.interleaved not in basis:
        return f"interleaved gate {target.interleaved} is not a basis gate of {target.backend} ({', '.join(basis)})"
    if len(target.qubits) == 2:
        gate = two_qubit_gate_of(snap)
        native = {tuple(g.qubits) for g in snap.gates if g.gate == gate and g.operational}
        if tuple(target.qubits) not in native:
            return f"no operational {gate} gate on {target.qubits_label} in that direction"
    return ""
