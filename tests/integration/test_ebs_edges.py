"""The EBS command line's rough edges (issue 26, items 5, 6 and 7a) and `ebs restore --initialization-rate`
(issue 27), under moto: what EC2 would refuse is refused first, in one line, with nothing made.

moto creates a volume in a zone that does not exist and of a size its type cannot have, and SSM takes a command for
an instance nobody launched: the tests prove the refusal by the calls trainctl did not make (every call through the
factory is recorded) and by what does not exist afterwards.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from tests.integration.test_hand_commands import HANDED, IN_SCOPE, call, launch
from trainctl.aws.clients import ClientFactory
from trainctl.cli import stack_resources
from trainctl.core import tags

REGION = "us-east-1"
NOBODY = "i-0123456789abcdef0"


@pytest.fixture
def factory(aws: None, monkeypatch: pytest.MonkeyPatch) -> ClientFactory:
    made = ClientFactory(REGION)
    monkeypatch.setitem(HANDED, "factory", made)
    monkeypatch.setenv("TRAINCTL_OWNER", "alice")
    stack_resources.ensure_on_emulator(made, (REGION,))
    return made


@pytest.fixture
def calls(factory: ClientFactory) -> list[str]:
    """Every AWS operation trainctl makes through the factory from here on, in order."""
    made: list[str] = []
    factory.register("before-call", lambda model, **_: made.append(model.name))
    return made


def volumes_in(factory: ClientFactory) -> list[dict[str, Any]]:
    return list(factory.ec2(REGION).describe_volumes()["Volumes"])


def one_error(result: Any, code: int, says: str) -> str:
    assert result.exit_code == code, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and says in errors[0], result.stderr
    assert "Traceback" not in result.output and result.stdout.strip() == ""
    return str(errors[0])


def snapshot_of(factory: ClientFactory, size: int) -> str:
    """A snapshot in trainctl's scope and nobody's: restoring it needs no waiver."""
    ec2 = factory.ec2(REGION)
    volume = ec2.create_volume(Size=size, AvailabilityZone="us-east-1a")["VolumeId"]
    in_scope = [{"ResourceType": "snapshot", "Tags": [{"Key": tags.MANAGED, "Value": "true"}]}]
    snapshot = str(ec2.create_snapshot(VolumeId=volume, TagSpecifications=in_scope)["SnapshotId"])
    ec2.delete_volume(VolumeId=volume)
    return snapshot


def refuse_with(factory: ClientFactory, operation: str, code: str) -> None:
    """`operation` is answered with AWS's error `code` before anything reaches the emulator."""

    def answer(model: Any, **_: Any) -> tuple[Any, dict[str, Any]] | None:
        if model.name != operation:
            return None
        response = AWSResponse("https://refused.invalid/", 403, {}, None)
        return response, {"Error": {"Code": code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": 403}}

    factory.register("before-call", answer, first=True)


# ----------------------------------------------------------------- 5. what CreateVolume would refuse, refused first


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--zone", "ü"], "--zone ü: not a zone name such as us-east-1a"),
        (["--zone", "US-EAST-1A"], "not a zone name"),
        (["--zone", "us-east-1a\x1b[31m"], "--zone us-east-1a\\x1b[31m: not a zone name"),
        (
            ["--zone", "eu-west-1a"],
            "--zone eu-west-1a is a zone of eu-west-1, not of us-east-1: pass --region eu-west-1",
        ),
        (["--zone", "us-west-2-lax-1a"], "is a zone of us-west-2, not of us-east-1"),
        (["--type", "st1", "--size", "100"], "--size 100: st1 volumes are 125 to 16,384 GiB"),
        (["--type", "sc1", "--size", "1"], "sc1 volumes are 125 to 16,384 GiB"),
        (["--type", "gp2", "--size", "20000"], "gp2 volumes are 1 to 16,384 GiB"),
        (["--type", "io1", "--size", "2", "--iops", "100"], "--size 2: io1 volumes are 4 to 16,384 GiB"),
        (
            ["--throughput", "1000"],
            "gp3 allows at most 0.25 MiB/s per IOPS (750 MiB/s at 3,000 IOPS); pass --iops 4,000",
        ),
        (["--iops", "4000", "--throughput", "1001"], "(1,000 MiB/s at 4,000 IOPS)"),
        (["--size", "10", "--iops", "6000"], "gp3 allows at most 500 IOPS per GiB (5,000 for 10 GiB)"),
        (["--iops", "90000", "--size", "1000"], "--iops 90,000: gp3 takes 3,000 (its baseline) to 80,000 IOPS"),
        (["--type", "io1", "--size", "10", "--iops", "1000"], "io1 allows at most 50 IOPS per GiB (500 for 10 GiB)"),
        (["--type", "io2", "--size", "10", "--iops", "20000"], "io2 allows at most 1,000 IOPS per GiB"),
        (["--type", "io2"], "--type io2 needs --iops"),
    ],
)
def test_ebs_create_refuses_what_ec2_would_before_any_call(
    factory: ClientFactory, calls: list[str], args: list[str], says: str
) -> None:
    one_error(call("ebs", "create", *args), 2, says)
    assert calls == []
    assert volumes_in(factory) == []


