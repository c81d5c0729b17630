"""Config of the IBM Quantum provider (``kind: ibm``), including how the instance is billed.

IBM publishes how usage is measured and billed (IBM Quantum documentation, "Workload usage",
https://quantum.cloud.ibm.com/docs/guides/estimate-job-run-time, and "Plans overview",
https://quantum.cloud.ibm.com/docs/en/guides/plans-overview): usage is the time a QPU is locked for a workload; in **job** and
**batch** mode it is each job's quantum time, in **session** mode the wall-clock time the
session is active. The plan decides what a second costs: the Open Plan is free, the
Pay-As-You-Go Plan has a published list price (USD 96 per QPU minute), Flex is a contract
price, Premium and Dedicated are subscriptions with no per-job price. ``billing`` states the
plan; a price the plan does not publish is never guessed: it comes from
``usd_per_qpu_second`` or the cost is counted as unknown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from ...config_types import Duration, Strict

# IBM Quantum Pay-As-You-Go list price: USD 96 per QPU minute (https://www.ibm.com/quantum/pricing).
PAY_AS_YOU_GO_USD_PER_SECOND = 1.60

BillingPlan = Literal["open", "pay_as_you_go", "flex", "premium", "dedicated"]
# Plans whose price per QPU second is a contract (flex) or does not exist (subscriptions).
_CONTRACT_PLANS = ("flex",)
SUBSCRIPTION_PLANS = ("premium", "dedicated")


class IbmBilling(Strict):
    """How the instance is billed. ``plan`` unset: costs are unknown (counted, never 0)."""

    plan: BillingPlan | None = None
    # USD per billed QPU second. pay_as_you_go: defaults to the list price; flex: required
    # (the contract price); premium/dedicated: optional (your amortised or marginal rate,
    # 0 for "prepaid"); open: must stay unset (the Open Plan is free).
    usd_per_qpu_second: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _rate_fits_plan(self) -> IbmBilling:
        if self.plan in _CONTRACT_PLANS and self.usd_per_qpu_second is None:
            raise ValueError(f"usd_per_qpu_second: required for plan {self.plan} (your contract price)")
        if self.plan == "open" and self.usd_per_qpu_second is not None:
            raise ValueError("usd_per_qpu_second: the Open Plan is free; leave it unset")
        if self.plan is None and self.usd_per_qpu_second is not None:
            raise ValueError("usd_per_qpu_second: set plan too (open, pay_as_you_go, flex, premium, dedicated)")
        return self

    def rate(self) -> tuple[float | None, str]:
        """(USD per billed QPU second, "") or (None, why the price cannot be known)."""
        if self.plan is None:
            return None, "no_billing_plan"
        if self.plan == "open":
            return 0.0, ""
        if self.usd_per_qpu_second is not None:
            return self.usd_per_qpu_second, ""
        if self.plan == "pay_as_you_go":
            return PAY_AS_YOU_GO_USD_PER_SECOND, ""
        return None, "subscription"


class IbmProviderConfig(Strict):
    kind: Literal["ibm"]
    instance: str | None = None  # the instance CRN; strongly recommended (else the SDK picks)
    channel: str = "ibm_quantum_platform"
    url: str | None = None
    token_file: Path | None = None  # alternative to QISKIT_IBM_TOKEN
    backends: list[str] | None = None  # default: every backend visible to the instance
    # Per HTTP call: connect and read timeouts; retries of 5xx inside one poll (the
    # scheduler's backoff handles the rest, so keep this small).
    connect_timeout: Duration = Field(default=5.0, gt=0, le=300)
    request_timeout: Duration = Field(default=30.0, gt=0, le=600)
    retries: int = Field(default=1, ge=0, le=5)
    # Jobs: look-back on the first poll of a process; page cap per poll (100 jobs a page);
    # /jobs/{id}/metrics calls (timestamps and billed usage) per poll and backend, 0 = never
    # (then usage and cost are unknown).
    jobs_lookback: Duration = Field(default=86400.0, ge=0)
    max_job_metrics_per_poll: int = Field(default=50, ge=0, le=10000)
    max_job_pages: int = Field(default=20, ge=1, le=1000)
    # A finished job whose usage IBM still reports as pending is re-read on every jobs poll
    # until it is final, for at most this long after the job finished (a session's charge:
    # after the session was first seen); then its usage and cost are counted as unknown.
    usage_settle_timeout: Duration = Field(default=86400.0, ge=0, le=30 * 86400)
    billing: IbmBilling = Field(default_factory=IbmBilling)
    # Probe jobs (SamplerV2, job mode): how long one submission may wait for its job to
    # finish (queue + run) before it is cancelled and reported as a timeout (the probe
    # runner's lease on the backend is renewed to cover it). How often the job's state is
    # polled meanwhile.
    probe_timeout: Duration = Field(default=1800.0, gt=0, le=86400)
    probe_poll_interval: Duration = Field(default=5.0, ge=0.1, le=600)
