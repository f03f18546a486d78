"""Stateful property test under moto: whatever people and clocks do, the safety model holds.

Random sequences of creations, attach/detach, tag edits (unicode and shell metacharacters included),
clock steps and sweeps, dry-run or enforced. After every sweep: nothing protected was deleted, stopped
or terminated; no persistent volume was lost, not even through an instance's termination; nothing was
acted on before its grace period; a dry-run made no write call.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule
from moto import mock_aws

from trainctl.aws.clients import ClientFactory
from trainctl.aws.notifications import InMemoryNotifier
from trainctl.core import tags
from trainctl.core.clock import fixed_clock, parse_instant
from trainctl.core.settings import SweepSettings
from trainctl.sweep.record import InMemoryLedger
from trainctl.sweep.run import run_sweep

REGION = "us-east-1"
ZONE = "us-east-1a"
TAG_VALUES = st.sampled_from(["true", "false", "no", "0", "", "yes", "maybe", "$(reboot)", "a;rm -rf /", "ü✓", "`id`"])
FULLWIDTH_EIGHT_HOURS = "\uff18h"  # looks like 8h; durations take ASCII digits only
TTL_VALUES = st.sampled_from(["1h", "3d", FULLWIDTH_EIGHT_HOURS, "forever", "$(reboot)", "0s"])
SETTINGS = SweepSettings(
    regions=(REGION,),
    max_actions=6,
    max_action_share=0.5,
    snapshot_retention=timedelta(days=2),
    stopped_max_age=timedelta(days=1),
    training_check_timeout=timedelta(seconds=1),
)
EXAMPLES = 30
STEPS = 12
GONE_STATES = ("stopping", "stopped", "shutting-down", "terminated", "deleting", "deleted")


class SweepUnderPeople(RuleBasedStateMachine):
    volumes = Bundle("volumes")
    instances = Bundle("instances")

    def __init__(self) -> None:
        super().__init__()
        self.mock = mock_aws()
        self.mock.start()
        self.factory = ClientFactory(REGION)
        self.ec2 = self.factory.ec2(REGION)
        self.now = datetime.now(UTC) + timedelta(minutes=10)
        self.persistent: set[str] = set()
        self.sweeps = 0

    def teardown(self) -> None:
        self.mock.stop()

    @staticmethod
    def _tags(scoped: bool, persistent: str | None) -> list[dict[str, Any]]:
        values = [{"Key": tags.OWNER, "Value": "prop"}]
        if scoped:
            values.append({"Key": tags.MANAGED, "Value": "true"})
        if persistent is not None:
            values.append({"Key": tags.PERSISTENT, "Value": persistent})
        return values

    @initialize(target=volumes)
    def baseline(self) -> Any:
        """Every run starts with each kind of protected resource beside an unprotected one."""
        from hypothesis.stateful import multiple

        self.launch(scoped=True, persistent_data=True, stopped=True)
        return multiple(
            self.create_volume(True, "true"),
            self.create_volume(True, "yes"),
            self.create_volume(False, None),
            self.create_volume(True, None),
        )

    @rule(target=volumes, scoped=st.booleans(), persistent=st.none() | TAG_VALUES)
    def create_volume(self, scoped: bool, persistent: str | None) -> str:
        return str(
            self.ec2.create_volume(
                Size=1,
                AvailabilityZone=ZONE,
                TagSpecifications=[{"ResourceType": "volume", "Tags": self._tags(scoped, persistent)}],
            )["VolumeId"]
        )

    @rule(target=instances, scoped=st.booleans(), persistent_data=st.booleans(), stopped=st.booleans())
    def launch(self, scoped: bool, persistent_data: bool, stopped: bool) -> str:
        instance_id = self.ec2.run_instances(
            ImageId="ami-0abcdef1234567890",
            MinCount=1,
            MaxCount=1,
            InstanceType="g5.xlarge",
            Placement={"AvailabilityZone": ZONE},
            BlockDeviceMappings=[{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 1, "DeleteOnTermination": True}}],
            TagSpecifications=[{"ResourceType": "instance", "Tags": self._tags(scoped, None)}],
        )["Instances"][0]["InstanceId"]
        described = self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
        data = next(m["Ebs"]["VolumeId"] for m in described["BlockDeviceMappings"] if m["DeviceName"] == "/dev/sdf")
        if persistent_data:
            self.ec2.create_tags(
                Resources=[data],
                Tags=[{"Key": tags.PERSISTENT, "Value": "true"}, {"Key": tags.MANAGED, "Value": "true"}],
            )
        if stopped:
            self.ec2.stop_instances(InstanceIds=[instance_id])
        return str(instance_id)

    @rule(volume=volumes)
    def snapshot(self, volume: str) -> None:
        if self._volume_state(volume) is not None:
            self.ec2.create_snapshot(
                VolumeId=volume, TagSpecifications=[{"ResourceType": "snapshot", "Tags": self._tags(True, None)}]
            )

    @rule(volume=volumes, instance=instances, device=st.sampled_from("ghijklmnop"))
    def attach(self, volume: str, instance: str, device: str) -> None:
        if self._volume_state(volume) == "available" and self._instance_state(instance) in ("running", "stopped"):
            with contextlib.suppress(ClientError):  # device name taken: people get that error too
                self.ec2.attach_volume(VolumeId=volume, InstanceId=instance, Device=f"/dev/sd{device}")

    @rule(volume=volumes)
    def detach(self, volume: str) -> None:
        found = self.ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": [volume]}])["Volumes"]
        attachments = [a for v in found for a in v.get("Attachments", []) if a.get("State") == "attached"]
        if attachments:
            # Named explicitly: moto's own error path needs the instance id to report a failure.
            with contextlib.suppress(ClientError):
                self.ec2.detach_volume(VolumeId=volume, InstanceId=attachments[0]["InstanceId"])

    @rule(
        target_id=st.one_of(volumes, instances),
        key=st.sampled_from([tags.PERSISTENT, tags.MANAGED, tags.TTL]),
        value=TAG_VALUES,
        ttl=TTL_VALUES,
    )
    def edit_tag(self, target_id: str, key: str, value: str, ttl: str) -> None:
        if target_id in self._world():
            self.ec2.create_tags(Resources=[target_id], Tags=[{"Key": key, "Value": ttl if key == tags.TTL else value}])

    @rule(enforce=st.booleans(), hours=st.sampled_from([0, 1, 6, 25, 49]))
    def sweep(self, enforce: bool, hours: int) -> None:
        self.now += timedelta(hours=hours)
        self.sweeps += 1
        before = self._world()
        writes_before = sum(self.factory.calls.writes().values())
        result = run_sweep(
            self.factory,
            SETTINGS.model_copy(update={"dry_run": not enforce}),
            fixed_clock(self.now),
            ledger=InMemoryLedger(),
            notifier=InMemoryNotifier(),
        )
        after = self._world()
        if not enforce:
            assert sum(self.factory.calls.writes().values()) == writes_before, "a dry-run wrote"
            assert after == before, "a dry-run changed the world"
            return
        destroyed = {
            rid
            for rid, state in before.items()
            if rid not in after or (after[rid]["state"] != state["state"] and after[rid]["state"] in GONE_STATES)
        }
        acted = {d.resource_id for d in result.decisions if d.destructive and d.outcome == "done"}
        for resource_id in destroyed:
            state = before[resource_id]
            if resource_id in acted:
                assert tags.opts_in(state["tags"].get(tags.MANAGED)), f"{resource_id} was out of scope"
                assert not tags.protects(state["tags"].get(tags.PERSISTENT)), f"{resource_id} was persistent"
                mark = state["tags"].get(tags.CLEANUP_AFTER)
                assert mark is not None and parse_instant(mark) <= self.now, f"{resource_id} acted on before grace"
                assert state["state"] != "in-use", f"{resource_id} was attached"
            else:
                # Only a volume may go without a decision of its own: when its instance took it along.
                assert state["kind"] == "volume", f"{resource_id} disappeared without a decision"
                assert not tags.protects(state["tags"].get(tags.PERSISTENT)), f"persistent {resource_id} died"

    @invariant()
    def persistent_volumes_are_never_lost(self) -> None:
        world = self._world()
        for resource_id, state in world.items():
            if state["kind"] == "volume" and tags.protects(state["tags"].get(tags.PERSISTENT)):
                self.persistent.add(resource_id)
            elif resource_id in self.persistent:
                self.persistent.discard(resource_id)  # a person took the tag off: no longer promised
        lost = {v for v in self.persistent if v not in world}
        assert not lost, f"persistent volumes lost: {lost}"

    def _world(self) -> dict[str, dict[str, Any]]:
        world: dict[str, dict[str, Any]] = {}
        for volume in self.ec2.describe_volumes()["Volumes"]:
            world[volume["VolumeId"]] = {
                "kind": "volume",
                "state": volume["State"],
                "tags": {t["Key"]: t["Value"] for t in volume.get("Tags", [])},
            }
        for reservation in self.ec2.describe_instances()["Reservations"]:
            for instance in reservation["Instances"]:
                if instance["State"]["Name"] == "terminated":
                    continue
                world[instance["InstanceId"]] = {
                    "kind": "instance",
                    "state": instance["State"]["Name"],
                    "tags": {t["Key"]: t["Value"] for t in instance.get("Tags", [])},
                }
        for snap in self.ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]:
            world[snap["SnapshotId"]] = {
                "kind": "snapshot",
                "state": snap["State"],
                "tags": {t["Key"]: t["Value"] for t in snap.get("Tags", [])},
            }
        return world

    def _volume_state(self, volume_id: str) -> str | None:
        found = self.ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": [volume_id]}])["Volumes"]
        return str(found[0]["State"]) if found else None

    def _instance_state(self, instance_id: str) -> str | None:
        found = self.ec2.describe_instances(Filters=[{"Name": "instance-id", "Values": [instance_id]}])
        for reservation in found["Reservations"]:
            return str(reservation["Instances"][0]["State"]["Name"])
        return None


SweepUnderPeople.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestSweepUnderPeople = SweepUnderPeople.TestCase
