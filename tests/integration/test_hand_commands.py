"""`trainctl ebs`, `instances`, `resources` and `transfer` under moto: every command, and every refusal."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from typer.testing import CliRunner

from tests.integration.conftest import run_cli
from trainctl.aws.clients import ClientFactory
from trainctl.cli import main as cli
from trainctl.cli import stack_resources
from trainctl.cli.output import CliState
from trainctl.core import names, tags
from trainctl.core.observations import Training, TrainingCheck

runner = CliRunner()
REGION = "us-east-1"
IN_SCOPE = {"Key": tags.MANAGED, "Value": "true"}


@pytest.fixture
def factory(aws: None, monkeypatch: pytest.MonkeyPatch) -> ClientFactory:
    made = ClientFactory(REGION)
    monkeypatch.setitem(HANDED, "factory", made)
    monkeypatch.setenv("TRAINCTL_OWNER", "alice")
    monkeypatch.setenv("TRAINCTL_TRAINING_CHECK_TIMEOUT", "1s")
    stack_resources.ensure_on_emulator(made, (REGION,))
    return made


# The factory each test's fixture made, handed to the command line as its own.
HANDED: dict[str, ClientFactory] = {}


def call(*args: str, input: str | None = None) -> Any:
    return run_cli(HANDED["factory"], list(args), input=input)


def asked(*args: str, answer: str) -> Any:
    """As on a terminal: the command may ask, and `answer` is what the person types."""
    state = CliState(make_factory=lambda: HANDED["factory"], interactive=True)
    return runner.invoke(cli.app, list(args), obj=state, input=answer)


def ok_json(*args: str) -> Any:
    result = call(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def launch(factory: ClientFactory, zone: str = "us-east-1a", **extra: Any) -> str:
    return str(
        factory.ec2(REGION).run_instances(
            ImageId="ami-0abcdef1234567890", MinCount=1, MaxCount=1, Placement={"AvailabilityZone": zone}, **extra
        )["Instances"][0]["InstanceId"]
    )


def volume_tags(factory: ClientFactory, volume_id: str) -> dict[str, str]:
    found = factory.ec2(REGION).describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
    return {t["Key"]: t["Value"] for t in found.get("Tags", [])}


def exists(factory: ClientFactory, volume_id: str) -> bool:
    return bool(factory.ec2(REGION).describe_volumes(Filters=[{"Name": "volume-id", "Values": [volume_id]}])["Volumes"])


# ------------------------------------------------------------------------------------------------------- ebs


def test_ebs_create_and_list(factory: ClientFactory) -> None:
    created = ok_json("ebs", "create", "--size", "100", "--zone", "us-east-1b", "--persistent")
    labels = volume_tags(factory, created["volume_id"])
    assert labels[tags.PERSISTENT] == "true" and labels[tags.MANAGED] == "true" and labels[tags.OWNER] == "alice"
    listed = {row["volume_id"]: row for row in ok_json("ebs", "list")}
    row = listed[created["volume_id"]]
    assert row["persistent"] is True and row["zone"] == "us-east-1b" and row["attached_to"] is None
    assert row["hourly_usd"] == pytest.approx(100 * 0.08 / 730)
    table = call("ebs", "list")
    assert table.exit_code == 0 and created["volume_id"] in table.stdout and "P" in table.stdout


def test_ebs_attach_refuses_another_zone_and_detach_needs_an_attachment(factory: ClientFactory) -> None:
    volume_id = ok_json("ebs", "create", "--zone", "us-east-1b")["volume_id"]
    elsewhere, here = launch(factory, "us-east-1a"), launch(factory, "us-east-1b")
    refused = call("ebs", "attach", volume_id, elsewhere)
    assert refused.exit_code == 1 and "attaches only in its own zone" in refused.stderr
    assert not factory.ec2(REGION).describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["Attachments"]
    assert call("ebs", "detach", volume_id).exit_code == 1
    assert call("ebs", "attach", volume_id, here).exit_code == 0
    again = call("ebs", "attach", volume_id, here)
    assert again.exit_code == 1 and "already attached" in again.stderr
    assert call("ebs", "detach", volume_id, "--yes").exit_code == 0


def test_ebs_delete_shows_what_goes_and_asks_and_yes_answers_for_scripts(factory: ClientFactory) -> None:
    plain = ok_json("ebs", "create", "--size", "20")["volume_id"]
    declined = asked("ebs", "delete", plain, answer="n\n")
    assert declined.exit_code == 1 and exists(factory, plain)
    assert f"delete {plain}: 20 GiB gp3" in declined.stderr and "owner alice, in scope" in declined.stderr
    assert "nothing was changed" in declined.stderr
    unasked = call("ebs", "delete", plain)  # off a terminal nobody can answer: nothing happens
    assert unasked.exit_code == 2 and "--yes" in unasked.stderr and exists(factory, plain)
    accepted = asked("ebs", "delete", plain, answer="y\n")
    assert accepted.exit_code == 0 and not exists(factory, plain)
    scripted = ok_json("ebs", "create")["volume_id"]
    assert ok_json("ebs", "delete", scripted, "--yes") == {"volume_id": scripted, "deleted": True}
    assert not exists(factory, scripted)


def test_ebs_delete_of_a_persistent_volume_needs_its_override_and_a_confirmation(factory: ClientFactory) -> None:
    keep = ok_json("ebs", "create", "--persistent")["volume_id"]
    refused = call("ebs", "delete", keep, "--yes")
    assert refused.exit_code == 1 and tags.PERSISTENT in refused.stderr and "--allow-persistent" in refused.stderr
    assert exists(factory, keep)
    declined = asked("ebs", "delete", keep, "--allow-persistent", answer="n\n")
    assert declined.exit_code == 1 and exists(factory, keep)
    assert asked("ebs", "delete", keep, "--allow-persistent", answer="y\n").exit_code == 0
    assert not exists(factory, keep)
    # The documented --force still works, as a deprecated name of --allow-persistent, and still asks.
    again = ok_json("ebs", "create", "--persistent")["volume_id"]
    deprecated = asked("ebs", "delete", again, "--force", answer="y\n")
    assert deprecated.exit_code == 0 and "deprecated" in deprecated.stderr and not exists(factory, again)
    busy = ok_json("ebs", "create", "--zone", "us-east-1a")["volume_id"]
    factory.ec2(REGION).attach_volume(VolumeId=busy, InstanceId=launch(factory), Device="/dev/sdf")
    attached = call("ebs", "delete", busy, "--allow-persistent", "--yes")
    assert attached.exit_code == 1 and "detach it first" in attached.stderr and exists(factory, busy)


def test_ebs_delete_of_an_untagged_or_someone_elses_volume_needs_its_override(factory: ClientFactory) -> None:
    ec2 = factory.ec2(REGION)
    untagged = ec2.create_volume(Size=5, AvailabilityZone="us-east-1a")["VolumeId"]
    refused = call("ebs", "delete", untagged, "--yes")
    assert refused.exit_code == 1 and "outside trainctl's scope" in refused.stderr
    assert "--allow-out-of-scope" in refused.stderr and exists(factory, untagged)
    declined = asked("ebs", "delete", untagged, "--allow-out-of-scope", answer="n\n")
    assert declined.exit_code == 1 and "outside the scope" in declined.stderr and exists(factory, untagged)
    assert asked("ebs", "delete", untagged, "--allow-out-of-scope", answer="y\n").exit_code == 0
    assert not exists(factory, untagged)
    bobs = ec2.create_volume(
        Size=5,
        AvailabilityZone="us-east-1a",
        TagSpecifications=[
            {
                "ResourceType": "volume",
                "Tags": [{"Key": tags.MANAGED, "Value": "true"}, {"Key": tags.OWNER, "Value": "bob"}],
            }
        ],
    )["VolumeId"]
    refused = call("ebs", "delete", bobs, "--yes")
    assert refused.exit_code == 1 and "its owner is bob, not alice" in refused.stderr
    assert "--allow-other-owner" in refused.stderr and exists(factory, bobs)
    assert call("ebs", "delete", bobs, "--allow-other-owner", "--yes").exit_code == 0 and not exists(factory, bobs)


def test_a_forced_detach_says_what_it_risks_and_asks(factory: ClientFactory) -> None:
    volume_id = ok_json("ebs", "create", "--zone", "us-east-1a")["volume_id"]
    holder = launch(factory)
    factory.ec2(REGION).attach_volume(VolumeId=volume_id, InstanceId=holder, Device="/dev/sdf")
    declined = asked("ebs", "detach", volume_id, "--force-detach", answer="n\n")
    assert declined.exit_code == 1 and "writes the instance has not flushed are lost" in declined.stderr
    assert factory.ec2(REGION).describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["Attachments"]
    detached = ok_json("ebs", "detach", volume_id, "--force-detach", "--yes")
    assert detached == {"volume_id": volume_id, "instance_id": holder, "forced": True}


def test_snapshots_are_listed_with_what_depends_on_them_and_restored_anywhere(factory: ClientFactory) -> None:
    volume_id = ok_json("ebs", "create", "--persistent")["volume_id"]
    snapshot_id = ok_json("ebs", "snapshot", "create", volume_id)["snapshot_id"]
    restored = ok_json("ebs", "restore", snapshot_id, "--zone", "us-east-1c", "--initialization-rate", "200")
    described = factory.ec2(REGION).describe_volumes(VolumeIds=[restored["volume_id"]])["Volumes"][0]
    assert described["SnapshotId"] == snapshot_id and described["AvailabilityZone"] == "us-east-1c"
    ec2 = factory.ec2(REGION)
    image = ec2.create_image(InstanceId=launch(factory), Name="model-image")["ImageId"]
    image_snapshot = next(
        m["Ebs"]["SnapshotId"] for m in ec2.describe_images(ImageIds=[image])["Images"][0]["BlockDeviceMappings"]
    )
    listed = {row["snapshot_id"]: row for row in ok_json("ebs", "snapshot", "list")}
    assert listed[snapshot_id]["warnings"] == [f"restored as {restored['volume_id']}"]
    assert listed[image_snapshot]["warnings"] == [f"backs AMI {image}"]
    assert listed[snapshot_id]["persistent"] is True  # the volume's persistence came along
    assert call("ebs", "restore", snapshot_id, "--zone", "us-east-1a", "--initialization-rate", "5").exit_code == 2


def test_ebs_pre_warm_refuses_a_bad_uri_before_anything(factory: ClientFactory) -> None:
    volume_id = ok_json("ebs", "create")["volume_id"]
    refused = call("ebs", "pre-warm", volume_id, "s3://bucket/$(reboot)")
    assert refused.exit_code == 2 and "s3_uri" in refused.stderr


# ------------------------------------------------------------------------------------------------ instances


def test_instances_list_shows_cost_and_persistent_volumes(factory: ClientFactory) -> None:
    instance_id = launch(factory, InstanceType="g5.xlarge")
    volume_id = ok_json("ebs", "create", "--persistent", "--zone", "us-east-1a")["volume_id"]
    factory.ec2(REGION).attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")
    rows = {row["instance_id"]: row for row in ok_json("instances", "list")}
    assert rows[instance_id]["hourly_usd"] == 1.006
    assert f"{volume_id} (persistent)" in rows[instance_id]["volumes"]


def managed(owner: str = "alice") -> dict[str, Any]:
    return {
        "TagSpecifications": [
            {
                "ResourceType": "instance",
                "Tags": [{"Key": tags.MANAGED, "Value": "true"}, {"Key": tags.OWNER, "Value": owner}],
            }
        ]
    }


def test_terminate_refuses_young_instances_and_unknown_training_each_by_its_own_override_and_keeps_persistent_data(
    factory: ClientFactory,
) -> None:
    instance_id = launch(
        factory,
        BlockDeviceMappings=[{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 50, "DeleteOnTermination": True}}],
        **managed(),
    )
    ec2 = factory.ec2(REGION)
    data = next(
        m["Ebs"]["VolumeId"]
        for m in ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0][
            "BlockDeviceMappings"
        ]
        if m["DeviceName"] == "/dev/sdf"
    )
    ec2.create_tags(Resources=[data], Tags=[{"Key": tags.PERSISTENT, "Value": "true"}])
    refused = call("instances", "terminate", instance_id, "--yes")
    assert refused.exit_code == 1 and "minimum age 5m" in refused.stderr and "no verdict" in refused.stderr
    assert refused.stderr.count("the training check gave no verdict") == 1  # said once, not twice
    assert "0:05:00" not in refused.stderr
    young = call("instances", "terminate", instance_id, "--ignore-unknown-training", "--yes")
    assert young.exit_code == 1 and "--ignore-min-age" in young.stderr and "no verdict" not in young.stderr
    unknown = call("instances", "terminate", instance_id, "--ignore-min-age", "--yes")
    assert (
        unknown.exit_code == 1 and "--ignore-unknown-training" in unknown.stderr and "minimum age" not in unknown.stderr
    )
    declined = asked(
        "instances", "terminate", instance_id, "--ignore-min-age", "--ignore-unknown-training", answer="n\n"
    )
    assert declined.exit_code == 1 and f"terminate {instance_id}" in declined.stderr
    assert f"kept: {data}" in declined.stderr
    done = ok_json("instances", "terminate", instance_id, "--ignore-min-age", "--ignore-unknown-training", "--yes")
    assert done["verdict"] == "terminate" and done["kept_volumes"] == [data]
    assert exists(factory, data)
    state = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]
    assert state in ("shutting-down", "terminated")


def test_terminate_of_an_instance_out_of_scope_or_someone_elses_needs_its_override(factory: ClientFactory) -> None:
    untagged = launch(factory)
    waived = ("--ignore-min-age", "--ignore-unknown-training", "--yes")
    refused = call("instances", "terminate", untagged, *waived)
    assert refused.exit_code == 1 and "--allow-out-of-scope" in refused.stderr
    # The documented --force keeps its meaning (the two waivers) and still needs the scope override.
    deprecated = call("instances", "terminate", untagged, "--force", "--allow-out-of-scope", "--yes")
    assert deprecated.exit_code == 0 and "deprecated" in deprecated.stderr
    bobs = launch(factory, **managed("bob"))
    refused = call("instances", "terminate", bobs, *waived)
    assert refused.exit_code == 1 and "its owner is bob" in refused.stderr and "--allow-other-owner" in refused.stderr
    assert call("instances", "terminate", bobs, *waived, "--allow-other-owner").exit_code == 0
    states = factory.ec2(REGION).describe_instances(InstanceIds=[untagged, bobs])["Reservations"]
    assert {i["State"]["Name"] for r in states for i in r["Instances"]} <= {"shutting-down", "terminated"}


def test_terminate_never_stops_a_training_job_or_a_persistent_instance(
    factory: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainctl.aws import training_check as training

    monkeypatch.setattr(
        training.SsmTrainingCheck,
        "check",
        lambda self, ids: {i: TrainingCheck(Training.ACTIVE, "torchrun") for i in ids},
    )
    every_override = (
        "--ignore-min-age",
        "--ignore-unknown-training",
        "--allow-out-of-scope",
        "--allow-other-owner",
        "--yes",
    )
    busy = launch(factory)
    refused = call("instances", "terminate", busy, *every_override)
    assert refused.exit_code == 1 and "training job is running" in refused.stderr
    kept = launch(
        factory, TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": tags.PERSISTENT, "Value": "yes"}]}]
    )
    monkeypatch.setattr(
        training.SsmTrainingCheck, "check", lambda self, ids: {i: TrainingCheck(Training.IDLE) for i in ids}
    )
    persistent = call("instances", "terminate", kept, *every_override)
    assert persistent.exit_code == 1 and tags.PERSISTENT in persistent.stderr
    running = factory.ec2(REGION).describe_instances(InstanceIds=[busy, kept])["Reservations"]
    assert {i["State"]["Name"] for r in running for i in r["Instances"]} == {"running"}


def attached_later(factory: ClientFactory, instance_id: str, device: str, **labels: str) -> str:
    """A volume attached by hand ten minutes after the launch (AttachVolume needs a running instance)."""
    ec2 = factory.ec2(REGION)
    spec = [{"ResourceType": "volume", "Tags": [{"Key": k, "Value": v} for k, v in labels.items()]}] if labels else []
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=10), tick=False):
        volume_id = ec2.create_volume(Size=20, VolumeType="gp3", AvailabilityZone="us-east-1a", TagSpecifications=spec)[
            "VolumeId"
        ]
        ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device=device)
    return str(volume_id)


def root_of(factory: ClientFactory, instance_id: str) -> str:
    found = factory.ec2(REGION).describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return next(
        m["Ebs"]["VolumeId"] for m in found["BlockDeviceMappings"] if m["DeviceName"] == found["RootDeviceName"]
    )


def attachments(factory: ClientFactory, volume_id: str) -> list[Any]:
    return list(factory.ec2(REGION).describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["Attachments"])


def test_terminate_by_hand_takes_the_launchs_own_root_and_names_each_volume_it_leaves(factory: ClientFactory) -> None:
    """Issue 25: the untagged root volume the launch made is the instance's; kept, it would be an orphan."""
    instance_id = launch(factory, **managed())
    root = root_of(factory, instance_id)
    loose = attached_later(factory, instance_id, "/dev/sdg")
    factory.ec2(REGION).modify_instance_attribute(
        InstanceId=instance_id, BlockDeviceMappings=[{"DeviceName": "/dev/sdg", "Ebs": {"DeleteOnTermination": True}}]
    )
    waived = ("--ignore-min-age", "--ignore-unknown-training")
    declined = asked("instances", "terminate", instance_id, *waived, answer="n\n")
    assert f"kept: {loose} (no owner tag, 20 GiB gp3, $1.60 a month: out of scope)" in declined.stderr
    assert f"deleted with it: {root}" in declined.stderr
    done = ok_json("instances", "terminate", instance_id, *waived, "--yes")
    assert done["kept_volumes"] == [loose] and done["left_behind"] == [loose]
    assert exists(factory, loose) and not exists(factory, root)


