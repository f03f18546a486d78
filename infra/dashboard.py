"""The CloudWatch dashboard: what trainctl costs and saves, what it did and why it held back, and whether it is
healthy. Every graph reads a metric the code emits (infra.metrics) or one AWS emits for a resource of the stack.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.function import TrainctlFunction
from infra.metrics import (
    BURN_RATE,
    CANDIDATES,
    FAILED_ACTIONS,
    PROTECTIONS,
    SCANNED,
    SPOT_STATUSES,
    action_metric,
    dollars_avoided_metric,
    emitted,
    hours_until_noticed,
    protection_metric,
    spot_metric,
)
from trainctl.core.protections import Protection

DASHBOARD_NAME = "trainctl"
HOUR = cdk.Duration.hours(1)
FIVE_MINUTES = cdk.Duration.minutes(5)
# What the sweep did, in the order a resource goes through it.
SHOWN_ACTIONS = ("mark", "unmark", "stop", "terminate", "delete")


def avoided_assumption() -> str:
    return (
        "estimate: the hourly list price of what a sweep stopped, terminated or deleted, times "
        f"{hours_until_noticed()} h until someone would have noticed (shipped price file; spot at on-demand; "
        "unpriced counts $0)"
    )


class Dashboard(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: Sequence[TrainctlFunction],
        state_machines: Mapping[str, sfn.StateMachine],
        failures: sqs.IQueue,
        alarms: Sequence[cloudwatch.IAlarm],
        hourly_threshold_usd: float,
        sweep_schedule: str,
        cost_schedule: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=DASHBOARD_NAME, default_interval=cdk.Duration.days(7)
        )
        self.dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=(
                    f"# trainctl\nSweep: `{sweep_schedule}`; cost check: `{cost_schedule}`. "
                    f"**Dollars avoided** is an {avoided_assumption()}."
                ),
                width=24,
                height=2,
            )
        )
        self.dashboard.add_widgets(*self._money(hourly_threshold_usd))
        self.dashboard.add_widgets(*self._sweep())
        sweep = next(f for f in functions if f.folder == "cleanup_sweep")
        self.dashboard.add_widgets(self._evading(sweep))
        self.dashboard.add_widgets(*self._health(functions, failures))
        self.dashboard.add_widgets(*self._workflows(state_machines))
        self.dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Alarms (each notifies the topic)", alarms=list(alarms), width=24)
        )

    def _money(self, hourly_threshold_usd: float) -> list[cloudwatch.IWidget]:
        avoided = dollars_avoided_metric()
        return [
            cloudwatch.GraphWidget(
                title="Burn per hour (USD, estimated from the live inventory)",
                left=[emitted(BURN_RATE, statistic="Maximum", period=cdk.Duration.minutes(15), label="USD per hour")],
                left_annotations=[cloudwatch.HorizontalAnnotation(value=hourly_threshold_usd, label="alarm threshold")],
                width=10,
            ),
            cloudwatch.GraphWidget(
                title="Dollars avoided per day (an estimate; assumption below)",
                left=[emitted(avoided, period=cdk.Duration.days(1), label=f"USD ({avoided_assumption()})")],
                legend_position=cloudwatch.LegendPosition.BOTTOM,
                width=9,
            ),
            cloudwatch.SingleValueWidget(
                title=f"Dollars avoided in range (estimate: list price times {hours_until_noticed()} h)",
                metrics=[emitted(avoided, label="USD, estimated")],
                set_period_to_time_range=True,
                width=5,
            ),
        ]

    def _sweep(self) -> list[cloudwatch.IWidget]:
        return [
            cloudwatch.GraphWidget(
                title="Resources marked and acted on (per hour)",
                left=[emitted(action_metric(a), label=a) for a in SHOWN_ACTIONS],
                right=[emitted(CANDIDATES, label="candidates"), emitted(SCANNED, label="scanned")],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Kept by protection (per hour)",
                left=[emitted(protection_metric(p), label=p) for p in PROTECTIONS],
                stacked=True,
                width=12,
            ),
            # No training check can reach them, so an idle one is never stopped: the README says how to fix it.
            cloudwatch.SingleValueWidget(
                title="Instances SSM does not manage (latest sweep; README: Instances SSM does not manage)",
                metrics=[
                    emitted(protection_metric(Protection.NOT_MANAGED_BY_SSM), statistic="Maximum", label="instances")
                ],
                width=24,
            ),
        ]

    @staticmethod
    def _evading(sweep: TrainctlFunction) -> cloudwatch.IWidget:
        """The resources the sweep keeps as unreadable or min-age, longest first, with their owners: the handler
        logs each such decision every sweep (functions/cleanup_sweep EVADING)."""
        return cloudwatch.LogQueryWidget(
            title="Kept as unreadable or min-age, longest first (over 7 days evades the guardrail)",
            log_group_names=[sweep.log_group.log_group_name],
            query_lines=[
                "fields @timestamp, decision.resource_id as resource, decision.owner as owner",
                'filter message = "decision" and @message like /"(unreadable|min-age)"/',
                "stats min(@timestamp) as first_seen, max(@timestamp) as last_seen by resource, owner",
                "sort first_seen asc",
                "limit 50",
            ],
            view=cloudwatch.LogQueryVisualizationType.TABLE,
            width=24,
        )

    def _health(self, functions: Sequence[TrainctlFunction], failures: sqs.IQueue) -> list[cloudwatch.IWidget]:
        return [
            cloudwatch.GraphWidget(
                title="Errors (per 5 minutes)",
                left=[f.function.metric_errors(period=FIVE_MINUTES, label=f.name) for f in functions],
                right=[emitted(FAILED_ACTIONS, label="sweep actions failed")],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Throttles (per 5 minutes)",
                left=[f.function.metric_throttles(period=FIVE_MINUTES, label=f.name) for f in functions],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Runs (per hour) and the failure queue",
                left=[
                    emitted(SCANNED, statistic="SampleCount", label="sweeps"),
                    emitted(BURN_RATE, statistic="SampleCount", label="cost checks"),
                ],
                right=[
                    failures.metric_approximate_number_of_messages_visible(
                        statistic="Maximum", period=FIVE_MINUTES, label="failure queue depth"
                    )
                ],
                width=8,
            ),
        ]

    def _workflows(self, state_machines: Mapping[str, sfn.StateMachine]) -> list[cloudwatch.IWidget]:
        recovery, prewarm = state_machines["recovery"], state_machines["prewarm"]
        return [
            cloudwatch.GraphWidget(
                title="Spot warnings and recoveries (per hour)",
                left=[emitted(spot_metric(s), label=f"spot event {s}") for s in SPOT_STATUSES],
                right=[
                    recovery.metric_succeeded(period=HOUR, label="recovery succeeded"),
                    recovery.metric_failed(period=HOUR, label="recovery failed"),
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Pre-warm runs (per hour)",
                left=[
                    prewarm.metric_started(period=HOUR, label="started"),
                    prewarm.metric_succeeded(period=HOUR, label="succeeded"),
                    prewarm.metric_failed(period=HOUR, label="failed"),
                    prewarm.metric_timed_out(period=HOUR, label="timed out"),
                ],
                width=12,
            ),
        ]
