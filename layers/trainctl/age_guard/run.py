"""Age guard service: stamp who made a resource and when, from a CloudTrail call or a first start."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from trainctl.age_guard.rules import (
    Principal,
    StampRules,
    created_ids,
    launch_volumes,
    maker_of,
    owner_requested_for,
    owners_requested,
    principal_of,
    requested_delete_on_termination,
    stamps_for,
    used_ids,
)
from trainctl.age_guard.stamper import Ec2Stamper
from trainctl.age_guard.use import RECORDED_BY, MarkVoider
from trainctl.aws.clients import ClientFactory
from trainctl.aws.owners import OwnersOfRecord
from trainctl.core import tags
from trainctl.core.age_guard_settings import AgeGuardSettings
from trainctl.core.clock import ensure_utc, format_instant
from trainctl.core.cloudtrail_events import CloudTrailApiCall
from trainctl.core.envelopes import InstanceStateChange
from trainctl.core.text import one_line


@dataclass(frozen=True)
class StampResult:
    """What age_guard stamped for one event, what it left unchanged, and why."""

    status: str  # stamped, unchanged, ignored, refused
    reason: str = ""
    stamped: dict[str, dict[str, str]] = field(default_factory=dict)
    unchanged: tuple[str, ...] = ()
    create_tags_calls: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason,
            "stamped": self.stamped,
            "unchanged": list(self.unchanged),
            "create_tags_calls": self.create_tags_calls,
        }


def rules_from(settings: AgeGuardSettings) -> StampRules:
    match = None
    if settings.scope_from_tag:
        key, _, value = settings.scope_from_tag.partition("=")
        match = (key, value)
    return StampRules(
        scope_tag=settings.scope_tag,
        owner_map=settings.owner_map,
        scope_principals=settings.scope_principals,
        scope_launch_templates=settings.scope_launch_templates,
        scope_tag_match=match,
    )


def _refusal(settings: AgeGuardSettings, region: str, account: str | None) -> str | None:
    if region not in settings.regions:
        return f"region {region} is not in TRAINCTL_REGIONS {list(settings.regions)}"
    if settings.account_id and account and account != settings.account_id:
        # The event's word: named only when it has an account id's shape, never pasted as sent.
        named = account if len(account) == 12 and account.isascii() and account.isdigit() else "of the wrong shape"
        return f"account {named} is not this deployment's account {settings.account_id}"
    return None


def _stamp(
    stamper: Ec2Stamper,
    owners: OwnersOfRecord,
    ids: list[str],
    principal: Principal | None,
    created_at: Any,
    rules: StampRules,
    requested: Mapping[str, str] | None = None,
) -> StampResult:
    current = stamper.current_tags(ids)
    planned = stamps_for(ids, current, principal, ensure_utc(created_at), rules)
    calls = stamper.apply(planned)
    # Who made it, as the call itself says: a tag anyone wrote before this (late) event arrived is no record.
    # Without a principal (a first start no trail attributed), the owner tag as found is the best word there is.
    if principal is not None:
        # The owner the call itself named (a role making a volume for Carol), else the one who made the call.
        maker = maker_of(principal, rules)
        creators = {i: owner_requested_for(i, requested or {}) or maker for i in ids}
    else:
        creators = {i: current[i][tags.OWNER] for i in ids if current.get(i, {}).get(tags.OWNER)}
    # Every resource heard, stamped now or created with its tags copied; a repeated event writes nothing.
    recorded = owners.read(list(creators)) if creators else {}
    owners.claim({i: o for i, o in creators.items() if i not in recorded}, ensure_utc(created_at), RECORDED_BY)
    unchanged = tuple(i for i in ids if i not in planned)
    return StampResult(
        "stamped" if planned else "unchanged", stamped=planned, unchanged=unchanged, create_tags_calls=calls
    )


def _not_for_us(event: CloudTrailApiCall, settings: AgeGuardSettings, what: str) -> StampResult | None:
    """A failed call did nothing; another region's or account's call is not this deployment's to act on."""
    detail = event.detail
    if detail.error_code:
        return StampResult("ignored", f"{detail.event_name} failed with {detail.error_code}: nothing was {what}")
    refusal = _refusal(settings, detail.aws_region, detail.recipient_account_id or event.account)
    return StampResult("refused", refusal) if refusal else None


