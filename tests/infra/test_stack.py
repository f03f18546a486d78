"""The synthesized stack: resources, schedule, IAM scoped by tag, cdk-nag clean, cfn-lint clean."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from trainctl.core import names, tags

pytestmark = pytest.mark.infra

DESTRUCTIVE = {
    "ec2:TerminateInstances",
    "ec2:StopInstances",
    "ec2:DeleteVolume",
    "ec2:DeleteSnapshot",
    "ec2:ModifyInstanceAttribute",
    "ec2:DeleteTags",
}


def statements(template: dict[str, Any], role_hint: str = "") -> list[dict[str, Any]]:
    found = []
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::IAM::Policy" and role_hint in logical_id:
            found.extend(resource["Properties"]["PolicyDocument"]["Statement"])
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_function_is_scheduled_with_its_input_and_failure_queue(synthesized) -> None:
    template = Template.from_json(synthesized[0])
    template.has_resource_properties(
        "AWS::Scheduler::Schedule",
        {
            "ScheduleExpression": "rate(1 hour)",
            "Target": Match.object_like(
                {
                    "Input": Match.serialized_json({"task": "cleanup_sweep"}),
                    "DeadLetterConfig": Match.object_like({"Arn": Match.any_value()}),
                    "RetryPolicy": Match.object_like({"MaximumRetryAttempts": 2}),
                }
            ),
        },
    )
    template.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig",
        {"MaximumRetryAttempts": 0, "DestinationConfig": {"OnFailure": {"Destination": Match.any_value()}}},
    )


def test_function_is_single_flight_traced_layered_and_configured(synthesized) -> None:
    template = Template.from_json(synthesized[0])
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Runtime": "python3.14",
            "Handler": "handler.lambda_handler",
            "ReservedConcurrentExecutions": 1,
            "Timeout": 900,
            "TracingConfig": {"Mode": "Active"},
            "Layers": Match.any_value(),
            "LoggingConfig": Match.object_like({"LogGroup": Match.any_value()}),
            "Environment": {
                "Variables": Match.object_like(
                    {
                        "TRAINCTL_DRY_RUN": "true",
                        "TRAINCTL_REGIONS": "us-east-1,eu-west-1",
                        "TRAINCTL_GRACE_PERIOD": "1d",
                        "TRAINCTL_MIN_AGE": "5m",
                        "TRAINCTL_LEDGER_TABLE": Match.any_value(),
                        "TRAINCTL_TOPIC_ARN": Match.any_value(),
                        "TRAINCTL_TRAINING_DOCUMENT": names.TRAINING_DOCUMENT,
                        "PYDANTIC_DISABLE_PLUGINS": "1",
                    }
                )
            },
        },
    )
    template.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 90})


def test_stateful_resources_are_named_as_the_cli_expects_encrypted_and_recoverable(synthesized) -> None:
    template = Template.from_json(synthesized[0])
    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "TableName": names.LEDGER_TABLE,
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": Match.object_like({"SSEEnabled": True}),
            "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
        },
    )
    template.has_resource("AWS::DynamoDB::Table", {"DeletionPolicy": "Retain"})
    template.has_resource_properties(
        "AWS::SNS::Topic", {"TopicName": names.SWEEP_TOPIC, "KmsMasterKeyId": Match.any_value()}
    )
    template.has_resource_properties("AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ml@example.com"})
    template.has_resource_properties("AWS::SSM::Document", {"Name": names.TRAINING_DOCUMENT, "DocumentType": "Command"})
    outputs = synthesized[0]["Outputs"]
    for name in (
        names.OUTPUT_LEDGER_TABLE,
        names.OUTPUT_TOPIC_ARN,
        names.OUTPUT_TRAINING_DOCUMENT,
    ):
        assert name in outputs


def policies_outside(template: dict[str, Any], excluded: str) -> list[dict[str, Any]]:
    return [
        statement
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::IAM::Policy" and excluded not in logical_id
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_every_destructive_permission_is_conditioned_on_the_scope_tag(synthesized) -> None:
    # The workflows are held by Denies: test_recovery_acts_only_on_what_it_launched, test_prewarm_roles_are_narrow.
    allowed = [
        s
        for s in policies_outside(synthesized[0], "SpotRecovery")
        if s["Effect"] == "Allow" and s not in statements(synthesized[0], "PrewarmStateMachine")
    ]
    destructive = [s for s in allowed if DESTRUCTIVE & set(as_list(s["Action"]))]
    assert destructive, "the sweep must be able to act at all"
    for statement in destructive:
        condition = statement["Condition"]["StringEqualsIgnoreCase"]
        assert condition == {f"aws:ResourceTag/{tags.MANAGED}": ["true", "yes", "1"]}
        assert "*" not in as_list(statement["Resource"])
    sweep_tagging = [s for s in statements(synthesized[0], "CleanupSweep") if "ec2:CreateTags" in as_list(s["Action"])]
    assert len(sweep_tagging) == 1
    assert sweep_tagging[0]["Condition"]["StringEqualsIgnoreCase"] == {
        f"aws:ResourceTag/{tags.MANAGED}": ["true", "yes", "1"]
    }
    assert sweep_tagging[0]["Condition"]["ForAllValues:StringEquals"] == {"aws:TagKeys": [tags.CLEANUP_AFTER]}
    # Issue 17 item 10: DeleteTags without tags deletes every tag, and ForAllValues alone lets it through.
    assert sweep_tagging[0]["Condition"]["Null"] == {"aws:TagKeys": "false"}


def _tagging_allowed(statement: dict[str, Any], keys: set[str], existing: set[str]) -> bool:
    """IAM's reading of one CreateTags request by one statement: the request's keys, the resource's present keys."""
    condition = statement.get("Condition", {})
    for operator, tests in condition.items():
        for key, expected in tests.items():
            if operator == "ForAllValues:StringEquals" and key == "aws:TagKeys":
                if not keys <= set(as_list(expected)):
                    return False
            elif operator == "ForAnyValue:StringEquals" and key == "aws:TagKeys":
                if not keys & set(as_list(expected)):
                    return False
            elif operator == "Null" and key == "aws:TagKeys":
                if (expected == "true") != (not keys):
                    return False
            elif operator == "Null" and key.startswith("aws:ResourceTag/"):
                if (expected == "true") != (key.removeprefix("aws:ResourceTag/") not in existing):
                    return False
            elif operator == "StringEquals" and key == "aws:RequestedRegion":
                if "us-east-1" not in as_list(expected) or "ap-south-1" in as_list(expected):
                    return False
            else:
                raise AssertionError(f"a condition this reading does not know: {operator} {key}")
    return True


