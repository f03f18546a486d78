"""One SNS summary per sweep that changed something, grouped by owner."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from botocore.exceptions import ClientError

from trainctl.aws.clients import access_error
from trainctl.core.clock import format_instant
from trainctl.sweep.rules import Decision, SweepPlan

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

MAX_LINES = 200  # SNS messages stop at 256 KB; the ledger holds the full story


class Notifier(Protocol):
    def publish(self, subject: str, message: str) -> None: ...


def changed(decisions: Sequence[Decision]) -> list[Decision]:
    return [d for d in decisions if d.action != "keep" or d.outcome == "failed"]


def sweep_message(plan: SweepPlan, decisions: Sequence[Decision], *, dry_run: bool) -> tuple[str, str]:
    moved = changed(decisions)
    counts: dict[str, int] = defaultdict(int)
    for decision in moved:
        counts[decision.action] += 1
    subject = "trainctl sweep: " + ", ".join(f"{n} {action}" for action, n in sorted(counts.items()))
    lines = [
        f"trainctl cleanup sweep at {format_instant(plan.at)} ({'dry-run' if dry_run else 'enforced'})",
        f"scanned {plan.scanned} resources, {plan.in_scope} in scope",
        "",
    ]
    by_owner: dict[str, list[Decision]] = defaultdict(list)
    for decision in moved:
        by_owner[decision.owner or "(no owner)"].append(decision)
    shown = 0
    for owner in sorted(by_owner):
        lines.append(f"owner {owner}:")
        for decision in by_owner[owner]:
            if shown >= MAX_LINES:
                break
            shown += 1
            why = ",".join(decision.reasons) or "-"
            guard = f" protected by {','.join(decision.protections)}" if decision.protections else ""
            lines.append(
                f"  {decision.action:<9} {decision.resource_type:<8} {decision.resource_id} ({decision.region}) "
                f"because {why}{guard}: {decision.outcome}; {decision.detail}"
            )
    if len(moved) > shown:
        lines.append(f"... and {len(moved) - shown} more in the ledger")
    return subject[:100], "\n".join(lines)


class SnsNotifier:
    def __init__(self, sns: SNSClient, topic_arn: str) -> None:
        self._sns = sns
        self._topic_arn = topic_arn

    def publish(self, subject: str, message: str) -> None:
        try:
            self._sns.publish(TopicArn=self._topic_arn, Subject=subject, Message=message)
        except ClientError as exc:
            raise access_error("Publish", exc) from exc


class InMemoryNotifier:
    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []

    def publish(self, subject: str, message: str) -> None:
        self.messages.append((subject, message))
