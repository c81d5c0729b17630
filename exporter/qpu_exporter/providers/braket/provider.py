"""Amazon Braket (kind: braket) through boto3's ``braket`` client.

Devices come from the config's ARNs or, by default, ``SearchDevices`` in every region that
hosts QPUs (``regions`` narrows it): the API supports only a deviceArn filter, so QPUs that
are not RETIRED are picked client-side, as the Braket SDK's ``AwsDevice.get_devices`` does.
One ``GetDevice`` gives status, queue depth, availability windows and the calibration, read
through the official schema models (``device_document.py``).

Queue sizes are strings; ``'>4000'`` reads as 4000 (a lower bound: ``queue_depth()``
flags it), ``'0 (1 prioritized job(s) running)'`` as 0.

Tasks come from the ``search_quantum_tasks`` paginator, plus one ``GetQuantumTask`` per
newly finished (COMPLETED or FAILED) task: search results carry neither the failure reason
nor the Braket Direct reservation a task ran in (capped per poll; the rest wait for the next
poll). Search results carry only createdAt and endedAt, so queue time is derived from
observation: the first poll that sees a task RUNNING bounds its start (resolution: the jobs
interval). Cost: per task + per shot from the price table, else from the per-shot price the
device document publishes (``service.deviceCost``); 0 for FAILED/CANCELLED tasks (not
billed); unknown for tasks inside a reservation (paid per reserved hour) and for devices
with no price. Braket publishes no QPU time per task: ``usage_seconds`` is unknown (None).
Each task's tags come with its search result (for workloads, docs/workloads.md): no extra call.
The creation time of the oldest unfinished task is reported (``oldest_unfinished``) so the
poller persists it and a task queued since before a restart is still recorded.

Probe circuits (``run_circuits``) go through the Braket SDK: one OpenQASM 3 task per
circuit (``AwsDevice.run``: GetDevice once, CreateQuantumTask per circuit), every task
polled with GetQuantumTask until final or ``probe_timeout`` (unfinished tasks are then
cancelled), results read from S3 (``results.json`` under the task's output folder). Qubits
are always addressed physically (``$N``: no rewiring). With ``probe_verbatim`` (default)
the gates are translated to the device's native set inside a verbatim box, so the device
compiler cannot merge an RB sequence into nothing; otherwise the program carries qiskit's
gates (through a small gate shim) and Braket compiles it. Braket reports bits with
measured qubit 0 leftmost; counts are re-keyed to qiskit's order (clbit 0 rightmost).
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ...logs import get_logger
from ...model import (
    JOB_CANCELLED,
    JOB_DONE,
    JOB_FAILED,
    BackendInfo,
    BackendStatus,
    CalibrationSnapshot,
    JobRecord,
    bounded_tags,
    durations_from_timestamps,
    parse_timestamp,
)
from ..base import Provider, ProviderError
from ..http import classify_exception, provider_error
from ..listing import ListingWindow
from .config import BraketProviderConfig
from .device_document import parse_standardized, published_price, qubit_count
from .errors import failure_class
from .prices import PriceTable, TaskPrice, load_price_table

log = get_logger("qpu_exporter.providers.braket")

PAGE_SIZE = 100
RECORD_CACHE_SIZE = 20000
_FINAL = {"COMPLETED": JOB_DONE, "FAILED": JOB_FAILED, "CANCELLED": JOB_CANCELLED}
# GetQuantumTask associations[].type of a task run inside a Braket Direct reservation.
RESERVATION_ASSOCIATION = "RESERVATION_TIME_WINDOW_ARN"
_DAYS = {"MONDAY": 0, "TUESDAY": 1, "WEDNESDAY": 2, "THURSDAY": 3, "FRIDAY": 4, "SATURDAY": 5, "SUNDAY": 6}


# --- pure parsing ------------------------------------------------------------------------------

def parse_queue_size(value: Any) -> tuple[int, bool]:
    """('13' -> (13, True)), ('>4000' -> (4000, False): a lower bound), ('0 (1 prioritized
    job(s) running)' -> (0, True)). Unreadable -> (0, False)."""
    text = str(value or "").strip()
    m = re.match(r"^(>)?\s*(\d+)", text)
    if not m:
        return 0, False
    return int(m.group(2)), m.group(1) is None