def test_a_zone_the_region_does_not_have_is_refused_after_one_read(factory: ClientFactory, calls: list[str]) -> None:
    said = one_error(call("ebs", "create", "--zone", "us-east-1z"), 2, "--zone us-east-1z: us-east-1 has no such zone")
    assert "us-east-1a" in said and "us-east-1f" in said  # the zones it has
    assert calls == ["DescribeAvailabilityZones"]
    assert volumes_in(factory) == []


def test_the_regions_own_zones_and_limits_are_accepted(factory: ClientFactory) -> None:
    st1 = json.loads(call("ebs", "create", "--type", "st1", "--size", "125", "--zone", "us-east-1b", "--json").stdout)
    fast = json.loads(call("ebs", "create", "--size", "16", "--iops", "8000", "--throughput", "2000", "--json").stdout)
    made = {v["VolumeId"]: v for v in volumes_in(factory)}
    assert made[st1["volume_id"]]["VolumeType"] == "st1" and made[st1["volume_id"]]["AvailabilityZone"] == "us-east-1b"
    assert made[fast["volume_id"]]["Iops"] == 8000 and made[fast["volume_id"]]["Throughput"] == 2000
    assert fast["zone"] == "us-east-1a"  # the region's first zone when none is given


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--type", "io2"], "--type io2 needs --iops"),
        (["--zone", "eu-west-1a"], "is a zone of eu-west-1, not of us-east-1"),
        (["--zone", "ü"], "not a zone name"),
        (["--type", "gp2", "--iops", "3000"], "gp2 volumes take no provisioned IOPS"),
        (["--throughput", "900"], "gp3 allows at most 0.25 MiB/s per IOPS"),
        (["--initialization-rate", "99"], "--initialization-rate 99: EBS takes 100 to 300 MiB/s"),
        (["--initialization-rate", "301"], "--initialization-rate 301: EBS takes 100 to 300 MiB/s"),
    ],
)
def test_ebs_restore_refuses_what_ec2_would_before_any_call(
    factory: ClientFactory, calls: list[str], args: list[str], says: str
) -> None:
    snapshot = snapshot_of(factory, 100)
    before = len(volumes_in(factory))
    calls.clear()  # the set-up's own calls
    one_error(call("ebs", "restore", snapshot, "--zone", "us-east-1a", *args), 2, says)
    assert calls == []
    assert len(volumes_in(factory)) == before


def test_ebs_restore_checks_the_type_against_the_snapshots_size_before_creating(
    factory: ClientFactory, calls: list[str]
) -> None:
    snapshot = snapshot_of(factory, 100)
    calls.clear()  # the set-up's own calls
    one_error(
        call("ebs", "restore", snapshot, "--zone", "us-east-1a", "--type", "st1"),
        2,
        f"{snapshot} holds 100 GiB: st1 volumes are 125 to 16,384 GiB",
    )
    one_error(
        call("ebs", "restore", snapshot, "--zone", "us-east-1a", "--type", "io1", "--iops", "6000"),
        2,
        "io1 allows at most 50 IOPS per GiB (5,000 for 100 GiB)",
    )
    one_error(call("ebs", "restore", snapshot, "--zone", "us-east-1z"), 2, "us-east-1 has no such zone")
    assert "CreateVolume" not in calls and set(calls) <= {"DescribeSnapshots", "DescribeAvailabilityZones"}
    assert volumes_in(factory) == []


