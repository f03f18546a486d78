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
from typing import Any

from trainctl.core import tags
from trainctl.core.clock import format_instant

# A launch's own volumes: the same slack the protections use to tell them from volumes attached later.
from trainctl.core.lifetimes import LAUNCH_ATTACH_SLACK

MAX_TAG_VALUE = 256
TAG_BATCH = 500
LAUNCH_TEMPLATE_TAG = "aws:ec2launchtemplate:id"
# A scope or owner pattern with this prefix matches the identity that signed the call and nothing the caller
# chose: an assumed role's ARN without its session name (see `Principal.identity`).
ROLE_ONLY = "role:"
# EC2's resource ids: the prefix, then 8 (older) or 17 lowercase hexadecimal characters. `\Z`, not `$`, which
# would also match before a trailing newline.
_HEX = "(?:[0-9a-f]{8}|[0-9a-f]{17})"
ID_PATTERNS: dict[str, re.Pattern[str]] = {
    prefix: re.compile(rf"^{prefix}-{_HEX}\Z") for prefix in ("i", "vol", "snap", "ami")
} | {
    # Spot requests are `sir-` and 8 lowercase letters or digits (sir-dvxi7fsm, sir-86k84j6p in the EC2 User
    # Guide); emulators write the 17-hex form of the other ids.
    "sir": re.compile(r"^sir-(?:[0-9a-z]{8}|[0-9a-f]{17})\Z"),
}