def test_age_guard_may_only_stamp_and_never_overwrite_a_scope_decision(synthesized) -> None:
    tagging = [s for s in statements(synthesized[0], "AgeGuard") if "ec2:CreateTags" in as_list(s["Action"])]
    stamp_keys = [tags.CREATED_AT, tags.CREATED_BY, tags.OWNER, tags.MANAGED]
    # Issue 17 item 1, issue 25: creator, owner, birth time and scope are written only where unset, in policy,
    # key by key: any set of them on a resource that lacks every one, never one a resource already has.
    every_set = [set(c) for n in range(len(stamp_keys) + 1) for c in itertools.combinations(stamp_keys, n)]

    def allowed(keys: set[str], existing: set[str]) -> bool:
        """An explicit Deny wins over any Allow."""
        matching = [s for s in tagging if _tagging_allowed(s, keys, existing)]
        return any(s["Effect"] == "Allow" for s in matching) and not any(s["Effect"] == "Deny" for s in matching)

    for existing in every_set:
        for keys in every_set:
            assert allowed(keys, existing) == (bool(keys) and not keys & existing), (sorted(keys), sorted(existing))
        assert not allowed({"Name"}, existing)
        assert not allowed({tags.CREATED_AT, "Name"}, existing)
    granted = [s for s in statements(synthesized[0], "AgeGuard") if s["Effect"] == "Allow"]
    assert not [s for s in granted if (DESTRUCTIVE - {"ec2:DeleteTags"}) & set(as_list(s["Action"]))]
    # Where its code voids a mark on use, it may delete that one key, in scope, and nothing else.
    for statement in (s for s in granted if "ec2:DeleteTags" in as_list(s["Action"])):
        assert statement["Condition"]["ForAllValues:StringEquals"] == {"aws:TagKeys": [tags.CLEANUP_AFTER]}
        assert statement["Condition"]["Null"] == {"aws:TagKeys": "false"}
        assert statement["Condition"]["StringEqualsIgnoreCase"] == {
            f"aws:ResourceTag/{tags.MANAGED}": ["true", "yes", "1"]
        }


