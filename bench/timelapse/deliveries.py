"""What EventBridge hands the functions, and when: the stack's rules, CloudTrail records of the users' own calls
delivered minutes late, EC2 state changes and spot warnings; and what a spoke forwards to the hub's organization
bus, routed by the hub's rules there (infra.organization.Organization.handle_forwarded).

The rules are matched on the same values the constructs in infra/ put in their event patterns. CloudTrail
records are built from each call a user makes (a botocore hook on the users' clients): the request's and the
response's fields in CloudTrail's spelling (requestParameters, responseElements with EC2's item sets), which is
what age_guard reads.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from infra.cost_alerts import RECORDED_STATES
from infra.spot_interruption import SPOT_DETAIL_TYPES
from infra.spot_interruption import STATE_CHANGES as SPOT_STATE_CHANGES
from trainctl.age_guard.rules import STAMPED_EVENTS, USE_EVENTS
from trainctl.core.clock import format_instant

CLOUDTRAIL = "AWS API Call via CloudTrail"
STATE_CHANGE = "EC2 Instance State-change Notification"
SPOT_WARNING = "EC2 Spot Instance Interruption Warning"
ACCOUNT_ID = "123456789012"  # moto's default account
ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role/MLTeam"

# CloudTrail: "typically within 5 minutes" of the call (AWS's CloudTrail FAQ); the tail reaches 15.
CLOUDTRAIL_MEDIAN = timedelta(minutes=5)
CLOUDTRAIL_TAIL = timedelta(minutes=15)
CLOUDTRAIL_FLOOR = timedelta(seconds=30)
# A median of 5 and a 99th percentile of 15 minutes: sigma = ln(3) / 2.33.
_CLOUDTRAIL_SIGMA = math.log(CLOUDTRAIL_TAIL / CLOUDTRAIL_MEDIAN) / 2.33
# EC2 state changes and spot warnings reach EventBridge within seconds.
EVENTBRIDGE_LAG = (timedelta(seconds=1), timedelta(seconds=30))


class DeliveryLag:
    """Seeded delays: CloudTrail's lognormal minutes, EventBridge's seconds."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def cloudtrail(self) -> timedelta:
        drawn = CLOUDTRAIL_MEDIAN * math.exp(self._rng.gauss(0.0, _CLOUDTRAIL_SIGMA))
        return min(CLOUDTRAIL_TAIL, max(CLOUDTRAIL_FLOOR, drawn))

    def eventbridge(self) -> timedelta:
        low, high = EVENTBRIDGE_LAG
        return low + (high - low) * self._rng.random()


def envelope(
    detail_type: str,
    at: datetime,
    region: str,
    detail: Mapping[str, Any],
    resources: list[str],
    account: str = ACCOUNT_ID,
) -> dict:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": "aws.ec2",
        "account": account,
        "time": format_instant(at),
        "region": region,
        "resources": resources,
        "detail": dict(detail),
    }


def instance_arn(region: str, instance_id: str, account: str = ACCOUNT_ID) -> str:
    return f"arn:aws:ec2:{region}:{account}:instance/{instance_id}"


def state_change(instance_id: str, state: str, at: datetime, region: str, account: str = ACCOUNT_ID) -> dict[str, Any]:
    detail = {"instance-id": instance_id, "state": state}
    return envelope(STATE_CHANGE, at, region, detail, [instance_arn(region, instance_id, account)], account)


def spot_warning(instance_id: str, at: datetime, region: str, account: str = ACCOUNT_ID) -> dict[str, Any]:
    detail = {"instance-id": instance_id, "instance-action": "terminate"}
    return envelope(SPOT_WARNING, at, region, detail, [instance_arn(region, instance_id, account)], account)


@dataclass(frozen=True)
class Rule:
    """One EventBridge rule of the stack: the function it targets and the events its pattern matches."""

    name: str
    function: str
    matches: Callable[[Mapping[str, Any]], bool]


def _detail(event: Mapping[str, Any]) -> Mapping[str, Any]:
    detail = event.get("detail")
    return detail if isinstance(detail, Mapping) else {}


def _state_in(states: list[str] | tuple[str, ...]) -> Callable[[Mapping[str, Any]], bool]:
    return lambda e: e.get("detail-type") == STATE_CHANGE and _detail(e).get("state") in states


def _ec2_call(e: Mapping[str, Any]) -> bool:
    return (
        e.get("detail-type") == CLOUDTRAIL
        and _detail(e).get("eventSource") == "ec2.amazonaws.com"
        and _detail(e).get("eventName") in (*STAMPED_EVENTS, *USE_EVENTS)
    )


# The event patterns of infra.age_guard, infra.cost_alerts and infra.spot_interruption, from their own values.
RULES: tuple[Rule, ...] = (
    Rule("age_guard.api_calls", "age_guard", _ec2_call),
    Rule("age_guard.first_starts", "age_guard", _state_in(["running"])),
    Rule("cost_alerts.state_changes", "cost_alerts", _state_in(RECORDED_STATES)),
    Rule("spot_interruption.warnings", "spot_interruption", lambda e: e.get("detail-type") in SPOT_DETAIL_TYPES),
    Rule("spot_interruption.endings", "spot_interruption", _state_in(SPOT_STATE_CHANGES)),
)


