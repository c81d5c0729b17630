"""Config of the Amazon Braket provider (``kind: braket``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from ...config_types import Duration, Strict

# Regions that host Braket QPUs: the list the Braket SDK's AwsDevice.get_devices searches
# for QPUs (amazon-braket-sdk-python, braket/aws/aws_device.py, AwsDevice.REGIONS).
QPU_REGIONS = ("us-east-1", "us-west-1", "us-west-2", "eu-west-2", "eu-north-1")


class BraketProviderConfig(Strict):
    kind: Literal["braket"]
    # The AWS session's home region (credentials, clients for ARNs without a region).
    region: str = "us-east-1"
    # Regions searched for QPUs when `devices` is not given; default: every region that
    # hosts QPUs (QPU_REGIONS). Each region costs one SearchDevices per discovery.
    regions: list[str] | None = Field(default=None, min_length=1)
    devices: list[str] | None = None  # device ARNs; default: every QPU in `regions`
    connect_timeout: Duration = Field(default=5.0, gt=0, le=300)
    request_timeout: Duration = Field(default=30.0, gt=0, le=600)
    retries: int = Field(default=1, ge=0, le=5)
    jobs_lookback: Duration = Field(default=86400.0, ge=0)
    max_task_pages: int = Field(default=20, ge=1, le=1000)
    # GetQuantumTask calls per poll and device: one per newly finished task, for its failure
    # reason and its Braket Direct reservation (search results carry neither). Tasks beyond
    # the cap wait for the next poll; 0 = never (costs are then unknown).
    max_task_lookups_per_poll: int = Field(default=50, ge=0, le=10000)
    price_table: Path | None = None  # default: the shipped illustrative table
    # Probe tasks: results land in
    # s3://probe_s3_bucket/probe_s3_prefix/<device>/<attempt id>/<task id>/results.json
    # (Braket writes every QPU result to S3; no bucket = probes on Braket are unsupported).
    # probe_verbatim: translate to the device's native gates inside a verbatim box so the
    # device compiler cannot merge the RB sequence; false: let Braket compile the program.
    probe_s3_bucket: str | None = Field(default=None, min_length=3, max_length=63)
    probe_s3_prefix: str = "qpu-exporter/probes"
    probe_verbatim: bool = True
    probe_timeout: Duration = Field(default=1800.0, gt=0, le=86400)
    probe_poll_interval: Duration = Field(default=5.0, ge=0.1, le=600)

    @field_validator("devices")
    @classmethod
    def _arns(cls, arns: list[str] | None) -> list[str] | None:
        if arns is None:
            return None
        for arn in arns:
            if not arn.startswith("arn:aws:braket:") or "/" not in arn:
                raise ValueError(f"not a Braket device ARN: {arn!r}")
        return arns

    @field_validator("regions")
    @classmethod
    def _regions(cls, regions: list[str] | None) -> list[str] | None:
        if regions is None:
            return None
        for region in regions:
            if not region or not all(part.isalnum() for part in region.split("-")):
                raise ValueError(f"not an AWS region name: {region!r}")
        if len(set(regions)) != len(regions):
            raise ValueError("region names must be unique")
        return regions

    def search_regions(self) -> tuple[str, ...]:
        return tuple(self.regions) if self.regions is not None else QPU_REGIONS
