"""`trainctl emulator`'s agents path: what an instance runs is set on the emulator's own port, and trainctl's own
training check, sent to that emulator, hears it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import timedelta

import pytest

from trainctl.aws import ssm_documents as documents
from trainctl.aws.clients import ClientFactory
from trainctl.aws.training_check import NOT_MANAGED, SsmTrainingCheck
from trainctl.cli.emulator import AGENTS_PATH, agents_endpoint, agents_request
from trainctl.cli.sandbox_fleet import moto_server
from trainctl.cli.ssm_agent import Host, SsmAgents, emulated_agents
from trainctl.core import names
from trainctl.core.observations import Training, TrainingCheck
from trainctl.core.settings import SweepSettings

INSTANCE = "i-0123456789abcdef0"


def test_a_post_sets_what_the_instance_runs_and_a_delete_gives_it_back_to_moto() -> None:
    agents = SsmAgents()
    body = json.dumps({"processes": ["torchrun train.py"], "gpu": True}).encode()
    assert agents_request(agents, "POST", INSTANCE, body)[0] == 200
    assert agents.host(INSTANCE) == Host(("torchrun train.py",), None, True)
    assert agents_request(agents, "POST", INSTANCE, b'{"agent": false}')[0] == 200
    assert agents.host(INSTANCE) is None
    assert agents_request(agents, "DELETE", INSTANCE, b"")[0] == 200
    assert not agents.knows(INSTANCE)


@pytest.mark.parametrize(
    ("method", "instance_id", "body", "status"),
    [
        ("POST", "i-../../etc", b"{}", 400),  # only an instance id names an agent
        ("POST", "vol-0123456789abcdef0", b"{}", 400),
        ("POST", INSTANCE, b'{"processes": "torchrun"}', 400),  # a list of command lines, nothing else
        ("POST", INSTANCE, b'{"run": ["rm -rf /"]}', 400),  # unknown fields are refused, not ignored
        ("POST", INSTANCE, b'{"pid_file_pid": -1}', 400),
        ("POST", INSTANCE, b"not json", 400),
        ("GET", INSTANCE, b"", 405),
    ],
)
def test_what_is_not_an_agent_request_is_refused_and_changes_nothing(
    method: str, instance_id: str, body: bytes, status: int
) -> None:
    agents = SsmAgents()
    code, answer = agents_request(agents, method, instance_id, body)
    assert code == status and "error" in answer
    assert agents.managed() == [] and not agents.knows(instance_id)
    assert "rm -rf" not in json.dumps(answer)  # nothing sent is echoed back


def test_the_training_check_sent_to_the_emulator_hears_what_was_posted() -> None:
    agents = SsmAgents()

    def post(method: str, payload: dict | None = None) -> int:
        # A loopback URL of the emulator this test started.
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(f"{endpoint}{AGENTS_PATH}{INSTANCE}", data=data, method=method)  # noqa: S310
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return int(response.status)

    with (
        moto_server(middleware=lambda app: agents_endpoint(app, agents)) as endpoint,
        emulated_agents(agents),
    ):
        ssm = ClientFactory("us-east-1").client("ssm", "us-east-1")
        ssm.create_document(
            Name=names.TRAINING_DOCUMENT,
            Content=json.dumps(documents.load(documents.TRAINING_CHECK)),
            DocumentType="Command",
            DocumentFormat="JSON",
        )
        settings = SweepSettings()
        checker = SsmTrainingCheck(
            ssm,
            document=names.TRAINING_DOCUMENT,
            pid_file=settings.training_pid_file,
            process_patterns=settings.training_process_patterns,
            timeout=timedelta(seconds=5),
            sleep=lambda _: None,
        )
        assert post("POST", {"processes": ["torchrun --nproc_per_node=8 train.py"]}) == 200
        assert checker.check([INSTANCE])[INSTANCE] == TrainingCheck(
            Training.ACTIVE, "training running (pattern=torchrun)"
        )
        assert post("POST", {"agent": False}) == 200
        assert checker.check([INSTANCE])[INSTANCE] == NOT_MANAGED
        assert post("DELETE") == 200
        assert checker.check([INSTANCE])[INSTANCE] == TrainingCheck(
            Training.UNKNOWN, "the training check gave no verdict"
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            post("POST", {"processes": "torchrun"})
        assert refused.value.code == 400