def window_open(windows: list, at: float) -> bool:
    """Whether ``at`` (Unix seconds) falls in one of the device's UTC execution windows.
    No windows published means always open; a window whose end is before its start runs
    past midnight (its day is the day it starts)."""
    if not windows:
        return True
    now = datetime.fromtimestamp(at, tz=timezone.utc)
    minute = now.hour * 60 + now.minute + now.second / 60
    for w in windows:
        day = str(w.get("executionDay") or "Everyday").strip().upper()
        start = _minutes(w.get("windowStartHour"), 0.0)
        end = _minutes(w.get("windowEndHour"), 24 * 60.0)
        if end == 23 * 60 + 59 + 59 / 60:
            end = 24 * 60.0  # "23:59:59" means "to the end of the day"
        for offset, m in ((0, minute), (1, minute + 24 * 60)):  # today's window, or yesterday's running over
            weekday = (now.weekday() - offset) % 7
            if not _day_matches(day, weekday):
                continue
            stop = end if end > start else end + 24 * 60
            if start <= m < stop:
                return True
    return False


def _minutes(value: Any, default: float) -> float:
    if value in (None, ""):
        return default
    parts = [float(p) for p in str(value).split(":")]
    parts += [0.0] * (3 - len(parts))
    return parts[0] * 60 + parts[1] + parts[2] / 60


def _day_matches(day: str, weekday: int) -> bool:
    if day == "EVERYDAY":
        return True
    if day == "WEEKDAYS":
        return weekday < 5
    if day in ("WEEKEND", "WEEKENDS"):
        return weekday >= 5
    return _DAYS.get(day) == weekday


# --- probe programs (pure) -------------------------------------------------------------------

PROBE_TAGS = {"qpu-exporter": "probe"}  # on every probe task, so it can be told apart
# qiskit's stdgates names that Braket lacks, defined by Braket's built-in OpenQASM gates.
_SHIM = ("gate sx a { v a; }\ngate sxdg a { vi a; }\ngate sdg a { si a; }\ngate tdg a { ti a; }\n"
         "gate cx a, b { cnot a, b; }\ngate p(l) a { phaseshift(l) a; }\ngate id a { i a; }\n")
_QASM_INCLUDE = 'include "stdgates.inc";'


def _angle(value: float) -> str:
    value = math.remainder(float(value), 2 * math.pi)  # (-pi, pi]: same rotation, stable text
    return repr(0.0 if value == 0 else value)


def _probe_layout(circuit: Any) -> tuple[list[int], dict[int, int]]:
    """(physical qubit per logical qubit, physical qubit per clbit index)."""
    physical = [int(q) for q in (circuit.metadata or {}).get("physical_qubits", ())]
    if len(physical) != circuit.num_qubits or len(set(physical)) != len(physical) or min(physical, default=0) < 0:
        raise provider_error("invalid_input", f"circuit {circuit.name!r}: metadata['physical_qubits'] must name "
                                              f"{circuit.num_qubits} distinct device qubit(s), got {physical}")
    qindex = {q: i for i, q in enumerate(circuit.qubits)}
    cindex = {c: i for i, c in enumerate(circuit.clbits)}
    measured: dict[int, int] = {}
    for inst in circuit.data:
        if inst.operation.name == "measure":
            measured[cindex[inst.clbits[0]]] = physical[qindex[inst.qubits[0]]]
        elif measured and inst.operation.name != "barrier":
            raise provider_error("invalid_input", f"circuit {circuit.name!r}: gates after a measurement are not supported")
    if not measured:
        raise provider_error("invalid_input", f"circuit {circuit.name!r} measures nothing")
    return physical, measured


