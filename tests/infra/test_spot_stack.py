"""The spot capability in the synthesized stack: rules, the light function, the document, the recovery workflow."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from infra.export_workflows import definitions
from tests.infra.test_stack import as_list, statements
from trainctl.aws import state_machines as workflows
from trainctl.core import names, tags

pytestmark = pytest.mark.infra


def recovery_definition(template: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(definitions(template)[workflows.SPOT_RECOVERY]))


def test_the_shipped_workflow_is_exactly_what_the_stack_synthesises(synthesized) -> None:
    shipped = json.loads(workflows.load(workflows.SPOT_RECOVERY))
    synthesised = json.loads(definitions(synthesized[0])[workflows.SPOT_RECOVERY])
    assert shipped == synthesised, "run `make workflows` and commit the result"


def test_warnings_rebalances_and_endings_reach_the_handler(synthesized) -> None:
    template = Template.from_json(synthesized[0])
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.ec2"],
                "detail-type": ["EC2 Spot Instance Interruption Warning", "EC2 Instance Rebalance Recommendation"],
            }
        },
    )
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.ec2"],
                "detail-type": ["EC2 Instance State-change Notification"],
                "detail": {"state": ["stopping", "shutting-down", "terminated"]},
            }
        },
    )


def test_handler_is_given_the_document_the_workflow_and_room_to_work(synthesized) -> None:
    Template.from_json(synthesized[0]).has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "handler.lambda_handler",
            "MemorySize": 1024,
            "Timeout": 110,
            "Environment": {
                "Variables": Match.object_like(
                    {
                        "TRAINCTL_SPOT_DOCUMENT": names.SPOT_DOCUMENT,
                        "TRAINCTL_RECOVERY_STATE_MACHINE_ARN": {"Ref": Match.string_like_regexp("SpotRecovery")},
                        "TRAINCTL_SPOT_SIGNAL": "SIGUSR1",
                        "TRAINCTL_SPOT_HOOKS": "default",
                    }
                )
            },
        },
    )
    Template.from_json(synthesized[0]).has_resource_properties(
        "AWS::SSM::Document", {"Name": names.SPOT_DOCUMENT, "DocumentType": "Command"}
    )


def test_spot_handler_acts_only_on_in_scope_instances(synthesized) -> None:
    granted = [s for s in statements(synthesized[0], "SpotInterruption") if s["Effect"] == "Allow"]
    on_instances = [
        s
        for s in granted
        if any(":instance/" in r for r in as_list(s["Resource"]))
        and not all(a.startswith("ec2:Describe") for a in as_list(s["Action"]))  # reads of attributes
    ]
    assert on_instances
    for statement in on_instances:
        assert statement["Condition"]["StringEqualsIgnoreCase"], statement
    actions = {a for s in granted for a in as_list(s["Action"])}
    assert not {"ec2:TerminateInstances", "ec2:DeleteVolume", "ec2:DeleteSnapshot", "ec2:StopInstances"} & actions
    tagging = next(s for s in granted if "ec2:CreateTags" in as_list(s["Action"]))
    assert tagging["Condition"]["StringEquals"] == {"ec2:CreateAction": "CreateSnapshots"}
    assert tagging["Condition"]["Null"] == {"aws:TagKeys": "false"}
    start = next(s for s in granted if "states:StartExecution" in as_list(s["Action"]))
    assert "SpotRecoveryStateMachine" in json.dumps(start["Resource"])  # this one workflow, nothing else


def test_recovery_acts_only_on_what_it_launched(synthesized) -> None:
    denies = [s for s in statements(synthesized[0], "SpotRecovery") if s["Effect"] == "Deny"]
    ec2_deny = next(s for s in denies if s.get("Sid") == "OnlyWhatItLaunched")
    assert set(as_list(ec2_deny["Action"])) == {"ec2:TerminateInstances", "ec2:ModifyInstanceAttribute"}
    assert ec2_deny["Condition"] == {"Null": {f"aws:ResourceTag/{tags.RECOVERED_FROM}": "true"}}
    ssm_deny = next(s for s in denies if "ssm:SendCommand" in as_list(s["Action"]))
    assert ssm_deny["Condition"] == {"Null": {f"ssm:resourceTag/{tags.RECOVERED_FROM}": "true"}}
    allowed = [s for s in statements(synthesized[0], "SpotRecovery") if s["Effect"] == "Allow"]
    for statement in allowed:
        if {"ec2:TerminateInstances", "ec2:ModifyInstanceAttribute"} & set(as_list(statement["Action"])):
            assert statement["Condition"]["Null"] == {f"aws:ResourceTag/{tags.RECOVERED_FROM}": "false"}
            assert statement["Condition"]["StringEqualsIgnoreCase"] == {
                f"aws:ResourceTag/{tags.MANAGED}": ["true", "yes", "1"]
            }


def test_recovery_launches_only_in_scope_and_passes_no_role_by_default(synthesized) -> None:
    """Issue 17 item 6: RunInstances on *, PassRole on role/*."""
    allowed = [s for s in statements(synthesized[0], "SpotRecovery") if s["Effect"] == "Allow"]
    assert not [s for s in allowed if "iam:PassRole" in as_list(s["Action"])]
    launching = [s for s in allowed if "ec2:RunInstances" in as_list(s["Action"])]
    created = [s for s in launching if any(("instance/" in r or "volume/" in r) for r in as_list(s["Resource"]))]
    assert created and all(":instance/" in r or ":volume/" in r for s in created for r in as_list(s["Resource"]))
    for statement in created:
        assert statement["Condition"] == {
            "StringEqualsIgnoreCase": {f"aws:RequestTag/{tags.MANAGED}": ["true", "yes", "1"]},
            "Null": {f"aws:RequestTag/{tags.RECOVERED_FROM}": "false"},
        }
    assert not [s for s in launching if "*" in as_list(s["Resource"])]


def test_recovery_starts_from_its_plan_and_keeps_nothing_of_the_input(synthesized) -> None:
    """Issue 25: the plan (EC2 and the spot handler's record) is the whole state; the launch reads it alone."""
    definition = recovery_definition(synthesized[0])
    assert definition["StartAt"] == "Plan"
    plan = definition["States"]["Plan"]
    assert plan["ResultPath"] == "$" and plan["Next"] == "PickZone"
    assert plan["Catch"][0]["Next"] == "NotRecoverable"  # refused: nothing launched
    launch = definition["States"]["Launch"]["Parameters"]
    assert launch["LaunchTemplate.$"] == "$.launch_template"
    assert "$.tags" not in json.dumps(launch)  # the tags are the workflow's own, not the input's


def test_every_step_after_the_launch_is_caught_and_every_wait_is_bounded(synthesized) -> None:
    states = recovery_definition(synthesized[0])["States"]
    after_launch = ["DescribeLaunched", "KeepRestoredVolumes", "Resume"]
    for name in after_launch:
        assert states[name]["Catch"][0]["Next"] == "TerminateHalfBuilt", name
    assert states["Launch"]["Catch"][0]["Next"] == "NothingLaunched"  # nothing to undo
    assert states["TerminateHalfBuilt"]["Retry"] and states["TerminateHalfBuilt"]["Next"] == "NextAttempt"
    # The poll loop ends: a bound on polls, and the whole execution has a timeout.
    assert states["PollBound"]["Choices"][0]["Next"] == "LaunchTimedOut"
    assert recovery_definition(synthesized[0]).get("TimeoutSeconds") == 7200
    assert states["Launch"]["Parameters"]["BlockDeviceMappings.$"] == "$.block_devices"


def prewarm_definition(template: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(definitions(template)[workflows.PREWARM]))


def test_the_shipped_prewarm_workflow_is_exactly_what_the_stack_synthesises(synthesized) -> None:
    assert json.loads(workflows.load(workflows.PREWARM)) == prewarm_definition(synthesized[0]), (
        "run `make workflows` and commit the result"
    )


def test_prewarm_compensates_every_step_after_the_launch_and_bounds_every_wait(synthesized) -> None:
    definition = prewarm_definition(synthesized[0])
    states = definition["States"]
    after_launch = [
        "CheckWorkerRunning",
        "Attach",
        "CheckAttached",
        "RunPrewarmDocument",
        "GetCommandInvocation",
        "Detach",
        "CheckDetached",
        "TerminateWorker",
    ]
    for name in after_launch:
        assert [c["Next"] for c in states[name]["Catch"]] == ["CompensateDetach"], name
    # Compensation never deletes a volume: no DeleteVolume anywhere in the workflow.
    assert "deleteVolume" not in json.dumps(definition)
    # Every wait loop has a bound, and the execution a timeout.
    for loop in ("WorkerRunning", "Attached", "Detached", "VolumeAvailable", "CompensateDetached"):
        choices = states[f"{loop}Done"]["Choices"]
        assert any("NumericGreaterThan" in c for c in choices), loop
    assert states["PollBound"]["Choices"][0]["NumericGreaterThan"] > 0
    assert definition["TimeoutSeconds"] == 14 * 3600
    launch = states["LaunchWorker"]["Parameters"]
    assert launch["MetadataOptions"] == {"HttpTokens": "required", "HttpEndpoint": "enabled"}
    worker_tags = launch["TagSpecifications"][0]["Tags"]
    assert {"Key": tags.MANAGED, "Value": "true"} in worker_tags
    assert {"Key": tags.ROLE, "Value": tags.PREWARM_WORKER_ROLE} in worker_tags
    assert states["Plan"]["Catch"][0]["Next"] == "Refused"  # invalid input: nothing launched


def test_prewarm_roles_are_narrow(synthesized) -> None:
    denies = [s for s in statements(synthesized[0], "PrewarmStateMachine") if s["Effect"] == "Deny"]
    terminate = next(s for s in denies if s.get("Sid") == "TerminateOnlyWorkers")
    assert terminate["Condition"] == {"StringNotEquals": {f"aws:ResourceTag/{tags.ROLE}": tags.PREWARM_WORKER_ROLE}}
    send = next(s for s in denies if "ssm:SendCommand" in as_list(s["Action"]))
    assert send["Condition"] == {"StringNotEqualsIgnoreCase": {f"ssm:resourceTag/{tags.MANAGED}": ["true", "yes", "1"]}}
    worker = [s for s in statements(synthesized[0], "PrewarmWorkerRole") if s["Effect"] == "Allow"]
    s3 = [a for s in worker for a in as_list(s["Action"]) if a.startswith("s3:")]
    assert set(s3) <= {"s3:GetObject", "s3:ListBucket"}
    Template.from_json(synthesized[0]).has_resource_properties(
        "AWS::SSM::Document", {"Name": names.PREWARM_DOCUMENT, "DocumentType": "Command"}
    )


def test_prewarm_role_acts_only_in_scope_or_on_what_the_execution_created(synthesized) -> None:
    """Issue 17 item 8: AttachVolume, DetachVolume, CreateTags, CreateVolume, CreateSnapshot were on * unconditioned."""
    allowed = [s for s in statements(synthesized[0], "PrewarmStateMachine") if s["Effect"] == "Allow"]
    in_scope = {f"aws:ResourceTag/{tags.MANAGED}": ["true", "yes", "1"]}
    # Created by the execution: prewarmed-from, and no scope decision yet (adversary round 2: a pre-warmed volume
    # someone took out of scope must not count as the execution's own).
    created = {f"aws:ResourceTag/{tags.PREWARMED_FROM}": "false", f"aws:ResourceTag/{tags.MANAGED}": "true"}
    for action in ("ec2:AttachVolume", "ec2:DetachVolume"):
        on_volumes = [s for s in allowed if action in as_list(s["Action"]) and ":volume/" in json.dumps(s["Resource"])]
        assert sorted(json.dumps(s["Condition"], sort_keys=True) for s in on_volumes) == sorted(
            [
                json.dumps({"StringEqualsIgnoreCase": in_scope}, sort_keys=True),
                json.dumps({"Null": created}, sort_keys=True),
            ]
        ), action
    creating = {
        "ec2:CreateVolume": (":volume/", tags.PREWARMED_FROM),
        "ec2:CreateSnapshot": (":snapshot/", tags.PREWARMED_FROM),
    }
    for action, (kind, key) in creating.items():
        [statement] = [s for s in allowed if action in as_list(s["Action"]) and kind in json.dumps(s["Resource"])]
        assert statement["Condition"]["Null"] == {f"aws:RequestTag/{key}": "false", "aws:TagKeys": "false"}
    launching = [s for s in allowed if "ec2:RunInstances" in as_list(s["Action"])]
    [workers] = [s for s in launching if ":instance/" in json.dumps(s["Resource"])]
    assert workers["Condition"]["StringEquals"] == {f"aws:RequestTag/{tags.ROLE}": tags.PREWARM_WORKER_ROLE}
    assert workers["Condition"]["StringEqualsIgnoreCase"] == {f"aws:RequestTag/{tags.MANAGED}": ["true", "yes", "1"]}
    others = [s for s in launching if s is not workers]
    assert others and not [r for s in others for r in as_list(s["Resource"]) if ":instance/" in r or ":volume/" in r]
    for statement in (s for s in allowed if "ec2:CreateTags" in as_list(s["Action"])):
        keys = statement["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"]
        assert statement["Condition"]["Null"]["aws:TagKeys"] == "false"
        recorded = {tags.PREWARMED_AT, tags.PREWARMED_BYTES, tags.PREWARMED_SECONDS, tags.PREWARMED_RATE}
        assert set(keys) <= {tags.MANAGED, tags.ROLE, "Name", tags.PREWARMED_FROM, *recorded}
