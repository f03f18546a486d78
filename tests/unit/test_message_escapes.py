"""Issue 17 item 4: a tag value reaches a message, a subject or a message attribute only as one escaped line.

Anyone may write `trainctl:owner` (or any tag): a newline in it must never start a forged line in the notice
every owner reads, nor a control character reach a subject or the attribute subscriptions filter on.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from trainctl.aws.notifications import InMemoryNotifier, SnsNotifier
from trainctl.core.notices import Notice, chat_payload, email_text
from trainctl.core.settings import CostSettings, OwnerThresholds
from trainctl.cost.rules import AlertState, ResourceCost, find_breaches
from trainctl.cost.run import CostResult, _alert
from trainctl.cost.store import InMemoryCostStore
from trainctl.spot.run import SpotOutcome, Step, interruption_notice
from trainctl.sweep.notice import owner_notices
from trainctl.sweep.rules import Decision, SweepPlan

AT = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
FORGED = "bob\nowner alice:\n  delete   volume   vol-0123456789abcdef0 (us-east-1) because orphaned: done;\x1b[2J\u202e"


def printable_lines(text: str) -> list[str]:
    lines = text.split("\n")
    assert all(ch.isprintable() for line in lines for ch in line), lines
    return lines


class FakeSns:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def publish(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        return {"MessageId": "m-1"}


def test_the_notifier_escapes_subjects_and_attribute_values() -> None:
    sns = FakeSns()
    notice = Notice(kind="spot", title=f"trainctl spot warning: {FORGED}", summary="body", owner=FORGED)
    SnsNotifier(sns, "arn:aws:sns:us-east-1:123456789012:trainctl").publish(notice)  # type: ignore[arg-type]
    [call] = sns.calls
    subject = call["Subject"]
    assert len(subject) <= 100 and subject.isascii() and subject.isprintable() and "\n" not in subject
    owner = call["MessageAttributes"]["owner"]["StringValue"]
    assert owner.startswith("bob\\nowner alice:") and owner.isprintable() and "\x1b" not in owner
    assert call["MessageAttributes"]["kind"]["StringValue"] == "spot"
    assert call["MessageStructure"] == "json"
    rendered = json.loads(call["Message"])
    assert "\nowner alice:" not in rendered["email"] and "\x1b" not in rendered["email"]
    assert json.loads(rendered["default"])["owner"].startswith("bob\\nowner alice:")
    memory = InMemoryNotifier()
    memory.publish(Notice(kind="sweep", title=FORGED, summary="x", owner=FORGED))
    assert "\n" not in memory.messages[0][0] and "\n" not in memory.attributes[0]["owner"]


def test_the_sweep_notice_shows_an_owner_as_one_line() -> None:
    decisions = [
        Decision("vol-0aaaaaaaaaaaaaaaa", "volume", "us-east-1", "mark", ("orphaned",), owner=FORGED, detail="d\nx"),
        Decision("vol-0bbbbbbbbbbbbbbbb", "volume", "us-east-1", "mark", ("orphaned",), owner="alice"),
    ]
    plan = SweepPlan(at=AT, decisions=tuple(decisions), scanned=2, in_scope=2)
    notices = owner_notices(plan, decisions, dry_run=True, sweep_id="s-1")
    assert [n.owner for n in notices] == ["alice", FORGED]
    for notice in notices:
        lines = printable_lines(email_text(notice))
        assert not any(line.startswith(("owner alice", "  delete", "delete")) for line in lines), lines
        assert "\n" not in notice.title
        chat = chat_payload(notice)
        description = chat["content"]["description"]
        assert printable_lines(description) and not any(line.startswith("  delete") for line in description.split("\n"))
    # Two owners, two chat threads of the same sweep.
    assert len({n.thread for n in notices}) == 2


def test_the_spot_notice_escapes_what_a_tag_put_in_its_notes_and_steps() -> None:
    outcome = SpotOutcome("handled", "i-0123456789abcdef0", "us-east-1", "warning", owner=FORGED)
    outcome.steps.append(Step("notify", 1.0, 1.0, "done", f"owner {FORGED}"))
    outcome.notes.append(f"trainctl:checkpoint-hook={FORGED} is not a configured hook")
    outcome.snapshots.append({"snapshot_id": "snap-0123456789abcdef0", "device": "/dev/sdf\nkept: all"})
    notice = interruption_notice(outcome)
    assert "\n" not in notice.title
    assert len(notice.lines) == 3 and all(line.isprintable() for line in notice.lines)
    lines = printable_lines(email_text(notice))
    assert not any(line.startswith(("owner alice", "kept: all")) for line in lines)


def cost(resource_id: str, owner: str) -> ResourceCost:
    return ResourceCost(resource_id, "instance", "us-east-1", owner, "g5.xlarge spot running", 40.0, 90.0, "x", AT)


def test_cost_alerts_show_owners_as_one_line_and_keep_their_keys() -> None:
    settings = CostSettings(
        hourly_threshold_usd=1000, daily_threshold_usd=100000, owner_thresholds={"*": OwnerThresholds(hourly_usd=10)}
    )
    costs = [cost("i-0123456789abcdef0", FORGED), cost("i-0123456789abcdef1", "alice")]
    breaches = tuple(find_breaches(costs, settings))
    result = CostResult(AT, ("us-east-1",), tuple(costs), breaches, {}, "2026-11-01")
    store, notifier = InMemoryCostStore(), InMemoryNotifier()
    stale = AlertState(f"owner:{FORGED}:daily", 5.0, AT - timedelta(days=1), f"owner {FORGED} was over")
    store.save(stale)
    _alert(result, store, notifier, settings)
    assert len(notifier.messages) == 3  # two owners over their hourly limit, one cleared
    for subject, message in notifier.messages:
        assert "\n" not in subject
        lines = printable_lines(message)
        assert not any(line.startswith(("owner alice:", "  delete")) for line in lines), lines
    # The alert state still knows the breach by its own key: the next run recognises it.
    assert f"owner:{FORGED}:hourly" in store.alerts and stale.key not in store.alerts
