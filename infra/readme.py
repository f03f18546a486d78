"""README.md's generated parts: the table of contents, the settings reference, the running cost and the deployer
policy.

The settings reference comes from the settings schema: the deploy options (infra.config) and every TRAINCTL_*
setting (trainctl.core.settings). Names, defaults and who reads each come from the models; the one line of
meaning per setting is written here, and a setting without one is an error. The running cost comes from
infra.running_cost, the deployer's execution policy from infra.policy.

    .venv/bin/python -m infra.readme          # rewrite README.md's generated parts
    .venv/bin/python -m infra.readme --check  # exit 1 when README.md has drifted from the code

tests/infra/test_readme.py fails when README.md and the code disagree.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from infra import running_cost as cost
from infra.config import CONTEXT_KEY, STACK_OWNED, DeployOptions
from infra.policy import deployer_execution_policy
from trainctl.core import names
from trainctl.core.durations import format_duration
from trainctl.core.settings import ENV_PREFIX, AgeGuardSettings, CostSettings, SpotSettings, SweepSettings
from trainctl.lyceum.settings import LyceumSettings
from trainctl.organization.settings import OrganizationSettings
from trainctl.runpod.settings import RunpodSettings

README = Path(__file__).resolve().parents[1] / "README.md"
READERS: tuple[tuple[str, type[BaseModel]], ...] = (
    ("sweep", SweepSettings),
    ("age guard", AgeGuardSettings),
    ("cost", CostSettings),
    ("spot", SpotSettings),
    ("RunPod sweep", RunpodSettings),
    ("Lyceum sweep", LyceumSettings),
    ("organization run", OrganizationSettings),
)
# Where the schema's default is not what a deployment or the command line starts from.
DEFAULTS = {"regions": "the stack's region; on the command line the current one", "account_id": "the stack's account"}

DEPLOY_MEANINGS = {
    "sweep_schedule": "schedule of the cleanup sweep: `rate(N minutes|hours|days)` or `cron(...)`",
    "cost_schedule": "schedule expression of the cost check",
    "log_retention_days": "days the functions' and workflows' logs are kept (rounded up to a CloudWatch period)",
    "notification_email": "an address subscribed to the topic (sweep notices, cost alerts, alarms); none by default",
    "prewarm_buckets": "S3 buckets the pre-warm worker may read (list or comma-separated); none means it reads none",
    "prewarm_bucket_keys": "KMS key ARNs of SSE-KMS buckets among `prewarm_buckets` (the worker decrypts through S3)",
    "recovery_instance_roles": "IAM roles (names or ARNs) the recovery workflow may pass to a relaunched instance",
    "slack_workspace_id": "Slack workspace id (authorised once in the Amazon Q Developer console) for a chat channel",
    "slack_channel_id": "Slack channel id the topic's notices go to; with `slack_workspace_id`",
    "teams_tenant_id": "Microsoft Teams tenant id for a chat channel; with `teams_team_id` and `teams_channel_id`",
    "teams_team_id": "Microsoft Teams team id (authorised once in the Amazon Q Developer console)",
    "teams_channel_id": "Microsoft Teams channel id, URL-encoded as in the channel's link (`19%3a...%40thread.tacv2`)",
    "trace_aws_calls": "`true` adds the X-Ray SDK and a subsegment per AWS call (150 to 250 ms of each cold start)",
    "runpod_sweep_timeout": "Lambda timeout of RunPod's sweep function (1m to 15m), deployed when RunPod is in scope",
    "lyceum_sweep_timeout": "Lambda timeout of Lyceum's sweep function (1m to 15m), deployed when Lyceum is in scope",
    "org_id": "the AWS Organization's id (`o-...`) whose principals the spoke role and the hub's bus trust; with "
    "`org_units`",
    "org_tolerated_failure_percentage": "share of account-regions whose child may fail before the organization run "
    "itself fails",
}

MEANINGS = {
    "regions": "comma-separated regions to sweep, price and watch",
    "dry_run": "decide and report only; `--enforce` on the command line",
    "scope_tag": "tag whose value `true`/`yes`/`1` brings a resource into scope",
    "min_age": "nothing younger is touched",
    "grace_period": "between the mark and the action",
    "stopped_max_age": "a stopped instance becomes a candidate after this",
    "snapshot_retention": "an own snapshot becomes a candidate after this",
    "prewarm_worker_max_age": "a pre-warm worker older than this is a leftover",
    "ttl_warning_lead": "an expiring lifetime is announced this long before the action",
    "max_age_instance": "default lifetime of an instance without `trainctl:ttl`",
    "max_age_volume": "default lifetime of a volume without `trainctl:ttl`",
    "max_age_snapshot": "default lifetime of a snapshot without `trainctl:ttl`",
    "idle_action": "`stop` or `terminate` an idle instance",
    "stop_instance_store": "stops an idle instance with instance-store volumes after its notice (what they hold is "
    "lost); `false` keeps every such instance running",
    "idle_without_training_check": "an instance SSM does not manage: `protect` keeps it (named and counted), "
    "`metrics` decides it on utilisation alone (accelerator types still need an accelerator reading)",
    "event_delivery_lag": "a mark is acted on only once its grace ended at least this long ago, so that a use "
    "CloudTrail delivers late has been heard",
    "idle_window": "utilisation window (and minimum uptime) for idleness",
    "idle_cpu_percent": "peak CPU under this is idle",
    "idle_gpu_percent": "peak GPU under this is idle (when the metric exists)",
    "idle_network_bytes_per_second": "peak network in+out under this is idle",
    "max_actions": "blast radius: destructive actions per sweep",
    "max_action_share": "blast radius: share of the in-scope fleet per sweep (at least one action while above 0)",
    "action_concurrency": "destructive calls in flight",
    "training_document": "SSM document of the training check",
    "training_pid_file": "pid file of the training job",
    "training_process_patterns": "process patterns that mean training",
    "training_check_timeout": "wait for the training check; no answer protects",
    "ledger_table": "the ledger table",
    "topic_arn": "the topic for notices and alerts",
    "deadline_margin": "stop starting actions this long before the Lambda deadline",
    "account_id": "events from another account are refused",
    "owner_map": "JSON object: principal ARN glob to owner",
    "scope_principals": "comma-separated principal ARN globs whose resources are managed",
    "scope_launch_templates": "launch template ids whose instances are managed",
    "scope_from_tag": "`key=value`: resources created with this tag are managed",
    "hourly_threshold_usd": "alert when the account burns more per hour (also the burn alarm's threshold)",
    "daily_threshold_usd": "alert when the 24-hour projection is higher",
    "resource_threshold_usd": "alert when one resource has cost more since it was made",
    "owner_thresholds": 'JSON: owner to `{"hourly_usd": .., "daily_usd": ..}`; `"*"` is every owner',
    "alert_cooldown": "a breach already told is not repeated sooner ...",
    "alert_growth": "... unless it grew by this fraction",
    "top_offenders": "resources named in each alert",
    "price_table": "the price table",
    "list_price_ttl": "how long an API price is kept (memory and table)",
    "spot_price_ttl": "how long a spot price is kept",
    "price_file": "another price file of the same format; unreadable is an error at start",
    "pricing_region": "endpoint region of the Price List API",
    "pricing_requests_per_second": "at most the API's published rate",
    "recorded_providers": "the providers whose own functions record their burn for the cost check",
    "provider_burn_max_age": "a provider's recorded burn older than this is unknown (named), never $0; keep it "
    "above the cost schedule's interval plus the provider's sweep timeout",
    "spot_document": "SSM document of the checkpoint",
    "spot_signal": "sent to the training job first: `SIGUSR1`, `SIGUSR2`, `SIGTERM`, `SIGINT` or `NONE`",
    "spot_hooks": "the hook names that may ever be run",
    "spot_default_hook": "the checkpoint hook when no tag chooses one",
    "spot_resume_hook": "the hook a recovered instance runs",
    "spot_checkpoint_dir": "the checkpoint directory on the instance",
    "spot_checkpoint_s3_uri": "`s3://bucket/prefix` to sync checkpoints to; none skips the sync",
    "spot_checkpoint_wait": "how long the snapshot waits for the checkpoint",
    "spot_rebalance_action": "`checkpoint` or `all` on a rebalance recommendation",
    "spot_event_delivery_lag": "a spot warning older than two minutes plus this is recorded and reported, nothing "
    "saved; recovery starts only this long past the reclaim window after its warning",
    "recovery_state_machine_arn": "the recovery workflow",
    "recovery_max_attempts": "zones tried before recovery gives up",
    "runpod_api_url": "RunPod's REST API v2 (https, or http on loopback for an emulator)",
    "runpod_name_prefix": "a RunPod pod or network volume whose name starts with this is in scope; unset: none",
    "runpod_ids": "RunPod pod and volume ids in scope whatever their names (comma-separated)",
    "runpod_owner_pattern": "regular expression with a group `owner`, searched in a RunPod name",
    "runpod_key_secret": "name of the Secrets Manager secret holding RunPod's API key; needed with a RunPod scope",
    "runpod_no_endpoints": "accepted and no longer read: trainctl reads the serverless endpoints",
    "lyceum_api_url": "Lyceum's external API (https, or http on loopback for an emulator)",
    "lyceum_name_prefix": "a Lyceum VM (or a run's file) whose name starts with this is in scope; unset: none",
    "lyceum_ids": "Lyceum VM and run ids in scope whatever their names (comma-separated)",
    "lyceum_owner_pattern": "regular expression with a group `owner`, searched in a Lyceum VM's name",
    "lyceum_vm_ttl": "a Lyceum VM older than this is marked, then terminated; unset: no time-to-live",
    "lyceum_run_max_wall_clock": "a Lyceum run longer than this is marked, then aborted; unset: no cap",
    "lyceum_key_secret": "name of the Secrets Manager secret holding Lyceum's API key; needed with a Lyceum scope",
    "lyceum_min_credits": "cost alert when Lyceum's remaining credits fall under this; unset: no alert",
    "org_units": "organizational units (`ou-...`) whose accounts, and those of units below, are swept; unset: one "
    "account",
    "org_exclude_accounts": "account ids never swept and given no spoke, whatever the units say (the deny-list)",
    "org_include_accounts": "account ids swept although outside the units, such as the management account (its spoke "
    "is deployed by hand)",
    "org_regions": "regions swept in every covered account; unset: `regions`",
    "org_spoke_role": "name of the role the StackSet creates in each spoke and the hub assumes",
    "org_enforce_units": "units (and those below) where enforcement is on; every other account stays dry-run",
    "org_enforce_accounts": "accounts where enforcement is on; every other account stays dry-run",
    "org_max_concurrency": "account-regions the Distributed Map sweeps at once",
    "org_account_hourly_usd": "burn per hour above which an account of the organization is alerted on; unset: "
    "`hourly_threshold_usd`",
    "org_account_daily_usd": "24-hour projection above which an account of the organization is alerted on; unset: "
    "`daily_threshold_usd`",
    "org_hourly_usd": "burn per hour of the whole organization above which it is alerted on; unset: not checked",
    "org_daily_usd": "24-hour projection of the whole organization above which it is alerted on; unset: not checked",
}


def shown(value: object) -> str:
    """A default as it is written in cdk.json or a variable."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return f"`{'true' if value else 'false'}`"
    if isinstance(value, timedelta):
        return f"`{format_duration(value)}`"
    if isinstance(value, tuple | list):
        return f"`{','.join(str(v) for v in value)}`" if value else "none"
    if isinstance(value, dict):
        return f"`{json.dumps(value)}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`"


