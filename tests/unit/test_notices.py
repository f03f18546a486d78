"""Issue 18, notifications people read: one notice, rendered for e-mail, for chat and for programs."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from trainctl.core.notices import (
    SNS_MESSAGE_BUDGET,
    Notice,
    chat_payload,
    chat_text,
    email_text,
    program_json,
    sns_message,
)
from trainctl.sweep.notice import owner_notices
from trainctl.sweep.rules import Decision, SweepPlan

AT = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def sweep_notices() -> list[Notice]:
    decisions = [
        Decision("vol-0aaaaaaaaaaaaaaaa", "volume", "us-east-1", "mark", ("orphaned",), owner="alice"),
        Decision("i-0bbbbbbbbbbbbbbbb", "instance", "us-east-1", "stop", ("idle",), owner="alice", outcome="done"),
        Decision("snap-0cccccccccccccccc", "snapshot", "us-east-1", "mark", ("old",), owner="bob"),
    ]
    plan = SweepPlan(at=AT, decisions=tuple(decisions), scanned=40, in_scope=12)
    return owner_notices(plan, decisions, dry_run=False, sweep_id="a1b2c3")


def test_a_sweep_tells_each_owner_in_their_own_thread() -> None:
    alice, bob = sweep_notices()
    assert (alice.owner, bob.owner) == ("alice", "bob")
    assert alice.attributes() == {"owner": "alice", "kind": "sweep", "severity": "warning"}
    assert bob.attributes()["severity"] == "info"  # a mark changes nothing yet
    assert alice.thread != bob.thread and alice.thread.startswith("trainctl-sweep-")
    again = sweep_notices()
    assert [n.thread for n in again] == [alice.thread, bob.thread]  # the same sweep and owner: the same thread


def test_the_email_is_plain_text_with_what_happened_and_what_to_do() -> None:
    alice, _ = sweep_notices()
    text = email_text(alice)
    lines = text.split("\n")
    assert lines[0] == "trainctl sweep: 1 mark, 1 stop (alice)"
    assert "scanned 40 resources, 12 in scope" in lines[2]
    assert any("vol-0aaaaaaaaaaaaaaaa" in line for line in lines) and any(
        "i-0bbbbbbbbbbbbbbbb" in line for line in lines
    )
    assert "What you can do:" in lines
    steps = lines[lines.index("What you can do:") + 1 :]
    assert any("trainctl:persistent=true" in step for step in steps)
    assert any("trainctl report" in step for step in steps)
    assert not any(ch in text for ch in "*`<>")  # no markup a mail client would show as it is


def test_chat_gets_the_custom_notification_schema() -> None:
    alice, _ = sweep_notices()
    chat = chat_payload(alice)
    assert chat["version"] == "1.0" and chat["source"] == "custom"
    content, metadata = chat["content"], chat["metadata"]
    assert content["textType"] == "client-markdown"
    assert content["title"].startswith("trainctl sweep: 1 mark, 1 stop")
    assert "vol-0aaaaaaaaaaaaaaaa" in content["description"]
    assert content["nextSteps"] and all(isinstance(s, str) for s in content["nextSteps"])
    assert metadata["threadId"] == alice.thread
    assert metadata["relatedResources"] == ["vol-0aaaaaaaaaaaaaaaa", "i-0bbbbbbbbbbbbbbbb"]
    assert metadata["additionalContext"]["owner"] == "alice"


def test_each_protocol_gets_its_rendering() -> None:
    alice, _ = sweep_notices()
    structure = json.loads(sns_message(alice))
    assert set(structure) == {"default", "email", "email-json", "https", "sms"}
    assert structure["email"] == email_text(alice)
    assert json.loads(structure["https"]) == chat_payload(alice)
    assert json.loads(structure["default"]) == json.loads(program_json(alice))
    assert json.loads(structure["default"]) == alice.to_json()


def test_a_tag_can_neither_ping_a_channel_nor_forge_a_link_in_chat() -> None:
    for forged in ("<!channel>", "<@U0123>", "[keep me](https://evil.example)", "*urgent*", "`code`"):
        shown = chat_text(forged)
        assert "<" not in shown and ">" not in shown
        # Every markdown character is escaped: none is left bare.
        for ch in "*`[]":
            assert ch not in shown.replace("\\" + ch, "")
    notice = Notice(kind="sweep", title="t", summary="s", lines=("owner <!channel>\nforged line",), owner="<!here>")
    chat = chat_payload(notice)
    assert "<!" not in json.dumps([chat["content"], chat["metadata"]["summary"]])  # what chat renders
    assert "\n" not in chat["content"]["description"].split("\n", 1)[1]  # one bullet, one line


def test_chat_shows_the_first_lines_and_says_how_many_more() -> None:
    notice = Notice(kind="sweep", title="t", summary="s", lines=tuple(f"line {n}" for n in range(40)))
    description = chat_payload(notice)["content"]["description"]
    assert "line 11" in description and "line 12" not in description
    assert "28 more" in description
    assert "line 39" in email_text(notice)


@settings(deadline=None, max_examples=40)
@given(st.integers(min_value=0, max_value=3000), st.integers(min_value=10, max_value=2000))
def test_every_rendering_together_fits_in_one_sns_message(count: int, width: int) -> None:
    notice = Notice(kind="sweep", title="t", summary="s", lines=tuple("x" * width for _ in range(count)))
    message = sns_message(notice)
    assert len(message.encode()) <= SNS_MESSAGE_BUDGET
    program = json.loads(json.loads(message)["default"])
    assert len(program["lines"]) + program["left_out"] == count  # nothing vanishes: it is counted


def test_chat_metadata_carries_values_as_they_are_for_custom_actions() -> None:
    notice = Notice(
        kind="sweep", title="t", summary="s", lines=(), owner="alice_smith", resources=("vol-0aaaaaaaaaaaaaaaa",)
    )
    metadata = chat_payload(notice)["metadata"]
    assert metadata["additionalContext"]["owner"] == "alice_smith"  # not alice\\_smith
    assert metadata["relatedResources"] == ["vol-0aaaaaaaaaaaaaaaa"]
