"""Why a hand operation did nothing: a refusal under the safety model, or no such resource."""

from __future__ import annotations

from trainctl.core.errors import TrainctlError


class Refused(TrainctlError):
    """The operation would break a protection (or cannot be done); nothing was changed."""


class NotFound(TrainctlError):
    """No such resource in this region."""
