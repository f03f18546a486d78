"""The data plan's one call: measure the dataset (a paginated S3 listing), read what past pre-warms and cache
fills measured, price the fleet from the shipped price file, and hand it all to the pure rules.

A measured rate is a tag, and tags outside trainctl's scope are anyone's to write: only resources in scope (the
scope tag, as the sweep reads it) teach the plan, and only with a value a real fill could have measured.

A listing of millions of objects is split over the dataset's top-level prefixes and read by a few threads at
once, reporting progress as it goes; Ctrl-C stops every thread after the page in hand and nothing is created.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from trainctl.aws.clients import error_code
from trainctl.core import tags, volume_spec
from trainctl.core.accelerators import accelerators_for
from trainctl.core.errors import TrainctlError
from trainctl.core.paths import split_s3_uri
from trainctl.core.permissions import needs
from trainctl.core.text import one_line
from trainctl.cost.prices.model import PriceKey, PriceNotFound
from trainctl.cost.prices.price_file import PriceFile
from trainctl.data.rules import (
    LEAST_LEARNED_MIB_S,
    MIB,
    Dataset,
    EbsPrices,
    Fleet,
    PastPrewarms,
    PlanRefused,
    region_of_zone,
)
from trainctl.data.table import DataTable

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

PERMISSIONS = needs("s3:ListBucket", "ec2:DescribeVolumes", "ec2:DescribeInstances")
LISTING_THREADS = 16  # pages of different prefixes in flight at once; each page is one round trip
Progress = Callable[[int, int], None]  # objects and bytes listed so far


class DatasetUnreadable(TrainctlError):
    """The dataset's URI names nothing that can be listed, or holds no objects."""


@dataclass
class _Tally:
    objects: int = 0
    size: int = 0


def dataset_prefix(uri: str) -> tuple[str, str]:
    split = split_s3_uri(uri)
    if split is None:
        raise PlanRefused(
            f"{one_line(uri, 80)} is not an s3://bucket/prefix/ URI "
            "(letters, digits and _ . - / = only, no . or .. parts)"
        )
    bucket, key = split
    # A dataset is a folder: s3://b/train is what lies under train/, never train2/.
    return bucket, key if key == "" or key.endswith("/") else key + "/"


def _pages(s3: Any, bucket: str, prefix: str, delimiter: str, stop: threading.Event) -> Iterator[dict[str, Any]]:
    paginator = s3.get_paginator("list_objects_v2")
    options: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    if delimiter:
        options["Delimiter"] = delimiter
    for page in paginator.paginate(**options):
        if stop.is_set():
            return
        yield dict(page)


def measure_dataset(s3: Any, uri: str, *, progress: Progress | None = None, threads: int = LISTING_THREADS) -> Dataset:
    """Size, object count and top-level prefixes of everything under an s3:// URI."""
    bucket, prefix = dataset_prefix(uri)
    tally = _Tally()
    lock = threading.Lock()
    stop = threading.Event()

    def count(page: dict[str, Any]) -> None:
        contents = page.get("Contents", [])
        with lock:
            tally.objects += len(contents)
            tally.size += sum(int(item.get("Size", 0)) for item in contents)
            objects, size = tally.objects, tally.size
        if progress is not None:
            progress(objects, size)

    def list_under(sub: str) -> None:
        for page in _pages(s3, bucket, sub, "", stop):
            count(page)

    try:
        folders: list[str] = []
        for page in _pages(s3, bucket, prefix, "/", stop):
            count(page)
            folders += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        if folders:
            _list_all(folders, list_under, stop, threads)
    except ClientError as exc:
        code = error_code(exc)
        if code == "NoSuchBucket":
            raise DatasetUnreadable(f"{uri}: there is no bucket named {bucket}") from exc
        raise DatasetUnreadable(f"{uri}: cannot be listed ({code})") from exc
    if tally.objects == 0:
        raise DatasetUnreadable(f"{uri}: no objects under s3://{bucket}/{prefix}")
    if tally.size == 0:
        raise DatasetUnreadable(f"{uri}: its {tally.objects:,} objects hold zero bytes")
    return Dataset(tally.size, tally.objects, max(1, len(folders)), uri)


def _list_all(folders: list[str], list_under: Callable[[str], None], stop: threading.Event, threads: int) -> None:
    """Every folder listed, a few at once; the first failure or a Ctrl-C stops the rest after their page."""
    pool = ThreadPoolExecutor(max_workers=max(1, min(threads, len(folders))), thread_name_prefix="list")
    futures: list[Future[None]] = [pool.submit(list_under, folder) for folder in folders]
    try:
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in done:
            future.result()
    except BaseException:
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


# The most a pre-warm can write: the plan's pre-warmed volumes are gp3, and no gp3 volume takes more than its
# published maximum throughput (trainctl.core.volume_spec, from EC2's CreateVolume); a faster figure was not
# measured on one.
def _gp3_most_mib_s() -> float:
    bounds = volume_spec.LIMITS["gp3"].throughput_mibps
    assert bounds is not None  # gp3 is a type with a provisioned throughput
    return float(bounds[1])


