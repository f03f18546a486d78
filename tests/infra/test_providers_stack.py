"""The providers' sweep in the stack (issue 28, Deploy): a function and schedule per configured provider, its own
timeout, exactly its grants (its own provider's secret, by reference), and nothing at all when no provider is
configured; half a provider's settings fail synth in one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.config import load_config
from infra.declarations import declared_for
from infra.policy import FUNCTION_PLATFORM
from infra.providers import FOLDER, withheld_from_provider_sweeps
from tests.infra import gates
from tests.infra.conftest import ACCOUNT, REGION, synth
from tests.infra.test_iam_gates import role_statements
from tests.infra.test_observability import emits
from trainctl.core.errors import SettingsError

pytestmark = pytest.mark.infra

RUNPOD = {
    "runpod_name_prefix": "train-",
    "runpod_owner_pattern": "^train-(?P<owner>[a-z]+)-",
    "runpod_key_secret": "trainctl/runpod",
    "runpod_sweep_timeout": "7m",
}
LYCEUM = {"lyceum_ids": ["vm-0a1b2c"], "lyceum_key_secret": "trainctl/lyceum", "lyceum_vm_ttl": "72h"}
PROVIDER_INPUT = "provider_sweep"


def _context(**settings: Any) -> dict[str, Any]:
    return {"trainctl": {"dry_run": True, "sweep_schedule": "rate(30 minutes)", **settings}}


@pytest.fixture(scope="module")
def with_runpod(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return synth(tmp_path_factory.mktemp("runpod"), _context(**RUNPOD))


@pytest.fixture(scope="module")
def with_lyceum(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return synth(tmp_path_factory.mktemp("lyceum"), _context(**LYCEUM))


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def provider_functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Functions whose environment carries a provider's settings."""
    return {
        k: r
        for k, r in of_type(template, "AWS::Lambda::Function").items()
        if any(v.startswith(("TRAINCTL_RUNPOD_", "TRAINCTL_LYCEUM_")) for v in _environment(r))
    }


def _environment(function: dict[str, Any]) -> dict[str, Any]:
    variables: dict[str, Any] = function["Properties"].get("Environment", {}).get("Variables", {})
    return variables


def schedule_inputs(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {**json.loads(r["Properties"]["Target"]["Input"]), "expression": r["Properties"]["ScheduleExpression"]}
        for r in of_type(template, "AWS::Scheduler::Schedule").values()
    ]