def test_age_guard_hears_every_creating_call_and_first_starts(synthesized) -> None:
    template = Template.from_json(synthesized[0])
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.ec2"],
                "detail-type": ["AWS API Call via CloudTrail"],
                "detail": {
                    "eventSource": ["ec2.amazonaws.com"],
                    "eventName": Match.array_with(
                        [
                            "RunInstances",
                            "CreateVolume",
                            "CreateSnapshot",
                            "CreateSnapshots",
                            "CopySnapshot",
                            "CreateImage",
                            "RequestSpotInstances",
                            "CreateFleet",
                            # A use between two sweeps voids a mark.
                            "AttachVolume",
                            "StartInstances",
                            "CreateTags",
                            "DeleteTags",
                        ]
                    ),
                },
            },
            "Targets": [Match.object_like({"DeadLetterConfig": Match.any_value(), "RetryPolicy": Match.any_value()})],
        },
    )
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.ec2"],
                "detail-type": ["EC2 Instance State-change Notification"],
                "detail": {"state": ["running"]},
            }
        },
    )
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "handler.lambda_handler",
            "Code": Match.any_value(),
            "Environment": {
                "Variables": Match.object_like(
                    {"TRAINCTL_ACCOUNT_ID": "123456789012", "TRAINCTL_REGIONS": "us-east-1,eu-west-1"}
                )
            },
        },
    )


def test_persistent_resources_are_denied_whatever_else_allows(synthesized) -> None:
    denies = [s for s in statements(synthesized[0], "CleanupSweep") if s["Effect"] == "Deny"]
    assert len(denies) == 1
    deny = denies[0]
    assert {"ec2:TerminateInstances", "ec2:DeleteVolume", "ec2:DeleteSnapshot", "ec2:StopInstances"} <= set(
        deny["Action"]
    )
    assert deny["Condition"]["Null"] == {f"aws:ResourceTag/{tags.PERSISTENT}": "false"}
    assert deny["Condition"]["StringNotEqualsIgnoreCase"] == {
        f"aws:ResourceTag/{tags.PERSISTENT}": ["false", "no", "0"]
    }


def test_ssm_commands_only_reach_in_scope_instances_through_the_own_document(synthesized) -> None:
    own = (f":document/{names.TRAINING_DOCUMENT}", f":document/{names.SPOT_DOCUMENT}")
    send = [
        s
        for s in policies_outside(synthesized[0], "SpotRecovery")
        if "ssm:SendCommand" in as_list(s["Action"])
        and s["Effect"] == "Allow"
        and s not in statements(synthesized[0], "PrewarmStateMachine")
    ]
    documents = [s for s in send if "Condition" not in s]
    instances = [s for s in send if "Condition" in s]
    assert len(documents) == 2 and len(instances) == 2  # the sweep's training check and the spot checkpoint
    for statement in documents:
        assert all(r.endswith(own) for r in as_list(statement["Resource"]))
    for statement in instances:
        assert statement["Condition"]["StringEqualsIgnoreCase"] == {
            f"ssm:resourceTag/{tags.MANAGED}": ["true", "yes", "1"]
        }
        assert all(":instance/" in r for r in as_list(statement["Resource"]))


def test_no_managed_policies_and_logs_only_to_the_own_group(synthesized) -> None:
    for resource in synthesized[0]["Resources"].values():
        if resource["Type"] == "AWS::IAM::Role":
            assert "ManagedPolicyArns" not in resource["Properties"]


def test_layer_ships_the_domain_package_and_its_runtime_dependencies(synthesized) -> None:
    _, outdir = synthesized
    assets = json.loads((Path(outdir) / "Trainctl.assets.json").read_text())["files"].values()
    layer_dirs = [
        Path(outdir) / a["source"]["path"] for a in assets if (Path(outdir) / a["source"]["path"] / "python").is_dir()
    ]
    assert len(layer_dirs) == 1
    python_dir = layer_dirs[0] / "python"
    assert (python_dir / "trainctl" / "sweep" / "rules.py").is_file()
    assert (python_dir / "trainctl" / "aws" / "documents" / "training_check.json").is_file()
    assert (python_dir / "pydantic").is_dir() and (python_dir / "aws_lambda_powertools").is_dir()
    assert list(python_dir.glob("pydantic_core/_pydantic_core.cpython-314-x86_64-linux-gnu.so"))
    from infra.layer import bytecode_interpreter

    if bytecode_interpreter() is None:
        # No build-machine bytecode: it would be another Python's, useless to the runtime.
        assert not list(python_dir.rglob("__pycache__"))
    else:
        assert list(python_dir.glob("trainctl/sweep/__pycache__/rules.cpython-314.pyc"))


