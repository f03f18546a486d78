"""Security gates over the synthesized template: encryption, tracing, typed SSM parameters, narrow IAM."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.test_stack import as_list

pytestmark = pytest.mark.infra


def resources(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    found = [r["Properties"] for r in template["Resources"].values() if r["Type"] == kind]
    assert found, f"expected at least one {kind}"
    return found


def test_every_function_is_traced(synthesized) -> None:
    for function in resources(synthesized[0], "AWS::Lambda::Function"):
        assert function["TracingConfig"] == {"Mode": "Active"}


def test_data_at_rest_is_encrypted_with_trainctls_key(synthesized) -> None:
    for table in resources(synthesized[0], "AWS::DynamoDB::Table"):
        assert table["SSESpecification"]["SSEEnabled"] is True and "KMSMasterKeyId" in table["SSESpecification"]
    for topic in resources(synthesized[0], "AWS::SNS::Topic"):
        assert "KmsMasterKeyId" in topic
    for queue in resources(synthesized[0], "AWS::SQS::Queue"):
        assert "KmsMasterKeyId" in queue
    for key in resources(synthesized[0], "AWS::KMS::Key"):
        assert key["EnableKeyRotation"] is True


def test_every_ssm_document_parameter_is_typed_and_has_an_allowed_pattern(synthesized) -> None:
    for document in resources(synthesized[0], "AWS::SSM::Document"):
        content = document["Content"]
        assert content["parameters"]
        for name, parameter in content["parameters"].items():
            assert parameter["type"] == "String", name
            if "allowedValues" in parameter:
                assert parameter["allowedValues"] and parameter["default"] in parameter["allowedValues"], name
            else:
                assert parameter["allowedPattern"].startswith("^") and parameter["allowedPattern"].endswith("$"), name
        for step in content["mainSteps"]:
            assert step["inputs"].get("interpolationType") == "ENV_VAR"
            assert "{{" not in "\n".join(step["inputs"]["runCommand"])


def test_no_wildcard_actions_and_pass_role_names_its_role(synthesized) -> None:
    for policy in resources(synthesized[0], "AWS::IAM::Policy"):
        for statement in policy["PolicyDocument"]["Statement"]:
            actions = as_list(statement["Action"])
            assert not [a for a in actions if a == "*" or a.endswith(":*")], actions
            if "iam:PassRole" in actions:
                assert "*" not in as_list(statement["Resource"])
                assert statement.get("Condition", {}).get("StringEquals", {}).get("iam:PassedToService")


def test_topics_and_queues_refuse_plain_http(synthesized) -> None:
    template = synthesized[0]
    policies = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] in ("AWS::SNS::TopicPolicy", "AWS::SQS::QueuePolicy")
    ]
    assert len(policies) >= 2
    for policy in policies:
        denies = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
        assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in denies)