# Where each call's response names what it created: a path of keys, "[]" for every member of an EC2 set
# ({"items": [...]}, {"item": [...]}, a plain list, or the one member itself), and the kind of id found there.
# Nothing else in a response is read: RunInstances also names its source AMI, its network interfaces (whose
# attachments may name instances of other owners), and a requester; none of them is what the call created.
CreatedPath = tuple[tuple[str, ...], str]
CREATED_PATHS: dict[str, tuple[CreatedPath, ...]] = {
    "RunInstances": (
        (("instancesSet", "[]", "instanceId"), "i"),
        (("instancesSet", "[]", "blockDeviceMapping", "[]", "ebs", "volumeId"), "vol"),
    ),
    "CreateVolume": ((("volumeId",), "vol"),),
    "CreateSnapshot": ((("snapshotId",), "snap"),),
    "CreateSnapshots": ((("snapshotSet", "[]", "snapshotId"), "snap"),),
    "CopySnapshot": ((("snapshotId",), "snap"),),
    "CreateImage": ((("imageId",), "ami"),),
    "RequestSpotInstances": ((("spotInstanceRequestSet", "[]", "spotInstanceRequestId"), "sir"),),
    "CreateFleet": ((("fleetInstanceSet", "[]", "instanceIds", "[]"), "i"),),
}
STAMPED_EVENTS = tuple(CREATED_PATHS)
# invokedBy values that name the way a person came in, not a service acting on its own: the console.
CONSOLE_FRONT_ENDS = frozenset({"signin.amazonaws.com", "console.amazonaws.com"})


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made the call, in the words the tags use."""

    kind: str  # assumed-role, iam-user, root, aws-service, federated-user, unknown
    created_by: str
    owner: str
    arns: tuple[str, ...] = ()  # what scope patterns are matched against, session names included
    # The identity that signed the call, with nothing its caller chose: an assumed role's ARN (no session name),
    # a user's ARN, the root ARN, a service principal, the IAM user behind a federated session.
    identity: str = ""


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


def _is_service_call(kind: str, invoked_by: str) -> bool:
    """An AWS service made the call itself: an AWSService identity, or a service principal acting for an identity.

    Console sign-in also writes `invokedBy` (signin.amazonaws.com): the person at the console made that call.
    "AWS Internal" and other values that are not service principals do not name a service either.
    """
    if kind == "AWSService":
        return True
    return invoked_by.endswith(".amazonaws.com") and invoked_by not in CONSOLE_FRONT_ENDS


def principal_of(user_identity: Mapping[str, Any]) -> Principal:
    kind = str(user_identity.get("type", ""))
    arn = str(user_identity.get("arn", ""))
    invoked_by = str(user_identity.get("invokedBy") or "")
    session_context = user_identity.get("sessionContext")
    issuer = session_context.get("sessionIssuer", {}) if isinstance(session_context, Mapping) else {}
    issuer = issuer if isinstance(issuer, Mapping) else {}
    if _is_service_call(kind, invoked_by):
        service = str(invoked_by or user_identity.get("principalId") or "aws-service")
        return Principal("aws-service", _clip(f"service:{service}"), service, (service, arn), service)
    if kind == "AssumedRole":
        role_arn = str(issuer.get("arn") or arn)
        session = arn.rsplit("/", 1)[-1] if "/" in arn else ""
        created_by = f"{role_arn} session {session}" if session else role_arn
        owner = session or str(issuer.get("userName", role_arn))
        return Principal("assumed-role", _clip(created_by), owner, (role_arn, arn), role_arn)
    if kind == "IAMUser":
        owner = str(user_identity.get("userName") or arn.rsplit("/", 1)[-1])
        return Principal("iam-user", _clip(arn), owner, (arn,), arn)
    if kind == "Root":
        account = str(user_identity.get("accountId", ""))
        root = arn or f"arn:aws:iam::{account}:root"
        return Principal("root", _clip(root), "root", (arn,), root)
    if kind == "FederatedUser":
        return Principal("federated-user", _clip(arn), arn.rsplit("/", 1)[-1], (arn,), str(issuer.get("arn") or ""))
    return Principal("unknown", _clip(arn or "unknown"), "unknown", (arn,) if arn else ())


def created_ids(event_name: str, response: Any) -> list[str]:
    """Ids of what the call created, in order, each once; nothing for an unknown call or a value not an id."""
    paths = CREATED_PATHS.get(event_name, ())
    if not isinstance(response, Mapping):
        return []
    # CreateFleet and CreateSnapshots wrap their answer in "<Call>Response" (with xmlns, requestId, errorSet).
    wrapped = response.get(f"{event_name}Response")
    body = wrapped if isinstance(wrapped, Mapping) else response
    found: list[str] = []
    for path, prefix in paths:
        for candidate in _follow(body, path):
            if isinstance(candidate, str) and ID_PATTERNS[prefix].match(candidate) and candidate not in found:
                found.append(candidate)
    return found


def _follow(node: Any, path: Sequence[str]) -> Iterator[Any]:
    if not path:
        yield node
        return
    step, rest = path[0], path[1:]
    if step == "[]":
        for member in _members(node):
            yield from _follow(member, rest)
    elif isinstance(node, Mapping) and step in node:
        yield from _follow(node[step], rest)


def _members(node: Any) -> list[Any]:
    """The members of an EC2 set as CloudTrail writes it: a list of one may be the member itself."""
    if isinstance(node, Mapping):
        inner = node.get("items", node.get("item"))
        if inner is None:
            return []
        node = inner
    if isinstance(node, list):
        return node
    return [node] if isinstance(node, Mapping | str) else []


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


def requested_delete_on_termination(request: Any) -> dict[str, bool]:
    """Device name -> DeleteOnTermination, for each EBS device a RunInstances request mapped itself."""
    if not isinstance(request, Mapping):
        return {}
    asked: dict[str, bool] = {}
    for mapping in _members(request.get("blockDeviceMapping")):
        if not isinstance(mapping, Mapping):
            continue
        device, ebs = mapping.get("deviceName"), mapping.get("ebs")
        if isinstance(device, str) and isinstance(ebs, Mapping) and isinstance(ebs.get("deleteOnTermination"), bool):
            asked[device] = ebs["deleteOnTermination"]
    return asked


_TYPE_OF_ID = {"i": "instance", "vol": "volume", "snap": "snapshot"}


def owners_requested(request: Any) -> dict[str, str]:
    """Resource type -> the trainctl:owner the creating call itself asked for in its tag specifications: part of
    the call's own record, so no tag written while its CloudTrail event was on its way can stand in for it."""
    if not isinstance(request, Mapping):
        return {}
    asked: dict[str, str] = {}
    for spec in _members(request.get("tagSpecificationSet")):
        if not isinstance(spec, Mapping) or not isinstance(spec.get("resourceType"), str):
            continue
        for tag in _members(spec.get("tags")):
            if isinstance(tag, Mapping) and tag.get("key") == tags.OWNER and isinstance(tag.get("value"), str):
                value = tag["value"].strip()
                if value:
                    asked.setdefault(spec["resourceType"], _clip(value))
    return asked


def owner_requested_for(resource_id: str, requested: Mapping[str, str]) -> str | None:
    return requested.get(_TYPE_OF_ID.get(resource_id.split("-", 1)[0], ""))