def default_of(field: FieldInfo) -> object:
    return field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def settings_rows() -> list[str]:
    readers: dict[str, list[str]] = {}
    defaults: dict[str, set[str]] = {}
    for reader, model in READERS:
        for name, field in model.model_fields.items():
            readers.setdefault(name, []).append(reader)
            defaults.setdefault(name, set()).add(shown(default_of(field)))
    rows = []
    for name, by in readers.items():
        if name not in MEANINGS:
            raise LookupError(f"{ENV_PREFIX}{name.upper()} has no meaning in infra/settings_reference.py")
        [default] = sorted(defaults[name]) if len(defaults[name]) == 1 else ["; ".join(sorted(defaults[name]))]
        key = "set by the stack" if name in STACK_OWNED else f"`{name}`"
        rows.append(
            f"| `{ENV_PREFIX}{name.upper()}` | {key} | {_cell(DEFAULTS.get(name, default))} | {', '.join(by)} "
            f"| {_cell(MEANINGS[name])} |"
        )
    return rows


def deploy_rows() -> list[str]:
    rows = []
    for name, field in DeployOptions.model_fields.items():
        if name not in DEPLOY_MEANINGS:
            raise LookupError(f"cdk.json {CONTEXT_KEY}.{name} has no meaning in infra/settings_reference.py")
        rows.append(f"| `{name}` | {shown(default_of(field))} | {_cell(DEPLOY_MEANINGS[name])} |")
    return rows


