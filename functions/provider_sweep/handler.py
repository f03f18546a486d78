"""provider_sweep: one provider's sweep (RunPod or Lyceum), run by that provider's own schedule and function.

Each configured provider is deployed as its own function with its own timeout, so a slow provider API stalls
neither the AWS sweep nor the other provider. A provider's code is imported only when its sweep runs, and its
API key is read from Secrets Manager once per cold start and never logged.

On the cost schedule the same function prices its provider and records that burn in the ledger
(providers.burn), where cost_alerts adds it to the totals it alerts on without ever calling the provider.
"""

# No `from __future__ import annotations`: the handler is also loaded by path (trainctl invoke), where pydantic
# could not resolve its request model's annotations from text.
import os
import time
import uuid
from datetime import timedelta
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ConfigDict, ValidationError

from trainctl.aws.clients import ClientFactory
from trainctl.aws.lease import DynamoDbLease, provider_lease_key
from trainctl.aws.observability import handler_tracer, logger, metrics
from trainctl.core.clock import Clock, system_clock
from trainctl.core.errors import SettingsError, TrainctlError
from trainctl.core.events import InvalidEvent
from trainctl.core.sweep_settings import SweepSettings

if TYPE_CHECKING:  # only named: the context is Lambda's, the providers' types are for mypy
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from trainctl.cost.run import ProviderCosts
    from trainctl.lyceum.settings import LyceumSettings
    from trainctl.providers.sweep import ProviderSweepResult
    from trainctl.runpod.settings import RunpodSettings

tracer = handler_tracer()
clock: Clock = system_clock  # integration tests step this

Provider = Literal["runpod", "lyceum"]
# Names of their own, never the AWS sweep's: its heartbeat alarm must not hear a provider's runs. The log line
# of each run names the provider; the stack alarms on a failed run of any provider.
SCANNED_METRIC = "ProviderScanned"
FAILED_RUNS_METRIC = "ProviderErrors"
# A lease outlives the run that holds it by this much: a run killed at its timeout frees it soon after.
LEASE_SLACK = timedelta(minutes=1)


class ProviderSweepRequest(BaseModel):
    """What a provider's schedule sends: which provider, and at most a request for less (a dry-run)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: Literal["provider_sweep"]
    provider: Provider
    # An event may only ask for less: enforcement is a deploy setting.
    dry_run: bool | None = None


class ProviderCostRequest(BaseModel):
    """What a provider's cost schedule sends: which provider to price and record for cost_alerts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: Literal["provider_cost"]
    provider: Provider


def parse_provider_trigger(event: object) -> ProviderSweepRequest | ProviderCostRequest:
    if not isinstance(event, dict):
        raise InvalidEvent(f"provider_sweep expects a JSON object, got {type(event).__name__}")
    model = ProviderCostRequest if event.get("task") == "provider_cost" else ProviderSweepRequest
    try:
        return model.model_validate(event)
    except ValidationError as exc:
        # Where and what, never the value: an event's text is not pasted into a message line.
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}" for e in exc.errors())
        raise InvalidEvent(f"provider_sweep refused the event: {problems}") from exc


@cache
def deployed_settings() -> SweepSettings:
    """Loaded once per cold start; a bad setting fails every invocation loudly, naming the variable."""
    return SweepSettings.from_env(os.environ)


class Deployed(NamedTuple):
    """One provider as this function's environment deploys it (a NamedTuple: the handler is loaded by path, which
    a dataclass's annotations cannot resolve)."""

    settings: "RunpodSettings | LyceumSettings"
    in_scope: bool
    key_secret: str | None


@cache
def provider_settings(provider: Provider) -> Deployed:
    """Only the swept provider's settings (and code) are loaded, once per cold start."""
    if provider == "runpod":
        from trainctl.runpod.settings import RunpodSettings

        runpod = RunpodSettings.from_env(os.environ)
        return Deployed(runpod, runpod.scoped, runpod.runpod_key_secret)
    from trainctl.lyceum.settings import load_lyceum_settings

    lyceum = load_lyceum_settings(os.environ)
    return Deployed(lyceum, lyceum.configured, lyceum.lyceum_key_secret)


@cache
def client_factory() -> ClientFactory:
    return ClientFactory()


@cache
def api_key(provider: Provider, secret_id: str) -> str:
    """The key, read once per cold start (a failed read is not kept); it goes to the provider's client only."""
    from trainctl.providers.keys import key_from_secret

    return key_from_secret(client_factory().client("secretsmanager"), secret_id, provider)


def key_secret(provider: Provider, deployed: Deployed) -> str:
    """The secret's name; refused when this function's environment does not deploy the provider asked for."""
    upper = provider.upper()
    if not deployed.in_scope:
        raise SettingsError(
            f"provider_sweep: {provider} is not configured here (TRAINCTL_{upper}_NAME_PREFIX or TRAINCTL_{upper}_IDS)"
        )
    if not deployed.key_secret:
        raise SettingsError(f"provider_sweep: TRAINCTL_{upper}_KEY_SECRET is not set: no secret to read the key from")
    return deployed.key_secret