@dataclass(frozen=True, slots=True)
class AttachedVolume:
    """One EBS entry of an instance's block device mapping, as DescribeInstances shows it."""

    volume_id: str
    device: str
    attach_time: datetime | None
    delete_on_termination: bool | None


def launch_volumes(
    launch_time: datetime, attached: Sequence[AttachedVolume], requested: Mapping[str, bool] | None = None
) -> list[str]:
    """The volumes the launch itself created, of all those attached now.

    Attached at the launch time (a volume attached by hand comes later: AttachVolume needs a running or stopped
    instance), and, for a device the launch mapped itself, with the DeleteOnTermination it asked for. A volume
    attached after the launch, a shared dataset say, is someone else's: it is never stamped from this launch.
    """
    created = []
    for volume in attached:
        if volume.attach_time is None or abs(volume.attach_time - launch_time) > LAUNCH_ATTACH_SLACK:
            continue
        asked = (requested or {}).get(volume.device)
        if asked is not None and volume.delete_on_termination is not asked:
            continue
        created.append(volume.volume_id)
    return created


def _matches(principal: Principal, pattern: str) -> bool:
    if pattern.startswith(ROLE_ONLY):
        return bool(principal.identity) and fnmatch.fnmatchcase(principal.identity, pattern[len(ROLE_ONLY) :])
    return any(fnmatch.fnmatchcase(candidate, pattern) for candidate in (*principal.arns, principal.created_by))


def owner_for(principal: Principal, owner_map: Mapping[str, str]) -> str:
    for pattern, owner in owner_map.items():
        if _matches(principal, pattern):
            return owner
    return principal.owner


def maker_of(principal: Principal, rules: StampRules) -> str:
    """The owner the creating call itself names: what a stamp writes, and the owner of record."""
    return _clip(owner_for(principal, rules.owner_map))


def in_scope_by_rules(principal: Principal | None, current: Mapping[str, str], rules: StampRules) -> bool:
    if principal is not None and any(_matches(principal, pattern) for pattern in rules.scope_principals):
        return True
    if current.get(LAUNCH_TEMPLATE_TAG) in rules.scope_launch_templates:
        return True
    if rules.scope_tag_match is not None:
        key, value = rules.scope_tag_match
        return current.get(key) == value
    return False


def stamped_by_another(current: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    """The resource already names an owner or a creator other than the one this call would stamp.

    Without a principal (a first start with no trail yet) any owner or creator already there is another's.
    """
    return any(key in current and current[key] != wanted.get(key) for key in (tags.OWNER, tags.CREATED_BY))


def stamps_for(
    resource_ids: Sequence[str],
    current_tags: Mapping[str, Mapping[str, str]],
    principal: Principal | None,
    created_at: datetime,
    rules: StampRules,
) -> dict[str, dict[str, str]]:
    """The tags each resource lacks; a key already there, whatever its value, is left alone.

    The scope tag is added only where a scope rule matches and no other owner stamped the resource first:
    trainctl never brings another person's resource into its own reach.
    """
    planned: dict[str, dict[str, str]] = {}
    for resource_id in resource_ids:
        current = current_tags.get(resource_id, {})
        wanted = {tags.CREATED_AT: format_instant(created_at)}
        if principal is not None:
            wanted[tags.CREATED_BY] = principal.created_by
            wanted[tags.OWNER] = maker_of(principal, rules)
        if in_scope_by_rules(principal, current, rules) and not stamped_by_another(current, wanted):
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
_USED_ID = re.compile(rf"^(vol|i|snap)-{_HEX}\Z")


def used_ids(event_name: str, request: Any, scope_tag: str) -> list[str]:
    """The resources a use call touched; for tag calls, only when they write the scope, owner or ttl tag (who is
    told, and when, changed: the mark announced to the old owner or for the old lifetime no longer stands)."""
    if event_name not in USE_EVENTS or not isinstance(request, Mapping):
        return []
    if event_name == "AttachVolume":
        found = list(_strings(request.get("volumeId")))
    elif event_name == "StartInstances":
        found = [i for item in _items(request.get("instancesSet")) for i in _strings(item.get("instanceId"))]
    else:
        keys = {k for item in _items(request.get("tagSet")) for k in _strings(item.get("key"))}
        if not {scope_tag.lower(), tags.OWNER, tags.TTL} & {k.lower() for k in keys}:
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