def settings_reference() -> str:
    return "\n".join(
        [
            f"Deploy options, in `cdk.json` under `context.{CONTEXT_KEY}` only:",
            "",
            "| cdk.json key | default | meaning |",
            "|---|---|---|",
            *deploy_rows(),
            "",
            f"Every other setting is one `{ENV_PREFIX}*` variable (the command line reads the environment; the stack "
            "sets each function's from `cdk.json`, by the key in the second column):",
            "",
            "| variable | cdk.json key | default | read by | meaning |",
            "|---|---|---|---|---|",
            *settings_rows(),
        ]
    )


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    kept = "".join(c for c in heading.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def contents(readme: str) -> str:
    headings = [line[3:].strip() for line in readme.splitlines() if line.startswith("## ")]
    return "**Contents:** " + " · ".join(f"[{h}](#{slug(h)})" for h in headings)


def money(usd: float) -> str:
    return f"${usd:,.2f}" if usd >= 0.01 or usd == 0 else "< $0.01"


def running_cost() -> str:
    rows = [
        f"| {line.item} | {line.quantity:,.6g} {line.unit} | {line.price} | {money(line.usd)} "
        f"| {money(line.usd_after_free_tier)} | {_cell(line.assumption)} |"
        for line in cost.lines()
    ]
    total, after_free = cost.totals()
    sources = sorted({line.source for line in cost.lines()})
    return "\n".join(
        [
            "| item | a month | price (us-east-1) | USD a month | after the free tier | assumption |",
            "|---|---|---|---|---|---|",
            *rows,
            f"| **total** | | | **{money(total)}** | **{money(after_free)}** | |",
            "",
            "Prices read from: " + "; ".join(sources) + ".",
        ]
    )


def deployer_policy() -> str:
    """The bootstrap execution role's policy, as a deployer copies it into a managed policy."""
    policy = deployer_execution_policy(stack=names.STACK_NAME, profile=names.PREWARM_PROFILE)
    return "\n".join(["```json", json.dumps(policy, indent=2), "```"])


def blocks(readme: str) -> dict[str, str]:
    return {
        "contents": contents(readme),
        "settings": settings_reference(),
        "running cost": running_cost(),
        "deployer policy": deployer_policy(),
    }


def _begin(name: str) -> str:
    return f"<!-- generated: {name} (python -m infra.readme); edit the code, not this -->"


def _end(name: str) -> str:
    return f"<!-- end: {name} -->"


def updated(readme: str) -> str:
    """README text with each generated block replaced by what the code says now."""
    for name, body in blocks(readme).items():
        begin, end = _begin(name), _end(name)
        start, stop = readme.index(begin) + len(begin), readme.index(end)
        readme = f"{readme[:start]}\n{body}\n{readme[stop:]}"
    return readme


def main(argv: list[str]) -> int:
    text = README.read_text(encoding="utf-8")
    fresh = updated(text)
    if "--check" in argv:
        if fresh != text:
            print("README.md's generated parts differ from the code: run python -m infra.readme")
            return 1
        return 0
    README.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
