"""Age guard: who made a resource and when, stamped from CloudTrail, never over a tag a person set.

Pure functions here; the EC2 adapter at the bottom takes its client.
"""

from __future__ import annotations

import fnmatch
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from trainctl.core import tags
from trainctl.core.clock import format_instant

if TYPE_CHECKING:
    pass

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


# Calls that put a resource back to use, or move it in or out of scope: each makes a mark on it void.
USE_EVENTS = ("AttachVolume", "StartInstances", "CreateTags", "DeleteTags")
_USED_ID = re.compile(r"^(vol|i|snap)-[0-9a-f]{8,17}$")


def used_ids(event_name: str, request: Any, scope_tag: str) -> list[str]:
    """The resources a use call touched; for tag calls, only when they write the scope tag."""
    if event_name not in USE_EVENTS or not isinstance(request, Mapping):
        return []
    if event_name == "AttachVolume":
        found = list(_strings(request.get("volumeId")))
    elif event_name == "StartInstances":
        found = [i for item in _items(request.get("instancesSet")) for i in _strings(item.get("instanceId"))]
    else:
        keys = {k for item in _items(request.get("tagSet")) for k in _strings(item.get("key"))}
        if scope_tag.lower() not in {k.lower() for k in keys}:
            return []
        found = [r for item in _items(request.get("resourcesSet")) for r in _strings(item.get("resourceId"))]
    return list(dict.fromkeys(i for i in found if _USED_ID.match(i)))


def _items(node: Any) -> list[Mapping[str, Any]]:
    """EC2's {"items": [...]} (or "item"), where one object may stand in for a list of one."""
    if not isinstance(node, Mapping):
        return []
    inner = node.get("items", node.get("item"))
    if isinstance(inner, Mapping):
        return [inner]
    return [item for item in inner or [] if isinstance(item, Mapping)]