GP3_MOST_MIB_S = _gp3_most_mib_s()
# A rate as trainctl writes it (digits, one decimal); Python's float() also takes spaces, underscores, other
# scripts' digits, exponents, inf and nan, none of which trainctl writes.
RATE_TEXT = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,6})?")


def _rate_of(labels: list[Any], key: str, scope_tag: str, most_mib_s: float) -> float | None:
    """A measured rate, MiB/s, from a resource's tags; None unless the resource is in scope and the value is one a
    real run could have written: a finite number from LEAST_LEARNED_MIB_S (trainctl writes rates to one decimal,
    so a smaller one is not its own) up to `most_mib_s` (what the hardware it was measured on can move)."""
    found = tags.tag_map(labels)
    if not tags.opts_in(found.get(scope_tag)):
        return None  # outside the scope anyone may write a rate tag: it teaches nothing
    text = found.get(key, "")
    if not RATE_TEXT.fullmatch(text):
        return None  # a tag anyone could write: an unreadable one teaches nothing
    rate = float(text)
    if not math.isfinite(rate) or not LEAST_LEARNED_MIB_S <= rate <= most_mib_s:
        return None
    return rate


def past_prewarms(ec2: EC2Client, *, scope_tag: str) -> PastPrewarms:
    """The rates (MiB/s) past pre-warms in this region measured, read from their in-scope volumes' tags."""
    rates: list[float] = []
    paginator = ec2.get_paginator("describe_volumes")
    for page in paginator.paginate(Filters=[{"Name": "tag-key", "Values": [tags.PREWARMED_RATE]}]):
        for volume in page.get("Volumes", []):
            rate = _rate_of(list(volume.get("Tags", [])), tags.PREWARMED_RATE, scope_tag, GP3_MOST_MIB_S)
            if rate is not None:
                rates.append(rate)
    return PastPrewarms(tuple(sorted(rates)))


def fill_ceiling_mib_s(instance_type: str, table: DataTable) -> float:
    """The fastest a cache fill on this type can copy: its network at its peak. A type the table does not know is
    held to the fastest network the table knows: no instance copies faster than its network carries."""
    facts = table.instances.get(instance_type)
    chosen = [facts] if facts is not None else list(table.instances.values())
    return max((f.network_bytes_per_second for f in chosen), default=0.0) / MIB


def past_cache_fills(ec2: EC2Client, *, scope_tag: str, table: DataTable) -> PastPrewarms:
    """The rates (MiB/s) past local-cache fills in this region measured, read from their in-scope instances'
    tags; each no faster than its instance's network."""
    rates: list[float] = []
    paginator = ec2.get_paginator("describe_instances")
    for page in paginator.paginate(Filters=[{"Name": "tag-key", "Values": [tags.CACHE_RATE]}]):
        for reservation in page.get("Reservations", []):
            for instance in reservation.get("Instances", []):
                most = fill_ceiling_mib_s(str(instance.get("InstanceType", "")), table)
                rate = _rate_of(list(instance.get("Tags", [])), tags.CACHE_RATE, scope_tag, most)
                if rate is not None:
                    rates.append(rate)
    return PastPrewarms(tuple(sorted(rates)))


def fleet_for(
    instance_type: str, count: int, zone: str, table: DataTable, prices: PriceFile, *, home_region: str | None
) -> Fleet:
    """The fleet the plan prices, or a refusal naming what is wrong: no AWS call is made here."""
    region = region_of_zone(zone)
    if region is None:
        raise PlanRefused(f"--zone {one_line(zone, 40)}: not an availability zone such as us-east-1a")
    if home_region and region != home_region:
        raise PlanRefused(f"--zone {zone} is in {region}, not in {home_region}, the region this command works in")
    try:
        hourly = prices.price(PriceKey("instance", region, instance_type)).cost(1)
    except PriceNotFound:
        raise PlanRefused(
            f"--instance-type {one_line(instance_type, 40)}: the price file of {prices.as_of} has no on-demand "
            f"price for it in {region}"
        ) from None
    facts = table.instances.get(instance_type)
    if facts is None:
        known = ", ".join(sorted(table.instances))
        raise PlanRefused(
            f"--instance-type {instance_type}: the data table has no network or instance-store figures for it "
            f"(it knows {known})"
        )
    accelerators = accelerators_for(instance_type)
    return Fleet(instance_type, count, zone, region, hourly, facts, accelerators.count if accelerators else 0.0)


def ebs_prices(prices: PriceFile, region: str) -> EbsPrices:
    def look(kind: str, name: str) -> float | None:
        try:
            return prices.price(PriceKey(kind, region, name)).cost(1)  # type: ignore[arg-type]
        except PriceNotFound:
            return None

    return EbsPrices(look("storage", "gp3"), look("throughput", "gp3"), look("snapshot", "standard"))
