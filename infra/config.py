"""Deploy settings from cdk.json context, typed and validated before anything is synthesised."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from trainctl.core.durations import format_duration
from trainctl.core.errors import SettingsError
from trainctl.core.settings import (
    ENV_PREFIX,
    AgeGuardSettings,
    CostSettings,
    SpotSettings,
    SweepSettings,
)
from trainctl.core.settings_loader import duration_value
from trainctl.lyceum.settings import LyceumSettings
from trainctl.organization.settings import OrganizationSettings
from trainctl.runpod.settings import RunpodSettings

CONTEXT_KEY = "trainctl"
# How a setting is named in messages: where it lives in cdk.json.
SETTING_PREFIX = f"cdk.json context {CONTEXT_KEY}."
M = TypeVar("M", bound=BaseModel)
# Set by the stack itself from the resources it creates; not deploy settings.
STACK_OWNED = frozenset(
    {
        "ledger_table",
        "topic_arn",
        "training_document",
        "account_id",
        "price_table",
        "spot_document",
        "recovery_state_machine_arn",
        "recorded_providers",
    }
)
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_KMS_KEY = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]{1,64}$")
_ROLE_NAME = re.compile(r"^[\w+=,.@-]{1,64}$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/([\w+=,.@-]+/)*[\w+=,.@-]{1,64}$")
_UUID = r"^[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}$"
_SCHEDULE = re.compile(r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\([^()]+\))$")
# A secret's name as Secrets Manager allows it (letters, digits and /_+=.@-, at most 512); not an ARN.
_SECRET_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")
# Lambda's timeout is at most 900 seconds (AWS Lambda Developer Guide, "Configure Lambda function timeout").
LAMBDA_MAX_TIMEOUT = timedelta(seconds=900)
# The providers the stack can sweep: each is deployed only when something of it is in scope.
PROVIDERS = ("runpod", "lyceum")
# Organizations' pattern for an organization id (API reference, Organization.Id).
_ORGANIZATION_ID = r"^o-[a-z0-9]{10,32}$"


class DeployOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    sweep_schedule: str = "rate(1 hour)"
    cost_schedule: str = "rate(15 minutes)"
    log_retention_days: int = Field(default=90, ge=1)
    notification_email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    # S3 buckets the pre-warm worker may read; none means it can read nothing.
    prewarm_buckets: tuple[str, ...] = ()
    # KMS keys (key ARNs) of SSE-KMS buckets among prewarm_buckets: the worker may decrypt with them, through S3.
    prewarm_bucket_keys: tuple[str, ...] = ()
    # IAM roles (names or ARNs) that the launch templates of in-scope spot instances may carry as instance
    # profile: the recovery workflow may pass these and no other. None: it relaunches only templates without one.
    recovery_instance_roles: tuple[str, ...] = ()
    # Chat channels of Amazon Q Developer in chat applications subscribed to the topic; none is created when unset.
    # The workspace (or tenant and team) must first be authorised in its console, once, by a person.
    slack_workspace_id: str | None = Field(default=None, pattern=r"^[0-9A-Z]{1,255}$")
    slack_channel_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9]{1,255}$")
    teams_tenant_id: str | None = Field(default=None, pattern=_UUID)
    teams_team_id: str | None = Field(default=None, pattern=_UUID)
    # The channel id as Teams' channel link carries it, URL-encoded: 19%3a...%40thread.tacv2.
    teams_channel_id: str | None = Field(
        default=None, pattern=r"^([a-zA-Z0-9-_=+/.,])*%3[aA]([a-zA-Z0-9-_=+/.,])*%40([a-zA-Z0-9-_=+/.,])*$"
    )
    # Active tracing records every invocation either way; this adds the X-Ray SDK and a subsegment per AWS
    # call, at 150-250 ms of each cold start.
    trace_aws_calls: bool = False
    # Each provider's sweep is its own function with its own timeout: a slow provider API stalls nothing else.
    runpod_sweep_timeout: timedelta = timedelta(minutes=10)
    lyceum_sweep_timeout: timedelta = timedelta(minutes=10)
    # The AWS Organization the hub serves (o-...): the spoke role trusts, and the hub's event bus accepts, only its
    # principals. Needed when org_units is set.
    org_id: str | None = Field(default=None, pattern=_ORGANIZATION_ID)
    # The share of account-regions whose child may fail before the organization run itself fails.
    org_tolerated_failure_percentage: float = Field(default=10, ge=0, le=100)

    _durations = field_validator("runpod_sweep_timeout", "lyceum_sweep_timeout", mode="before")(duration_value)

    @field_validator("runpod_sweep_timeout", "lyceum_sweep_timeout")
    @classmethod
    def _lambda_timeout(cls, value: timedelta) -> timedelta:
        if not timedelta(minutes=1) <= value <= LAMBDA_MAX_TIMEOUT or value.microseconds:
            raise ValueError("must be whole seconds from 1m to 15m (Lambda's longest timeout)")
        return value

    @field_validator("prewarm_buckets", "prewarm_bucket_keys", "recovery_instance_roles", mode="before")
    @classmethod
    def _bucket_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("prewarm_buckets")
    @classmethod
    def _bucket_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for bucket in value:
            if not _BUCKET.match(bucket):
                raise ValueError(f"{bucket!r} is not an S3 bucket name")
        return value

    @field_validator("prewarm_bucket_keys")
    @classmethod
    def _key_arns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for key in value:
            if not _KMS_KEY.match(key):
                raise ValueError(f"{key!r} is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID; not an alias)")
        return value

    @field_validator("recovery_instance_roles")
    @classmethod
    def _roles(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for role in value:
            if not (_ROLE_NAME.match(role) or _ROLE_ARN.match(role)):
                raise ValueError(f"{role!r} is not an IAM role name or role ARN (no wildcards)")
        return value

    @model_validator(mode="after")
    def _whole_chat_channels(self) -> DeployOptions:
        for names, given in (
            (("slack_workspace_id", "slack_channel_id"), (self.slack_workspace_id, self.slack_channel_id)),
            (
                ("teams_tenant_id", "teams_team_id", "teams_channel_id"),
                (self.teams_tenant_id, self.teams_team_id, self.teams_channel_id),
            ),
        ):
            if any(given) and not all(given):
                missing = [name for name, value in zip(names, given, strict=True) if not value]
                raise ValueError(f"a chat channel needs {', '.join(names)}: {', '.join(missing)} is not set")
        return self

    @model_validator(mode="after")
    def _keys_need_buckets(self) -> DeployOptions:
        if self.prewarm_bucket_keys and not self.prewarm_buckets:
            raise ValueError("prewarm_bucket_keys is set but prewarm_buckets is not: the keys would decrypt nothing")
        return self

    @field_validator("sweep_schedule", "cost_schedule")
    @classmethod
    def _expression(cls, value: str) -> str:
        if not _SCHEDULE.match(value):
            raise ValueError("must be rate(N minutes|hours|days) or cron(...)")
        return value


class DeployConfig(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    options: DeployOptions
    sweep: SweepSettings
    age_guard: AgeGuardSettings
    cost: CostSettings
    spot: SpotSettings
    runpod: RunpodSettings = RunpodSettings()
    lyceum: LyceumSettings = LyceumSettings()
    organization: OrganizationSettings = OrganizationSettings()

    @property
    def covers_organization(self) -> bool:
        """Whether the hub deploys spokes and runs over the organization (load_config checks the rest is whole)."""
        return bool(self.organization.org_units)

    def organization_environment(self) -> dict[str, str]:
        """Every TRAINCTL_ORG_* setting, spelled out, for the organization run's functions."""
        return _environment(self.organization)

    @property
    def providers(self) -> tuple[str, ...]:
        """The providers this deployment sweeps: those with something in scope (load_config checks the secret)."""
        return tuple(p for p in PROVIDERS if key_secret_of(self, p) is not None)

    def provider_environment(self, provider: str) -> dict[str, str]:
        """The provider's TRAINCTL_RUNPOD_* or TRAINCTL_LYCEUM_* variables, spelled out."""
        return _environment(self.runpod if provider == "runpod" else self.lyceum)

    def function_environment(self) -> dict[str, str]:
        """Every sweep setting, spelled out: what is deployed is visible and never drifts with defaults."""
        return _environment(self.sweep)

    def age_guard_environment(self) -> dict[str, str]:
        return _environment(self.age_guard)

    def cost_environment(self) -> dict[str, str]:
        return _environment(self.cost)

    def spot_environment(self) -> dict[str, str]:
        return _environment(self.spot)


