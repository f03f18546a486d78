"""Events a spoke forwarded to the hub's organization bus: whose they are, whether the hub acts on them, and the
clients it acts with.

An event from the hub's own account is the hub's, handled as in a single account. An event from another account is
refused (and counted) unless the account is covered: not on the hub's deny-list, in a region the organization
covers, and swept by the organization run at least once (the run sweeps only accounts of the covered units, so its
records in the hub's ledger are the coverage the plan decided, read with two DynamoDB calls and no Organizations
listing, which keeps a spot warning inside its two minutes). A covered account is enforced on only if it is
onboarded and the run's newest sweep of it in the event's region completed enforced; otherwise the hub only tells.

The hub acts with the spoke role's credentials in the member account (EC2, SSM), and with its own on its ledger,
topic and workflows; every item it writes and every notice it sends for the member carries the member's account.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from trainctl.aws.clients import ClientFactory, error_code
from trainctl.core.errors import TrainctlError
from trainctl.core.permissions import needs
from trainctl.organization.record import AccountRecords, AccountRun
from trainctl.organization.rules import DENY_LISTED, FIRST_SWEEP, NOT_ENFORCED, is_account_id
from trainctl.organization.settings import OrganizationSettings
from trainctl.organization.spoke import SpokeFactory, reach_spoke

# The hub's own account: whoever the hub's credentials are.
PERMISSIONS = needs("sts:GetCallerIdentity")

# Why a forwarded event is refused, each reported by name (the account is named only once it has an id's shape).
NOT_AN_ACCOUNT = "not-an-account-id"
REGION_NOT_COVERED = "region-not-covered"
NEVER_SWEPT = "not-covered"
# Why a covered account's event is only told: its newest sweep here was a dry-run, failed, or has not happened.
LAST_SWEEP_NOT_ENFORCED = "last-sweep-not-enforced"

# What the hub does with its own credentials for a member: its ledger, its topic (and their key), its workflows.
HUB_SERVICES = frozenset({"dynamodb", "sns", "kms", "states"})
# SNS Publish: a subject of at most 100 ASCII characters (the notifier's subject is already one such line; not
# imported from it, so that age_guard, which tells no one, declares no sns:Publish).
SUBJECT_LIMIT = 100


@dataclass(frozen=True, slots=True)
class Verdict:
    """A forwarded event's account, and whether the hub refuses it, only tells of it, or acts on it."""

    account: str | None  # None: the event's account has no account id's shape
    refused: str | None = None
    why_dry_run: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"account": self.account, "refused": self.refused, "why_dry_run": self.why_dry_run}

    def refusal_line(self) -> str:
        """One line for the log and the result; an account is named only once it is a 12-digit id."""
        whose = f"account {self.account}" if self.account else "an account id of the wrong shape"
        return f"forwarded event refused: {whose} ({self.refused})"


def refused_by_settings(
    account: object, region: str, org: OrganizationSettings, regions: Collection[str]
) -> Verdict | None:
    """Pure: a refusal the settings alone decide (the account's shape, the deny-list, the region); None: read on."""
    if not isinstance(account, str) or not is_account_id(account):
        return Verdict(None, NOT_AN_ACCOUNT)
    if account in org.org_exclude_accounts:
        return Verdict(account, DENY_LISTED)
    if region not in regions:
        return Verdict(account, REGION_NOT_COVERED)
    return None


def verdict_for(
    account: str, region: str, org: OrganizationSettings, *, runs: Sequence[AccountRun], onboarded: bool
) -> Verdict:
    """Pure, for an account the settings did not refuse: refused if the organization run never swept it, told only
    if it is not onboarded or not enforced here, else acted on. `runs`: its newest run in each region."""
    if not runs:
        return Verdict(account, NEVER_SWEPT)
    if not onboarded:
        return Verdict(account, why_dry_run=FIRST_SWEEP)
    if account not in org.org_enforce_accounts and not org.org_enforce_units:
        # Nothing is enforced anywhere: no need to ask the runs.
        return Verdict(account, why_dry_run=NOT_ENFORCED)
    here = next((run for run in runs if run.region == region), None)
    if here is None or here.outcome != "done" or here.dry_run:
        return Verdict(account, why_dry_run=LAST_SWEEP_NOT_ENFORCED)
    return Verdict(account)


def judge(
    records: AccountRecords, account: object, region: str, org: OrganizationSettings, regions: Collection[str]
) -> Verdict:
    """The verdict on a member's event: the settings first, then the hub's records (two DynamoDB calls)."""
    refused = refused_by_settings(account, region, org, regions)
    if refused is not None:
        return refused
    assert isinstance(account, str)
    runs = records.newest_runs(account)
    onboarded = bool(runs) and account in records.onboarded([account])
    return verdict_for(account, region, org, runs=runs, onboarded=onboarded)


