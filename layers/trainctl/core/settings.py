"""Typed, frozen settings, loaded once from TRAINCTL_* variables (the CLI and the Lambdas share them).

Every settings model, gathered for the command line, the stack and the README. Each lives in a module of its own
(sweep_settings, age_guard_settings, cost_settings, spot_settings; the loader in settings_loader) so that a
function imports only the model it reads.
"""

from __future__ import annotations

from trainctl.core.age_guard_settings import AgeGuardSettings, age_guard_env_names
from trainctl.core.cost_settings import CostSettings, OwnerThresholds, cost_env_names
from trainctl.core.settings_loader import ENV_PREFIX, describe_validation_error, load_settings
from trainctl.core.spot_settings import SpotSettings, spot_env_names
from trainctl.core.sweep_settings import SweepSettings, env_names

__all__ = [
    "ENV_PREFIX",
    "AgeGuardSettings",
    "CostSettings",
    "OwnerThresholds",
    "SpotSettings",
    "SweepSettings",
    "age_guard_env_names",
    "cost_env_names",
    "describe_validation_error",
    "env_names",
    "load_settings",
    "spot_env_names",
]
