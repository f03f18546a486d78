"""The names the stack gives its resources and outputs: the CLI, the emulator and the stack agree on them."""

STACK_NAME = "Trainctl"
LEDGER_TABLE = "trainctl-ledger"
SWEEP_TOPIC = "trainctl-sweep"
TRAINING_DOCUMENT = "trainctl-training-check"
PRICE_TABLE = "trainctl-prices"
SPOT_DOCUMENT = "trainctl-spot-checkpoint"
RECOVERY_STATE_MACHINE = "trainctl-spot-recovery"
PREWARM_DOCUMENT = "trainctl-prewarm"
TRANSFER_DOCUMENT = "trainctl-transfer"
LOCAL_CACHE_DOCUMENT = "trainctl-local-cache"
PREWARM_STATE_MACHINE = "trainctl-prewarm"
PREWARM_PROFILE = "trainctl-prewarm-worker"
PREWARM_PLAN_FUNCTION = "trainctl-prewarm_plan"
PREWARM_REPORT_FUNCTION = "trainctl-prewarm_report"
SPOT_RECOVERY_PLAN_FUNCTION = "trainctl-spot_recovery_plan"
# The environment every trainctl function runs with, beside its own settings.
FUNCTION_ENVIRONMENT = {
    "POWERTOOLS_SERVICE_NAME": "trainctl",
    "POWERTOOLS_METRICS_NAMESPACE": "trainctl",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    # trainctl uses no pydantic plugin; looking for one reads every installed package's entry points when the
    # first model is built: 25 to 35 ms of each cold start.
    "PYDANTIC_DISABLE_PLUGINS": "1",
}

OUTPUT_LEDGER_TABLE = "LedgerTableName"
OUTPUT_TOPIC_ARN = "SweepTopicArn"
OUTPUT_TRAINING_DOCUMENT = "TrainingCheckDocumentName"
OUTPUT_PRICE_TABLE = "PriceTableName"
OUTPUT_RECOVERY_STATE_MACHINE = "RecoveryStateMachineArn"
OUTPUT_PREWARM_STATE_MACHINE = "PrewarmStateMachineArn"
