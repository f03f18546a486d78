"""The one SNS topic every capability tells people through: a subject, a message, and attributes to filter on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import ClientError

from trainctl.aws.clients import access_error
from trainctl.core.permissions import needs
from trainctl.core.text import one_line

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

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
    def publish(self, subject: str, message: str, attributes: Attributes | None = None) -> None: ...


class SnsNotifier:
    def __init__(self, sns: SNSClient, topic_arn: str) -> None:
        self._sns = sns
        self._topic_arn = topic_arn

    def publish(self, subject: str, message: str, attributes: Attributes | None = None) -> None:
        # Subscribers filter on the attributes (an owner's own notices, say): SNS wants them typed.
        typed: dict[str, Any] = {
            name: {"DataType": "String", "StringValue": value} for name, value in safe_attributes(attributes).items()
        }
        try:
            self._sns.publish(
                TopicArn=self._topic_arn, Subject=safe_subject(subject), Message=message, MessageAttributes=typed
            )
        except ClientError as exc:
            raise access_error("Publish", exc) from exc


class InMemoryNotifier:
    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []
        self.attributes: list[Attributes] = []

    def publish(self, subject: str, message: str, attributes: Attributes | None = None) -> None:
        self.messages.append((safe_subject(subject), message))
        self.attributes.append(safe_attributes(attributes))
