"""Age guard: who made a resource and when, stamped from CloudTrail, never over a tag a person set.

Pure functions here; the EC2 adapter at the bottom takes its client.
"""

from __future__ import annotations

import fnmatch
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from trainctl.aws.clients import access_error
from trainctl.core import tags
from trainctl.core.clock import format_instant

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

MAX_TAG_VALUE = 256
TAG_BATCH = 500
LAUNCH_TEMPLATE_TAG = "aws:ec2launchtemplate:id"

# The response keys that name what each call created, and the id shape each must have. Key names,
# not positions: CreateFleet and CreateSnapshots nest their ids differently across API versions,
# and RunInstances also names the *source* AMI (imageId), which must never be stamped.
CREATED_KEYS: dict[str, dict[str, str]] = {
    "RunInstances": {"instanceId": "i"},
    "CreateVolume": {"volumeId": "vol"},
    "CreateSnapshot": {"snapshotId": "snap"},
    "CreateSnapshots": {"snapshotId": "snap"},
    "CopySnapshot": {"snapshotId": "snap"},
    "CreateImage": {"imageId": "ami"},
    "RequestSpotInstances": {"spotInstanceRequestId": "sir"},
    "CreateFleet": {"instanceId": "i", "instanceIds": "i"},
}
STAMPED_EVENTS = tuple(CREATED_KEYS)


def _id_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"^{prefix}-[0-9a-f]{{8,17}}$")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made the call, in the words the tags use."""

    kind: str  # assumed-role, iam-user, root, aws-service, federated-user, unknown
    created_by: str
    owner: str
    arns: tuple[str, ...] = ()  # what scope patterns are matched against


@dataclass(frozen=True, slots=True)
class StampRules:
    """Owner map and scope rules; the defaults stamp who and when, and bring nothing into scope."""

    scope_tag: str = tags.MANAGED
    owner_map: Mapping[str, str] = field(default_factory=dict)  # principal glob -> owner
    scope_principals: tuple[str, ...] = ()  # principal globs whose resources are managed
    scope_launch_templates: tuple[str, ...] = ()  # launch template ids whose instances are managed
    scope_tag_match: tuple[str, str] | None = None  # a (key, value) present at creation makes it managed


def _clip(value: str) -> str:
    return value if len(value) <= MAX_TAG_VALUE else value[: MAX_TAG_VALUE - 1] + "…"


def principal_of(user_identity: Mapping[str, Any]) -> Principal:
    kind = str(user_identity.get("type", ""))
    arn = str(user_identity.get("arn", ""))
    invoked_by = user_identity.get("invokedBy")
    if kind == "AWSService" or (invoked_by and str(invoked_by).endswith(".amazonaws.com")):
        service = str(invoked_by or user_identity.get("principalId") or "aws-service")
        return Principal("aws-service", _clip(f"service:{service}"), service, (service, arn))
    if kind == "AssumedRole":
        issuer = user_identity.get("sessionContext", {}).get("sessionIssuer", {})
        role_arn = str(issuer.get("arn") or arn)
        session = arn.rsplit("/", 1)[-1] if "/" in arn else ""
        created_by = f"{role_arn} session {session}" if session else role_arn
        return Principal(
            "assumed-role", _clip(created_by), session or str(issuer.get("userName", role_arn)), (role_arn, arn)
        )
    if kind == "IAMUser":
        return Principal("iam-user", _clip(arn), str(user_identity.get("userName") or arn.rsplit("/", 1)[-1]), (arn,))
    if kind == "Root":
        account = str(user_identity.get("accountId", ""))
        return Principal("root", _clip(arn or f"arn:aws:iam::{account}:root"), "root", (arn,))
    if kind == "FederatedUser":
        return Principal("federated-user", _clip(arn), arn.rsplit("/", 1)[-1], (arn,))
    return Principal("unknown", _clip(arn or "unknown"), "unknown", (arn,) if arn else ())


def created_ids(event_name: str, response: Any) -> list[str]:
    """Ids of what the call created, in order, each once; nothing for an unknown call."""
    keys = CREATED_KEYS.get(event_name, {})
    patterns = {key: _id_pattern(prefix) for key, prefix in keys.items()}
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key in patterns:
                    for candidate in _strings(value):
                        if patterns[key].match(candidate) and candidate not in found:
                            found.append(candidate)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(response)
    return found


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, str):
                yield item
            elif isinstance(item, Mapping) and isinstance(item.get("item"), list):
                yield from _strings(item["item"])
    elif isinstance(value, Mapping):
        yield from _strings(value.get("item") or value.get("items") or [])


def owner_for(principal: Principal, owner_map: Mapping[str, str]) -> str:
    for pattern, owner in owner_map.items():
        if any(fnmatch.fnmatchcase(candidate, pattern) for candidate in (*principal.arns, principal.created_by)):
            return owner
    return principal.owner


def in_scope_by_rules(principal: Principal | None, current: Mapping[str, str], rules: StampRules) -> bool:
    if principal is not None and any(
        fnmatch.fnmatchcase(candidate, pattern)
        for pattern in rules.scope_principals
        for candidate in (*principal.arns, principal.created_by)
    ):
        return True
    if current.get(LAUNCH_TEMPLATE_TAG) in rules.scope_launch_templates:
        return True
    if rules.scope_tag_match is not None:
        key, value = rules.scope_tag_match
        return current.get(key) == value
    return False


def stamps_for(
    resource_ids: Sequence[str],
    current_tags: Mapping[str, Mapping[str, str]],
    principal: Principal | None,
    created_at: datetime,
    rules: StampRules,
) -> dict[str, dict[str, str]]:
    """The tags each resource lacks; a key already there, whatever its value, is left alone."""
    planned: dict[str, dict[str, str]] = {}
    for resource_id in resource_ids:
        current = current_tags.get(resource_id, {})
        wanted = {tags.CREATED_AT: format_instant(created_at)}
        if principal is not None:
            wanted[tags.CREATED_BY] = principal.created_by
            wanted[tags.OWNER] = _clip(owner_for(principal, rules.owner_map))
        if in_scope_by_rules(principal, current, rules):
            wanted[rules.scope_tag] = "true"
        missing = {key: value for key, value in wanted.items() if key not in current}
        if missing:
            planned[resource_id] = missing
    return planned


def tag_batches(planned: Mapping[str, Mapping[str, str]]) -> list[tuple[list[str], dict[str, str]]]:
    """Group resources that need the same tags, so a launch of many instances is one CreateTags call."""
    groups: dict[tuple[tuple[str, str], ...], list[str]] = defaultdict(list)
    for resource_id, wanted in planned.items():
        groups[tuple(sorted(wanted.items()))].append(resource_id)
    batches = []
    for key, ids in groups.items():
        for start in range(0, len(ids), TAG_BATCH):
            batches.append((ids[start : start + TAG_BATCH], dict(key)))
    return batches


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
        """Launch time, root and data volumes, and spot request of each instance still there."""
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
                            "volumes": [
                                m["Ebs"]["VolumeId"] for m in instance.get("BlockDeviceMappings", []) if "Ebs" in m
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