def _environment(settings: BaseModel) -> dict[str, str]:
    env: dict[str, str] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if name in STACK_OWNED or value is None:
            continue
        if isinstance(value, timedelta):
            text = format_duration(value)
        elif isinstance(value, re.Pattern):
            text = value.pattern
        elif isinstance(value, tuple):
            text = ",".join(value)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, dict):
            text = json.dumps(
                {k: v.model_dump(exclude_none=True) if isinstance(v, BaseModel) else v for k, v in value.items()},
                sort_keys=True,
            )
        else:
            text = str(value)
        env[ENV_PREFIX + name.upper()] = text
    return env


def load_config(context: Mapping[str, Any] | None, *, default_region: str | None) -> DeployConfig:
    """Route each context key to the settings that know it; an unknown or bad key fails synth, named."""
    raw = dict(context or {})
    option_names = set(DeployOptions.model_fields)
    sweep_names = set(SweepSettings.model_fields) - STACK_OWNED
    age_names = set(AgeGuardSettings.model_fields) - STACK_OWNED
    cost_names = set(CostSettings.model_fields) - STACK_OWNED
    spot_names = set(SpotSettings.model_fields) - STACK_OWNED
    runpod_names, lyceum_names = set(RunpodSettings.model_fields), set(LyceumSettings.model_fields)
    organization_names = set(OrganizationSettings.model_fields)
    known = option_names | sweep_names | age_names | cost_names | spot_names | runpod_names | lyceum_names
    known |= organization_names
    for key in raw:
        if key not in known:
            raise SettingsError(unknown_setting(key, known | STACK_OWNED))
    if "regions" not in raw and default_region:
        raw["regions"] = [default_region]
    flat = {k: ",".join(v) if isinstance(v, list) else v for k, v in raw.items()}
    config = DeployConfig(
        options=_validated(DeployOptions, {k: v for k, v in flat.items() if k in option_names}),
        sweep=_validated(SweepSettings, {k: v for k, v in flat.items() if k in sweep_names}),
        age_guard=_validated(AgeGuardSettings, {k: v for k, v in flat.items() if k in age_names}),
        cost=_validated(CostSettings, {k: v for k, v in flat.items() if k in cost_names}),
        spot=_validated(SpotSettings, {k: v for k, v in flat.items() if k in spot_names}),
        runpod=_validated(RunpodSettings, {k: v for k, v in flat.items() if k in runpod_names}),
        lyceum=_validated(LyceumSettings, {k: v for k, v in flat.items() if k in lyceum_names}),
        organization=_validated(OrganizationSettings, {k: v for k, v in flat.items() if k in organization_names}),
    )
    for provider in PROVIDERS:
        key_secret_of(config, provider)  # a provider half configured fails synth, named
    _whole_organization(config)
    return config


