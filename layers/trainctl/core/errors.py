"""Domain errors: adapters translate botocore failures into these."""

from __future__ import annotations


class TrainctlError(Exception):
    """Base of every error trainctl raises on purpose."""


class InvalidEvent(ValueError):
    """The event does not have a shape this function accepts; nothing was done."""


class SettingsError(TrainctlError):
    """A TRAINCTL_* setting (or a deploy setting) is invalid; the message names it."""


class AwsAccessError(TrainctlError):
    """An AWS call failed in a way the caller should see (not retried further)."""

    def __init__(self, operation: str, code: str, message: str) -> None:
        super().__init__(f"{operation} failed: {code}: {message}")
        self.operation = operation
        self.code = code
