"""The pre-warm plan: what the prewarm_plan task hands the workflow, and every later state reads.

The state machine (infra/prewarm_workflow.py) names these fields through plan_path, never by string literal,
so a renamed or removed field fails at synth rather than inside a running workflow.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer


class CreateVolumeParameters(BaseModel):
    """EC2 CreateVolume's parameters under AWS's own names, passed on as they are; an unset one is left out."""

    model_config = ConfigDict(
        defer_build=True, extra="forbid", frozen=True, validate_by_name=True, serialize_by_alias=True
    )

    availability_zone: str = Field(alias="AvailabilityZone")
    size: int = Field(alias="Size")
    volume_type: str = Field(alias="VolumeType")
    snapshot_id: str | None = Field(default=None, alias="SnapshotId")
    volume_initialization_rate: int | None = Field(default=None, alias="VolumeInitializationRate")
    iops: int | None = Field(default=None, alias="Iops")
    throughput: int | None = Field(default=None, alias="Throughput")
    tag_specifications: list[dict[str, Any]] = Field(alias="TagSpecifications")

    @model_serializer(mode="wrap")
    def _leave_out_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # The workflow chooses its CreateVolume shape by which keys are present: null is not absent there.
        dumped: dict[str, Any] = handler(self)
        return {key: value for key, value in dumped.items() if value is not None}


class PrewarmPlan(BaseModel):
    """Everything the workflow needs after validation; the JSON contract is model_dump(mode="json")."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    # What the volume is pre-warmed from: the S3 prefix a worker copies, or the snapshot EBS restores it from.
    source: str
    # The workflow's fork: a worker copies from S3, or (false) EBS initialises a restored volume and no worker runs.
    copies_from_s3: bool
    # None until the workflow has created the volume from create_volume; it then writes the new id here.
    volume_id: str | None
    create_volume: CreateVolumeParameters | None
    zone: str
    region: str
    instance_id: str | None
    launch_worker: bool
    instance_type: str | None
    sizing: str
    instance_profile_arn: str
    device: str
    s3_uri: str | None
    mount_point: str
    # A parameter of the pre-warm document, whose parameters are strings.
    read_all_blocks: Literal["true", "false"]
    snapshot: bool
    data_bytes: int
    objects: int
    estimated_seconds: int
    # The tag key that puts a resource in trainctl's scope: the snapshot taken after a copy carries it.
    scope_tag: str
