"""The stack's alarms, each to the SNS topic: a function failed or was throttled, something is waiting in the
failure queue, a workflow failed, the sweep or the cost check stopped running. (The burn alarms live with the
cost capability: infra.cost_alerts.)

Each watches a metric the code emits (infra.metrics) or one AWS emits for a resource of this stack.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.function import TrainctlFunction
from infra.metrics import BURN_RATE, FAILED_ACTIONS, SCANNED, emitted

# An alarm evaluates at most one day of data (Period x EvaluationPeriods).
LONGEST_WINDOW = cdk.Duration.days(1)
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
FIVE_MINUTES = cdk.Duration.minutes(5)


def heartbeat_window(expression: str) -> cdk.Duration:
    """Two schedule periods, the window a heartbeat alarm waits for a run; a day at most, and for a cron
    schedule (whose gaps vary) a day."""
    found = _RATE.match(expression)
    if found is None:
        return LONGEST_WINDOW
    seconds = 2 * int(found[1]) * _SECONDS[found[2].removesuffix("s")]
    return cdk.Duration.seconds(min(seconds, int(LONGEST_WINDOW.to_seconds())))


class Alarms(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: Sequence[TrainctlFunction],
        state_machines: Mapping[str, sfn.StateMachine],
        failures: sqs.IQueue,
        topic: sns.ITopic,
        sweep_schedule: str,
        cost_schedule: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self._action = cloudwatch_actions.SnsAction(topic)
        self.alarms: list[cloudwatch.Alarm] = []
        for handler in functions:
            self._function_alarms(handler)
        for name, machine in state_machines.items():
            self._workflow_alarm(name, machine)
        self._add(
            "FailureQueueNotEmpty",
            "trainctl: the failure queue holds a failed invocation or an undeliverable notice; read it",
            failures.metric_approximate_number_of_messages_visible(statistic="Maximum", period=FIVE_MINUTES),
            threshold=0,
            clears=True,
        )
        self._add(
            "SweepActionsFailed",
            "trainctl: the sweep tried an action that failed (see the decision log lines with outcome failed)",
            emitted(FAILED_ACTIONS, period=cdk.Duration.hours(1)),
            threshold=0,
        )
        self._heartbeats(sweep_schedule, cost_schedule)

    def _function_alarms(self, handler: TrainctlFunction) -> None:
        name = handler.name
        label = "".join(part.title() for part in name.split("_"))
        self._add(
            f"{label}Errors",
            f"trainctl: the {name} function failed (an error or a timeout); its log group says why",
            handler.function.metric_errors(statistic="Sum", period=FIVE_MINUTES),
            threshold=0,
        )
        self._add(
            f"{label}Throttles",
            f"trainctl: the {name} function was throttled (account concurrency, or runs overlapping)",
            handler.function.metric_throttles(statistic="Sum", period=FIVE_MINUTES),
            threshold=0,
        )

    def _workflow_alarm(self, name: str, machine: sfn.StateMachine) -> None:
        failed = cloudwatch.MathExpression(
            expression="FILL(failed, 0) + FILL(timed_out, 0)",
            using_metrics={
                "failed": machine.metric_failed(statistic="Sum", period=FIVE_MINUTES),
                "timed_out": machine.metric_timed_out(statistic="Sum", period=FIVE_MINUTES),
            },
            label=f"{name} executions failed or timed out",
            period=FIVE_MINUTES,
        )
        self._add(
            f"{name.title()}WorkflowFailed",
            f"trainctl: a {name} execution failed or timed out; its execution history says where",
            failed,
            threshold=0,
        )

    def _heartbeats(self, sweep_schedule: str, cost_schedule: str) -> None:
        """No run for two schedule periods: missing data is the very thing watched, so it breaches."""
        for alarm_id, what, metric_name, schedule in (
            ("SweepHeartbeat", "cleanup sweep", SCANNED, sweep_schedule),
            ("CostCheckHeartbeat", "cost check", BURN_RATE, cost_schedule),
        ):
            window = heartbeat_window(schedule)
            self._add(
                alarm_id,
                f"trainctl: no {what} ran in {window.to_human_string()} (schedule {schedule}); see its function's "
                "errors, its schedule and the failure queue",
                emitted(metric_name, statistic="SampleCount", period=window),
                threshold=1,
                comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                missing=cloudwatch.TreatMissingData.BREACHING,
                clears=True,
            )

    def _add(
        self,
        alarm_id: str,
        description: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        comparison: cloudwatch.ComparisonOperator = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
        clears: bool = False,
    ) -> None:
        """One alarm to the topic; `clears` also tells the topic when it is back to OK (a state, not an event)."""
        alarm = cloudwatch.Alarm(
            self,
            alarm_id,
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=1,
            treat_missing_data=missing,
        )
        alarm.add_alarm_action(self._action)
        if clears:
            alarm.add_ok_action(self._action)
        self.alarms.append(alarm)
