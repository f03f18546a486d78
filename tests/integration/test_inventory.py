from datetime import timedelta

from tests.integration.fleet import seed_account
from trainctl.aws.clients import ClientFactory
from trainctl.aws.ec2 import Ec2Inventory


def test_inventory_reads_the_fleet_in_pages_with_server_side_filters(factory: ClientFactory) -> None:
    account = seed_account(factory)
    before = factory.calls.by_operation.copy()
    inventory = Ec2Inventory(factory.ec2("us-east-1"), "us-east-1").read()
    calls = factory.calls.by_operation - before
    # One call per kind of resource, whatever the fleet size: no per-resource describe. Spot requests are read
    # once because the fleet has a spot instance, instance types once for all its distinct types; the fleet has
    # no launch template, so no template's versions are read.
    assert dict(calls) == {
        "ec2:DescribeInstances": 1,
        "ec2:DescribeVolumes": 1,
        "ec2:DescribeSnapshots": 1,
        "ec2:DescribeImages": 1,
        "ec2:DescribeSpotInstanceRequests": 1,
        "ec2:DescribeInstanceTypes": 2,  # moto does not know p3.2xlarge: refused, then asked without it
        "ec2:DescribeLaunchTemplates": 1,
    }
    ids = {r.resource_id for r in inventory.resources()}
    for name in ("llm-pretrain", "scratch-1", "imagenet-dataset", "old-checkpoint", "ami-root"):
        assert account.fleet[name] in ids
    assert account.fleet["eu-stopped"] not in ids  # other region


def test_inventory_knows_spot_stop_time_ami_snapshots_and_delete_on_termination(factory: ClientFactory) -> None:
    account = seed_account(factory)
    inventory = Ec2Inventory(factory.ec2("us-east-1"), "us-east-1").read()
    instances = {i.resource_id: i for i in inventory.instances}
    assert instances[account.fleet["spot-finetune"]].lifecycle == "spot"
    stopped = instances[account.fleet["stopped-experiment"]]
    assert stopped.state == "stopped" and stopped.stopped_since is not None
    assert abs(stopped.stopped_since - (account.t0 - timedelta(days=8))) < timedelta(minutes=5)
    data = [d for d in stopped.block_devices if d.volume_id == account.fleet["experiment-data"]]
    assert data and data[0].delete_on_termination is True
    assert any(account.fleet["ami-root"] in image.snapshot_ids for image in inventory.images)


def test_terminated_instances_are_not_inventoried(factory: ClientFactory) -> None:
    account = seed_account(factory)
    ec2 = factory.ec2("us-east-1")
    ec2.terminate_instances(InstanceIds=[account.fleet["team-bastion"]])
    inventory = Ec2Inventory(ec2, "us-east-1").read()
    assert account.fleet["team-bastion"] not in {i.resource_id for i in inventory.instances}
