"""Adversarial review, round 2 (moto and the synthesised stack): each of these failed on the code it was written
against; they now hold what the review broke."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import run_cli
from tests.integration.test_prewarm import REGION, Account, account, execute  # noqa: F401 (fixture)
from trainctl.aws.clients import ClientFactory
from trainctl.cli import stack_resources
from trainctl.core import tags

# ------------------------------------------------------------------------------------------------ transfer


@pytest.fixture
def cli_factory(aws: None, monkeypatch: pytest.MonkeyPatch) -> ClientFactory:
    made = ClientFactory(REGION)
    monkeypatch.setenv("TRAINCTL_OWNER", "alice")
    stack_resources.ensure_on_emulator(made, (REGION,))
    return made


def test_a_download_never_follows_a_symlink_in_the_destination_out_of_it(
    cli_factory: ClientFactory, tmp_path: Path
) -> None:
    """stays_under() is lexical: `run-1/link/pwned.txt` stays under, but `link` in the destination is a symlink
    (left by anyone who could write there: a shared /scratch, a checkout, an earlier tool)."""
    s3 = cli_factory.client("s3", REGION)
    s3.create_bucket(Bucket="datasets")
    s3.put_object(Bucket="datasets", Key="run-1/a.txt", Body=b"a")
    s3.put_object(Bucket="datasets", Key="run-1/link/pwned.txt", Body=b"forged")
    outside = tmp_path / "outside"
    outside.mkdir()
    destination = tmp_path / "dest"
    destination.mkdir()
    (destination / "link").symlink_to(outside, target_is_directory=True)
    run_cli(cli_factory, ["transfer", "s3://datasets/run-1/", str(destination)])
    assert not (outside / "pwned.txt").exists(), "the download wrote outside its destination through a symlink"


def test_a_transfer_to_an_instance_refuses_keys_that_climb_out_of_its_path(
    cli_factory: ClientFactory, tmp_path: Path
) -> None:
    """The local download refuses keys with `..`; s3 -> instance does not look at the keys at all. The transfer
    document prefers s5cmd, which joins `../` keys outside the destination (peak/s5cmd#872), as root."""
    sent: list[dict[str, Any]] = []
    cli_factory.register("provide-client-params.ssm.SendCommand", lambda params, **_: sent.append(dict(params)))
    s3 = cli_factory.client("s3", REGION)
    s3.create_bucket(Bucket="datasets")
    s3.put_object(Bucket="datasets", Key="run-1/a.txt", Body=b"a")
    s3.put_object(Bucket="datasets", Key="run-1/../../../../etc/cron.d/pwn", Body=b"* * * * * root id\n")
    instance_id = cli_factory.ec2(REGION).run_instances(ImageId="ami-0abcdef1234567890", MinCount=1, MaxCount=1)[
        "Instances"
    ][0]["InstanceId"]
    run_cli(cli_factory, ["transfer", "s3://datasets/run-1/", f"instance:{instance_id}:/data/run-1/"])
    assert sent == [], "a prefix holding a key that climbs out of /data/run-1/ was sent to the instance"


# ------------------------------------------------------------------------------------------------ pre-warm


def _volume(account: Account, labelled: Mapping[str, str]) -> str:  # noqa: F811
    return str(
        account.factory.ec2(REGION).create_volume(
            Size=100,
            AvailabilityZone=f"{REGION}a",
            TagSpecifications=[
                {"ResourceType": "volume", "Tags": [{"Key": k, "Value": v} for k, v in labelled.items()]}
            ],
        )["VolumeId"]
    )


def test_prewarm_refuses_a_prefix_whose_keys_climb_out_of_the_mount_point(account: Account) -> None:  # noqa: F811
    """The plan lists every key under the prefix (to size it) but never checks them: `imagenet/../../../etc/x`
    reaches `s5cmd sync` on the worker (or on the caller's own in-scope instance), run as root."""
    s3 = account.factory.client("s3", REGION)
    s3.put_object(Bucket="datasets", Key="imagenet/../../../etc/cron.d/pwn", Body=b"* * * * * root id\n")
    result = execute(account)
    assert result["status"] == "FAILED" and account.commands == [], "the workflow ran the document on that prefix"


# ------------------------------------------------------------------------------------------------ pre-warm IAM


def _denied(statement: Mapping[str, Any], action: str, resource_tags: Mapping[str, str]) -> bool:
    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
    if statement["Effect"] != "Deny" or action not in actions:
        return False
    lowered = {k.lower(): v for k, v in resource_tags.items()}
    for operator, block in statement.get("Condition", {}).items():
        for key, wanted in block.items():
            have = lowered.get(key.split("/", 1)[1].lower()) if key.startswith("aws:ResourceTag/") else None
            allowed = wanted if isinstance(wanted, list) else [wanted]
            if operator == "Null" and (have is None) != (wanted == "true"):
                return False
            if operator == "StringNotEqualsIgnoreCase" and have is not None and have.lower() in allowed:
                return False
            if operator == "StringNotEquals" and have in allowed:
                return False
    return True


def test_a_forced_prewarm_of_a_persistent_volume_may_detach_it_again(tmp_path: Path) -> None:
    """`force` now reaches the plan, which then lets a trainctl:persistent volume through; but the workflow's role
    carries NeverDestroyPersistent, which denies ec2:DetachVolume on it. On AWS (moto enforces no IAM): Attach and
    the copy succeed, Detach is AccessDenied, compensation's Detach too, and the worker is terminated with the
    persistent volume still attached (or, with instance_id, the volume stays on the caller's instance)."""
    from tests.infra.conftest import synth

    template = synth(tmp_path / "out", {"trainctl": {"dry_run": True, "regions": [REGION]}})
    roles = [
        r["Properties"]["PolicyDocument"]["Statement"]
        for lid, r in template["Resources"].items()
        if r["Type"] == "AWS::IAM::Policy" and lid.startswith("PrewarmStateMachineRoleDefaultPolicy")
    ]
    assert roles, "no state machine role policy found"
    persistent_volume = {tags.MANAGED: "true", tags.PERSISTENT: "true"}
    blocking = [s.get("Sid") for s in roles[0] if _denied(s, "ec2:DetachVolume", persistent_volume)]
    assert blocking == [], f"the pre-warm role may attach a forced persistent volume but never detach it: {blocking}"
    json.dumps(blocking)


def test_prewarm_refuses_another_owners_instance(account: Account) -> None:  # noqa: F811
    """check_given_instance asks zone, running and scope, never whose: mallory names bob's in-scope training
    instance, and the workflow attaches a volume to it and runs the pre-warm document there as root (mkfs of an
    unformatted device, mount under /mnt, s5cmd sync of mallory's prefix with bob's instance profile)."""
    bobs_instance = account.factory.ec2(REGION).run_instances(
        ImageId="ami-0abcdef1234567890",
        MinCount=1,
        MaxCount=1,
        Placement={"AvailabilityZone": f"{REGION}a"},
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [{"Key": tags.MANAGED, "Value": "true"}, {"Key": tags.OWNER, "Value": "bob"}],
            }
        ],
    )["Instances"][0]["InstanceId"]
    result = execute(account, instance_id=bobs_instance, owner="mallory")
    assert result["status"] == "FAILED" and account.commands == [], "the document ran on bob's instance for mallory"