def test_ebs_restore_takes_iops_and_throughput(factory: ClientFactory) -> None:
    snapshot = snapshot_of(factory, 100)
    restored = call(
        "ebs", "restore", snapshot, "--zone", "us-east-1c", "--iops", "6000", "--throughput", "500", "--json"
    )
    assert restored.exit_code == 0, restored.output
    made = json.loads(restored.stdout)
    volume = factory.ec2(REGION).describe_volumes(VolumeIds=[made["volume_id"]])["Volumes"][0]
    assert (volume["Iops"], volume["Throughput"], volume["SnapshotId"]) == (6000, 500, snapshot)
    assert (made["iops"], made["throughput_mibps"], made["size_gib"]) == (6000, 500, 100)
    io2 = json.loads(
        call("ebs", "restore", snapshot, "--zone", "us-east-1a", "--type", "io2", "--iops", "9000", "--json").stdout
    )
    assert factory.ec2(REGION).describe_volumes(VolumeIds=[io2["volume_id"]])["Volumes"][0]["Iops"] == 9000


# ------------------------------------------------------- issue 27: the provisioned rate for volume initialisation


def test_restore_passes_the_initialization_rate_and_says_how_to_follow_it(factory: ClientFactory) -> None:
    sent: list[dict[str, Any]] = []
    factory.register("provide-client-params.ec2.CreateVolume", lambda params, **_: sent.append(dict(params)))
    snapshot = snapshot_of(factory, 100)
    restored = call("ebs", "restore", snapshot, "--zone", "us-east-1a", "--initialization-rate", "200", "--json")
    assert restored.exit_code == 0, restored.output
    made = json.loads(restored.stdout)
    assert sent[-1]["VolumeInitializationRate"] == 200 and sent[-1]["SnapshotId"] == snapshot
    assert made["initialization_rate_mibps"] == 200
    assert "initialisation at 200 MiB/s requested" in restored.stderr
    assert f"aws ec2 describe-volume-status --volume-ids {made['volume_id']}" in restored.stderr
    assert "InitializationStatusDetails" in restored.stderr
    # Without the option, nothing is asked for and nothing said.
    plain = call("ebs", "restore", snapshot, "--zone", "us-east-1a", "--json")
    assert "VolumeInitializationRate" not in sent[-1] and "initialisation" not in plain.stderr


@pytest.mark.parametrize(
    ("labels", "waiver", "said"),
    [
        (
            [{"Key": tags.MANAGED, "Value": "true"}, {"Key": tags.OWNER, "Value": "bob"}],
            "--allow-other-owner",
            "its owner is bob, not alice",
        ),
        ([{"Key": tags.OWNER, "Value": "alice"}], "--allow-out-of-scope", "it is outside trainctl's scope"),
    ],
)
def test_restoring_someone_elses_or_an_unscoped_snapshot_needs_the_waiver_and_a_yes(
    factory: ClientFactory, calls: list[str], labels: Any, waiver: str, said: str
) -> None:
    """A restore copies the snapshot's data into a volume tagged the asker's: like ebs delete, what is not the
    person's own needs the override that names it, then a yes; until then no volume is made."""
    ec2 = factory.ec2(REGION)
    volume = ec2.create_volume(Size=10, AvailabilityZone="us-east-1a")["VolumeId"]
    snapshot = ec2.create_snapshot(VolumeId=volume, TagSpecifications=[{"ResourceType": "snapshot", "Tags": labels}])[
        "SnapshotId"
    ]
    calls.clear()  # the set-up's own calls
    refused = one_error(call("ebs", "restore", snapshot, "--zone", "us-east-1a"), 1, f"{snapshot} not restored")
    assert said in refused and f"{waiver} to go ahead" in refused
    unanswered = call("ebs", "restore", snapshot, "--zone", "us-east-1a", waiver)
    assert unanswered.exit_code == 2 and f"waived: {said}" in " ".join(unanswered.stderr.split())
    assert (
        "CreateVolume" not in calls
        and ec2.describe_volumes(Filters=[{"Name": "snapshot-id", "Values": [snapshot]}])["Volumes"] == []
    )
    restored = call("ebs", "restore", snapshot, "--zone", "us-east-1a", waiver, "--yes", "--json")
    assert restored.exit_code == 0, restored.output
    made = ec2.describe_volumes(VolumeIds=[json.loads(restored.stdout)["volume_id"]])["Volumes"][0]
    assert made["SnapshotId"] == snapshot and {t["Key"]: t["Value"] for t in made["Tags"]}[tags.OWNER] == "alice"