def stamp_api_call(factory: ClientFactory, event: CloudTrailApiCall, settings: AgeGuardSettings) -> StampResult:
    detail = event.detail
    skipped = _not_for_us(event, settings, "created")
    if skipped:
        return skipped
    ids = created_ids(detail.event_name, detail.response_elements or {})
    if not ids:
        return StampResult("ignored", f"{detail.event_name}: no created resource in the response")
    stamper = Ec2Stamper(factory.ec2(detail.aws_region))
    instances = [i for i in ids if i.startswith("i-")]
    # One describe of the instances serves as their existence check and names their volumes.
    launched = stamper.launch_details(instances) if instances else {}
    present = set(launched) | stamper.existing([i for i in ids if not i.startswith("i-")])
    gone = [i for i in ids if i not in present]
    ids = [i for i in ids if i in present]
    if not ids:
        return StampResult("ignored", f"{detail.event_name}: {', '.join(gone)} no longer exist")
    asked = requested_delete_on_termination(detail.request_parameters) if detail.event_name == "RunInstances" else {}
    for details in launched.values():
        # The volumes the launch created, not whatever is attached by the time this (late) event arrives.
        ids.extend(v for v in launch_volumes(details["launch_time"], details["attached"], asked) if v not in ids)
    owners = OwnersOfRecord(factory.dynamodb(), settings.ledger_table)
    principal = principal_of(detail.user_identity)
    requested = owners_requested(detail.request_parameters)
    result = _stamp(stamper, owners, ids, principal, detail.event_time, rules_from(settings), requested)
    if gone:
        return replace(result, reason=f"{', '.join(gone)} no longer exist")
    return result


def stamp_first_start(factory: ClientFactory, event: InstanceStateChange, settings: AgeGuardSettings) -> StampResult:
    """For instances the trail did not attribute (or not yet): stamp the launch time; owner from a spot request."""
    if event.detail.state != "running":
        return StampResult("ignored", f"state {event.detail.state} says nothing about creation")
    refusal = _refusal(settings, event.region, event.account)
    if refusal:
        return StampResult("refused", refusal)
    stamper = Ec2Stamper(factory.ec2(event.region))
    instance_id = event.detail.instance_id
    details = stamper.launch_details([instance_id]).get(instance_id)
    if details is None:
        return StampResult("ignored", f"{instance_id} no longer exists")
    principal = None
    spot_request = details["spot_request"]
    if spot_request is None and details["lifecycle"] == "spot":
        spot_request = stamper.spot_request_of(instance_id)
    if spot_request:
        request_tags = stamper.current_tags([spot_request])[spot_request]
        if tags.CREATED_BY in request_tags:
            principal = Principal(
                "spot-request",
                request_tags[tags.CREATED_BY],
                request_tags.get(tags.OWNER, "unknown"),
                (request_tags[tags.CREATED_BY],),
            )
    # Only the volumes attached at this launch: a first start does not adopt a volume attached since.
    ids = [instance_id, *launch_volumes(details["launch_time"], details["attached"])]
    owners = OwnersOfRecord(factory.dynamodb(), settings.ledger_table)
    return _stamp(stamper, owners, ids, principal, details["launch_time"], rules_from(settings))


def void_marks_on_use(
    factory: ClientFactory, event: CloudTrailApiCall, settings: AgeGuardSettings, *, told_only: str | None = None
) -> StampResult:
    """AttachVolume, StartInstances or a scope tag written between two sweeps: the marks on what it touched go.

    `told_only`: why the account is only told (a member not enforced): nothing is written in it, and the use is
    recorded in the hub's ledger all the same, which voids any mark there for every later sweep."""
    detail = event.detail
    skipped = _not_for_us(event, settings, "used")
    if skipped:
        return skipped
    ids = used_ids(detail.event_name, detail.request_parameters, settings.scope_tag)
    if not ids:
        return StampResult("ignored", f"{detail.event_name}: no resource trainctl watches")
    voider = MarkVoider(factory.ec2(detail.aws_region), factory.dynamodb(), settings.ledger_table)
    # Where trainctl only tells it writes nothing, as a dry-run: the ledger line below voids any mark there.
    marked = voider.marked(ids) if told_only is None else []
    at = ensure_utc(detail.event_time)
    who = one_line(principal_of(detail.user_identity).created_by, 128)
    if detail.event_name in ("CreateTags", "DeleteTags"):
        # Whoever rewrites the owner or the lifetime of a marked resource gets it a fresh mark and notice.
        why = f"its scope, owner or ttl tag changed: {detail.event_name} by {who} at {format_instant(at)}"
    else:
        why = f"used since it was marked: {detail.event_name} by {who} at {format_instant(at)}"
    # The tags first: a mark without its tag is void even if the ledger then refuses the line.
    kept_tags = [rid for rid in marked if not voider.remove_mark(rid)]
    # Every use is recorded, marked or not: a sweep that read the resource before the use may mark it after.
    for resource_id in ids:
        voider.record_use(resource_id, at, why)
    reason = f"the mark tag stayed on {', '.join(kept_tags)}; the ledger voids it" if kept_tags else ""
    if told_only is not None:
        reason = f"the use is recorded; nothing is written in an account only told ({told_only})"
    return StampResult(
        "unmarked" if marked else "unchanged", reason, unchanged=tuple(i for i in ids if i not in marked)
    )