def test_detach_refuses_the_root_of_a_running_instance_whatever_is_waived(factory: ClientFactory) -> None:
    instance_id = launch(factory, **managed())
    root = root_of(factory, instance_id)
    refused = call("ebs", "detach", root, "--yes")
    assert refused.exit_code == 1 and f"the root volume of {instance_id}, which is running" in refused.stderr
    every_waiver = ("--allow-out-of-scope", "--allow-other-owner", "--force-detach", "--yes")
    waived = call("ebs", "detach", root, *every_waiver)
    assert waived.exit_code == 1 and f"the root volume of {instance_id}, which is running" in waived.stderr
    assert attachments(factory, root)
    # Stopped, it may go (the person's own untagged root still names its waiver, and asks).
    factory.ec2(REGION).stop_instances(InstanceIds=[instance_id])
    unwaived = call("ebs", "detach", root, "--yes")
    assert unwaived.exit_code == 1 and "--allow-out-of-scope" in unwaived.stderr and attachments(factory, root)
    assert call("ebs", "detach", root, "--allow-out-of-scope", "--yes").exit_code == 0


def test_detach_of_another_owners_volume_or_from_another_owners_instance_needs_its_override_and_asks(
    factory: ClientFactory,
) -> None:
    mine = launch(factory, **managed())
    checkpoint = attached_later(factory, mine, "/dev/sdf", **{tags.MANAGED: "true", tags.OWNER: "bob"})
    refused = call("ebs", "detach", checkpoint, "--yes")
    assert refused.exit_code == 1 and "its owner is bob, not alice: --allow-other-owner" in refused.stderr
    assert attachments(factory, checkpoint)
    declined = asked("ebs", "detach", checkpoint, "--allow-other-owner", answer="n\n")
    assert declined.exit_code == 1 and f"detach {checkpoint}" in declined.stderr and "owner bob" in declined.stderr
    assert attachments(factory, checkpoint)
    unasked = call("ebs", "detach", checkpoint, "--allow-other-owner")  # off a terminal nobody can answer
    assert unasked.exit_code == 2 and attachments(factory, checkpoint)
    assert call("ebs", "detach", checkpoint, "--allow-other-owner", "--yes").exit_code == 0
    assert not attachments(factory, checkpoint)
    # Alice's own volume on Bob's instance: detaching it hurts Bob.
    bobs = launch(factory, **managed("bob"))
    lent = attached_later(factory, bobs, "/dev/sdf", **{tags.MANAGED: "true", tags.OWNER: "alice"})
    refused = call("ebs", "detach", lent, "--yes")
    assert refused.exit_code == 1 and f"the owner of {bobs} is bob" in refused.stderr and attachments(factory, lent)
    # The hand library refuses by itself too: a caller that skips the command line's check detaches nothing.
    from trainctl.handwork import volumes as hand_volumes
    from trainctl.handwork.ownership import Waivers
    from trainctl.handwork.refusals import Refused

    ec2 = factory.ec2(REGION)
    check = hand_volumes.check_detach(ec2, REGION, lent, me="alice", scope_tag=tags.MANAGED, waivers=Waivers())
    with pytest.raises(Refused, match="not detached"):
        hand_volumes.detach(ec2, check, force=False)
    assert attachments(factory, lent)


