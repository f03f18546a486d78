"""The sandbox: a realistic training fleet on a local moto server, swept dry-run and then enforced."""

from __future__ import annotations

import json
import logging
import os
import socket
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from trainctl.aws.clients import ClientFactory
from trainctl.cli import stack_resources
from trainctl.cli.ebs_initialisation import emulated_initialisation
from trainctl.cli.ssm_agent import SsmAgents
from trainctl.core import names, tags
from trainctl.core.clock import format_instant

SANDBOX_REGIONS = ("us-east-1", "eu-west-1")
# The sweeps run this far ahead of the fleet's creation, so the age rules have something to act on.
SANDBOX_CLOCK_OFFSET = timedelta(days=8)


@dataclass
class SeededFleet:
    ids: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> str:
        return self.ids[name]


def _tag_spec(resource_type: str, values: dict[str, str]) -> list[dict[str, Any]]:
    return [{"ResourceType": resource_type, "Tags": [{"Key": k, "Value": v} for k, v in values.items()]}]


def _managed(owner: str, **extra: str) -> dict[str, str]:
    return {tags.MANAGED: "true", tags.OWNER: owner, **extra}


# Usage is published from two hours before the first sweep until after the last one the sandbox runs.
USAGE_SPAN = (timedelta(hours=-2), timedelta(hours=27))