def verbatim_program(circuit: Any, natives: frozenset[str], device: str = "the device") -> str:
    """OpenQASM 3 for a probe circuit in ``natives`` (the device's native gate names, lower
    case) inside one verbatim box, on physical qubits. Translations (global phases dropped):
    sx -> rx(pi/2) | prx(pi/2, -f), x -> rx(pi) | prx(pi, -f); rz -> rz when native, else a
    virtual Z: the frame f it accumulates is folded into the phase of later prx pulses
    (Rz(f) then PRX(t, p) equals PRX(t, p - f) then Rz(f); cz commutes with Rz; a trailing
    Rz does not change Z-basis counts). Other gates must be native; barriers are dropped
    (nothing inside a verbatim box is merged or reordered)."""
    physical, measured = _probe_layout(circuit)
    qindex = {q: i for i, q in enumerate(circuit.qubits)}
    frame = dict.fromkeys(physical, 0.0)
    body: list[str] = []

    def unsupported(name: str) -> ProviderError:
        return provider_error("unsupported", f"{name} has no translation to {device}'s native gates "
                                             f"({', '.join(sorted(natives))}); set probe_verbatim: false to let "
                                             "Braket compile the probe (it may merge the RB sequence)")

    for inst in circuit.data:
        name = inst.operation.name
        qs = [physical[qindex[q]] for q in inst.qubits]
        operands = ", ".join(f"${q}" for q in qs)
        if name in ("barrier", "measure"):
            continue
        if name == "rz":
            if "rz" in natives:
                body.append(f"rz({_angle(inst.operation.params[0])}) {operands};")
            elif "prx" in natives:
                frame[qs[0]] += float(inst.operation.params[0])
            else:
                raise unsupported(name)
        elif name in ("sx", "x"):
            theta = math.pi / 2 if name == "sx" else math.pi
            if "rx" in natives and ("rz" in natives or "prx" not in natives):
                body.append(f"rx({_angle(theta)}) {operands};")
            elif "prx" in natives:
                body.append(f"prx({_angle(theta)}, {_angle(-frame[qs[0]])}) {operands};")
            else:
                raise unsupported(name)
        elif name in natives and not inst.operation.params and name in ("cz", "ecr", "iswap", "cnot"):
            body.append(f"{name} {operands};")
        elif name == "cx" and "cnot" in natives:
            body.append(f"cnot {operands};")
        else:
            raise unsupported(name)
    lines = ["OPENQASM 3.0;", f"bit[{circuit.num_clbits}] c;", "#pragma braket verbatim", "box{", *body, "}"]
    lines += [f"c[{i}] = measure ${measured[i]};" for i in sorted(measured)]
    return "\n".join(lines) + "\n"


def compiled_program(circuit: Any) -> str:
    """OpenQASM 3 for Braket's compiler: qiskit.qasm3 with the stdgates include replaced by
    a shim of Braket built-ins (ecr is a Braket built-in: emitted without a definition),
    and the logical register rewritten to the physical qubits ($N), which Braket does not
    rewire. Barriers are kept as a hint; the device compiler may still merge gates."""
    from qiskit import qasm3

    physical, _ = _probe_layout(circuit)
    if len(circuit.qregs) != 1 or len(circuit.qregs[0]) != circuit.num_qubits:
        raise provider_error("invalid_input", f"circuit {circuit.name!r}: need exactly one quantum register")
    reg = circuit.qregs[0].name
    source = qasm3.dumps(circuit, basis_gates=("U", "ecr"))
    if _QASM_INCLUDE not in source:
        raise provider_error("invalid_input", f"circuit {circuit.name!r}: unexpected OpenQASM export")
    source = source.replace(_QASM_INCLUDE, _SHIM.rstrip("\n"))
    source = re.sub(rf"^qubit\[\d+\] {re.escape(reg)};\n", "", source, flags=re.M)
    return re.sub(rf"\b{re.escape(reg)}\[(\d+)\]", lambda m: f"${physical[int(m.group(1))]}", source)


def counts_in_qiskit_order(counts: dict[str, int], measured_qubits: list[int], clbit_qubits: dict[int, int],
                           num_clbits: int, operation: str) -> dict[str, int]:
    """Braket counts (one character per entry of ``measured_qubits``, first = leftmost) ->
    qiskit keys (one character per clbit, clbit 0 rightmost); unmeasured clbits read 0."""
    position = {int(q): i for i, q in enumerate(measured_qubits)}
    missing = sorted(set(clbit_qubits.values()) - set(position))
    if missing:
        raise provider_error("malformed", f"{operation}: qubits {missing} were not measured")
    out: dict[str, int] = {}
    for key, n in counts.items():
        if len(key) != len(measured_qubits):
            raise provider_error("malformed", f"{operation}: a {len(key)}-bit outcome for {len(measured_qubits)} qubits")
        bits = "".join(key[position[clbit_qubits[i]]] if i in clbit_qubits else "0" for i in reversed(range(num_clbits)))
        out[bits] = out.get(bits, 0) + int(n)
    return out


def _task_id(task: Any) -> str:
    """The task's id without the account-bearing ARN prefix."""
    return str(getattr(task, "id", "")).rsplit("/", 1)[-1]


def _regional_session(base: Any, region: str) -> Any:
    """``base`` itself when it is in ``region``, else a boto3 session there with the same
    credentials (the rules of the SDK's own ``AwsSession.copy_session``)."""
    import boto3

    if base.region_name == region:
        return base
    creds = base.get_credentials()
    profile = base.profile_name if base.profile_name != "default" else None
    if creds is not None and creds.method == "explicit":
        frozen = creds.get_frozen_credentials()
        return boto3.Session(aws_access_key_id=frozen.access_key, aws_secret_access_key=frozen.secret_key,
                             aws_session_token=frozen.token, region_name=region)
    return boto3.Session(region_name=region, profile_name=profile)