def test_attach_to_another_owners_instance_needs_its_override_and_asks(factory: ClientFactory) -> None:
    volume_id = ok_json("ebs", "create", "--zone", "us-east-1a")["volume_id"]
    bobs = launch(factory, **managed("bob"))
    refused = call("ebs", "attach", volume_id, bobs)
    assert refused.exit_code == 1 and f"the owner of {bobs} is bob" in refused.stderr
    assert "--allow-other-owner" in refused.stderr and not attachments(factory, volume_id)
    unasked = call("ebs", "attach", volume_id, bobs, "--allow-other-owner")
    assert unasked.exit_code == 2 and not attachments(factory, volume_id)
    assert call("ebs", "attach", volume_id, bobs, "--allow-other-owner", "--yes").exit_code == 0
    assert attachments(factory, volume_id)


def test_a_bad_id_and_a_missing_region_are_one_line_errors(
    factory: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = call("ebs", "attach", "vol-0123456789abcdef0", "i-0123456789abcdef0")
    assert missing.exit_code == 1 and "no volume vol-0123456789abcdef0" in missing.stderr
    assert "Traceback" not in missing.output
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    no_region = runner.invoke(cli.app, ["instances", "list"])
    assert no_region.exit_code == 1 and "no region" in no_region.stderr


# ------------------------------------------------------------------------------------------------ resources


def test_resources_summary_graph_and_cleanup(factory: ClientFactory) -> None:
    instance_id = launch(factory, InstanceType="g5.xlarge")
    volume_id = ok_json("ebs", "create", "--zone", "us-east-1a")["volume_id"]
    factory.ec2(REGION).attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")
    snapshot_id = ok_json("ebs", "snapshot", "create", volume_id)["snapshot_id"]
    summary = ok_json("resources", "summary")
    assert summary["counts"]["instance"] == {"running": 1}
    assert summary["hourly_usd"] > 1.006
    dot = call("resources", "graph", "--format", "dot").stdout
    assert f'"{instance_id}" -> "{volume_id}"' in dot and f'"{volume_id}" -> "{snapshot_id}"' in dot
    mermaid = call("resources", "graph", "--format", "mermaid").stdout
    assert mermaid.startswith("graph LR") and "-->|snapshot|" in mermaid
    tree = call("resources", "graph")
    assert tree.exit_code == 0 and instance_id in tree.stdout and snapshot_id in tree.stdout
    assert call("resources", "graph", "--format", "png").exit_code == 2
    swept = ok_json("resources", "cleanup", "--region", REGION)
    assert swept["dry_run"] is True and swept["summary"]["scanned"] >= 3


# ------------------------------------------------------------------------------------------------- transfer


def test_transfer_between_local_and_s3_both_ways(factory: ClientFactory, tmp_path: Path) -> None:
    s3 = factory.client("s3", REGION)
    s3.create_bucket(Bucket="datasets")
    source = tmp_path / "data"
    (source / "shards").mkdir(parents=True)
    (source / "shards" / "a.bin").write_bytes(b"a" * 1000)
    (source / "b.txt").write_text("hello")
    up = ok_json("transfer", str(source), "s3://datasets/run-1/")
    assert up["files"] == 2 and up["bytes"] == 1005
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="datasets")["Contents"])
    assert keys == ["run-1/b.txt", "run-1/shards/a.bin"]
    back = tmp_path / "back"
    down = ok_json("transfer", "s3://datasets/run-1/", str(back))
    assert down["files"] == 2 and (back / "shards" / "a.bin").read_bytes() == b"a" * 1000


