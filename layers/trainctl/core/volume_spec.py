"""What EC2's CreateVolume accepts, checked before it is asked: type, size, IOPS, throughput, zone, initialisation
rate. Each check returns the refusal in words, or None; none of them calls anything.

Sources (AWS's published documentation, read for issue 26 item 5 and issue 27):
- EC2 API Reference, CreateVolume (docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateVolume.html): the
  size of each type, the IOPS range of gp3, io1 and io2, gp3's throughput range, and VolumeInitializationRate
  (100 - 300 MiB/s, only for a volume created from a snapshot).
- Amazon EBS User Guide, General Purpose SSD volumes (docs.aws.amazon.com/ebs/latest/userguide/general-purpose.html):
  gp3 IOPS above the 3,000 baseline at up to 500 IOPS per GiB; throughput at up to 0.25 MiB/s per provisioned IOPS.
- Amazon EBS User Guide, Provisioned IOPS SSD volumes (docs.aws.amazon.com/ebs/latest/userguide/provisioned-iops.html):
  at most 50 IOPS per GiB for io1, 1,000 per GiB for io2 (Block Express, which every new io2 volume is: CreateVolume's
  io2 sizes and IOPS above are Block Express's).
- EC2 API Reference, AvailabilityZone, and the Local Zones User Guide: an Availability Zone is its Region's code and
  a letter (us-east-1a); a Local Zone or Wavelength Zone is its parent Region's code, a dash and a location
  (us-west-2-lax-1a, us-east-1-wl1-bos-wlz-1).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from trainctl.core.text import one_line

VOLUME_TYPES = ("gp3", "gp2", "io1", "io2", "st1", "sc1")


@dataclass(frozen=True)
class TypeLimits:
    """One volume type's documented limits; `iops` and `throughput` are None where the type takes none."""

    sizes_gib: tuple[int, int]
    iops: tuple[int, int] | None = None
    iops_per_gib: int | None = None
    iops_required: bool = False
    throughput_mibps: tuple[int, int] | None = None


LIMITS = {
    "gp2": TypeLimits(sizes_gib=(1, 16_384)),
    "gp3": TypeLimits(sizes_gib=(1, 65_536), iops=(3_000, 80_000), iops_per_gib=500, throughput_mibps=(125, 2_000)),
    "io1": TypeLimits(sizes_gib=(4, 16_384), iops=(100, 64_000), iops_per_gib=50, iops_required=True),
    "io2": TypeLimits(sizes_gib=(4, 65_536), iops=(100, 256_000), iops_per_gib=1_000, iops_required=True),
    "st1": TypeLimits(sizes_gib=(125, 16_384)),
    "sc1": TypeLimits(sizes_gib=(125, 16_384)),
}
GP3_BASELINE_IOPS = 3_000  # every gp3 volume has it, whatever its size
GP3_MIBPS_PER_IOPS = 0.25
INITIALIZATION_RATE_MIBPS = (100, 300)

# The Region's code (as --region is checked), then a letter, or a dash and a Local Zone or Wavelength location.
_ZONE = re.compile(r"(?P<region>[a-z]{2}(?:-[a-z]+)+-\d{1,2})(?P<place>[a-z]|-[a-z0-9]+(?:-[a-z0-9]+)*)\Z", re.ASCII)


def _n(value: int) -> str:
    return f"{value:,}"


def type_problem(volume_type: str) -> str | None:
    if volume_type in LIMITS:
        return None
    return f"--type {one_line(volume_type, 40)}: use {', '.join(VOLUME_TYPES[:-1])} or {VOLUME_TYPES[-1]}"


def volume_problem(
    volume_type: str,
    size_gib: int | None,
    iops: int | None,
    throughput_mibps: int | None,
    *,
    size_said: str | None = None,
) -> str | None:
    """The first thing CreateVolume would refuse in this type, size, IOPS and throughput, in words; None if none.

    `size_gib` None (a restore before its snapshot is read) checks all that does not depend on the size;
    `size_said` says where the size came from (default: `--size N`)."""
    if (problem := type_problem(volume_type)) is not None:
        return problem
    limits = LIMITS[volume_type]
    if limits.iops_required and iops is None:
        return f"--type {volume_type} needs --iops (provisioned IOPS, e.g. --iops 3000)"
    if iops is not None and limits.iops is None:
        return f"--iops: {volume_type} volumes take no provisioned IOPS (gp3, io1 and io2 do)"
    if throughput_mibps is not None and limits.throughput_mibps is None:
        return f"--throughput: only gp3 volumes take a provisioned throughput, not {volume_type}"
    if size_gib is not None and not limits.sizes_gib[0] <= size_gib <= limits.sizes_gib[1]:
        low, high = limits.sizes_gib
        said = size_said or f"--size {_n(size_gib)}"
        return f"{said}: {volume_type} volumes are {_n(low)} to {_n(high)} GiB"
    if iops is not None and limits.iops is not None:
        low, high = limits.iops
        if not low <= iops <= high:
            floor = " (its baseline)" if volume_type == "gp3" else ""
            return f"--iops {_n(iops)}: {volume_type} takes {_n(low)}{floor} to {_n(high)} IOPS"
        if size_gib is not None and limits.iops_per_gib is not None:
            most = limits.iops_per_gib * size_gib
            if volume_type == "gp3":
                most = max(most, GP3_BASELINE_IOPS)
            if iops > most:
                return (
                    f"--iops {_n(iops)}: {volume_type} allows at most {_n(limits.iops_per_gib)} IOPS per GiB "
                    f"({_n(most)} for {_n(size_gib)} GiB)"
                )
    if throughput_mibps is not None and limits.throughput_mibps is not None:
        low, high = limits.throughput_mibps
        if not low <= throughput_mibps <= high:
            return f"--throughput {_n(throughput_mibps)}: {volume_type} takes {low} to {_n(high)} MiB/s"
        with_iops = iops if iops is not None else GP3_BASELINE_IOPS
        most = int(with_iops * GP3_MIBPS_PER_IOPS)
        if throughput_mibps > most:
            needed = math.ceil(throughput_mibps / GP3_MIBPS_PER_IOPS)
            return (
                f"--throughput {_n(throughput_mibps)}: gp3 allows at most {GP3_MIBPS_PER_IOPS} MiB/s per IOPS "
                f"({_n(most)} MiB/s at {_n(with_iops)} IOPS); pass --iops {_n(needed)} or more"
            )
    return None


def zone_region(zone: str) -> str | None:
    """The Region a zone name belongs to, by its documented form; None when it is not a zone name at all."""
    match = _ZONE.match(zone)
    return match["region"] if match else None


def zone_problem(zone: str, region: str) -> str | None:
    """A zone this region cannot have, by its name alone: not a zone name, or another Region's zone."""
    owner = zone_region(zone)
    if owner is None:
        return (
            f"--zone {one_line(zone, 64)}: not a zone name such as {region}a "
            f"(a Local Zone or Wavelength Zone is {region}-<location>)"
        )
    if owner != region:
        return (
            f"--zone {zone} is a zone of {owner}, not of {region}: pass --region {owner}, "
            f"or a zone of {region} such as {region}a"
        )
    return None


def initialization_rate_problem(rate_mibps: int | None) -> str | None:
    if rate_mibps is None:
        return None
    low, high = INITIALIZATION_RATE_MIBPS
    if not low <= rate_mibps <= high:
        return f"--initialization-rate {rate_mibps}: EBS takes {low} to {high} MiB/s"
    return None
