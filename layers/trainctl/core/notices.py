"""One message model, rendered per channel: what a person reads by e-mail, what a chat channel shows, and what a
program reads.

Every capability tells people through one SNS topic. SNS hands each subscription the rendering for its protocol
(MessageStructure=json): e-mail gets plain text, Amazon Q Developer in chat applications (formerly AWS Chatbot;
it drops raw text) gets its custom-notification schema over https, and queues, functions and everything else get
a JSON document. The same notice carries message attributes (owner, kind, severity) that subscriptions filter on.

Every value that may come from a tag or an event is escaped before it reaches any rendering: one printable line
(`one_line`) everywhere, and in chat also the characters that markdown or a mention would read.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from trainctl.core.text import one_line

Kind = Literal["sweep", "spot", "cost"]
Severity = Literal["info", "warning", "critical"]

# SNS takes at most 256 KiB per message, all renderings together; keep room for the envelope and attributes.
SNS_MESSAGE_BUDGET = 240 * 1024
# Chat shows the first lines; the e-mail and the JSON hold every line the notice has.
CHAT_LINES = 12
CHAT_DESCRIPTION_LIMIT = 3500
TITLE_LIMIT = 250
NO_OWNER = "(no owner)"
MARKDOWN_SPECIALS = "\\`*_~[]|#"
PRODUCT = "trainctl"
SCHEMA_VERSION = 1


def chat_text(value: object, limit: int = 1000) -> str:
    """A value on its way into chat markdown: one line, with `<`, `>` and `&` as entities (no mention such as
    <!channel>, no HTML) and the characters of markdown's emphasis, code, link and table syntax escaped, so a tag
    can neither ping a channel nor forge a link or a layout."""
    text = one_line(value, limit)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "".join("\\" + ch if ch in MARKDOWN_SPECIALS else ch for ch in text)


def digest(value: str) -> str:
    """A short stable name for a value from outside (an owner, a breach key): safe in any id."""
    return hashlib.sha256(value.encode("utf-8", "backslashreplace")).hexdigest()[:12]


@dataclass(frozen=True)
class Notice:
    """What trainctl tells people about one event: built once, rendered per channel.

    `title`, `summary`, `lines` and `next_steps` are plain text and escaped by whoever builds them (`one_line` on
    every value from a tag or event). `thread` groups a chat thread: one per sweep and owner, per spot instance, per
    cost breach.
    """

    kind: Kind
    title: str
    summary: str
    lines: tuple[str, ...] = ()
    next_steps: tuple[str, ...] = ()
    owner: str | None = None
    severity: Severity = "info"
    thread: str = ""
    # Ids of the resources it speaks of, for programs and for chat's related resources.
    resources: tuple[str, ...] = ()
    # Lines left out to fit a channel's limit; the ledger holds them.
    left_out: int = 0
    facts: dict[str, str] = field(default_factory=dict)

    def attributes(self) -> dict[str, str]:
        """The message attributes subscriptions filter on (an owner's own notices: {"owner": ["alice"]})."""
        return {"owner": self.owner or NO_OWNER, "kind": self.kind, "severity": self.severity}

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "source": PRODUCT,
            "kind": self.kind,
            "severity": self.severity,
            "owner": one_line(self.owner) if self.owner else None,
            "title": self.title,
            "summary": self.summary,
            "lines": list(self.lines),
            "left_out": self.left_out,
            "next_steps": list(self.next_steps),
            "resources": list(self.resources),
            "thread": self.thread,
            "facts": dict(self.facts),
        }


def email_subject(notice: Notice) -> str:
    return one_line(notice.title, TITLE_LIMIT)


def email_text(notice: Notice) -> str:
    """Plain text a person reads in any mail client: what happened, the list, what to do."""
    out = [one_line(notice.title, TITLE_LIMIT), "", one_line(notice.summary, 2000)]
    if notice.lines:
        out.append("")
        out.extend(one_line(line, 2400) for line in notice.lines)
    if notice.left_out:
        out.append(f"... and {notice.left_out} more: trainctl report lists them all")
    if notice.next_steps:
        out += ["", "What you can do:"]
        out.extend(f"- {one_line(step, 1000)}" for step in notice.next_steps)
    out += ["", f"-- {PRODUCT}: {notice.kind} notice for owner {one_line(notice.owner or NO_OWNER, 256)}"]
    return "\n".join(out)


def chat_payload(notice: Notice) -> dict[str, Any]:
    """The custom-notification schema of Amazon Q Developer in chat applications (version 1.0, source custom)."""
    shown = notice.lines[:CHAT_LINES]
    more = len(notice.lines) - len(shown) + notice.left_out
    description = "\n".join(
        [chat_text(notice.summary, 2000), *(f"• {chat_text(line, 600)}" for line in shown)]
        + ([f"… and {more} more: `trainctl report` lists them all"] if more else [])
    )
    if len(description) > CHAT_DESCRIPTION_LIMIT:
        description = description[: CHAT_DESCRIPTION_LIMIT - 1] + "…"
    return {
        "version": "1.0",
        "source": "custom",
        "content": {
            "textType": "client-markdown",
            "title": chat_text(notice.title, TITLE_LIMIT),
            "description": description,
            "nextSteps": [chat_text(step, 500) for step in notice.next_steps],
            "keywords": [PRODUCT, notice.kind, notice.severity],
        },
        "metadata": {
            "threadId": notice.thread,
            "summary": chat_text(notice.title, TITLE_LIMIT),
            "eventType": f"{PRODUCT}-{notice.kind}",
            # Data, not text: custom actions read these as variables, so a markdown escape would change the value.
            # (Amazon Q Developer in chat applications, Custom notifications: client-markdown applies to content.)
            "relatedResources": [one_line(r, 256) for r in notice.resources[:20]],
            "additionalContext": {"owner": one_line(notice.owner or NO_OWNER, 256), "severity": notice.severity},
        },
    }


def program_json(notice: Notice) -> str:
    return json.dumps(notice.to_json(), ensure_ascii=False, sort_keys=True)


def sns_message(notice: Notice) -> str:
    """Message for Publish with MessageStructure=json: a rendering per protocol, within SNS's size limit.

    Lines are left out from the end (and counted) until every rendering fits together."""
    fitted = notice
    while True:
        program = program_json(fitted)
        structure = {
            "default": program,
            "email": email_text(fitted),
            "email-json": program,
            "https": json.dumps(chat_payload(fitted), ensure_ascii=False),
            "sms": one_line(fitted.title, 140),
        }
        message = json.dumps(structure, ensure_ascii=False)
        if len(message.encode("utf-8")) <= SNS_MESSAGE_BUDGET or not fitted.lines:
            return message
        keep = len(fitted.lines) // 2
        fitted = replace(fitted, lines=fitted.lines[:keep], left_out=fitted.left_out + len(fitted.lines) - keep)