def _put_usage(
    factory: ClientFactory, region: str, instance_id: str, at: datetime, cpu: float, gpu: float | None
) -> None:
    """5-minute datapoints around `at`, as EC2 and the CloudWatch agent would publish them."""
    cloudwatch = factory.cloudwatch(region)
    dims = [{"Name": "InstanceId", "Value": instance_id}]
    start, end = USAGE_SPAN
    steps = int((end - start).total_seconds() // 300)
    stamps = [at + start + timedelta(minutes=5 * step) for step in range(steps + 1)]
    network = 5_000.0 if cpu < 5 else 50_000_000.0
    data: list[dict[str, Any]] = []
    for stamp in stamps:
        data.append({"MetricName": "CPUUtilization", "Dimensions": dims, "Timestamp": stamp, "Value": cpu})
        data.append({"MetricName": "NetworkIn", "Dimensions": dims, "Timestamp": stamp, "Value": network})
        data.append({"MetricName": "NetworkOut", "Dimensions": dims, "Timestamp": stamp, "Value": network / 10})
    for offset in range(0, len(data), 500):
        cloudwatch.put_metric_data(Namespace="AWS/EC2", MetricData=data[offset : offset + 500])  # type: ignore[arg-type]
    if gpu is not None:
        gpu_data = [
            {"MetricName": "nvidia_smi_utilization_gpu", "Dimensions": dims, "Timestamp": s, "Value": gpu}
            for s in stamps
        ]
        for start_at in range(0, len(gpu_data), 500):
            cloudwatch.put_metric_data(Namespace="CWAgent", MetricData=gpu_data[start_at : start_at + 500])  # type: ignore[arg-type]


def seed_training_fleet(factory: ClientFactory, regions: tuple[str, ...], sweep_at: datetime) -> SeededFleet:
    """GPU instances on demand and spot, volumes of every kind, snapshots (one backing an AMI), two regions."""
    fleet = SeededFleet()
    home, away = regions[0], regions[-1]
    ec2 = factory.ec2(home)
    zone = f"{home}a"

    def launch(name: str, instance_type: str, tag_values: dict[str, str], *, spot: bool = False, **kw: Any) -> str:
        extra: dict[str, Any] = {"InstanceMarketOptions": {"MarketType": "spot"}} if spot else {}
        response = ec2.run_instances(
            ImageId="ami-0abcdef1234567890",
            MinCount=1,
            MaxCount=1,
            InstanceType=instance_type,  # type: ignore[arg-type]
            Placement={"AvailabilityZone": zone},
            TagSpecifications=_tag_spec("instance", {"Name": name, **tag_values}),  # type: ignore[arg-type]
            **extra,
            **kw,
        )
        instance_id = response["Instances"][0]["InstanceId"]
        fleet.ids[name] = instance_id
        return instance_id

    def volume(name: str, size: int, tag_values: dict[str, str], region: str = home) -> str:
        client = factory.ec2(region)
        volume_id = client.create_volume(
            Size=size,
            VolumeType="gp3",
            AvailabilityZone=f"{region}a",
            TagSpecifications=_tag_spec("volume", {"Name": name, **tag_values}),  # type: ignore[arg-type]
        )["VolumeId"]
        fleet.ids[name] = volume_id
        return volume_id

    # Instances in the home region.
    busy = launch("llm-pretrain", "p4d.24xlarge", _managed("alice"))
    idle = launch("forgotten-notebook", "g5.12xlarge", _managed("bob"))
    spot = launch("spot-finetune", "g5.xlarge", _managed("carol"), spot=True)
    # A pre-warm worker left behind: the sweep knows one by the instance profile only trainctl's role may pass.
    profile = stack_resources.ensure_instance_profile(factory, names.PREWARM_PROFILE)
    worker = launch(
        "prewarm-worker",
        "c6in.xlarge",
        _managed("trainctl", **{tags.ROLE: tags.PREWARM_WORKER_ROLE}),
        IamInstanceProfile={"Arn": profile},
    )
    old_stopped = launch(
        "stopped-experiment",
        "p3.2xlarge",
        _managed("bob"),
        BlockDeviceMappings=[{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 500, "DeleteOnTermination": True}}],
    )
    kept_stopped = launch("stopped-baseline", "p3.2xlarge", _managed("alice", **{tags.PERSISTENT: "true"}))
    launch("team-bastion", "t3.micro", {"Name": "team-bastion"})  # out of scope
    unmanaged_stopped = fleet["team-bastion"]
    ec2.stop_instances(InstanceIds=[old_stopped, kept_stopped, unmanaged_stopped])
    # The stopped experiment's data volume must outlive it.
    described = ec2.describe_instances(InstanceIds=[old_stopped])["Reservations"][0]["Instances"][0]
    data_volume = next(m["Ebs"]["VolumeId"] for m in described["BlockDeviceMappings"] if m["DeviceName"] == "/dev/sdf")
    ec2.create_tags(
        Resources=[data_volume],
        Tags=[{"Key": tags.PERSISTENT, "Value": "true"}, {"Key": tags.MANAGED, "Value": "true"}],
    )
    fleet.ids["experiment-data"] = data_volume

    for instance_id, cpu, gpu in ((busy, 92.0, 97.0), (idle, 0.4, 0.0), (spot, 71.0, 88.0), (worker, 0.2, None)):
        _put_usage(factory, home, instance_id, sweep_at, cpu, gpu)

    # Volumes in the home region.
    volume("scratch-1", 200, _managed("bob"))
    volume("scratch-2", 200, _managed("carol"))
    volume("imagenet-dataset", 1000, _managed("alice", **{tags.PERSISTENT: "yes"}))
    volume("someone-elses-disk", 50, {"Name": "someone-elses-disk"})
    fresh = volume(
        "fresh-volume", 100, _managed("dave", **{tags.CREATED_AT: format_instant(sweep_at - timedelta(minutes=2))})
    )
    created_on_the_sandbox_clock(fresh, home, sweep_at - timedelta(minutes=2))
    volume("ttl-scratch", 100, _managed("erin", **{tags.TTL: "72h"}))
    volume("mistyped-ttl", 100, {**_managed("erin", **{tags.TTL: "forever"}), tags.PERSISTENT: "false"})
    attached_ttl = volume("checkpoints-attached", 300, _managed("alice", **{tags.TTL: "24h"}))
    ec2.attach_volume(VolumeId=attached_ttl, InstanceId=busy, Device="/dev/sdg")

    # Snapshots in the home region.
    source = fleet["imagenet-dataset"]
    for name, tag_values in (
        ("old-checkpoint", _managed("alice")),
        ("backup-copy", {**_managed("alice"), tags.BACKUP_SOURCE: f"arn:aws:ec2:{home}::volume/{source}"}),
    ):
        fleet.ids[name] = ec2.create_snapshot(
            VolumeId=source,
            Description=name,
            TagSpecifications=_tag_spec("snapshot", {"Name": name, **tag_values}),  # type: ignore[arg-type]
        )["SnapshotId"]
    # A checkpoint stamped 7.5 hours before the first sweep with an 8-hour lifetime: warned, then deleted.
    fleet.ids["expiring-checkpoint"] = ec2.create_snapshot(
        VolumeId=source,
        TagSpecifications=_tag_spec(  # type: ignore[arg-type]
            "snapshot",
            {
                "Name": "expiring-checkpoint",
                **_managed(
                    "erin", **{tags.TTL: "8h", tags.CREATED_AT: format_instant(sweep_at - timedelta(hours=7.5))}
                ),
            },
        ),
    )["SnapshotId"]
    created_on_the_sandbox_clock(fleet.ids["expiring-checkpoint"], home, sweep_at - timedelta(hours=7.5))
    image_id = ec2.create_image(InstanceId=busy, Name="llm-train-image")["ImageId"]
    image = ec2.describe_images(ImageIds=[image_id])["Images"][0]
    ami_snapshot = next(m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"] if "Ebs" in m)
    ec2.create_tags(
        Resources=[ami_snapshot],
        Tags=[{"Key": k, "Value": v} for k, v in {**_managed("alice"), "Name": "ami-root"}.items()],
    )
    fleet.ids["ami-root"] = ami_snapshot
    fleet.ids["llm-train-image"] = image_id

    # The second region: a forgotten stopped instance, a loose volume, an old snapshot.
    if away != home:
        remote = factory.ec2(away)
        far = remote.run_instances(
            ImageId="ami-0abcdef1234567890",
            MinCount=1,
            MaxCount=1,
            InstanceType="g4dn.xlarge",
            TagSpecifications=_tag_spec("instance", {"Name": "eu-stopped", **_managed("frank")}),  # type: ignore[arg-type]
        )["Instances"][0]["InstanceId"]
        remote.stop_instances(InstanceIds=[far])
        fleet.ids["eu-stopped"] = far
        eu_volume = volume("eu-scratch", 500, _managed("frank"), region=away)
        fleet.ids["eu-snapshot"] = remote.create_snapshot(
            VolumeId=eu_volume,
            TagSpecifications=_tag_spec("snapshot", {"Name": "eu-snapshot", **_managed("frank")}),  # type: ignore[arg-type]
        )["SnapshotId"]
    return fleet


def seed_agents(factory: ClientFactory, agents: SsmAgents, fleet: SeededFleet, region: str, sweep_at: datetime) -> None:
    """The seeded fleet's running instances get SSM agents, and two instances join it whose story only an agent
    tells: one idle by its metrics while its job waits on data, one that SSM does not manage."""
    ec2 = factory.ec2(region)
    for name, owner in (("data-wait-finetune", "dave"), ("debug-box-no-ssm", "erin")):
        fleet.ids[name] = ec2.run_instances(
            ImageId="ami-0abcdef1234567890",
            MinCount=1,
            MaxCount=1,
            InstanceType="g5.2xlarge",
            Placement={"AvailabilityZone": f"{region}a"},
            TagSpecifications=_tag_spec("instance", {"Name": name, **_managed(owner)}),  # type: ignore[arg-type]
        )["Instances"][0]["InstanceId"]
        _put_usage(factory, region, fleet[name], sweep_at, 1.0, 0.0)
    agents.run(fleet["llm-pretrain"], "torchrun --nproc_per_node=8 train.py --config llm-7b.yaml", gpu=True)
    agents.run(fleet["spot-finetune"], "accelerate launch finetune.py", gpu=True)
    agents.run(fleet["data-wait-finetune"], "torchrun --nproc_per_node=1 train.py --data s3://corpus", gpu=True)
    # A notebook server with no kernel on the GPU: nothing the training check looks for.
    agents.run(fleet["forgotten-notebook"], "jupyter-lab --no-browser --port=8888")
    agents.idle(fleet["prewarm-worker"])
    # Launched without an instance profile: SendCommand refuses it, so no training check can ever answer.
    agents.without_agent(fleet["debug-box-no-ssm"])


def created_on_the_sandbox_clock(resource_id: str, region: str, at: datetime) -> None:
    """moto dates a creation by the wall clock, SANDBOX_CLOCK_OFFSET behind the sweeps': a volume or snapshot the
    story makes young is dated as its created-at says (a later stamp than EC2's own time is unreadable). moto runs
    in this process, as a server for the sandbox and in-process for the tests."""
    # Cold start: moto's EC2 models, only for the sandbox's fleet.
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends

    backend = ec2_backends[DEFAULT_ACCOUNT_ID][region]
    if resource_id.startswith("vol-"):
        backend.get_volume(resource_id).create_time = at
    else:
        backend.snapshots[resource_id].start_time = at


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


SANDBOX_ENV = {
    "AWS_ACCESS_KEY_ID": "sandbox",
    "AWS_SECRET_ACCESS_KEY": "sandbox",
    "AWS_SESSION_TOKEN": "sandbox",
    "AWS_DEFAULT_REGION": SANDBOX_REGIONS[0],
    "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
}


@contextmanager
def moto_server(
    port: int | None = None, region: str | None = None, middleware: Callable[[Any], Any] | None = None
) -> Iterator[str]:
    """A moto server on loopback (a free port unless given), the process environment pointed at it, stopped on exit.

    Like the sandbox's: no default AMIs or snapshots (a plain moto server has over a thousand, which a sweep would
    scan and the cost check would price), and Step Functions executes the workflows it is given. `middleware`, when
    given, wraps the server's WSGI app: the emulator serves its own paths beside moto's. EBS initialisation is
    emulated (trainctl.cli.ebs_initialisation), so the pre-warm workflow's snapshot path runs on it.
    """
    # Cold start: moto's server costs about half a second, and only the sandbox and tests start one.
    from moto.server import ThreadedMotoServer

    # One access-log line per call drowns the report, and moto answers an API it lacks with a logged traceback.
    logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
    # The interpreter logs each failed state it handles (a Catch took it): the workflow's result says it.
    logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)

    saved = {
        key: os.environ.get(key) for key in [*SANDBOX_ENV, "AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_REGION", "MOTO_PORT"]
    }
    os.environ.update(SANDBOX_ENV)
    if region:
        os.environ["AWS_DEFAULT_REGION"] = region
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_REGION", None)  # it would win over AWS_DEFAULT_REGION
    port = port or free_loopback_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    if middleware is not None and server._server is not None:
        # moto's server takes no WSGI wrapper: the emulator's own paths go in front of its app once it is made.
        server._server.app = middleware(server._server.app)
    endpoint = f"http://127.0.0.1:{port}"
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    # moto's Step Functions interpreter runs the definitions, calling back into this server.
    os.environ["MOTO_PORT"] = str(port)
    enable = json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode()
    # moto keeps its state per process, not per server: each emulator starts empty, as the sandbox's story needs.
    reset = urllib.request.Request(f"{endpoint}/moto-api/reset", data=b"", method="POST")  # noqa: S310
    urllib.request.urlopen(reset, timeout=10).close()  # noqa: S310
    # A loopback URL this function just built.
    request = urllib.request.Request(f"{endpoint}/moto-api/config", data=enable, method="POST")  # noqa: S310
    urllib.request.urlopen(request, timeout=10).close()  # noqa: S310
    try:
        with emulated_initialisation():
            yield endpoint
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
