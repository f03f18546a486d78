"""The training check at fleet scale under moto: one unmanaged instance no longer splits a batch into single sends
made one after another, and a server error from the optional pre-filter costs one call, not ten retries."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from typing import Any

from botocore.awsrequest import AWSResponse

from tests.integration.faults import Faults
from trainctl.aws.clients import ClientFactory
from trainctl.aws.training_check import SsmTrainingCheck
from trainctl.core.observations import Training, TrainingCheck

REGION = "us-east-1"


def fleet(factory: ClientFactory, count: int) -> list[str]:
    response = factory.ec2(REGION).run_instances(ImageId="ami-12345678", MinCount=count, MaxCount=count)
    return [str(i["InstanceId"]) for i in response["Instances"]]


def checker(factory: ClientFactory) -> SsmTrainingCheck:
    return SsmTrainingCheck(
        factory.ssm(REGION),
        document="trainctl-training-check",
        pid_file="/var/run/trainctl/training.pid",
        process_patterns=("torchrun",),
        timeout=timedelta(seconds=30),
        poll_interval=0.01,
    )


def _body(params: dict[str, Any]) -> dict[str, Any]:
    body = params.get("body") or b"{}"
    return dict(json.loads(body.decode() if isinstance(body, bytes) else body))


class Ssm:
    """What SSM says beyond moto: which instances it manages, refusals naming an unmanaged one, and verdicts."""

    def __init__(self, factory: ClientFactory, managed: list[str], *, knows_managed: bool) -> None:
        self.managed = set(managed)
        self.sent: list[list[str]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()
        self._knows_managed = knows_managed
        # On every call, after the factory's own counting hooks (an operation's own hooks would run before them).
        factory.register("before-call", self._answer)
        factory.register("after-call.ssm.GetCommandInvocation", self._verdict)

    def _answer(self, model: Any, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if model.name == "SendCommand":
            return self._send(params)
        if model.name == "DescribeInstanceInformation" and self._knows_managed:
            return self._information(params)
        return None

    def _send(self, params: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]] | None:
        ids = list(_body(params)["InstanceIds"])
        with self._lock:
            self.sent.append(ids)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(0.05)  # a send's round trip: sends one after another would add these up
        with self._lock:
            self.in_flight -= 1
        if set(ids) <= self.managed:
            return None  # moto records the command
        error = {"Error": {"Code": "InvalidInstanceId", "Message": "Instances not in a valid state"}}
        return AWSResponse("https://ssm.amazonaws.com/", 400, {}, None), {**error, "ResponseMetadata": {}}

    def _information(self, params: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
        asked = _body(params)["Filters"][0]["Values"]
        listed = [{"InstanceId": i, "PingStatus": "Online"} for i in asked if i in self.managed]
        return AWSResponse("https://ssm.amazonaws.com/", 200, {}, None), {"InstanceInformationList": listed}

    def _verdict(self, parsed: dict[str, Any], **_: Any) -> None:
        parsed["Status"] = "Success"
        parsed["StandardOutputContent"] = "TRAINCTL_TRAINING=idle\n"


def test_one_unmanaged_instance_is_left_out_and_the_others_go_in_one_send(factory: ClientFactory) -> None:
    managed = fleet(factory, 20)
    unmanaged = fleet(factory, 1)[0]
    ssm = Ssm(factory, managed, knows_managed=True)
    before = factory.calls.by_operation.copy()
    results = checker(factory).check([*managed[:10], unmanaged, *managed[10:]])
    calls = factory.calls.by_operation - before
    assert ssm.sent == [managed]
    assert calls["ssm:SendCommand"] == 1 and calls["ssm:DescribeInstanceInformation"] == 1
    assert results[unmanaged] == TrainingCheck(Training.NOT_MANAGED, "not managed by SSM")
    assert all(results[i].status is Training.IDLE for i in managed)


def test_a_large_fleet_goes_in_batches_of_fifty_sent_together(factory: ClientFactory) -> None:
    managed = fleet(factory, 120)
    ssm = Ssm(factory, managed, knows_managed=True)
    results = checker(factory).check(managed)
    assert sorted(len(batch) for batch in ssm.sent) == [20, 50, 50]
    assert ssm.most_in_flight == 3  # sent at once, not one after another
    assert all(results[i].status is Training.IDLE for i in managed)


def test_without_the_pre_filter_a_refused_batch_is_split_into_single_sends_made_in_parallel(
    factory: ClientFactory,
) -> None:
    # moto does not implement DescribeInstanceInformation: the check falls back to sending to all.
    managed = fleet(factory, 20)
    unmanaged = fleet(factory, 1)[0]
    ssm = Ssm(factory, managed, knows_managed=False)
    results = checker(factory).check([*managed, unmanaged])
    assert len(ssm.sent) == 1 + 21 and sorted(ssm.sent[0]) == sorted([*managed, unmanaged])
    assert sorted(i for batch in ssm.sent[1:] for i in batch) == sorted([*managed, unmanaged])
    assert ssm.most_in_flight > 1  # the 21 single sends overlap: each takes 50 ms here
    assert results[unmanaged] == TrainingCheck(Training.NOT_MANAGED, "not managed by SSM")
    assert all(results[i].status is Training.IDLE for i in managed)


def test_a_server_error_from_the_pre_filter_is_not_retried(factory: ClientFactory) -> None:
    # The sandbox's moto server answers 500 to DescribeInstanceInformation: ten backed-off retries took 85 s.
    managed = fleet(factory, 3)
    faults = Faults(factory)
    faults.fail("DescribeInstanceInformation", code="InternalFailure", status=500, times=None)
    Ssm(factory, managed, knows_managed=False)
    started = time.perf_counter()
    results = checker(factory).check(managed)
    assert faults.injected["DescribeInstanceInformation"] == 1
    assert time.perf_counter() - started < 5
    assert all(results[i].status is Training.IDLE for i in managed)


def test_the_deadline_defers_the_check_by_name(factory: ClientFactory) -> None:
    managed = fleet(factory, 2)
    ssm = Ssm(factory, managed, knows_managed=True)
    check = SsmTrainingCheck(
        factory.ssm(REGION),
        document="trainctl-training-check",
        pid_file="/var/run/trainctl/training.pid",
        process_patterns=("torchrun",),
        timeout=timedelta(seconds=30),
        remaining_ms=lambda: 20_000,
        deadline_reserve=timedelta(seconds=25),
    )
    assert check.check(managed) == dict.fromkeys(managed, TrainingCheck(Training.UNKNOWN, "deferred: deadline"))
    assert ssm.sent == []
