"""The one SNS topic every capability tells people through: a notice rendered per protocol (trainctl.core.notices),
with attributes to filter on."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from trainctl.aws.clients import access_error
from trainctl.core.errors import AwsAccessError
from trainctl.core.permissions import needs
from trainctl.core.text import one_line

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

    from trainctl.core.notices import Notice

# The topic is encrypted with the stack's key: publishing needs a data key from it.
PERMISSIONS = needs("sns:Publish", "kms:GenerateDataKey", "kms:Decrypt")


Attributes = Mapping[str, str]
SUBJECT_LIMIT = 100  # SNS: ASCII, no line breaks or control characters, at most 100 characters


def safe_subject(subject: str) -> str:
    """One ASCII line: a tag value in a subject can neither break it nor make SNS refuse the message."""
    text = one_line(subject, 4 * SUBJECT_LIMIT).encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= SUBJECT_LIMIT else text[: SUBJECT_LIMIT - 3] + "..."


def safe_attributes(attributes: Attributes | None) -> dict[str, str]:
    """Attribute values (an owner from a tag, say) as one escaped line each: subscription filters match them
    exactly, so a control character must never reach one as it is."""
    return {name: one_line(value) for name, value in (attributes or {}).items()}


class Notifier(Protocol):
    def publish(self, notice: Notice) -> None: ...


class SnsNotifier:
    def __init__(self, sns: SNSClient, topic_arn: str) -> None:
        self._sns = sns
        self._topic_arn = topic_arn

    def publish(self, notice: Notice) -> None:
        # Cold start: notices render on the first one sent; a cost check that finds no breach never sends one.
        from trainctl.core.notices import email_subject, sns_message

        # Subscribers filter on the attributes (an owner's own notices, say): SNS wants them typed.
        typed: dict[str, Any] = {
            name: {"DataType": "String", "StringValue": value}
            for name, value in safe_attributes(notice.attributes()).items()
        }
        try:
            # One rendering per protocol: e-mail reads text, chat its notification schema, programs JSON.
            self._sns.publish(
                TopicArn=self._topic_arn,
                Subject=safe_subject(email_subject(notice)),
                Message=sns_message(notice),
                MessageStructure="json",
                MessageAttributes=typed,
            )
        except ClientError as exc:
            raise access_error("Publish", exc) from exc
        except BotoCoreError as exc:
            # A timeout once retries are spent: the notice did not go out, like a refusal (its marks are unannounced).
            raise AwsAccessError("Publish", type(exc).__name__, str(exc)) from exc


class InMemoryNotifier:
    def __init__(self) -> None:
        # (subject, e-mail text): what a person reads.
        self.messages: list[tuple[str, str]] = []
        self.attributes: list[Attributes] = []
        self._lock = threading.Lock()

    def publish(self, notice: Notice) -> None:
        # Cold start: as SnsNotifier's, the rendering loads with the first notice.
        from trainctl.core.notices import email_subject, email_text

        with self._lock:  # notices go out a few at once: a message and its attributes stay at the same index
            self.messages.append((safe_subject(email_subject(notice)), email_text(notice)))
            self.attributes.append(safe_attributes(notice.attributes()))
