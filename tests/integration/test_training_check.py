"""The SSM training check: document and typed parameters, verdicts parsed, unknown protects."""

from __future__ import annotations

from datetime import timedelta

import boto3
import pytest
from botocore.stub import Stubber

from trainctl.aws import ssm_documents as documents
from trainctl.aws.training_check import SsmTrainingCheck, parse_output
from trainctl.core.observations import Training

COMMAND_ID = "4f6a0c8e-1b2d-4e5f-8a9b-0c1d2e3f4a5b"


def checker(ssm, timeout: float = 5) -> SsmTrainingCheck:
    clock = iter(range(0, 1000))
    return SsmTrainingCheck(
        ssm,
        document="trainctl-training-check",
        pid_file="/var/run/trainctl/training.pid",
        process_patterns=("torchrun", "train.py"),
        timeout=timedelta(seconds=timeout),
        sleep=lambda _: None,
        monotonic=lambda: float(next(clock)),
    )


def invocation(instance_id: str, status: str, output: str = "") -> dict:
    return {"CommandId": COMMAND_ID, "InstanceId": instance_id, "Status": status, "StandardOutputContent": output}


@pytest.fixture
def ssm():
    client = boto3.client("ssm", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber


def test_sends_the_custom_document_with_typed_parameters_and_reads_each_verdict(ssm) -> None:
    client, stubber = ssm
    stubber.add_response(
        "send_command",
        {"Command": {"CommandId": COMMAND_ID}},
        {
            "DocumentName": "trainctl-training-check",
            "InstanceIds": ["i-a", "i-b"],
            "Parameters": {"PidFile": ["/var/run/trainctl/training.pid"], "ProcessPatterns": ["torchrun,train.py"]},
            "TimeoutSeconds": 30,
            "Comment": "trainctl sweep: is a training job running?",
        },
    )
    stubber.add_response("get_command_invocation", invocation("i-a", "InProgress"))
    stubber.add_response("get_command_invocation", invocation("i-b", "Success", "TRAINCTL_TRAINING=idle\n"))
    stubber.add_response("get_command_invocation", invocation("i-a", "Success", "TRAINCTL_TRAINING=active pid=42\n"))
    results = checker(client).check(["i-a", "i-b"])
    assert results["i-a"].status is Training.ACTIVE and "pid=42" in results["i-a"].detail
    assert results["i-b"].status is Training.IDLE
    stubber.assert_no_pending_responses()


def test_an_instance_ssm_does_not_manage_is_unknown_and_the_others_are_still_asked(ssm) -> None:
    client, stubber = ssm
    stubber.add_client_error("send_command", service_error_code="InvalidInstanceId")
    stubber.add_response("send_command", {"Command": {"CommandId": COMMAND_ID}})
    stubber.add_response("get_command_invocation", invocation("i-managed", "Success", "TRAINCTL_TRAINING=idle"))
    stubber.add_client_error("send_command", service_error_code="InvalidInstanceId")
    results = checker(client).check(["i-managed", "i-unmanaged"])
    assert results["i-managed"].status is Training.IDLE
    assert results["i-unmanaged"].status is Training.UNKNOWN
    assert "not managed" in results["i-unmanaged"].detail


def test_no_answer_in_time_is_unknown(ssm) -> None:
    client, stubber = ssm
    stubber.add_response("send_command", {"Command": {"CommandId": COMMAND_ID}})
    for _ in range(3):
        stubber.add_response("get_command_invocation", invocation("i-a", "InProgress"))
    results = checker(client, timeout=2).check(["i-a"])
    assert results["i-a"].status is Training.UNKNOWN and "in time" in results["i-a"].detail


@pytest.mark.parametrize("status", ["Failed", "TimedOut", "Cancelled", "Undeliverable"])
def test_a_check_that_did_not_succeed_is_unknown(ssm, status: str) -> None:
    client, stubber = ssm
    stubber.add_response("send_command", {"Command": {"CommandId": COMMAND_ID}})
    stubber.add_response("get_command_invocation", invocation("i-a", status))
    assert checker(client).check(["i-a"])["i-a"].status is Training.UNKNOWN


@pytest.mark.parametrize(
    ("output", "status"),
    [
        ("TRAINCTL_TRAINING=idle", Training.IDLE),
        ("noise\nTRAINCTL_TRAINING=active pattern=torchrun\n", Training.ACTIVE),
        ("", Training.UNKNOWN),
        ("TRAINCTL_TRAINING=perhaps", Training.UNKNOWN),
    ],
)
def test_output_parsing(output: str, status: Training) -> None:
    assert parse_output(output).status is status


def test_the_document_takes_typed_parameters_through_environment_variables_only() -> None:
    document = documents.load(documents.TRAINING_CHECK)
    for name, parameter in document["parameters"].items():
        assert parameter["type"] == "String" and parameter["allowedPattern"].startswith("^")
        script = "\n".join(document["mainSteps"][0]["inputs"]["runCommand"])
        assert "{{" not in script  # no text interpolation into the script
        assert f"$SSM_{name}" in script
    assert document["mainSteps"][0]["inputs"]["interpolationType"] == "ENV_VAR"
