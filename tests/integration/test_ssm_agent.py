"""The emulated SSM agents: trainctl's own training check, sent through moto, hears what each instance runs."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from botocore.exceptions import ClientError
from moto.ssm import models as ssm_models
from moto.ssm import responses as ssm_responses

from trainctl.aws import ssm_documents as documents
from trainctl.aws.clients import ClientFactory
from trainctl.aws.training_check import NOT_MANAGED, SsmTrainingCheck
from trainctl.cli.ssm_agent import SsmAgents, emulated_agents
from trainctl.core import names
from trainctl.core.observations import Training, TrainingCheck
from trainctl.core.settings import SweepSettings

NOTEBOOK, TRAINER, NO_AGENT, NEVER_TOLD = (
    "i-0000000000000a001",
    "i-0000000000000a002",
    "i-0000000000000a003",
    "i-0000000000000a004",
)


@pytest.fixture
def ssm(factory: ClientFactory):
    client = factory.client("ssm", "us-east-1")
    client.create_document(
        Name=names.TRAINING_DOCUMENT,
        Content=json.dumps(documents.load(documents.TRAINING_CHECK)),
        DocumentType="Command",
        DocumentFormat="JSON",
    )
    return client


def check(ssm, *instance_ids: str) -> dict[str, TrainingCheck]:
    """The sweep's own check, with the deployed defaults: pid file, process patterns, document."""
    settings = SweepSettings()
    return SsmTrainingCheck(
        ssm,
        document=names.TRAINING_DOCUMENT,
        pid_file=settings.training_pid_file,
        process_patterns=settings.training_process_patterns,
        timeout=timedelta(seconds=5),
        sleep=lambda _: None,
    ).check(list(instance_ids))


def test_an_instance_running_no_training_process_is_idle(ssm, ssm_agents: SsmAgents) -> None:
    ssm_agents.run(NOTEBOOK, "jupyter-lab --no-browser --port=8888")
    ssm_agents.idle(TRAINER)
    assert check(ssm, NOTEBOOK, TRAINER) == {
        NOTEBOOK: TrainingCheck(Training.IDLE, "no training process found"),
        TRAINER: TrainingCheck(Training.IDLE, "no training process found"),
    }


@pytest.mark.parametrize(
    ("command_line", "pattern"),
    [
        ("torchrun --nproc_per_node=8 train.py", "torchrun"),  # the first pattern that matches is named
        ("python3 /opt/job/train.py --epochs 3", "train.py"),
        ("accelerate launch finetune.py", "accelerate launch"),
    ],
)
def test_a_training_process_is_found_by_its_pattern_as_pgrep_would(
    ssm, ssm_agents: SsmAgents, command_line: str, pattern: str
) -> None:
    ssm_agents.run(TRAINER, "sshd: ubuntu", command_line)
    assert check(ssm, TRAINER)[TRAINER] == TrainingCheck(Training.ACTIVE, f"training running (pattern={pattern})")


def test_a_live_pid_in_the_pid_file_is_training_before_any_pattern(ssm, ssm_agents: SsmAgents) -> None:
    ssm_agents.run(TRAINER, "torchrun train.py", pid_file_pid=4242)
    assert check(ssm, TRAINER)[TRAINER] == TrainingCheck(Training.ACTIVE, "training running (pid=4242)")


def test_gpu_compute_processes_are_training_when_no_pattern_matches(ssm, ssm_agents: SsmAgents) -> None:
    ssm_agents.run(TRAINER, "python3 serve.py", gpu=True)
    assert check(ssm, TRAINER)[TRAINER] == TrainingCheck(Training.ACTIVE, "training running (gpu-process)")


def test_an_instance_without_agent_is_not_managed_by_ssm(ssm, ssm_agents: SsmAgents) -> None:
    ssm_agents.without_agent(NO_AGENT)
    assert check(ssm, NO_AGENT) == {NO_AGENT: NOT_MANAGED}
    assert NOT_MANAGED.detail == "not managed by SSM"
    listed = ssm.describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": [NO_AGENT]}])
    assert listed["InstanceInformationList"] == []
    with pytest.raises(ClientError) as refused:
        ssm.send_command(DocumentName=names.TRAINING_DOCUMENT, InstanceIds=[NO_AGENT])
    assert refused.value.response["Error"]["Code"] == "InvalidInstanceId"


def test_a_batch_mixing_managed_and_unmanaged_instances_answers_each(ssm, ssm_agents: SsmAgents) -> None:
    ssm_agents.run(TRAINER, "torchrun train.py")
    ssm_agents.idle(NOTEBOOK)
    ssm_agents.without_agent(NO_AGENT)
    assert check(ssm, TRAINER, NO_AGENT, NOTEBOOK) == {
        TRAINER: TrainingCheck(Training.ACTIVE, "training running (pattern=torchrun)"),
        NO_AGENT: NOT_MANAGED,
        NOTEBOOK: TrainingCheck(Training.IDLE, "no training process found"),
    }
    # As SSM does, one unmanaged instance refuses the whole command: the check's split into single sends needs it.
    with pytest.raises(ClientError) as refused:
        ssm.send_command(DocumentName=names.TRAINING_DOCUMENT, InstanceIds=[TRAINER, NO_AGENT])
    assert refused.value.response["Error"]["Code"] == "InvalidInstanceId"
    listed = ssm.describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": [TRAINER, NO_AGENT]}])
    assert [(i["InstanceId"], i["PingStatus"]) for i in listed["InstanceInformationList"]] == [(TRAINER, "Online")]


def test_an_instance_never_told_keeps_motos_answer(ssm, ssm_agents: SsmAgents) -> None:
    ssm_agents.run(TRAINER, "torchrun train.py")
    # moto marks the command Success with empty output: no verdict, as before the agents.
    assert check(ssm, NEVER_TOLD)[NEVER_TOLD] == TrainingCheck(Training.UNKNOWN, "the training check gave no verdict")
    ssm_agents.forget(TRAINER)
    assert check(ssm, TRAINER)[TRAINER].status is Training.UNKNOWN


def test_changing_a_process_table_changes_the_next_answer(ssm, ssm_agents: SsmAgents) -> None:
    ssm_agents.run(TRAINER, "torchrun train.py")
    assert check(ssm, TRAINER)[TRAINER].status is Training.ACTIVE
    ssm_agents.idle(TRAINER)  # the job finished
    assert check(ssm, TRAINER)[TRAINER].status is Training.IDLE


def test_the_patches_are_removed_on_exit(ssm) -> None:
    originals = (
        ssm_models.Command.invocation_response,
        ssm_models.SimpleSystemManagerBackend.send_command,
        getattr(ssm_responses.SimpleSystemManagerResponse, "describe_instance_information", None),
    )
    agents = SsmAgents()
    with emulated_agents(agents):
        agents.without_agent(NO_AGENT)
        agents.idle(NOTEBOOK)
        assert check(ssm, NO_AGENT, NOTEBOOK) == {
            NO_AGENT: NOT_MANAGED,
            NOTEBOOK: TrainingCheck(Training.IDLE, "no training process found"),
        }
    assert (
        ssm_models.Command.invocation_response,
        ssm_models.SimpleSystemManagerBackend.send_command,
        getattr(ssm_responses.SimpleSystemManagerResponse, "describe_instance_information", None),
    ) == originals
    # moto's own answers again: the unmanaged instance takes commands, the idle one gives no verdict.
    ssm.send_command(DocumentName=names.TRAINING_DOCUMENT, InstanceIds=[NO_AGENT])
    assert check(ssm, NOTEBOOK)[NOTEBOOK].status is Training.UNKNOWN