def targets(event: Mapping[str, Any]) -> list[str]:
    """The functions EventBridge invokes with `event`, one invocation per matching rule."""
    return [rule.function for rule in RULES if rule.matches(event)]


# The hub's rules on the organization bus (infra.organization.Organization.handle_forwarded), from the same values:
# spot warnings and instances ending to the spot function, EC2 calls and first starts to age_guard. A member's state
# changes never reach the cost check: its burn is the organization's cost run's.
FORWARDED_RULES: tuple[Rule, ...] = (
    Rule("ForwardedSpotWarnings", "spot_interruption", lambda e: e.get("detail-type") in SPOT_DETAIL_TYPES),
    Rule("ForwardedEndings", "spot_interruption", _state_in(SPOT_STATE_CHANGES)),
    Rule("ForwardedApiCalls", "age_guard", _ec2_call),
    Rule("ForwardedFirstStarts", "age_guard", _state_in(["running"])),
)


def forwarded_targets(event: Mapping[str, Any]) -> list[str]:
    """The hub's functions a spoke's forwarded `event` reaches through the organization bus, one per matching rule."""
    return [rule.function for rule in FORWARDED_RULES if rule.matches(event)]


# ---- CloudTrail records of the users' calls ----------------------------------------------------------------


def _items(values: list[Any]) -> dict[str, Any]:
    return {"items": values}


def _tag_set(tag_list: list[Mapping[str, str]] | None) -> list[dict[str, str]]:
    return [{"key": t["Key"], "value": t.get("Value", "")} for t in tag_list or []]


def _tag_specifications(params: Mapping[str, Any]) -> dict[str, Any]:
    specifications = params.get("TagSpecifications") or []
    if not specifications:
        return {}
    return {
        "tagSpecificationSet": _items(
            [{"resourceType": s["ResourceType"], "tags": _tag_set(s.get("Tags"))} for s in specifications]
        )
    }


def _millis(value: Any) -> int | None:
    return int(value.timestamp() * 1000) if isinstance(value, datetime) else None


def _instances_set(ids: list[str]) -> dict[str, Any]:
    return _items([{"instanceId": i} for i in ids])


def request_and_response(
    operation: str, params: Mapping[str, Any], parsed: Mapping[str, Any], account: str = ACCOUNT_ID
) -> tuple[dict, dict]:
    """requestParameters and responseElements of a call as CloudTrail writes them for EC2."""
    request_id = str(parsed.get("ResponseMetadata", {}).get("RequestId", uuid.uuid4()))
    if operation == "RunInstances":
        request: dict[str, Any] = {
            "instancesSet": _items(
                [{"imageId": params.get("ImageId"), "minCount": params["MinCount"], "maxCount": params["MaxCount"]}]
            ),
            "instanceType": params.get("InstanceType"),
            **_tag_specifications(params),
        }
        if params.get("InstanceMarketOptions"):
            request["instanceMarketOptions"] = {"marketType": params["InstanceMarketOptions"].get("MarketType")}
        instances = parsed.get("Instances", [])
        response: dict[str, Any] = {
            "requestId": request_id,
            "reservationId": parsed.get("ReservationId"),
            "ownerId": account,
            "instancesSet": _items(
                [
                    {
                        "instanceId": i["InstanceId"],
                        "imageId": i.get("ImageId"),
                        "instanceType": i.get("InstanceType"),
                        "instanceState": {"code": 0, "name": "pending"},
                    }
                    for i in instances
                ]
            ),
        }
        return request, response
    if operation == "CreateVolume":
        request = {
            "size": params.get("Size"),
            "zone": params.get("AvailabilityZone"),
            "volumeType": params.get("VolumeType", "gp2"),
            **_tag_specifications(params),
        }
        response = {
            "requestId": request_id,
            "volumeId": parsed.get("VolumeId"),
            "size": str(parsed.get("Size")),
            "zone": parsed.get("AvailabilityZone"),
            "status": "creating",
            "createTime": _millis(parsed.get("CreateTime")),
            "volumeType": parsed.get("VolumeType"),
        }
        return request, response
    if operation == "CreateSnapshot":
        request = {
            "volumeId": params.get("VolumeId"),
            "description": params.get("Description", ""),
            **_tag_specifications(params),
        }
        response = {
            "requestId": request_id,
            "snapshotId": parsed.get("SnapshotId"),
            "volumeId": parsed.get("VolumeId"),
            "status": "pending",
            "startTime": _millis(parsed.get("StartTime")),
            "volumeSize": parsed.get("VolumeSize"),
        }
        return request, response
    if operation in ("AttachVolume", "DetachVolume"):
        request = {
            k: v
            for k, v in (
                ("volumeId", params.get("VolumeId")),
                ("instanceId", params.get("InstanceId")),
                ("device", params.get("Device")),
            )
            if v is not None
        }
        response = {
            "requestId": request_id,
            "volumeId": parsed.get("VolumeId"),
            "instanceId": parsed.get("InstanceId"),
            "device": parsed.get("Device"),
            "status": parsed.get("State"),
            "attachTime": _millis(parsed.get("AttachTime")),
            "deleteOnTermination": bool(parsed.get("DeleteOnTermination", False)),
        }
        return request, response
    if operation in ("StartInstances", "StopInstances", "TerminateInstances"):
        key = {"StartInstances": "StartingInstances", "StopInstances": "StoppingInstances"}.get(
            operation, "TerminatingInstances"
        )
        request = {"instancesSet": _instances_set(list(params.get("InstanceIds", [])))}
        response = {
            "requestId": request_id,
            "instancesSet": _items(
                [
                    {
                        "instanceId": i["InstanceId"],
                        "currentState": {"name": i["CurrentState"]["Name"]},
                        "previousState": {"name": i["PreviousState"]["Name"]},
                    }
                    for i in parsed.get(key, [])
                ]
            ),
        }
        return request, response
    if operation in ("CreateTags", "DeleteTags"):
        request = {
            "resourcesSet": _items([{"resourceId": r} for r in params.get("Resources", [])]),
            "tagSet": _items(_tag_set(params.get("Tags"))),
        }
        return request, {"requestId": request_id, "_return": True}
    # Any other call: its parameters in CloudTrail's lower camel case, nothing in the response.
    return {k[:1].lower() + k[1:]: v for k, v in params.items()}, {"requestId": request_id}


