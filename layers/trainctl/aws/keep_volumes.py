"""Keeping persistent volumes alive past their instance: DeleteOnTermination=false, read back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from trainctl.core.permissions import needs

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

# Clear DeleteOnTermination, then read it back.
PERMISSIONS = needs("ec2:ModifyInstanceAttribute", "ec2:DescribeInstances")


def keep_volumes(ec2: EC2Client, instance_id: str, volumes: Sequence[tuple[str, str]]) -> bool:
    """Clear DeleteOnTermination on each (volume id, device), then read it back; all or nothing."""
    try:
        ec2.modify_instance_attribute(
            InstanceId=instance_id,
            BlockDeviceMappings=[
                {"DeviceName": device, "Ebs": {"DeleteOnTermination": False}} for _, device in volumes
            ],
        )
        reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    except (ClientError, BotoCoreError):
        return False
    wanted = {volume_id for volume_id, _ in volumes}
    for reservation in reservations:
        for instance in reservation["Instances"]:
            for mapping in instance.get("BlockDeviceMappings", []):
                ebs: Any = mapping.get("Ebs", {})
                if ebs.get("VolumeId") in wanted and ebs.get("DeleteOnTermination", True):
                    return False
    return True
