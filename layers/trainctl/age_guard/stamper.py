"""The stamping adapter: reads what a call made (and its tags) from EC2, and writes the stamps in batches."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from trainctl.age_guard.rules import AttachedVolume, tag_batches
from trainctl.aws.clients import access_error
from trainctl.core.permissions import needs

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

PERMISSIONS = needs(
    "ec2:CreateTags",
    "ec2:DescribeImages",
    "ec2:DescribeInstances",
    "ec2:DescribeSnapshots",
    "ec2:DescribeSpotInstanceRequests",
    "ec2:DescribeTags",
    "ec2:DescribeVolumes",
)


class Ec2Stamper:
    def __init__(self, ec2: EC2Client) -> None:
        self._ec2 = ec2

    def current_tags(self, resource_ids: Iterable[str]) -> dict[str, dict[str, str]]:
        ids = list(resource_ids)
        found: dict[str, dict[str, str]] = {i: {} for i in ids}
        try:
            for start in range(0, len(ids), 200):
                pages = self._ec2.get_paginator("describe_tags").paginate(
                    Filters=[{"Name": "resource-id", "Values": ids[start : start + 200]}]
                )
                for page in pages:
                    for tag in page.get("Tags", []):
                        found[str(tag["ResourceId"])][str(tag["Key"])] = str(tag.get("Value", ""))
        except ClientError as exc:
            raise access_error("DescribeTags", exc) from exc
        return found

    def launch_details(self, instance_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Launch time, the EBS volumes attached now (with when and how), and spot request of each instance."""
        details: dict[str, dict[str, Any]] = {}
        try:
            pages = self._ec2.get_paginator("describe_instances").paginate(
                Filters=[{"Name": "instance-id", "Values": list(instance_ids)}]
            )
            for page in pages:
                for reservation in page["Reservations"]:
                    for instance in reservation["Instances"]:
                        details[instance["InstanceId"]] = {
                            "launch_time": instance["LaunchTime"],
                            "attached": [
                                AttachedVolume(
                                    str(m["Ebs"]["VolumeId"]),
                                    str(m.get("DeviceName", "")),
                                    m["Ebs"].get("AttachTime"),
                                    m["Ebs"].get("DeleteOnTermination"),
                                )
                                for m in instance.get("BlockDeviceMappings", [])
                                if "Ebs" in m and "VolumeId" in m["Ebs"]
                            ],
                            "spot_request": instance.get("SpotInstanceRequestId"),
                            "lifecycle": instance.get("InstanceLifecycle", "on-demand"),
                        }
        except ClientError as exc:
            raise access_error("DescribeInstances", exc) from exc
        return details

    def existing(self, resource_ids: Sequence[str]) -> set[str]:
        """Which volumes, snapshots, images and spot requests still exist: one filtered describe per kind.

        Instances are not asked here: `launch_details` describes them once and answers the same question.
        """
        by_prefix: dict[str, list[str]] = defaultdict(list)
        for resource_id in resource_ids:
            by_prefix[resource_id.split("-", 1)[0]].append(resource_id)
        found: set[str] = set()
        try:
            for prefix, ids in by_prefix.items():
                if prefix == "vol":
                    for volumes in self._ec2.get_paginator("describe_volumes").paginate(
                        Filters=[{"Name": "volume-id", "Values": ids}]
                    ):
                        found.update(v["VolumeId"] for v in volumes["Volumes"])
                elif prefix == "snap":
                    for snapshots in self._ec2.get_paginator("describe_snapshots").paginate(
                        Filters=[{"Name": "snapshot-id", "Values": ids}], OwnerIds=["self"]
                    ):
                        found.update(s["SnapshotId"] for s in snapshots["Snapshots"])
                elif prefix == "ami":
                    images = self._ec2.describe_images(Filters=[{"Name": "image-id", "Values": ids}], Owners=["self"])
                    found.update(i["ImageId"] for i in images["Images"])
                elif prefix == "sir":
                    requests = self._ec2.describe_spot_instance_requests(
                        Filters=[{"Name": "spot-instance-request-id", "Values": ids}]
                    )
                    found.update(r["SpotInstanceRequestId"] for r in requests["SpotInstanceRequests"])
        except ClientError as exc:
            raise access_error("Describe", exc) from exc
        return found

    def spot_request_of(self, instance_id: str) -> str | None:
        """The spot request that launched an instance (some endpoints leave it off the instance)."""
        try:
            requests = self._ec2.describe_spot_instance_requests(
                Filters=[{"Name": "instance-id", "Values": [instance_id]}]
            )["SpotInstanceRequests"]
        except ClientError as exc:
            raise access_error("DescribeSpotInstanceRequests", exc) from exc
        return str(requests[0]["SpotInstanceRequestId"]) if requests else None

    def apply(self, planned: Mapping[str, Mapping[str, str]]) -> int:
        calls = 0
        for ids, values in tag_batches(planned):
            try:
                self._ec2.create_tags(Resources=ids, Tags=[{"Key": k, "Value": v} for k, v in values.items()])
            except ClientError as exc:
                raise access_error("CreateTags", exc) from exc
            calls += 1
        return calls
