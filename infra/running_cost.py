"""What the stack itself costs a month at the default schedules: stated assumptions times AWS's published
prices (us-east-1), each price with where it was read. README.md's "Running cost" table is generated from this
(infra.readme); tests/infra/test_readme.py holds the counts that come from the stack (alarms, dashboard
metrics, schedules, memory) to the synthesised template.

Usage figures (durations, event counts, fleet size) are assumptions, said so in each row; prices are not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from infra.config import DeployOptions

HOURS_PER_MONTH = 730
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_MINUTES = {"minute": 1, "hour": 60, "day": 1440}

LAMBDA = "https://aws.amazon.com/lambda/pricing/ (x86 rates as quoted by cloudchipr.com's Lambda guide)"
DYNAMODB = "https://aws.amazon.com/dynamodb/pricing/on-demand/ (rates as quoted by airbyte.com's DynamoDB guide)"
KMS = "https://aws.amazon.com/kms/pricing/"
CLOUDWATCH = "https://aws.amazon.com/cloudwatch/pricing/ (free tier there; paid rates as quoted by signoz.io, c3x.dev)"
LOGS = "https://aws.amazon.com/cloudwatch/pricing/ (Logs rates as quoted by c3x.dev and hykell.com)"
GET_METRIC_DATA = "https://aws.amazon.com/cloudwatch/pricing/ (GetMetricData rate as quoted by site24x7)"
XRAY = "https://aws.amazon.com/xray/pricing/"
SCHEDULER = "https://aws.amazon.com/eventbridge/pricing/ (Scheduler rate as quoted by cloudburn.io)"


@dataclass(frozen=True)
class Line:
    item: str
    quantity: float
    unit: str
    usd_per_unit: float
    assumption: str
    source: str
    free: float = 0.0  # the always-free allowance of this unit per month, where AWS gives one
    per: int = 1  # how many units the price is quoted for

    @property
    def price(self) -> str:
        per = {1: "", 1_000: " / 1,000", 10_000: " / 10,000", 1_000_000: " / 1M"}[self.per]
        usd = self.usd_per_unit * self.per
        shown = f"{usd:.2f}" if round(usd, 2) == round(usd, 10) else f"{usd:.10f}".rstrip("0")
        return f"${shown}{per}"

    @property
    def usd(self) -> float:
        return self.quantity * self.usd_per_unit

    @property
    def usd_after_free_tier(self) -> float:
        return max(0.0, self.quantity - self.free) * self.usd_per_unit


def runs_per_month(expression: str) -> int:
    found = _RATE.match(expression)
    if found is None:
        raise ValueError(f"{expression}: only rate() schedules are costed here")
    minutes = int(found[1]) * _MINUTES[found[2].removesuffix("s")]
    return HOURS_PER_MONTH * 60 // minutes


# The fleet and the traffic the figures assume.
FLEET = "200 in-scope resources, 20 of them running instances"
SWEEP_SECONDS, SWEEP_GB = 30, 1.0  # functions/cleanup_sweep: 1,024 MB
COST_CHECK_SECONDS, FUNCTION_GB = 5, 0.5  # the other functions: 512 MB (spot_interruption: 1,024 MB)
STATE_CHANGES, STATE_CHANGE_SECONDS = 1_500, 0.3  # EC2 state changes a month, every instance of the regions
API_CALLS, API_CALL_SECONDS = 3_000, 0.5  # CloudTrail calls age_guard hears a month
SPOT_EVENTS, SPOT_SECONDS, SPOT_GB = 20, 40, 1.0
PREWARM_TASKS = 20  # 10 pre-warm runs, two short Lambda tasks each
CUSTOM_METRICS = 20  # of the names the code can emit (infra.metrics), those present in a typical hour
ALARM_METRICS = 24  # 22 alarms; the two workflow alarms add two metrics each (failed + timed out)
DASHBOARD_METRICS = 58  # over the free tier's 50 per dashboard
RUNNING_INSTANCES = 20
UTILISATION_METRICS = 4  # CPU, network in, network out, GPU per running in-scope instance, each sweep
LOG_GB, LOG_RETAINED_GB = 0.04, 0.12  # about 40 MB a month, 90 days kept
KMS_REQUESTS = 60_000  # data keys for tables, topic, queue and logs, reused by each service for minutes
LEDGER_WRITES, LEDGER_READS = 25_000, 85_000


def lines(options: DeployOptions | None = None) -> list[Line]:
    options = options or DeployOptions()
    sweeps, checks = runs_per_month(options.sweep_schedule), runs_per_month(options.cost_schedule)
    invocations = sweeps + checks + STATE_CHANGES + API_CALLS + SPOT_EVENTS + PREWARM_TASKS
    gb_seconds = (
        sweeps * SWEEP_SECONDS * SWEEP_GB
        + checks * COST_CHECK_SECONDS * FUNCTION_GB
        + STATE_CHANGES * STATE_CHANGE_SECONDS * FUNCTION_GB
        + API_CALLS * API_CALL_SECONDS * FUNCTION_GB
        + SPOT_EVENTS * SPOT_SECONDS * SPOT_GB
        + PREWARM_TASKS * 1 * FUNCTION_GB
    )
    lambda_assumption = (
        f"{sweeps:,} sweeps ({options.sweep_schedule}) x {SWEEP_SECONDS} s x 1 GB; {checks:,} cost checks "
        f"({options.cost_schedule}) x {COST_CHECK_SECONDS} s x 0.5 GB; {STATE_CHANGES:,} state changes, "
        f"{API_CALLS:,} CloudTrail calls, {SPOT_EVENTS} spot events, {PREWARM_TASKS} pre-warm tasks (0.3 to 40 s)"
    )
    return [
        *_compute(invocations, gb_seconds, lambda_assumption),
        *_data(sweeps + checks),
        *_cloudwatch(sweeps),
        Line("X-Ray traces", invocations, "traces", 5.00 / 1e6, "active tracing: one a run", XRAY, free=1e5, per=10**6),
    ]


def _compute(invocations: int, gb_seconds: float, assumption: str) -> list[Line]:
    return [
        Line(
            "Lambda requests",
            invocations,
            "requests",
            0.20 / 1e6,
            "one a run: the runs of the next line",
            LAMBDA,
            free=1e6,
            per=10**6,
        ),
        Line("Lambda duration", gb_seconds, "GB-seconds", 0.0000166667, assumption, LAMBDA, free=400_000),
    ]


def _data(scheduled: int) -> list[Line]:
    return [
        Line(
            "DynamoDB on-demand writes",
            LEDGER_WRITES,
            "write request units",
            0.625 / 1e6,
            "an enforced sweep writes ~25 items (run, decisions, intents, lease); state changes, age guard",
            DYNAMODB,
            per=10**6,
        ),
        Line(
            "DynamoDB on-demand reads",
            LEDGER_READS,
            "read request units",
            0.125 / 1e6,
            f"each cost check reads the running history of {RUNNING_INSTANCES} instances and its cached prices",
            DYNAMODB,
            per=10**6,
        ),
        Line(
            "EventBridge Scheduler",
            scheduled,
            "invocations",
            1.00 / 1e6,
            "the two schedules; EC2 and CloudTrail events on the default bus cost nothing",
            SCHEDULER,
            free=14e6,
            per=10**6,
        ),
        Line("KMS key", 1, "key", 1.00, "one customer managed key; each yearly rotation adds to it", KMS),
        Line(
            "KMS requests",
            KMS_REQUESTS,
            "requests",
            0.03 / 10_000,
            "data keys for the tables, topic, queue and log groups",
            KMS,
            free=20_000,
            per=10_000,
        ),
    ]


def _cloudwatch(sweeps: int) -> list[Line]:
    return [
        Line(
            "CloudWatch custom metrics",
            CUSTOM_METRICS,
            "metrics",
            0.30,
            f"EMF metrics present every hour ({FLEET})",
            CLOUDWATCH,
            free=10,
        ),
        Line(
            "CloudWatch alarms",
            ALARM_METRICS,
            "alarm metrics",
            0.10,
            "22 standard-resolution alarms",
            CLOUDWATCH,
            free=10,
        ),
        Line(
            "CloudWatch dashboard",
            1,
            "dashboard",
            3.00,
            f"{DASHBOARD_METRICS} metrics: more than the free tier's 50",
            CLOUDWATCH,
        ),
        Line(
            "CloudWatch GetMetricData",
            sweeps * RUNNING_INSTANCES * UTILISATION_METRICS,
            "metrics requested",
            0.01 / 1_000,
            f"each sweep reads {UTILISATION_METRICS} metrics of {RUNNING_INSTANCES} running in-scope instances",
            GET_METRIC_DATA,
            per=1_000,
        ),
        Line("CloudWatch Logs ingestion", LOG_GB, "GB", 0.50, "about 40 MB a month", LOGS, free=5),
        Line("CloudWatch Logs storage", LOG_RETAINED_GB, "GB-months", 0.03, "90 days kept", LOGS),
    ]


def totals(options: DeployOptions | None = None) -> tuple[float, float]:
    """(USD a month, USD a month after the always-free allowances)."""
    found = lines(options)
    return sum(line.usd for line in found), sum(line.usd_after_free_tier for line in found)
