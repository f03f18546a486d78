"""The SSM training check: document and typed parameters, verdicts parsed, unknown protects."""

from __future__ import annotations

from datetime import timedelta

import boto3
import pytest
from botocore.stub import Stubber

from trainctl.aws import ssm_documents as documents
from trainctl.aws.training_check import SsmTrainingCheck, parse_output
from trainctl.core.observations import Training, TrainingCheck

COMMAND_ID = "4f6a0c8e-1b2d-4e5f-8a9b-0c1d2e3f4a5b"
SEND_PARAMETERS = {
    "DocumentName": "trainctl-training-check",
    "Parameters": {"PidFile": ["/var/run/trainctl/training.pid"], "ProcessPatterns": ["torchrun,train.py"]},
    "TimeoutSeconds": 30,
    "Comment": "trainctl sweep: is a training job running?",
}


def checker(ssm, timeout: float = 5, **options) -> SsmTrainingCheck:
    clock = iter(range(0, 1000))
    return SsmTrainingCheck(
        ssm,
        document="trainctl-training-check",
        pid_file="/var/run/trainctl/training.pid",
        process_patterns=("torchrun", "train.py"),
        timeout=timedelta(seconds=timeout),
        sleep=lambda _: None,
        monotonic=lambda: float(next(clock)),
        max_parallel=1,  # a Stubber answers in the order it was given: one call at a time
        **options,
    )


def managed(stubber: Stubber, *instance_ids: str, ping: str = "Online") -> None:
    """SSM's answer to "which of these do you manage": the given ids, with their agent's ping status."""
    stubber.add_response(
        "describe_instance_information",
        {"InstanceInformationList": [{"InstanceId": i, "PingStatus": ping} for i in instance_ids]},
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
        "describe_instance_information",
        {
            "InstanceInformationList": [
                {"InstanceId": "i-a", "PingStatus": "Online"},
                {"InstanceId": "i-b", "PingStatus": "Online"},
            ]
        },
        {"Filters": [{"Key": "InstanceIds", "Values": ["i-a", "i-b"]}], "MaxResults": 50},
    )
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


def test_an_instance_ssm_does_not_manage_is_left_out_before_sending_and_the_others_go_in_one_batch(ssm) -> None:
    client, stubber = ssm
    managed(stubber, "i-managed", "i-other")
    # One send, for the two SSM manages: the unmanaged one would have made SSM refuse the whole batch.
    stubber.add_response(
        "send_command",
        {"Command": {"CommandId": COMMAND_ID}},
        {**SEND_PARAMETERS, "InstanceIds": ["i-managed", "i-other"]},
    )
    stubber.add_response("get_command_invocation", invocation("i-managed", "Success", "TRAINCTL_TRAINING=idle"))
    stubber.add_response("get_command_invocation", invocation("i-other", "Success", "TRAINCTL_TRAINING=active"))
    results = checker(client).check(["i-managed", "i-unmanaged", "i-other"])
    assert results["i-managed"].status is Training.IDLE
    assert results["i-other"].status is Training.ACTIVE
    assert results["i-unmanaged"] == TrainingCheck(Training.NOT_MANAGED, "not managed by SSM")
    stubber.assert_no_pending_responses()


def test_an_instance_whose_agent_is_not_online_is_left_out_and_unknown(ssm) -> None:
    client, stubber = ssm
    managed(stubber, "i-lost", ping="ConnectionLost")
    results = checker(client).check(["i-lost"])
    assert results["i-lost"].status is Training.UNKNOWN and "ConnectionLost" in results["i-lost"].detail
    stubber.assert_no_pending_responses()  # nothing sent


def test_without_instance_information_a_refused_batch_is_asked_one_by_one(ssm) -> None:
    client, stubber = ssm
    stubber.add_client_error("describe_instance_information", service_error_code="AccessDeniedException")
    stubber.add_client_error("send_command", service_error_code="InvalidInstanceId")
    stubber.add_response("send_command", {"Command": {"CommandId": COMMAND_ID}})
    stubber.add_client_error("send_command", service_error_code="InvalidInstanceId")
    stubber.add_response("get_command_invocation", invocation("i-managed", "Success", "TRAINCTL_TRAINING=idle"))
    results = checker(client).check(["i-managed", "i-unmanaged"])
    assert results["i-managed"].status is Training.IDLE
    assert results["i-unmanaged"].status is Training.NOT_MANAGED
    assert "not managed" in results["i-unmanaged"].detail
    stubber.assert_no_pending_responses()


def test_the_check_stops_waiting_before_the_deadline_and_defers_what_it_could_not_finish(ssm) -> None:
    client, stubber = ssm
    managed(stubber, "i-a", "i-b")
    stubber.add_response("send_command", {"Command": {"CommandId": COMMAND_ID}})
    stubber.add_response("get_command_invocation", invocation("i-a", "Success", "TRAINCTL_TRAINING=idle"))
    stubber.add_response("get_command_invocation", invocation("i-b", "InProgress"))
    # 31 s left with a 30 s reserve: not enough to sleep 2 s and ask again.
    results = checker(client, timeout=60, remaining_ms=lambda: 31_000).check(["i-a", "i-b"])
    assert results["i-a"].status is Training.IDLE
    assert results["i-b"] == TrainingCheck(Training.UNKNOWN, "deferred: deadline")
    stubber.assert_no_pending_responses()


def test_past_the_deadline_nothing_is_sent_and_everything_is_deferred(ssm) -> None:
    client, stubber = ssm
    results = checker(client, remaining_ms=lambda: 5_000).check(["i-a", "i-b"])
    assert set(results.values()) == {TrainingCheck(Training.UNKNOWN, "deferred: deadline")}
    assert set(results) == {"i-a", "i-b"}
    stubber.assert_no_pending_responses()


def test_no_answer_in_time_is_unknown(ssm) -> None:
    client, stubber = ssm
    managed(stubber, "i-a")
    stubber.add_response("send_command", {"Command": {"CommandId": COMMAND_ID}})
    for _ in range(3):
        stubber.add_response("get_command_invocation", invocation("i-a", "InProgress"))
    results = checker(client, timeout=2).check(["i-a"])
    assert results["i-a"].status is Training.UNKNOWN and "in time" in results["i-a"].detail


@pytest.mark.parametrize("status", ["Failed", "TimedOut", "Cancelled", "Undeliverable"])
def test_a_check_that_did_not_succeed_is_unknown(ssm, status: str) -> None:
    client, stubber = ssm
    managed(stubber, "i-a")
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
