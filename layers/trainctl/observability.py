"""Logger and Metrics shared by every function; the Tracer is built in each handler (it imports the X-Ray SDK)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

SERVICE = "trainctl"
NAMESPACE = "trainctl"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

# The cost metrics the stack's CloudWatch alarms watch.
BURN_RATE_METRIC = "BurnRateHourlyUSD"
PROJECTION_METRIC = "ProjectedDailyUSD"