def region_of(arn: str, default: str) -> str:
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 and parts[3] else default


# --- the provider -------------------------------------------------------------------------------

@dataclass
class _Device:
    arn: str
    name: str
    provider_name: str
    region: str
    capabilities: dict | None = None
    queue: dict = field(default_factory=dict)


@dataclass
class _TasksState(ListingWindow):
    running_seen: dict[str, float] = field(default_factory=dict)  # task ARN -> first poll that saw it RUNNING


class BraketProvider(Provider):
    kind = "braket"

    def __init__(
        self,
        config: BraketProviderConfig,
        *,
        clock: Callable[[], float] = time.time,
        boto_session: Any = None,
        price_table: PriceTable | None = None,
    ):
        self.config = config
        self.clock = clock
        self._boto_session = boto_session
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._devices: dict[str, _Device] | None = None
        self._tasks: dict[str, _TasksState] = {}
        self._records: OrderedDict[str, JobRecord] = OrderedDict()
        self._unpriced: set[str] = set()
        self._prices = price_table if price_table is not None else load_price_table(config.price_table)
        self._aws_sessions: dict[str, Any] = {}  # region -> braket.aws.AwsSession (probe tasks)

    def probe_wait_seconds(self) -> float:
        return self.config.probe_timeout

    # --- clients ----------------------------------------------------------------------------
    def client(self, region: str | None = None) -> Any:
        """The boto3 braket client for a region (device ARNs are regional), with bounded
        timeouts and few retries: the scheduler's backoff handles persistent faults."""
        region = region or self.config.region
        with self._lock:
            if region not in self._clients:
                import boto3
                from botocore.config import Config as BotoConfig

                if self._boto_session is None:
                    self._boto_session = boto3.Session(region_name=self.config.region)
                self._clients[region] = self._boto_session.client(
                    "braket", region_name=region,
                    config=BotoConfig(
                        connect_timeout=self.config.connect_timeout, read_timeout=self.config.request_timeout,
                        retries={"total_max_attempts": self.config.retries + 1, "mode": "standard"},
                    ),
                )
            return self._clients[region]

    def _call(self, operation: str, region: str, method: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.client(region), method)(**kwargs)
        except ProviderError:
            raise
        except Exception as exc:  # noqa: BLE001 - every vendor fault becomes a ProviderError
            raise classify_exception(exc, operation) from None

    # --- devices ----------------------------------------------------------------------------
    def _discover(self) -> dict[str, _Device]:
        if self._devices is not None:
            return self._devices
        if self.config.devices:
            found = [(arn, region_of(arn, self.config.region)) for arn in self.config.devices]
        else:
            found = self._search_devices()
        devices: dict[str, _Device] = {}
        for arn, region in found:
            resp = self._get_device_raw(arn, region)
            name = str(resp.get("deviceName") or arn.rsplit("/", 1)[-1])
            if name in devices:  # same device name from two providers: keep both apart
                name = f"{resp.get('providerName', '')}-{name}"
            devices[name] = _Device(arn, name, str(resp.get("providerName") or ""), region)
            self._absorb(devices[name], resp)
        self._devices = devices
        return devices

    def _search_devices(self) -> list[tuple[str, str]]:
        """(ARN, region) of every QPU that is not RETIRED, in every searched region. As the
        Braket SDK's AwsDevice.get_devices does: SearchDevices supports only a deviceArn
        filter, so the type and status are filtered here; a region that cannot be searched
        is skipped with a warning (its devices come back at the next discovery), unless none
        can be."""
        found: dict[str, str] = {}
        failures: list[ProviderError] = []
        regions = self.config.search_regions()
        for region in regions:
            try:
                pages = self.client(region).get_paginator("search_devices").paginate(
                    filters=[], PaginationConfig={"PageSize": PAGE_SIZE},
                )
                for page in pages:
                    for d in page.get("devices", []):
                        if d.get("deviceType") == "QPU" and d.get("deviceStatus") != "RETIRED":
                            found.setdefault(str(d["deviceArn"]), region_of(str(d["deviceArn"]), region))
            except Exception as exc:  # noqa: BLE001
                err = exc if isinstance(exc, ProviderError) else classify_exception(exc, f"search devices in {region}")
                failures.append(err)
                log.warning("could not search a region for Braket devices", region=region, error_kind=err.kind)
        if failures and len(failures) == len(regions):
            raise failures[0]
        return list(found.items())

    def _device(self, backend: str) -> _Device:
        dev = self._discover().get(backend)
        if dev is None:
            raise provider_error("unavailable", f"no Braket device named {backend!r}")
        return dev

    def _get_device_raw(self, arn: str, region: str) -> dict:
        resp = self._call(f"get device {arn.rsplit('/', 1)[-1]}", region, "get_device", deviceArn=arn)
        if not isinstance(resp, dict) or "deviceStatus" not in resp:
            raise provider_error("malformed", "get device: no deviceStatus")
        return resp

    def _absorb(self, dev: _Device, resp: dict) -> None:
        try:
            caps = json.loads(resp.get("deviceCapabilities") or "{}")
        except (TypeError, ValueError):
            raise provider_error("malformed", f"get device {dev.name}: deviceCapabilities is not JSON") from None
        if not isinstance(caps, dict):
            raise provider_error("malformed", f"get device {dev.name}: deviceCapabilities is not an object")
        dev.capabilities = caps
        queue: dict[str, Any] = {"normal": 0, "priority": 0, "jobs": 0, "exact": True}
        for entry in resp.get("deviceQueueInfo") or []:
            size, exact = parse_queue_size(entry.get("queueSize"))
            if entry.get("queue") == "JOBS_QUEUE":
                queue["jobs"] = size
            elif str(entry.get("queuePriority", "Normal")).lower() == "priority":
                queue["priority"] = size
            else:
                queue["normal"] = size
            queue["exact"] = queue["exact"] and exact
        dev.queue = queue

    def _refresh(self, backend: str) -> tuple[_Device, dict]:
        dev = self._device(backend)
        resp = self._get_device_raw(dev.arn, dev.region)
        self._absorb(dev, resp)
        return dev, resp

    # --- Provider interface --------------------------------------------------------------------
    def backends(self) -> list[BackendInfo]:
        out = []
        for name, dev in self._discover().items():
            paradigm = (dev.capabilities or {}).get("paradigm") or {}
            try:
                n = qubit_count(paradigm.get("qubitCount"))
            except (TypeError, ValueError):
                n = 0
            out.append(BackendInfo(self.kind, name, n, dev.provider_name))
        return out

    def status(self, backend: str) -> BackendStatus:
        dev, resp = self._refresh(backend)
        state = str(resp["deviceStatus"])
        return BackendStatus(
            operational=state == "ONLINE",
            pending_jobs=dev.queue["normal"] + dev.queue["priority"],
            status_message=state.lower(),
            fetched_at=self.clock(),
        )

    def queue_depth(self, backend: str) -> dict:
        """Last seen queue sizes: ``normal``, ``priority`` (quantum tasks), ``jobs`` (hybrid
        jobs), and ``exact`` False when a size was a lower bound such as '>4000'."""
        dev = self._device(backend)
        return dict(dev.queue)

    def availability_window_open(self, backend: str, at: float | None = None) -> bool:
        """Whether the device's execution window is open now (UTC), from the last
        GetDevice (fetched once if none yet)."""
        dev = self._device(backend)
        if dev.capabilities is None:
            self._refresh(backend)
        windows = ((dev.capabilities or {}).get("service") or {}).get("executionWindows") or []
        return window_open(windows, self.clock() if at is None else at)

    def calibration(self, backend: str) -> CalibrationSnapshot:
        dev, _ = self._refresh(backend)
        try:
            return parse_standardized(dev.capabilities or {}, provider=self.kind, backend=backend, fetched_at=self.clock())
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise provider_error("malformed", f"standardized properties of {backend}: {type(exc).__name__}") from None

    def jobs(self, backend: str, since: float | None) -> list[JobRecord]:
        dev = self._device(backend)
        now = self.clock()
        state = self._tasks.setdefault(backend, _TasksState())
        floor = state.floor(now, since, self.config.jobs_lookback)
        tasks = self._search_tasks(dev, floor)

        records: list[JobRecord] = []
        budget = self.config.max_task_lookups_per_poll
        unfinished: float | None = None
        deferred: float | None = None
        running_now: dict[str, float] = {}
        for task in tasks:
            arn = str(task.get("quantumTaskArn") or "")
            status = str(task.get("status") or "").upper()
            created = parse_timestamp(task.get("createdAt"))
            if not arn or created is None:
                raise provider_error("malformed", f"tasks of {backend}: a task without an ARN or createdAt")
            if status not in _FINAL:
                unfinished = created if unfinished is None else min(unfinished, created)
                if status == "RUNNING":
                    running_now[arn] = state.running_seen.get(arn, now)
                continue
            cached = self._records.get(arn)
            if cached is not None:
                records.append(cached)
                continue
            detail = None
            # CANCELLED tasks are not billed and carry no failure reason: nothing to look up.
            if _FINAL[status] != JOB_CANCELLED and self.config.max_task_lookups_per_poll > 0:
                if budget <= 0:
                    deferred = created if deferred is None else min(deferred, created)  # next poll
                    continue
                budget -= 1
                detail = self._call(f"get task of {backend}", dev.region, "get_quantum_task", quantumTaskArn=arn)
                if not isinstance(detail, dict):
                    raise provider_error("malformed", f"get task of {backend}: expected an object")
            record = self._record(dev, task, _FINAL[status], created, detail, state.running_seen.get(arn), now)
            self._records[arn] = record
            while len(self._records) > RECORD_CACHE_SIZE:
                self._records.popitem(last=False)
            records.append(record)
        state.running_seen = running_now
        state.listed(unfinished, deferred)
        return records

    def oldest_unfinished(self, backend: str) -> float | None:
        state = self._tasks.get(backend)
        return None if state is None else state.oldest_unfinished

    def probe_cost_usd(self, backend, usage_seconds, shots_per_circuit):
        """One task per circuit, each billed the per-task fee plus its shots (None: no price)."""
        price = self._price(self._device(backend))
        if price is None:
            return None
        return sum(price.task_cost(shots) for shots in shots_per_circuit)

    def _price(self, dev: _Device) -> TaskPrice | None:
        """The table's price, else the service's published per-shot price (deviceCost)."""
        published = None
        if dev.capabilities:
            try:
                published = published_price(dev.capabilities)
            except (ValueError, TypeError, KeyError, AttributeError):
                published = None  # a document the schema rejects publishes no usable price
        return self._prices.price(dev.name, published)

    def close(self) -> None:
        self._clients.clear()
        self._aws_sessions.clear()

    # --- probe execution -------------------------------------------------------------------------
    def run_circuits(self, backend, circuits, shots, seed, calibration=None):
        """One Braket task per probe circuit on the device qubits named by each circuit's
        ``metadata["physical_qubits"]``; counts per circuit in input order, qiskit bit
        order. Blocks until every task is final, at most ``probe_timeout`` (then the
        unfinished ones are cancelled and this raises ``timeout``). A FAILED or CANCELLED
        task raises ``task_failed``/``task_cancelled`` (the others are cancelled: the
        runner resubmits the whole probe). ``seed`` and ``calibration`` do not apply."""
        if not circuits:
            return []
        if not self.config.probe_s3_bucket:
            raise provider_error("unsupported", "Braket probes need probe_s3_bucket: QPU task results are written to S3")
        dev = self._device(backend)
        if dev.capabilities is None:
            self._refresh(backend)
        if self.config.probe_verbatim:
            paradigm = (dev.capabilities or {}).get("paradigm") or {}
            natives = frozenset(str(g).lower() for g in paradigm.get("nativeGateSet") or [])
            if not natives:
                raise provider_error("unsupported", f"{backend} publishes no native gate set; set probe_verbatim: false")
            programs = [verbatim_program(c, natives, backend) for c in circuits]
        else:
            programs = [compiled_program(c) for c in circuits]
        layouts = [_probe_layout(c)[1] for c in circuits]

        from braket.aws import AwsDevice
        from braket.ir.openqasm import Program

        session = self._aws_session(dev.region)
        # A folder of this attempt's own: a task whose creation failed can be recognised by it.
        attempt = uuid.uuid4().hex[:16]
        folder = (self.config.probe_s3_bucket, f"{self.config.probe_s3_prefix.strip('/')}/{backend}/{attempt}")
        submitted_at = self.clock()
        try:
            device = AwsDevice(dev.arn, aws_session=session)  # GetDevice
        except Exception as exc:  # noqa: BLE001
            raise classify_exception(exc, f"device {backend}") from None
        tasks: list[Any] = []
        try:
            for i, source in enumerate(programs):
                try:
                    tasks.append(device.run(Program(source=source), s3_destination_folder=folder, shots=int(shots),
                                            tags=dict(PROBE_TAGS), quiet=True))
                except Exception as exc:  # noqa: BLE001
                    err = self._task_fault(exc, f"create probe task {i + 1}/{len(programs)} on {backend}")
                    if err.kind not in ("invalid_input", "auth"):  # the service may have created it
                        self._cancel_lost_tasks(dev, folder, tasks, submitted_at)
                    raise err from None
            # The wait for the created tasks (queue + run), as on IBM: translating and
            # creating are bounded by the request timeouts.
            deadline = time.monotonic() + self.config.probe_timeout
            results = [self._await_task(task, backend, deadline) for task in tasks]
        except ProviderError:
            self._cancel_unfinished(tasks, backend)
            raise
        out = []
        for i, (result, circuit) in enumerate(zip(results, circuits)):
            where = f"result of probe task {_task_id(tasks[i])}"
            try:
                counts = dict(result.measurement_counts)
                measured = [int(q) for q in result.measured_qubits]
            except (AttributeError, TypeError, ValueError):
                raise provider_error("malformed", f"{where}: no measurement counts") from None
            keyed = counts_in_qiskit_order(counts, measured, layouts[i], circuit.num_clbits, where)
            if sum(keyed.values()) != shots:
                raise provider_error("malformed", f"{where}: {sum(keyed.values())} shots, expected {shots}")
            out.append(keyed)
        return out

    def _aws_session(self, region: str) -> Any:
        """A Braket SDK session on our (bounded, stubbable) braket client for ``region``; the
        SDK wants a boto session of the same region, carrying the same credentials."""
        from braket.aws import AwsSession

        client = self.client(region)
        with self._lock:
            if region not in self._aws_sessions:
                base = self._boto_session
                self._aws_sessions[region] = AwsSession(boto_session=_regional_session(base, region), braket_client=client)
            return self._aws_sessions[region]

    def _task_fault(self, exc: BaseException, operation: str) -> ProviderError:
        code = ""
        response = getattr(exc, "response", None)
        if isinstance(response, dict):
            code = str((response.get("Error") or {}).get("Code") or "")
        if code == "ValidationException":  # our program or parameters: a retry cannot help
            return provider_error("invalid_input", f"{operation}: the service rejected the program ({code})")
        return classify_exception(exc, operation)

    def _await_task(self, task: Any, backend: str, deadline: float) -> Any:
        """Poll one task (GetQuantumTask) until final, then read its result from S3."""
        task_id = _task_id(task)
        while True:
            try:
                meta = task.metadata()
            except Exception as exc:  # noqa: BLE001
                raise classify_exception(exc, f"state of probe task {task_id}") from None
            status = str(meta.get("status") or "").upper()
            if status == "COMPLETED":
                break
            if status == "FAILED":
                # The class only: a failure reason can quote the submitted program.
                raise provider_error("task_failed", f"probe task {task_id} on {backend} failed: "
                                                    f"{failure_class(meta.get('failureReason'))}")
            if status in ("CANCELLED", "CANCELLING"):
                raise provider_error("task_cancelled", f"probe task {task_id} on {backend} was cancelled")
            left = deadline - time.monotonic()
            if left <= 0:
                raise provider_error("timeout", f"probe task {task_id} on {backend} not finished within probe_timeout "
                                                f"{self.config.probe_timeout:g} s")
            time.sleep(min(self.config.probe_poll_interval, left))
        try:
            result = task.result()  # cached COMPLETED state -> S3 GetObject of results.json
        except Exception as exc:  # noqa: BLE001
            raise classify_exception(exc, f"result of probe task {task_id}") from None
        if result is None:
            raise provider_error("malformed", f"result of probe task {task_id}: none")
        return result

    def _cancel_unfinished(self, tasks: list[Any], backend: str) -> None:
        """Best effort: tasks nobody will read should not spend the device's time."""
        for task in tasks:
            try:
                status = str((task.metadata(use_cached_value=True) or {}).get("status") or "").upper()
                if status not in _FINAL and status != "CANCELLING":
                    task.cancel()
            except Exception as exc:  # noqa: BLE001
                log.warning("could not cancel probe task", backend=backend, task=_task_id(task),
                            error_kind=classify_exception(exc, "cancel").kind)

    def _cancel_lost_tasks(self, dev: _Device, folder: tuple[str, str], tasks: list[Any], since: float) -> None:
        """A CreateQuantumTask whose response was lost (a read timeout, a 5xx after the
        service accepted it) can still have created its task, which nobody would read. Find
        unfinished tasks writing under this attempt's folder that we hold no handle for, and
        cancel them (best effort; the search is by device and creation time, with 5 min of
        slack for clock skew, since tasks cannot be searched by tag or folder)."""
        bucket, key = folder
        known = {str(getattr(t, "id", "")) for t in tasks}
        try:
            listed = self._search_tasks(dev, since - 300)
        except ProviderError as err:
            log.warning("could not check for probe tasks left by a failed creation", backend=dev.name,
                        error_kind=err.kind)
            return
        for task in listed:
            arn = str(task.get("quantumTaskArn") or "")
            status = str(task.get("status") or "").upper()
            if (not arn or arn in known or task.get("outputS3Bucket") != bucket
                    or not str(task.get("outputS3Directory") or "").startswith(key + "/")
                    or status in _FINAL or status == "CANCELLING"):
                continue
            task_id = arn.rsplit("/", 1)[-1]
            try:
                self.client(dev.region).cancel_quantum_task(quantumTaskArn=arn, clientToken=str(uuid.uuid4()))
                log.warning("cancelled a probe task whose creation failed", backend=dev.name, task=task_id)
            except Exception as exc:  # noqa: BLE001
                log.warning("could not cancel a probe task whose creation failed", backend=dev.name, task=task_id,
                            error_kind=classify_exception(exc, "cancel").kind)

    # --- tasks helpers ---------------------------------------------------------------------------
    def _search_tasks(self, dev: _Device, floor: float) -> list[dict]:
        after = datetime.fromtimestamp(floor, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        out: list[dict] = []
        try:
            pages = self.client(dev.region).get_paginator("search_quantum_tasks").paginate(
                filters=[
                    {"name": "deviceArn", "operator": "EQUAL", "values": [dev.arn]},
                    {"name": "createdAt", "operator": "GTE", "values": [after]},
                ],
                PaginationConfig={"PageSize": PAGE_SIZE, "MaxItems": PAGE_SIZE * self.config.max_task_pages},
            )
            for page in pages:
                tasks = page.get("quantumTasks")
                if not isinstance(tasks, list):
                    raise provider_error("malformed", f"tasks of {dev.name}: no task list")
                out.extend(t for t in tasks if isinstance(t, dict))
        except ProviderError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise classify_exception(exc, f"tasks of {dev.name}") from None
        if len(out) >= PAGE_SIZE * self.config.max_task_pages:
            log.warning("task listing truncated at max_task_pages", backend=dev.name)
        return out

    def _record(self, dev: _Device, task: dict, status: str, created: float, detail: dict | None,
                running: float | None, now: float) -> JobRecord:
        ended = parse_timestamp(task.get("endedAt"))
        finished = ended if ended is not None else now
        if running is not None and not created <= running <= finished:
            running = None  # our observation cannot bound this task's start
        queue, execution = durations_from_timestamps(created, running, finished)
        shots = int(task.get("shots") or 0)
        cost, reason = self._task_cost(dev, status, shots, detail)
        if status == JOB_FAILED:
            error = failure_class(str(detail.get("failureReason") or "")) if detail is not None else "unknown"
        else:
            error = ""
        # Braket bills shots and publishes no QPU time per task: usage is unknown, not 0.
        return JobRecord(
            provider=self.kind, backend=dev.name, job_id=str(task["quantumTaskArn"]), status=status,
            created_at=created, finished_at=finished, queue_seconds=queue, execution_seconds=execution,
            usage_seconds=None, cost_usd=cost, error_class=error, cost_unknown_reason=reason,
            tags=task_tags(task.get("tags")),
        )

    def _task_cost(self, dev: _Device, status: str, shots: int, detail: dict | None) -> tuple[float | None, str]:
        """(USD, "") or (None, why unknown). FAILED and CANCELLED tasks are not billed; a task
        inside a Braket Direct reservation is paid by the reservation, not per task."""
        if status != JOB_DONE:
            return 0.0, ""
        if detail is None:
            return None, "not_read"
        if any(isinstance(a, dict) and a.get("type") == RESERVATION_ASSOCIATION for a in detail.get("associations") or []):
            return None, "reservation"
        price = self._price(dev)
        if price is None:
            if dev.name not in self._unpriced:
                self._unpriced.add(dev.name)
                log.warning("no price for Braket device; its tasks' cost is counted as unknown", backend=dev.name)
            return None, "unpriced_device"
        return price.task_cost(shots), ""


def task_tags(tags: Any) -> tuple[tuple[str, str], ...]:
    """A task's tags as (key, value) pairs. SearchQuantumTasks returns them on every task
    summary (QuantumTaskSummary.tags), so reading them costs no request; absent means none."""
    return bounded_tags(sorted(tags.items())) if isinstance(tags, dict) else ()