def sweep_provider(provider: Provider, settings: SweepSettings, deadline: float) -> "ProviderSweepResult":
    """The provider's one run, with its ledger and notices; a key that cannot be read is its error alone."""
    from trainctl.aws.notifications import SnsNotifier
    from trainctl.providers.dispatch import run_provider_sweep
    from trainctl.providers.sweep import ProviderLedger, failed_sweep

    deployed = provider_settings(provider)
    secret = key_secret(provider, deployed)
    factory = client_factory()
    ledger = ProviderLedger(factory.dynamodb(), settings.ledger_table, provider)
    notifier = SnsNotifier(factory.sns(), settings.topic_arn) if settings.topic_arn and not settings.dry_run else None
    try:
        key = api_key(provider, secret)
    except TrainctlError as exc:
        return failed_sweep(provider, settings, clock(), exc)
    return run_provider_sweep(
        provider, deployed.settings, key, settings, clock, ledger=ledger, notifier=notifier, deadline=deadline
    )


def lease_held(provider: Provider, settings: SweepSettings) -> "ProviderSweepResult":
    """Another run of this provider's sweep is acting: this one does nothing, and says so."""
    from trainctl.providers.sweep import ProviderSweepResult
    from trainctl.sweep.rules import SweepPlan
    from trainctl.sweep.run import SweepResult

    now = clock()
    note = f"another {provider} sweep holds its lease: this one did nothing"
    result = SweepResult(
        uuid.uuid4().hex[:12], False, now, (provider,), SweepPlan(now, (), 0, 0), (), False, False, (note,)
    )
    return ProviderSweepResult(provider, result)


def record_burn(provider: Provider, settings: SweepSettings, deadline: float) -> "ProviderCosts":
    """The provider priced now and recorded for cost_alerts, also when it failed: its error is then the record."""
    from trainctl.cost.run import ProviderCosts
    from trainctl.providers.burn import DynamoDbBurnStore
    from trainctl.providers.cost import provider_costs

    deployed = provider_settings(provider)
    secret = key_secret(provider, deployed)
    at = clock()
    try:
        costs = provider_costs(provider, deployed.settings, api_key(provider, secret), at, deadline=deadline)
    except TrainctlError as exc:  # the key's secret could not be read
        costs = ProviderCosts(provider, error=str(exc))
    DynamoDbBurnStore(client_factory().dynamodb(), settings.ledger_table).record(costs, at)
    return costs


def price_and_record(provider: Provider, settings: SweepSettings, deadline: float) -> dict[str, Any]:
    """The cost schedule's run: price, record, and say what was recorded (a failure raises the provider's alarm)."""
    from trainctl.cost.rules import totals

    costs = record_burn(provider, settings, deadline)
    if costs.error:
        # Read the secret again next run: the key may have been rotated after the provider refused it.
        api_key.cache_clear()
        logger.error("provider pricing failed", extra={"provider": provider, "error": costs.error})
    metrics.add_metric(name=FAILED_RUNS_METRIC, unit=MetricUnit.Count, value=1 if costs.error else 0)
    burn = totals(costs.resources)
    summary = {
        **costs.to_json(),
        "task": "provider_cost",
        "hourly_usd": round(burn.hourly_usd, 4),
        "unpriced": burn.unpriced,
        "breaches": [b.to_json() for b in costs.breaches],
    }
    logger.info("provider burn recorded", extra={k: summary[k] for k in ("provider", "hourly_usd", "unpriced")})
    return summary


def emit_metrics(result: "ProviderSweepResult") -> None:
    metrics.add_metric(name=SCANNED_METRIC, unit=MetricUnit.Count, value=result.result.plan.scanned)
    metrics.add_metric(name=FAILED_RUNS_METRIC, unit=MetricUnit.Count, value=1 if result.error else 0)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: "LambdaContext") -> dict[str, Any]:
    try:
        request = parse_provider_trigger(event)
    except InvalidEvent:
        logger.exception("refused event")
        raise
    settings = deployed_settings()
    remaining = timedelta(milliseconds=context.get_remaining_time_in_millis())
    # HTTP calls and rate-limit waits stop this long before Lambda's own deadline.
    deadline = time.monotonic() + (remaining - settings.deadline_margin).total_seconds()
    if isinstance(request, ProviderCostRequest):
        # Pricing changes nothing at the provider: it runs, and records, in a dry-run deployment too.
        return price_and_record(request.provider, settings, deadline)
    if request.dry_run is False and settings.dry_run:
        raise InvalidEvent("this deployment is dry-run: an event cannot turn enforcement on")
    effective = settings.model_copy(update={"dry_run": settings.dry_run or bool(request.dry_run)})
    if effective.dry_run:  # a dry-run writes nothing, not even a lease
        result = sweep_provider(request.provider, effective, deadline)
    else:
        lease = DynamoDbLease(
            client_factory().dynamodb(), effective.ledger_table, key=provider_lease_key(request.provider)
        )
        if not lease.acquire(clock(), remaining + LEASE_SLACK):
            result = lease_held(request.provider, effective)
        else:
            try:
                result = sweep_provider(request.provider, effective, deadline)
            finally:
                lease.release()
    if result.error:
        # Read the secret again next run: the key may have been rotated after the provider refused it.
        api_key.cache_clear()
        logger.error("provider sweep failed", extra={"provider": request.provider, "error": result.error})
    emit_metrics(result)
    logger.info("provider sweep finished", extra={"sweep_id": result.result.sweep_id, "provider": result.provider})
    return result.to_json()