def test_an_initialization_rate_is_refused_for_an_empty_volume(factory: ClientFactory, calls: list[str]) -> None:
    from trainctl.handwork import volumes as hand_volumes
    from trainctl.handwork.refusals import Refused

    with pytest.raises(Refused, match="restored from a snapshot"):
        hand_volumes.create_volume(
            factory.ec2(REGION),
            size_gib=10,
            volume_type="gp3",
            zone="us-east-1a",
            persistent=False,
            owner="alice",
            scope_tag=tags.MANAGED,
            initialization_rate=200,
        )
    assert calls == [] and volumes_in(factory) == []


# ----------------------------------------------------------------- 6. snapshot of an untagged volume


def test_a_snapshot_of_an_untagged_volume_is_made_without_an_empty_tag_specification(factory: ClientFactory) -> None:
    sent: list[dict[str, Any]] = []
    factory.register("provide-client-params.ec2.CreateSnapshot", lambda params, **_: sent.append(dict(params)))
    bare = factory.ec2(REGION).create_volume(Size=10, AvailabilityZone="us-east-1a")["VolumeId"]
    made = call("ebs", "snapshot", "create", bare, "--json")
    assert made.exit_code == 0, made.output
    snapshot = json.loads(made.stdout)["snapshot_id"]
    assert "TagSpecifications" not in sent[-1]
    found = factory.ec2(REGION).describe_snapshots(SnapshotIds=[snapshot])["Snapshots"][0]
    assert found["VolumeId"] == bare and not found.get("Tags")
    # A tagged volume's snapshot still carries its owner and scope.
    owned = json.loads(call("ebs", "create", "--json").stdout)["volume_id"]
    tagged = json.loads(call("ebs", "snapshot", "create", owned, "--json").stdout)["snapshot_id"]
    labels = {
        t["Key"]: t["Value"]
        for t in factory.ec2(REGION).describe_snapshots(SnapshotIds=[tagged])["Snapshots"][0]["Tags"]
    }
    assert labels == {tags.MANAGED: "true", tags.OWNER: "alice"}


# ----------------------------------------------------------------- 6. transfer: instances and buckets checked first