def test_transfer_to_and_from_an_instance_goes_through_ssm_and_a_staging_prefix(
    factory: ClientFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[dict[str, Any]] = []
    factory.register("provide-client-params.ssm.SendCommand", lambda params, **_: sent.append(dict(params)))
    s3 = factory.client("s3", REGION)
    s3.create_bucket(Bucket="datasets")
    instance_id = launch(factory, TagSpecifications=[{"ResourceType": "instance", "Tags": [IN_SCOPE]}])
    direct = ok_json("transfer", "s3://datasets/run-1/", f"instance:{instance_id}:/data/run-1/")
    assert direct["route"] == "SSM on the instance"
    assert sent[-1]["DocumentName"] == names.TRANSFER_DOCUMENT
    assert sent[-1]["Parameters"] == {
        "Direction": ["to-instance"],
        "S3Uri": ["s3://datasets/run-1/"],
        "Path": ["/data/run-1/"],
    }
    local = tmp_path / "config.yaml"
    local.write_text("lr: 0.1")
    without_staging = call("transfer", str(local), f"instance:{instance_id}:/data/config.yaml")
    assert without_staging.exit_code == 1 and "TRAINCTL_TRANSFER_STAGING_URI" in without_staging.stderr
    monkeypatch.setenv("TRAINCTL_TRANSFER_STAGING_URI", "s3://datasets/staging/")
    staged = ok_json("transfer", str(local), f"instance:{instance_id}:/data/config.yaml")
    assert staged["route"].startswith("staged through s3://datasets/staging/trainctl-transfer-")
    assert sent[-1]["Parameters"]["S3Uri"][0].endswith("/config.yaml")
    assert "Contents" not in s3.list_objects_v2(Bucket="datasets", Prefix="staging/")  # cleaned up


@pytest.mark.parametrize(
    ("labels", "waiver", "said"),
    [
        ([IN_SCOPE, {"Key": tags.OWNER, "Value": "bob"}], "--allow-other-owner", "its owner is bob, not alice"),
        ([{"Key": tags.OWNER, "Value": "alice"}], "--allow-out-of-scope", "it is outside trainctl's scope"),
    ],
)
def test_a_copy_on_someone_elses_or_an_unscoped_instance_needs_the_waiver_and_a_yes(
    factory: ClientFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, labels: Any, waiver: str, said: str
) -> None:
    """A copy runs as root on the instance, both ways (it writes there, or sends its files out): like ebs attach,
    what is not the person's own needs the override that names it, then a yes; nothing is staged or sent before."""
    sent: list[dict[str, Any]] = []
    factory.register("provide-client-params.ssm.SendCommand", lambda params, **_: sent.append(dict(params)))
    s3 = factory.client("s3", REGION)
    s3.create_bucket(Bucket="datasets")
    monkeypatch.setenv("TRAINCTL_TRANSFER_STAGING_URI", "s3://datasets/staging/")
    local = tmp_path / "config.yaml"
    local.write_text("lr: 0.1")
    instance_id = launch(factory, TagSpecifications=[{"ResourceType": "instance", "Tags": labels}])
    routes = [
        ("s3://datasets/run-1/", f"instance:{instance_id}:/data/run-1/"),
        (f"instance:{instance_id}:/data/out/", "s3://datasets/out/"),
        (str(local), f"instance:{instance_id}:/data/config.yaml"),
        (f"instance:{instance_id}:/data/config.yaml", str(tmp_path / "back.yaml")),
    ]
    for source, destination in routes:
        refused = call("transfer", source, destination)
        words = " ".join(refused.stderr.split())
        assert refused.exit_code == 1 and f"nothing was sent to {instance_id}: {said}" in words, refused.output
        assert f"{waiver} to go ahead" in words and len(refused.stderr.strip().splitlines()) == 1
        unanswered = call("transfer", source, destination, waiver)
        assert unanswered.exit_code == 2 and "pass --yes to go ahead" in unanswered.stderr, unanswered.output
        assert f"waived: {said}" in " ".join(unanswered.stderr.split())
        declined = asked("transfer", source, destination, waiver, answer="n\n")
        assert declined.exit_code == 1 and "nothing was changed" in declined.stderr, declined.output
    assert sent == [] and "Contents" not in s3.list_objects_v2(Bucket="datasets")  # nothing staged either
    done = call("transfer", *routes[0], waiver, "--yes", "--json")
    assert done.exit_code == 0 and len(sent) == 1, done.output


@pytest.mark.parametrize(
    ("source", "destination"),
    [
        ("s3://Bad_Bucket/x", "/tmp/x"),
        ("instance:i-123;reboot:/x", "s3://datasets/x"),
        ("instance:i-0123456789abcdef0:relative", "s3://datasets/x"),
        # Issue 17 item 7: no `.` or `..` segment reaches the transfer document (refused here, before any call).
        ("s3://datasets/run-1/../private/", "instance:i-0123456789abcdef0:/data/"),
        ("s3://datasets/run-1/", "instance:i-0123456789abcdef0:/data/../root/.ssh/"),
        ("s3://datasets/run-1/", "instance:i-0123456789abcdef0:/data/./x"),
        ("s3://datasets/run-1/\n", "/tmp/x"),
    ],
)
def test_transfer_refuses_bad_endpoints(factory: ClientFactory, source: str, destination: str) -> None:
    refused = call("transfer", source, destination)
    assert refused.exit_code == 2 and "error:" in refused.stderr


def test_a_download_never_writes_outside_its_destination(factory: ClientFactory, tmp_path: Path) -> None:
    """A key is anyone's text: `run-1/../../outside.txt` must not climb out of the folder it is copied into."""
    s3 = factory.client("s3", REGION)
    s3.create_bucket(Bucket="datasets")
    s3.put_object(Bucket="datasets", Key="run-1/a.txt", Body=b"a")
    s3.put_object(Bucket="datasets", Key="run-1/../../outside.txt", Body=b"forged")
    destination = tmp_path / "deep" / "back"
    refused = call("transfer", "s3://datasets/run-1/", str(destination))
    assert refused.exit_code == 1, refused.output
    assert "outside" in refused.stderr and "nothing was copied" in refused.stderr
    assert not (tmp_path / "outside.txt").exists() and not (destination / "a.txt").exists()


def test_a_download_skips_folder_markers(factory: ClientFactory, tmp_path: Path) -> None:
    s3 = factory.client("s3", REGION)
    s3.create_bucket(Bucket="datasets")
    s3.put_object(Bucket="datasets", Key="run-1/", Body=b"")
    s3.put_object(Bucket="datasets", Key="run-1/shards/", Body=b"")
    s3.put_object(Bucket="datasets", Key="run-1/shards/a.bin", Body=b"a")
    down = ok_json("transfer", "s3://datasets/run-1/", str(tmp_path / "back"))
    assert down["files"] == 1 and (tmp_path / "back" / "shards" / "a.bin").read_bytes() == b"a"


def test_every_command_has_help_that_reads() -> None:
    import typer.main

    root = typer.main.get_command(cli.app)

    def walk(command: Any, path: list[str]) -> list[list[str]]:
        found = [path]
        if hasattr(command, "commands"):  # a group
            for name, child in command.commands.items():
                found += walk(child, [*path, name])
        return found

    paths = walk(root, [])
    assert len(paths) > 20
    for path in paths:
        shown = runner.invoke(cli.app, [*path, "--help"])
        assert shown.exit_code == 0, path
        assert "Usage:" in shown.stdout and len(shown.stdout.splitlines()) > 4, path


@pytest.mark.parametrize(
    ("error", "said"),
    [
        ("credentials", "no AWS credentials"),
        ("region", "no region"),
        ("endpoint", "cannot reach https://ec2.xx-nowhere-1.amazonaws.com/"),
    ],
)
def test_environment_problems_are_one_line_errors(error: str, said: str, capsys: pytest.CaptureFixture[str]) -> None:
    import typer
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError, NoRegionError

    from trainctl.cli.commands import one_line_errors

    raised = {
        "credentials": NoCredentialsError(),
        "region": NoRegionError(),
        "endpoint": EndpointConnectionError(endpoint_url="https://ec2.xx-nowhere-1.amazonaws.com/"),
    }[error]
    with pytest.raises(typer.Exit) as stopped, one_line_errors():
        raise raised
    assert stopped.value.exit_code == 1
    printed = capsys.readouterr().err
    assert said in printed and len(printed.strip().splitlines()) == 1


def test_a_malformed_region_is_wrong_usage(factory: ClientFactory) -> None:
    refused = call("ebs", "list", "--region", "mars; reboot")
    assert refused.exit_code == 2 and "not a region name" in refused.stderr