def judge_forwarded(
    hub: ClientFactory,
    ledger_table: str,
    account: object,
    region: str,
    org: OrganizationSettings,
    regions: Collection[str],
) -> Verdict:
    """The verdict on a member's event, read from the hub's ledger: what the spot and age_guard handlers ask."""
    return judge(AccountRecords(hub.dynamodb(), ledger_table), account, region, org, regions)


def hub_account(hub: ClientFactory) -> str:
    """The hub's own account: the one its own credentials act in."""
    try:
        return str(hub.client("sts").get_caller_identity()["Account"])
    except ClientError as exc:
        raise TrainctlError(f"the hub's own account could not be read ({error_code(exc)})") from exc
    except BotoCoreError as exc:
        raise TrainctlError(f"the hub's own account could not be read ({type(exc).__name__})") from exc


# -- the clients the hub acts with for a member ------------------------------------------------------------------


def _label_item(account: str) -> Any:
    def label(params: dict[str, Any], **_: Any) -> None:
        params.setdefault("Item", {}).setdefault("account", {"S": account})

    return label


def _label_notice(account: str) -> Any:
    def label(params: dict[str, Any], **_: Any) -> None:
        subject = f"[account {account}] {params.get('Subject', '')}"
        params["Subject"] = subject if len(subject) <= SUBJECT_LIMIT else subject[: SUBJECT_LIMIT - 3] + "..."
        attributes = params.setdefault("MessageAttributes", {})
        attributes["account"] = {"DataType": "String", "StringValue": account}

    return label


class MemberClients(ClientFactory):
    """EC2 and SSM in the member account with the spoke role's credentials; the hub's ledger, topic and workflows
    with the hub's own, through clients of the member's own lane that label every item and notice with its account.
    """

    def __init__(self, hub: ClientFactory, spoke: ClientFactory, account: str) -> None:
        super().__init__(spoke.default_region)
        self._hub = hub
        self._spoke = spoke
        self.account = account

    def client(self, service: str, region: str | None = None, *, lane: str = "") -> Any:
        if service not in HUB_SERVICES:
            return self._spoke.client(service, region, lane=lane)
        # A lane of the member's own: the hub's shared clients (its idempotency store, its own events) stay unlabelled.
        client = self._hub.client(service, region, lane=f"account#{self.account}#{lane}")
        events = client.meta.events
        # unique_id: registering again for the same lane's client adds nothing.
        events.register(
            "before-parameter-build.dynamodb.PutItem", _label_item(self.account), unique_id="trainctl-account-item"
        )
        events.register(
            "before-parameter-build.sns.Publish", _label_notice(self.account), unique_id="trainctl-account-notice"
        )
        return client

    @property
    def api_calls(self) -> int:
        """Calls made for the member: in the spoke, and by the hub on the member's behalf."""
        return self._spoke.calls.total + self._hub.calls.total


def spoke_as(session: str) -> SpokeFactory:
    """The spoke role, assumed under a session name that says in the member's CloudTrail who acts."""

    def reach(hub: ClientFactory, account: str, region: str, role_name: str) -> ClientFactory:
        return reach_spoke(hub, account, region, role_name, session=session)

    return reach


# A spoke's clients serve the same account and region again while their session has time left: building them (a
# botocore session, the STS, EC2 and SSM models) costs about 400 ms, which a warning's checkpoint should not wait for.
# AssumeRole's session lasts SESSION_SECONDS (900 s); reuse ends well before.
REUSE_SECONDS = 600.0


def reusing(spoke: SpokeFactory, monotonic: Callable[[], float] = time.monotonic) -> SpokeFactory:
    """`spoke`, remembered per account, region and role for REUSE_SECONDS (one per handler container)."""
    reached: dict[tuple[str, str, str], tuple[float, ClientFactory]] = {}

    def reach(hub: ClientFactory, account: str, region: str, role_name: str) -> ClientFactory:
        key = (account, region, role_name)
        known = reached.get(key)
        if known is not None and monotonic() - known[0] < REUSE_SECONDS:
            return known[1]
        clients = spoke(hub, account, region, role_name)
        reached[key] = (monotonic(), clients)
        return clients

    return reach


def reach_member(
    hub: ClientFactory, account: str, region: str, org: OrganizationSettings, *, spoke: SpokeFactory
) -> MemberClients:
    """The member's clients, once its spoke role is assumed and answers from the account; else SpokeUnreachable."""
    return MemberClients(hub, spoke(hub, account, region, org.org_spoke_role), account)