def test_transfer_to_an_unknown_instance_is_refused_before_anything_is_sent(
    factory: ClientFactory, calls: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory.client("s3", REGION).create_bucket(Bucket="datasets")
    one_error(
        call("transfer", "s3://datasets/run-1/", f"instance:{NOBODY}:/data/"),
        1,
        f"no instance {NOBODY} in us-east-1: nothing was sent",
    )
    one_error(call("transfer", f"instance:{NOBODY}:/data/out/", "s3://datasets/out/"), 1, "nothing was sent")
    monkeypatch.setenv("TRAINCTL_TRANSFER_STAGING_URI", "s3://datasets/staging/")
    local = tmp_path / "config.yaml"
    local.write_text("lr: 0.1")
    one_error(call("transfer", str(local), f"instance:{NOBODY}:/data/config.yaml"), 1, "nothing was sent")
    assert "SendCommand" not in calls and "PutObject" not in calls
    assert "Contents" not in factory.client("s3", REGION).list_objects_v2(Bucket="datasets")


def test_transfer_to_a_stopped_instance_is_refused_before_anything_is_sent(
    factory: ClientFactory, calls: list[str]
) -> None:
    factory.client("s3", REGION).create_bucket(Bucket="datasets")
    stopped = launch(factory)
    factory.ec2(REGION).stop_instances(InstanceIds=[stopped])
    one_error(
        call("transfer", "s3://datasets/run-1/", f"instance:{stopped}:/data/"),
        1,
        f"{stopped} is stopped, not running: a copy runs on the instance, so start it first; nothing was sent",
    )
    assert "SendCommand" not in calls


def test_transfer_to_a_bucket_that_does_not_exist_says_so_in_words(
    factory: ClientFactory, calls: list[str], tmp_path: Path
) -> None:
    local = tmp_path / "weights.bin"
    local.write_bytes(b"w" * 100)
    said = one_error(
        call("transfer", str(local), "s3://nosuchbucket/run-1/weights.bin"),
        1,
        "there is no S3 bucket named nosuchbucket: nothing was copied",
    )
    assert "unexpected" not in said and "Error" not in said
    one_error(
        call("transfer", "s3://nosuchbucket/run-1/", str(tmp_path / "back")), 1, "no S3 bucket named nosuchbucket"
    )
    launched = launch(factory)
    one_error(call("transfer", f"instance:{launched}:/data/", "s3://nosuchbucket/out/"), 1, "no S3 bucket named")
    assert not {"PutObject", "CreateMultipartUpload", "SendCommand", "GetObject"} & set(calls)
    assert not (tmp_path / "back").exists()


def test_the_transfer_managers_failures_are_words_naming_the_object(factory: ClientFactory, tmp_path: Path) -> None:
    factory.client("s3", REGION).create_bucket(Bucket="datasets")
    local = tmp_path / "weights.bin"
    local.write_bytes(b"w" * 100)
    refuse_with(factory, "PutObject", "AccessDenied")
    said = one_error(
        call("transfer", str(local), "s3://datasets/run-1/weights.bin"),
        1,
        "s3://datasets/run-1/weights.bin: access denied to these credentials",
    )
    assert "S3UploadFailedError" not in said and "unexpected" not in said
    missing = one_error(call("transfer", "s3://datasets/run-1/none.bin", str(tmp_path / "x")), 1, "no such object")
    assert "s3://datasets/run-1/none.bin" in missing


def test_a_bucket_closed_to_these_credentials_is_refused_where_this_machine_uses_it(
    factory: ClientFactory, tmp_path: Path
) -> None:
    factory.client("s3", REGION).create_bucket(Bucket="datasets")
    local = tmp_path / "weights.bin"
    local.write_bytes(b"w")
    refuse_with(factory, "HeadBucket", "403")
    one_error(
        call("transfer", str(local), "s3://datasets/run-1/"),
        1,
        "S3 bucket datasets is not open to these credentials (access denied): nothing was copied",
    )
    # Only the instance, with its own role, writes its copy: the bucket needs only to exist.
    running = launch(factory, TagSpecifications=[{"ResourceType": "instance", "Tags": [IN_SCOPE]}])
    sent = call("transfer", f"instance:{running}:/data/out/", "s3://datasets/out/", "--json")
    assert sent.exit_code == 0, sent.output


# ----------------------------------------------------------------- 7a. a volume nobody owns is said so


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_volume_made_without_an_owner_draws_a_warning_saying_how_to_set_one(
    factory: ClientFactory, monkeypatch: pytest.MonkeyPatch, blank: str
) -> None:
    monkeypatch.setenv("TRAINCTL_OWNER", blank)
    monkeypatch.setenv("USER", "")
    made = call("ebs", "create", "--json")
    assert made.exit_code == 0, made.output
    warning = [line for line in made.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warning) == 1 and f"no {tags.OWNER} tag" in warning[0] and "set TRAINCTL_OWNER" in warning[0]
    volume_id = json.loads(made.stdout)["volume_id"]
    labels = {
        t["Key"]: t["Value"] for t in factory.ec2(REGION).describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["Tags"]
    }
    assert tags.OWNER not in labels and labels[tags.MANAGED] == "true"
    snapshot = snapshot_of(factory, 10)
    restored = call("ebs", "restore", snapshot, "--zone", "us-east-1a", "--json")
    assert restored.exit_code == 0 and "set TRAINCTL_OWNER" in restored.stderr


def test_an_owner_from_user_draws_no_warning(factory: ClientFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRAINCTL_OWNER")
    monkeypatch.setenv("USER", "bob")
    made = call("ebs", "create", "--json")
    assert made.exit_code == 0 and "warning" not in made.stderr
    volume_id = json.loads(made.stdout)["volume_id"]
    labels = {
        t["Key"]: t["Value"] for t in factory.ec2(REGION).describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["Tags"]
    }
    assert labels[tags.OWNER] == "bob"