def test_cfn_lint_finds_no_error(synthesized) -> None:
    from cfnlint.api import ManualArgs, lint

    _, outdir = synthesized
    path = Path(outdir) / "Trainctl.template.json"
    matches = lint(path.read_text(), config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
    errors = [m for m in matches if m.rule.id.startswith("E")]
    assert errors == [], [str(m) for m in errors]


def test_cdk_nag_report_is_clean_and_every_acknowledgment_has_a_reason(synthesized) -> None:
    _, outdir = synthesized
    report = json.loads((Path(outdir) / "validation-report.json").read_text())
    plugins = {plugin["pluginName"]: plugin for plugin in report["pluginReports"]}
    assert set(plugins) == {"AwsSolutions", "Serverless"}
    for plugin in plugins.values():
        assert plugin["conclusion"] == "success" and plugin["violations"] == []
        for suppressed in plugin.get("suppressedViolations", []):
            assert len(suppressed["reason"]) > 40, suppressed["ruleName"]


def test_an_unacknowledged_wildcard_fails_synth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The nag gate is live: a bug that widens IAM cannot be synthesised unnoticed."""
    from aws_cdk import aws_iam as iam

    import app as cdk_app
    from infra.stack import TrainctlStack

    monkeypatch.setenv("CDK_DEFAULT_ACCOUNT", "123456789012")
    monkeypatch.setenv("CDK_DEFAULT_REGION", "us-east-1")
    application = cdk_app.build_app({"trainctl": {"dry_run": True}}, outdir=str(tmp_path))
    stack = application.node.find_child(names.STACK_NAME)
    assert isinstance(stack, TrainctlStack)
    stack.cleanup.function.add_to_role_policy(iam.PolicyStatement(actions=["ec2:*"], resources=["*"]))
    with pytest.raises(RuntimeError, match=r"ValidationFailed(.|\n)*IAM5\[Action::ec2:\*\]"):
        application.synth()


# What the Lambda Python runtime ships besides the standard library.
LAMBDA_RUNTIME = {"boto3", "botocore", "s3transfer", "urllib3", "dateutil", "six", "jmespath", "awslambdaric"}


def _imports(path: Path) -> set[str]:
    """Every module a file may import at run time: `from a.b import c` names a.b and, if c is a module, a.b.c."""
    import ast

    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            return  # type-only imports never run
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return names


def test_every_handler_imports_only_what_the_layer_and_the_runtime_provide(synthesized) -> None:
    """Followed through the built layer itself: a handler reaching into trainctl.cli would fail here."""
    import sys

    _, outdir = synthesized
    assets = json.loads((Path(outdir) / "Trainctl.assets.json").read_text())["files"].values()
    layer = next(
        Path(outdir) / a["source"]["path"] / "python"
        for a in assets
        if (Path(outdir) / a["source"]["path"] / "python").is_dir()
    )
    provided = {p.name.split("-")[0].removesuffix(".py") for p in layer.iterdir()} | LAMBDA_RUNTIME
    root = Path(__file__).resolve().parents[2]
    handlers = sorted((root / "functions").glob("*/handler.py"))
    assert {h.parent.name for h in handlers} >= {"cleanup_sweep", "prewarm_plan", "prewarm_report"}
    for handler in handlers:
        seen: set[Path] = set()
        queue = [handler]
        while queue:
            module_file = queue.pop()
            imported = _imports(module_file)
            for name in imported:
                top = name.split(".")[0]
                if top == "trainctl":
                    target = layer / Path(*name.split("."))
                    found = [c for c in (target.with_suffix(".py"), target / "__init__.py") if c.is_file()]
                    # `from a.b import c` where c is a name, not a module: a.b itself was checked.
                    parent = name.rsplit(".", 1)[0]
                    assert found or parent in imported, f"{handler.parent.name} needs {name}, not in the layer"
                    queue.extend(c for c in found if c not in seen)
                    seen.update(found)
                elif top not in sys.stdlib_module_names and top != "__future__":
                    assert top in provided, f"{handler.parent.name} needs {top}, which Lambda would not have"
    # Powertools' Tracer imports the X-Ray SDK when it is built.
    assert (layer / "aws_xray_sdk").is_dir()