def assumed_role_identity(user: str, account: str = ACCOUNT_ID) -> dict[str, Any]:
    """A person working through the team's role, as IAM Identity Center signs them in: session name = user."""
    return {
        "type": "AssumedRole",
        "principalId": f"AROAEXAMPLEMLTEAM:{user}",
        "arn": f"arn:aws:sts::{account}:assumed-role/MLTeam/{user}",
        "accountId": account,
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": "AROAEXAMPLEMLTEAM",
                "arn": f"arn:aws:iam::{account}:role/MLTeam",
                "accountId": account,
                "userName": "MLTeam",
            },
            "attributes": {"mfaAuthenticated": "false"},
        },
    }


def cloudtrail_record(
    user: str,
    operation: str,
    params: Mapping[str, Any],
    parsed: Mapping[str, Any],
    at: datetime,
    region: str,
    account: str = ACCOUNT_ID,
) -> dict[str, Any]:
    """The EventBridge event CloudTrail's management-event delivery makes of one successful EC2 call in `account`."""
    request, response = request_and_response(operation, params, parsed, account)
    detail = {
        "eventVersion": "1.10",
        "userIdentity": assumed_role_identity(user, account),
        "eventTime": format_instant(at),
        "eventSource": "ec2.amazonaws.com",
        "eventName": operation,
        "awsRegion": region,
        "sourceIPAddress": "203.0.113.10",
        "userAgent": "Boto3/1.43 trainctl-timelapse",
        "requestParameters": request,
        "responseElements": response,
        "requestID": response.get("requestId"),
        "eventID": str(uuid.uuid4()),
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
    }
    return envelope(CLOUDTRAIL, at, region, detail, [], account)


# Read calls are not what age_guard hears (a trail's management events include them; its rule drops them).
WRITE_PREFIXES = ("Run", "Create", "Delete", "Attach", "Detach", "Start", "Stop", "Terminate", "Modify")


class CloudTrail:
    """Records each successful write call made through the users' clients, for delivery `lag` later.

    `actor` names who is calling right now (the cast sets it around each user's step); `deliver(event, at)`
    puts the record on the agenda. `account` is the account the calls act in (a member's trail is its own).
    """

    def __init__(
        self,
        deliver: Callable[[dict[str, Any], datetime], None],
        lag: DeliveryLag,
        now: Callable[[], datetime],
        account: str = ACCOUNT_ID,
    ):
        self._deliver = deliver
        self._lag = lag
        self._now = now
        self.account = account
        self.actor = "nobody"
        # The next record's lag, when a story wants a particular one (its call's delivery in the tail).
        self.next_lag: timedelta | None = None
        self.recorded = 0

    def keep_params(self, params: Mapping[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["timelapse_params"] = dict(params)

    def record(
        self, http_response: Any, parsed: Mapping[str, Any], model: Any, context: Mapping[str, Any], **_: Any
    ) -> None:
        if not model.name.startswith(WRITE_PREFIXES) or http_response.status_code >= 300 or "Error" in parsed:
            return
        region = str(context.get("client_region") or "us-east-1")
        at = self._now()
        params = context.get("timelapse_params", {})
        event = cloudtrail_record(self.actor, model.name, params, parsed, at, region, self.account)
        lag = self.next_lag if self.next_lag is not None else self._lag.cloudtrail()
        self.next_lag = None
        self.recorded += 1
        self._deliver(event, at + lag)
