"""Adversarial review, round 2 (unit level): each of these failed on the code it was written against; they now
hold what the review broke."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from trainctl.core import tags
from trainctl.core.notices import chat_payload, email_text, sns_message
from trainctl.core.text import one_line
from trainctl.sweep.notice import owner_notices
from trainctl.sweep.rules import Decision, SweepPlan

AT = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)

# --------------------------------------------------------------------------- notices: Unicode line separators

# U+2028 LINE SEPARATOR / U+2029 PARAGRAPH SEPARATOR are categories Zl/Zp, not C*: one_line lets them through.
FORGED_OWNER = "bob\u2028delete    volume   vol-0ccccccccccccccccc (us-east-1) because orphaned: done;\u2029-- forged"


def test_unicode_line_separators_in_a_tag_forge_no_line_in_email_or_chat() -> None:
    """An owner tag with U+2028/U+2029 is 'one line' to trainctl, but several lines to every reader that honours
    Unicode line breaks (Python's str.splitlines, JSON-in-JS before ES2019, many renderers)."""
    decisions = [
        Decision("vol-0aaaaaaaaaaaaaaaa", "volume", "us-east-1", "mark", ("orphaned",), owner=FORGED_OWNER),
    ]
    plan = SweepPlan(at=AT, decisions=tuple(decisions), scanned=1, in_scope=1)
    [notice] = owner_notices(plan, decisions, dry_run=True, sweep_id="s-1")
    mail = email_text(notice)
    # The e-mail holds as many lines as it has "\n"s, and no more, to anyone who splits it.
    assert len(mail.splitlines()) == mail.count("\n") + 1, mail.splitlines()
    description = chat_payload(notice)["content"]["description"]
    assert len(description.splitlines()) == description.count("\n") + 1, description.splitlines()
    # And SNS carries the raw separator in every rendering (ensure_ascii=False), the owner attribute included.
    assert "\u2028" not in sns_message(notice)
    assert one_line("a\u2028b").isprintable(), "one_line returned a non-printable (line-breaking) character"


# --------------------------------------------------------------------------- age guard IAM: scope onto owned


def _allows(
    statement_conditions: Mapping[str, Mapping[str, Any]] | None,
    *,
    request_keys: Sequence[str],
    resource_tags: Mapping[str, str],
    region: str,
) -> bool:
    """The few IAM operators the age guard's statements use, as AWS documents them (tag-key part of
    aws:ResourceTag/... case-insensitive, aws:TagKeys values case-sensitive under StringEquals)."""
    lowered = {k.lower(): v for k, v in resource_tags.items()}

    def value(key: str) -> Any:
        if key == "aws:TagKeys":
            return list(request_keys) or None
        if key == "aws:RequestedRegion":
            return region
        if key.startswith("aws:ResourceTag/"):
            return lowered.get(key.split("/", 1)[1].lower())
        raise AssertionError(f"unknown key {key}")

    for operator, block in (statement_conditions or {}).items():
        for key, wanted in block.items():
            have = value(key)
            allowed = wanted if isinstance(wanted, list) else [wanted]
            if operator == "Null":
                if (have is None) != (str(wanted) == "true"):
                    return False
            elif operator == "ForAllValues:StringEquals":
                if have is not None and not all(v in allowed for v in have):
                    return False
            elif operator == "ForAnyValue:StringEquals":
                if have is None or not any(v in allowed for v in have):
                    return False
            elif operator == "StringEquals":
                if have not in allowed:
                    return False
            elif operator == "StringEqualsIgnoreCase":
                if have is None or have.lower() not in [a.lower() for a in allowed]:
                    return False
            else:
                raise AssertionError(f"unhandled operator {operator}")
    return True


def test_age_guard_iam_refuses_overwrites_of_owner_created_at_and_scope() -> None:
    """What held: no statement lets the role overwrite an owner, created-at or scope tag that is set (any case)."""
    from infra.age_guard import age_guard_routes, restamp_denials

    routes = age_guard_routes(regions=["us-east-1"], account="123456789012", scope_tag=tags.MANAGED)
    for key in (tags.OWNER, tags.CREATED_AT, tags.MANAGED, tags.CREATED_BY):
        for present in (key, key.upper()):
            for keys in ([key], [key, tags.CREATED_BY]):
                tagged = {present: "x"}

                def matches(conditions: Any, keys: list[str] = keys, tagged: dict[str, str] = tagged) -> bool:
                    return _allows(conditions, request_keys=keys, resource_tags=tagged, region="us-east-1")

                # An explicit Deny wins over any Allow (issue 25: one Deny per key beside one Allow).
                denied = any(matches(c) for _, c in restamp_denials(tags.MANAGED))
                assert denied or not any(matches(r.conditions) for r in routes if "ec2:CreateTags" in r.actions), (
                    key,
                    present,
                    keys,
                )
        # Nor in another region.
        assert not any(
            _allows(r.conditions, request_keys=[key], resource_tags={}, region="eu-west-1")
            for r in routes
            if "ec2:CreateTags" in r.actions
        )
    json.dumps([r.sid for r in routes])