def resolved(value: Any) -> str:
    """A policy resource as text, with the partition and stack references it is joined from spelled out."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        return "".join(resolved(part) for part in value["Fn::Join"][1])
    if isinstance(value, dict) and value.get("Ref") == "AWS::Partition":
        return "aws"
    return json.dumps(value)


def granted(template: dict[str, Any], role: str) -> list[tuple[str, str]]:
    return [
        (action, resolved(resource))
        for s in role_statements(template)[role]
        if s["Effect"] == "Allow"
        for action in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
        for resource in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
    ]


def test_without_a_provider_nothing_provider_related_is_created(synthesized: tuple[dict[str, Any], Path]) -> None:
    template = synthesized[0]
    assert provider_functions(template) == {}
    assert [s for s in schedule_inputs(template) if s["task"] == PROVIDER_INPUT] == []
    assert [k for k in template["Resources"] if "Provider" in k] == []  # no log group, role, alarm or schedule
    statements = [s for role in role_statements(template).values() for s in role]
    assert not [s for s in statements if "secretsmanager" in json.dumps(s["Action"])]
    assert of_type(template, "AWS::SecretsManager::Secret") == {}


def test_runpod_gets_one_function_on_the_sweeps_schedule_with_its_own_timeout(with_runpod: dict[str, Any]) -> None:
    [(logical_id, function)] = provider_functions(with_runpod).items()
    properties = function["Properties"]
    assert properties["Timeout"] == 7 * 60
    assert properties["ReservedConcurrentExecutions"] == 1
    environment = _environment(function)
    assert environment["TRAINCTL_RUNPOD_NAME_PREFIX"] == "train-"
    assert environment["TRAINCTL_RUNPOD_OWNER_PATTERN"] == RUNPOD["runpod_owner_pattern"]
    assert environment["TRAINCTL_RUNPOD_KEY_SECRET"] == "trainctl/runpod"
    assert environment["TRAINCTL_DRY_RUN"] == "true"
    assert not [name for name in environment if name.startswith("TRAINCTL_LYCEUM_")]
    [schedule] = [s for s in schedule_inputs(with_runpod) if s["task"] == PROVIDER_INPUT]
    assert schedule == {"task": PROVIDER_INPUT, "provider": "runpod", "expression": "rate(30 minutes)"}
    [log_group] = [k for k in of_type(with_runpod, "AWS::Logs::LogGroup") if k.startswith("ProviderSweepsRunPod")]
    assert properties["LoggingConfig"]["LogGroup"] == {"Ref": log_group}
    assert logical_id.startswith("ProviderSweepsRunPod")


def test_the_aws_sweep_hears_nothing_of_a_provider(with_runpod: dict[str, Any]) -> None:
    others = {
        k: r
        for k, r in of_type(with_runpod, "AWS::Lambda::Function").items()
        if k not in provider_functions(with_runpod)
    }
    assert others
    assert not [(k, v) for k, r in others.items() for v in _environment(r) if "RUNPOD" in v or "LYCEUM" in v]
    cleanup = [s for s in schedule_inputs(with_runpod) if s["task"] == "cleanup_sweep"]
    assert cleanup == [{"task": "cleanup_sweep", "expression": "rate(30 minutes)"}]


def test_a_providers_role_reads_its_own_secret_only_and_calls_no_ec2(with_runpod: dict[str, Any]) -> None:
    [function] = provider_functions(with_runpod).values()
    grants = granted(with_runpod, function["Properties"]["Role"]["Fn::GetAtt"][0])
    secret_grants = [g for g in grants if g[0].startswith("secretsmanager:")]
    # Secrets Manager ends the ARN with six random characters: the pattern matches this one secret's ARN only.
    assert secret_grants == [
        ("secretsmanager:GetSecretValue", f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:trainctl/runpod-??????")
    ]
    services = {action.split(":")[0] for action, _ in grants}
    assert services == {"logs", "sqs", "kms", "xray", "dynamodb", "sns", "secretsmanager"}
    assert ("sns:Publish", json.dumps({"Ref": _logical("AWS::SNS::Topic", with_runpod)})) in grants


def test_a_providers_policy_is_exactly_what_its_code_calls_and_the_platform(with_runpod: dict[str, Any]) -> None:
    [function] = provider_functions(with_runpod).values()
    actions = {action for action, _ in granted(with_runpod, function["Properties"]["Role"]["Fn::GetAtt"][0])}
    declared = declared_for(FOLDER).actions
    withheld = withheld_from_provider_sweeps()
    assert actions == (declared - set(withheld)) | set(FUNCTION_PLATFORM)
    # What is withheld is the AWS sweep's EC2, SSM and CloudWatch work and the cost check's price look-ups,
    # reached only through imported types.
    assert withheld and {a.split(":")[0] for a in withheld} <= {"ec2", "ssm", "cloudwatch", "autoscaling", "pricing"}


def _logical(kind: str, template: dict[str, Any]) -> str:
    [logical_id] = of_type(template, kind)
    return logical_id


def test_the_key_is_never_in_the_template_only_the_secrets_name(with_runpod: dict[str, Any]) -> None:
    assert of_type(with_runpod, "AWS::SecretsManager::Secret") == {}  # referenced, never created
    [function] = provider_functions(with_runpod).values()
    assert not [name for name in _environment(function) if name.endswith(("_API_KEY", "_KEY"))]


def test_lyceum_alone_gets_its_function_schedule_and_secret_and_runpod_none(with_lyceum: dict[str, Any]) -> None:
    [function] = provider_functions(with_lyceum).values()
    environment = _environment(function)
    assert environment["TRAINCTL_LYCEUM_IDS"] == "vm-0a1b2c"
    assert environment["TRAINCTL_LYCEUM_VM_TTL"] == "3d"  # 72h, as format_duration spells it
    assert not [name for name in environment if name.startswith("TRAINCTL_RUNPOD_")]
    assert function["Properties"]["Timeout"] == 10 * 60  # the default
    assert [s["provider"] for s in schedule_inputs(with_lyceum) if s["task"] == PROVIDER_INPUT] == ["lyceum"]
    secret_grants = [
        g for g in granted(with_lyceum, function["Properties"]["Role"]["Fn::GetAtt"][0]) if "secretsmanager" in g[0]
    ]
    assert [arn.rsplit(":", 1)[1] for _, arn in secret_grants] == ["trainctl/lyceum-??????"]
    assert of_type(with_lyceum, "AWS::CloudWatch::Alarm")
    [alarm] = [r for k, r in of_type(with_lyceum, "AWS::CloudWatch::Alarm").items() if k.startswith("ProviderSweeps")]
    assert alarm["Properties"]["MetricName"] == "ProviderErrors" and emits("ProviderErrors")


@pytest.mark.parametrize("case", ["with_runpod", "with_lyceum"])
def test_the_iam_gates_hold_with_a_provider(case: str, request: pytest.FixtureRequest) -> None:
    template = request.getfixturevalue(case)
    for role, statements in role_statements(template).items():
        assert gates.unconditioned(statements) == [], role
        assert gates.pass_role_unnamed(statements) == [], role
        assert gates.tag_writes_beyond_trainctl(statements, "trainctl:managed") == [], role
    for function in provider_functions(template).values():
        role = function["Properties"]["Role"]["Fn::GetAtt"][0]
        assert gates.without_persistent_deny(role_statements(template)[role]) == [], role


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"runpod_name_prefix": "train-"}, "runpod_key_secret: runpod is in scope"),
        ({"lyceum_key_secret": "trainctl/lyceum"}, "lyceum_key_secret: set, but nothing of lyceum is in scope"),
        (
            {"runpod_ids": "pod1", "runpod_key_secret": "arn:aws:secretsmanager:us-east-1:1:secret:x"},
            "runpod_key_secret: not a Secrets Manager secret name",
        ),
        ({**RUNPOD, "runpod_sweep_timeout": "20m"}, "runpod_sweep_timeout: must be whole seconds from 1m to 15m"),
        ({**LYCEUM, "lyceum_sweep_timeout": "10s"}, "lyceum_sweep_timeout: must be whole seconds from 1m to 15m"),
    ],
)
def test_half_a_provider_is_one_line_naming_the_key(settings: dict[str, Any], named: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_config(settings, default_region=REGION)
    message = str(refused.value)
    assert named in message and "\n" not in message


def test_a_configured_provider_is_deployed_with_its_settings_spelled_out() -> None:
    config = load_config({**RUNPOD, **LYCEUM}, default_region=REGION)
    assert config.providers == ("runpod", "lyceum")
    assert config.provider_environment("runpod")["TRAINCTL_RUNPOD_OWNER_PATTERN"] == RUNPOD["runpod_owner_pattern"]
    assert load_config({}, default_region=REGION).providers == ()
