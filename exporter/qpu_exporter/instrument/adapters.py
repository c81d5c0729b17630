"""Which adapter handles a wrapped object. An SDK object's class is only defined once its SDK
is imported, so the SDKs are looked up in sys.modules, never imported here: wrapping costs no
import, and a missing SDK simply handles nothing."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from .adapter import Adapter

if TYPE_CHECKING:
    from .core import Instrumentation


def _class(module: str, name: str) -> type | None:
    return getattr(sys.modules.get(module), name, None)


def adapter_for(target: Any, inst: Instrumentation) -> Adapter:
    sampler = _class("qiskit.primitives", "BaseSamplerV2")
    if sampler is not None and isinstance(target, sampler):
        from .qiskit_samplers import SamplerAdapter

        return SamplerAdapter(target, inst.tag, inst.tag_key, inst.calibration_refresh)
    aws, local = _class("braket.aws", "AwsDevice"), _class("braket.devices", "LocalSimulator")
    if aws is not None and isinstance(target, aws) or local is not None and isinstance(target, local):
        from .braket_devices import BraketAdapter

        is_aws = aws is not None and isinstance(target, aws)
        return BraketAdapter(target, "braket" if is_aws else "local", inst.tag_key if is_aws else None,
                             inst.workload, inst.calibration_refresh)
    raise TypeError(f"cannot instrument {type(target).__module__}.{type(target).__qualname__}: expected a qiskit "
                    "SamplerV2 (qiskit-ibm-runtime, qiskit-aer) or a Braket AwsDevice or LocalSimulator")
