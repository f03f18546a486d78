"""A spoke account's role, from the hub: assumed, then checked to act in the account it was asked for.

Apart from the organization run (`run.py`) so that the handlers of forwarded events reach a spoke without loading
the sweep: a role that is missing, denies, or answers from another account is that account's error, named.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from trainctl.aws.clients import ClientFactory, Credentials, error_code
from trainctl.core.errors import TrainctlError
from trainctl.core.permissions import needs

PERMISSIONS = needs(
    "sts:AssumeRole",
    "sts:GetCallerIdentity",
)

# The session name says who acts in a spoke's CloudTrail: the hub's organization sweep, unless a caller names itself.
SESSION_NAME = "trainctl-organization-sweep"
# AssumeRole's shortest session: a child runs within Lambda's 15 minutes.
SESSION_SECONDS = 900


class SpokeUnreachable(TrainctlError):
    """A spoke account's role could not be used: missing, denying, or answering from another account."""

    def __init__(self, account: str, why: str) -> None:
        super().__init__(f"account {account}: {why}")
        self.account = account


def spoke_role_arn(account: str, role_name: str) -> str:
    return f"arn:aws:iam::{account}:role/{role_name}"


def assume_spoke(sts: Any, account: str, role_name: str, *, session: str = SESSION_NAME) -> Credentials:
    """The spoke role's credentials; a missing or denying role is the account's error, named."""
    try:
        answer = sts.assume_role(
            RoleArn=spoke_role_arn(account, role_name), RoleSessionName=session, DurationSeconds=SESSION_SECONDS
        )
    except ClientError as exc:
        raise SpokeUnreachable(account, f"its spoke role could not be assumed ({error_code(exc)})") from exc
    except BotoCoreError as exc:
        raise SpokeUnreachable(account, f"its spoke role could not be assumed ({type(exc).__name__})") from exc
    raw = answer["Credentials"]
    return Credentials(str(raw["AccessKeyId"]), str(raw["SecretAccessKey"]), str(raw["SessionToken"]))


def verified_spoke(credentials: Credentials, account: str, region: str) -> ClientFactory:
    """A client factory acting in the spoke, once STS says the credentials act in the account asked for."""
    spoke = ClientFactory(region, credentials=credentials)
    try:
        answered = str(spoke.client("sts").get_caller_identity()["Account"])
    except (ClientError, BotoCoreError) as exc:
        raise SpokeUnreachable(account, "its spoke role's credentials were refused") from exc
    if answered != account:
        raise SpokeUnreachable(account, "its spoke role answered from another account: refused")
    return spoke


SpokeFactory = Callable[[ClientFactory, str, str, str], ClientFactory]


def reach_spoke(
    hub: ClientFactory, account: str, region: str, role_name: str, *, session: str = SESSION_NAME
) -> ClientFactory:
    return verified_spoke(assume_spoke(hub.client("sts"), account, role_name, session=session), account, region)