def _whole_organization(config: DeployConfig) -> None:
    """The organization's settings hang together: units need the organization's id, and the id needs units."""
    org, org_id = config.organization, config.options.org_id
    if org.org_units and not org_id:
        raise SettingsError(
            f"{SETTING_PREFIX}org_id: org_units is set but the organization's id (o-...) is not: the spoke role "
            "and the hub's event bus trust only principals of that organization"
        )
    if org_id and not org.org_units:
        raise SettingsError(f"{SETTING_PREFIX}org_id: set, but no organizational unit is covered: set org_units")
    if org.enabled and not org.org_units:
        raise SettingsError(
            f"{SETTING_PREFIX}org_include_accounts: set, but no organizational unit is covered: the StackSet "
            "deploys spokes by unit, so set org_units (README, A whole AWS Organization)"
        )


def key_secret_of(config: DeployConfig, provider: str) -> str | None:
    """The name of the secret holding the provider's key when the provider is deployed; None when it is not.

    The stack references a secret the user creates (README, Deploy): it never holds a key, nor a secret that a
    deploy could replace or a stack deletion destroy with the key in it.
    """
    if provider == "runpod":
        in_scope, secret = config.runpod.scoped, config.runpod.runpod_key_secret
    else:
        in_scope, secret = config.lyceum.configured, config.lyceum.lyceum_key_secret
    where, scope = f"{SETTING_PREFIX}{provider}_key_secret", f"{provider}_name_prefix or {provider}_ids"
    if in_scope and not secret:
        raise SettingsError(
            f"{where}: {provider} is in scope ({scope}) but no secret names its API key; create one "
            "(README, Deploy) and set its name here"
        )
    if secret and not in_scope:
        raise SettingsError(f"{where}: set, but nothing of {provider} is in scope: set {scope}")
    if secret and not _SECRET_NAME.match(secret):
        raise SettingsError(
            f"{where}: not a Secrets Manager secret name (letters, digits and /_+=.@- only, at most 512; "
            "the name, not an ARN)"
        )
    return secret if in_scope else None


def unknown_setting(key: str, known: set[str] | frozenset[str]) -> str:
    """One line: the key, why it is refused, and the nearest known name when there is one."""
    where = f"{SETTING_PREFIX}{key}"
    if key in STACK_OWNED:
        return f"{where}: set by the stack from the resources it creates, not in cdk.json"
    near = difflib.get_close_matches(key, sorted(known - STACK_OWNED), n=1)
    hint = f"; did you mean {near[0]}?" if near else ""
    return f"{where}: not a trainctl setting{hint} (README.md, Settings, lists them all)"


def describe_invalid(exc: ValidationError) -> str:
    """One line per cdk.json key, joined: the key, then what is wrong in words (the value once)."""
    problems = []
    for error in exc.errors():
        # A rule over several keys has no key of its own: named by where they live (synth adds "trainctl: ").
        where = SETTING_PREFIX + ".".join(str(part) for part in error["loc"]) if error["loc"] else SETTING_PREFIX[:-1]
        message = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        value = error.get("input")
        if error["type"] == "extra_forbidden":
            message = "not a key here"
        elif error["loc"] and repr(value) not in message and not isinstance(value, dict):
            message = f"{message} (got {value!r})"
        problems.append(f"{where}: {message}")
    return "; ".join(problems).replace("\n", " ")


def _validated(model: type[M], values: dict[str, Any]) -> M:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise SettingsError(describe_invalid(exc)) from exc
