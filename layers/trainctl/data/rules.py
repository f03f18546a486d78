"""The data plan: pure arithmetic over the dated table, one estimate per data-loading strategy.

For each strategy: how long until the first epoch can start, how long one epoch's reads take at least, what the
data path costs, and the GPU-hours the fleet spends waiting on data, priced at the instance's hourly price.
Every estimate carries its assumptions in words, so that a person can redo the sums by hand.

Conventions: sizes in bytes; GB = 10^9 bytes (S3 and instance store), GiB = 2^30 (EBS), MiB/s = 2^20 bytes a
second. The fleet trains data-parallel: each epoch every instance reads its 1/count share, and a strategy that
copies data next to the instances gives each instance the whole dataset (the sampler reshuffles every epoch).
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from trainctl.data.table import DataTable, InstanceFacts

GB = 10**9
GIB = 2**30
MIB = 2**20
HOURS_PER_MONTH = 730  # AWS bills monthly prices by the hour on this basis
# The slowest measured rate the plan learns from, MiB/s: trainctl writes a measured rate to one decimal, so a
# smaller figure is not one of its own measurements (and a rate near zero would make any estimate endless).
LEAST_LEARNED_MIB_S = 0.1

Strategy = Literal[
    "streaming", "local-cache", "prewarmed-ebs", "snapshot-rate", "fast-restore", "fsx-lustre", "s3-express"
]
STRATEGIES: tuple[Strategy, ...] = (
    "streaming",
    "local-cache",
    "prewarmed-ebs",
    "snapshot-rate",
    "fast-restore",
    "fsx-lustre",
    "s3-express",
)
LABELS: dict[Strategy, str] = {
    "streaming": "stream from S3",
    "local-cache": "local NVMe cache",
    "prewarmed-ebs": "pre-warmed EBS from S3",
    "snapshot-rate": "EBS snapshot, init rate",
    "fast-restore": "EBS, fast snap restore",
    "fsx-lustre": "FSx for Lustre",
    "s3-express": "S3 Express One Zone",
}


class PlanRefused(ValueError):
    """Input the plan cannot work from: said in one line before anything is asked of AWS."""


@dataclass(frozen=True, slots=True)
class Dataset:
    size_bytes: int
    objects: int
    prefixes: int = 1  # top-level prefixes under the dataset: S3's request rate is per prefix
    uri: str = ""  # where it was measured, or "" when given by --size and --objects

    @property
    def mean_object_bytes(self) -> float:
        return self.size_bytes / self.objects


@dataclass(frozen=True, slots=True)
class Fleet:
    instance_type: str
    count: int
    zone: str
    region: str
    hourly_usd: float  # one instance, on demand
    facts: InstanceFacts
    accelerators: float  # GPUs or chips per instance, for GPU-hours


@dataclass(frozen=True, slots=True)
class EbsPrices:
    """From the price file: gp3 storage and throughput, standard snapshots; None where it has none."""

    gp3_gb_month: float | None
    gp3_throughput_mibps_month: float | None
    snapshot_gb_month: float | None


@dataclass(frozen=True, slots=True)
class PastPrewarms:
    """What past runs in this account measured, MiB/s: pre-warms (trainctl:prewarmed-rate on their volumes) or
    local-cache fills (trainctl:cache-rate on their instances)."""

    rates_mib_s: tuple[float, ...] = ()

    @property
    def usable_mib_s(self) -> tuple[float, ...]:
        """The rates a real run could have measured: finite, and at least LEAST_LEARNED_MIB_S."""
        return tuple(r for r in self.rates_mib_s if math.isfinite(r) and r >= LEAST_LEARNED_MIB_S)

    @property
    def median_mib_s(self) -> float | None:
        usable = self.usable_mib_s
        return statistics.median(usable) if usable else None


@dataclass
class Estimate:
    strategy: Strategy
    available: bool
    first_epoch_seconds: float | None = None
    epoch_read_seconds: float | None = None
    data_path_usd: float | None = None  # None: a price the table or the price file does not have
    waiting_seconds: float | None = None
    waiting_gpu_hours: float | None = None
    waiting_usd: float | None = None
    assumptions: list[str] = field(default_factory=list)
    unpriced: list[str] = field(default_factory=list)
    why_not: str = ""

    @property
    def label(self) -> str:
        return LABELS[self.strategy]

    @property
    def total_usd(self) -> float | None:
        if self.data_path_usd is None or self.waiting_usd is None:
            return None
        return self.data_path_usd + self.waiting_usd

    def to_json(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "label": self.label,
            "available": self.available,
            "why_not": self.why_not or None,
            "first_epoch_seconds": _rounded(self.first_epoch_seconds),
            "epoch_read_seconds": _rounded(self.epoch_read_seconds),
            "data_path_usd": _rounded(self.data_path_usd, 4),
            "waiting_seconds": _rounded(self.waiting_seconds),
            "waiting_gpu_hours": _rounded(self.waiting_gpu_hours, 3),
            "waiting_usd": _rounded(self.waiting_usd, 4),
            "total_usd": _rounded(self.total_usd, 4),
            "unpriced": self.unpriced,
            "assumptions": self.assumptions,
        }


def _rounded(value: float | None, digits: int = 1) -> float | None:
    """A figure for JSON: infinity or NaN is no number (strict JSON has none), so it is None, as unknown."""
    return None if value is None or not math.isfinite(value) else round(value, digits)


def rate_text(mib_s: float) -> str:
    """MiB/s in words that never round a measured rate down to nothing."""
    return f"{mib_s:,.0f}" if mib_s >= 10 else f"{mib_s:.2g}"


@dataclass
class Plan:
    dataset: Dataset
    fleet: Fleet
    epochs: int
    estimates: list[Estimate]
    recommended: Strategy
    why: str
    table_as_of: str
    gaps: list[str]

    def estimate(self, strategy: Strategy) -> Estimate:
        return next(e for e in self.estimates if e.strategy == strategy)

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": {
                "uri": self.dataset.uri or None,
                "size_bytes": self.dataset.size_bytes,
                "objects": self.dataset.objects,
                "prefixes": self.dataset.prefixes,
            },
            "fleet": {
                "instance_type": self.fleet.instance_type,
                "count": self.fleet.count,
                "zone": self.fleet.zone,
                "hourly_usd": self.fleet.hourly_usd,
                "vcpus": self.fleet.facts.vcpus,
                "network_gbps": self.fleet.facts.network_gbps,
                "instance_store_gb": self.fleet.facts.instance_store_gb,
            },
            "epochs": self.epochs,
            "recommended": self.recommended,
            "why": self.why,
            "strategies": [e.to_json() for e in self.estimates],
            "table_as_of": self.table_as_of,
            "gaps": self.gaps,
        }


# ------------------------------------------------------------------------------------------------ checks


def check_inputs(*, size_bytes: int, objects: int, epochs: int, count: int) -> None:
    """The plan's own refusals, before anything is measured or priced."""
    if size_bytes <= 0:
        raise PlanRefused("the dataset's size must be more than zero bytes")
    if objects <= 0:
        raise PlanRefused("the dataset must hold at least one object")
    if epochs < 1:
        raise PlanRefused(f"--epochs {epochs}: a plan needs at least one epoch")
    if count < 1:
        raise PlanRefused(f"--count {count}: a fleet has at least one instance")


ZONE = re.compile(r"^(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)(?:-[a-z]+-\d)?[a-z]$")


def region_of_zone(zone: str) -> str | None:
    """us-east-1a -> us-east-1; a Local Zone (us-west-2-lax-1a) -> its parent region; None for no zone name."""
    match = ZONE.match(zone)
    return match["region"] if match else None


# ------------------------------------------------------------------------------------------------ arithmetic


def _requests_seconds(requests: float, dataset: Dataset, table: DataTable) -> float:
    """S3 serves 5,500 GETs a second per prefix: the floor on reading many small objects."""
    return requests / (table.value("s3_get_per_second_per_prefix") * dataset.prefixes)


def _request_assumption(dataset: Dataset, table: DataTable) -> str:
    rate = table.value("s3_get_per_second_per_prefix")
    return (
        f"S3 serves {rate:,.0f} GETs a second per prefix; the dataset's {dataset.prefixes} top-level "
        f"prefix(es) are taken as partitioned apart, so {rate * dataset.prefixes:,.0f} GETs a second in all"
    )


def _list_usd(dataset: Dataset, fleet: Fleet, table: DataTable) -> float | None:
    per_page = table.value("s3_objects_per_list_page")
    price = table.price("s3_list_usd_per_1000", fleet.region)
    if price is None:
        return None
    return fleet.count * math.ceil(dataset.objects / per_page) * price / 1000


def _gets_usd(gets: float, fleet: Fleet, table: DataTable) -> float | None:
    price = table.price("s3_get_usd_per_1000", fleet.region)
    return None if price is None else gets * price / 1000


def _sum(*parts: float | None) -> float | None:
    return None if any(p is None for p in parts) else sum(p for p in parts if p is not None)


def _ebs_volume_usd(gib: float, hours: float, prices: EbsPrices, table: DataTable, count: int) -> float | None:
    """gp3 storage plus throughput above the included 125 MiB/s, for `hours`, on `count` volumes."""
    if prices.gp3_gb_month is None or prices.gp3_throughput_mibps_month is None:
        return None
    extra = table.value("gp3_throughput_mib_s") - table.value("gp3_included_throughput_mib_s")
    monthly = gib * prices.gp3_gb_month + extra * prices.gp3_throughput_mibps_month
    return count * monthly * hours / HOURS_PER_MONTH


def _burst_then_baseline(size: float, peak: float, baseline: float, burst_seconds: float) -> float:
    """Seconds to move `size` bytes at `peak` for the first `burst_seconds`, at `baseline` after."""
    if size <= peak * burst_seconds:
        return size / peak
    return burst_seconds + (size - peak * burst_seconds) / baseline


def _ebs_reads_seconds(size: float, fleet: Fleet, table: DataTable) -> float:
    """One instance reading `size` bytes from its gp3 volume: the volume's throughput or the instance's EBS
    bandwidth, whichever is lower; a small type holds its EBS maximum 30 minutes, then its baseline."""
    volume = table.value("gp3_throughput_mib_s") * MIB
    peak = min(volume, fleet.facts.ebs_bytes_per_second)
    baseline = min(volume, fleet.facts.ebs_baseline_bytes_per_second)
    return _burst_then_baseline(size, peak, baseline, table.value("ebs_burst_minutes") * 60)


def _ebs_read_words(fleet: Fleet, epochs: int, table: DataTable) -> str:
    facts = fleet.facts
    words = f"epochs read at min(the volume's {table.value('gp3_throughput_mib_s'):,.0f} MiB/s, the instance's "
    if facts.ebs_baseline_gbps >= facts.ebs_gbps:
        return words + f"{facts.ebs_gbps:g} Gbps EBS bandwidth)"
    return words + (
        f"EBS bandwidth): {facts.ebs_gbps:g} Gbps for the first {table.value('ebs_burst_minutes'):g} minutes of "
        f"reads (AWS: at least once every 24 hours), its {facts.ebs_baseline_gbps:g} Gbps baseline after; "
        f"the per-epoch figure is the mean of {epochs} epoch(s)"
    )


def _network_seconds(size: float, fleet: Fleet, table: DataTable, share: float = 1.0) -> float:
    """One instance moving `size` bytes over its network: an "up to" type bursts a few minutes, then holds its
    baseline."""
    peak = fleet.facts.network_bytes_per_second * share
    baseline = fleet.facts.network_baseline_bytes_per_second * share
    return _burst_then_baseline(size, peak, baseline, table.value("network_burst_minutes") * 60)


def _network_words(fleet: Fleet, table: DataTable) -> str:
    facts = fleet.facts
    if facts.network_baseline_gbps >= facts.network_gbps:
        return f"{facts.network_gbps:g} Gbps"
    return (
        f"up to {facts.network_gbps:g} Gbps for {table.value('network_burst_minutes'):g} minutes, the low end of "
        f"AWS's 5 to 60, then its {facts.network_baseline_gbps:g} Gbps baseline"
    )


def _finish(estimate: Estimate, fleet: Fleet, epochs: int) -> Estimate:
    """Waiting: the time to the first epoch plus every epoch's reads, as if no read overlapped compute."""
    first = estimate.first_epoch_seconds or 0.0
    reads = (estimate.epoch_read_seconds or 0.0) * epochs
    estimate.waiting_seconds = first + reads
    hours = estimate.waiting_seconds / 3600
    estimate.waiting_gpu_hours = hours * fleet.count * fleet.accelerators
    estimate.waiting_usd = hours * fleet.count * fleet.hourly_usd
    return estimate


def streaming(dataset: Dataset, fleet: Fleet, epochs: int, table: DataTable) -> Estimate:
    share = table.value("stream_share_of_network")
    # The burst is spent once, on the run's first reads: the per-epoch figure is the mean of the run's epochs.
    bandwidth = _network_seconds(epochs * dataset.size_bytes / fleet.count, fleet, table, share) / epochs
    requests = _requests_seconds(dataset.objects, dataset, table)
    gets = _gets_usd(epochs * dataset.objects, fleet, table)
    estimate = Estimate(
        "streaming",
        True,
        first_epoch_seconds=0.0,
        epoch_read_seconds=max(bandwidth, requests),
        data_path_usd=_sum(gets, _list_usd(dataset, fleet, table)),
        assumptions=[
            "reads start at once; each epoch every instance reads its share over the network "
            f"({_network_words(fleet, table)}"
            f"{'; the per-epoch figure is the mean of the run' if fleet.facts.network_up_to else ''})",
            _request_assumption(dataset, table),
            "one GET per object per epoch; S3 to EC2 in the same region moves no billed bytes",
        ],
    )
    return _finish(estimate, fleet, epochs)


# What fills the cache: the trainctl-local-cache SSM document, through the command line.
CACHE_FILL_COMMAND = "trainctl transfer s3://BUCKET/PREFIX/ instance:INSTANCE_ID:/opt/dlami/nvme/FOLDER/ --to-cache"


def local_cache(
    dataset: Dataset, fleet: Fleet, epochs: int, table: DataTable, past: PastPrewarms | None = None
) -> Estimate:
    store = fleet.facts.instance_store_gb * GB
    if store < dataset.size_bytes:
        why = (
            f"{fleet.instance_type} has {fleet.facts.instance_store_gb:,.0f} GB of instance store"
            if store
            else f"{fleet.instance_type} has no instance store"
        )
        return Estimate("local-cache", False, why_not=f"{why}: the dataset does not fit")
    share = table.value("s5cmd_share_of_network")
    learned = past.median_mib_s if past is not None else None
    # A fill copies over the instance's network: a learned rate never makes it faster than the network carries.
    network = _network_seconds(dataset.size_bytes, fleet, table, share)
    copy = network if learned is None else max(dataset.size_bytes / (learned * MIB), network)
    fill = max(copy, _requests_seconds(fleet.count * dataset.objects, dataset, table))
    if learned is not None and past is not None:
        held = copy == network and dataset.size_bytes / (learned * MIB) < network
        rate_words = (
            f"at {rate_text(learned)} MiB/s, the median of {len(past.usable_mib_s)} cache fill(s) measured in this "
            "account"
            + (f", held to what the instance's network carries ({_network_words(fleet, table)})" if held else "")
        )
    else:
        rate_words = f"with s5cmd at the network's rate (an assumption; {_network_words(fleet, table)})"
    estimate = Estimate(
        "local-cache",
        True,
        first_epoch_seconds=fill,
        epoch_read_seconds=0.0,
        data_path_usd=_sum(_gets_usd(fleet.count * dataset.objects, fleet, table), _list_usd(dataset, fleet, table)),
        assumptions=[
            f"each instance fills its instance store with the whole dataset once, {rate_words}, all instances "
            "at once against S3's request rate",
            _request_assumption(dataset, table),
            "reads from the instance store are counted as free: it is local NVMe and no published read rate "
            "per device was found; the cache is lost when the instance stops",
            f"filled by `{CACHE_FILL_COMMAND}` (idempotent: a second fill copies only what changed)",
        ],
    )
    return _finish(estimate, fleet, epochs)


def prewarmed_ebs(
    dataset: Dataset, fleet: Fleet, epochs: int, table: DataTable, prices: EbsPrices, past: PastPrewarms
) -> Estimate:
    provisioned = table.value("gp3_throughput_mib_s")
    learned = past.median_mib_s
    # The volume is written no faster than its provisioned throughput (itself within gp3's maximum): a learned
    # rate above it is held to it.
    held = learned is not None and learned > provisioned
    copy_rate = (min(learned, provisioned) if learned is not None else provisioned) * MIB
    copy = max(dataset.size_bytes / copy_rate, _requests_seconds(fleet.count * dataset.objects, dataset, table))
    # The worker fills the volume, not the training instance: its EBS burst is still whole for the epochs.
    epoch = _ebs_reads_seconds(epochs * dataset.size_bytes / fleet.count, fleet, table) / epochs
    gib = math.ceil(dataset.size_bytes / GIB)
    hours = (copy + epochs * epoch) / 3600
    if learned is None:
        rate_words = f"the volume's provisioned {provisioned:,.0f} MiB/s (no past pre-warm measured in this account)"
    elif held:
        rate_words = (
            f"the volume's provisioned {provisioned:,.0f} MiB/s: the median of {len(past.usable_mib_s)} pre-warm(s) "
            f"measured in this account, {rate_text(learned)} MiB/s, is more than the volume takes"
        )
    else:
        rate_words = (
            f"{rate_text(learned)} MiB/s, the median of {len(past.usable_mib_s)} pre-warm(s) measured in this account"
        )
    estimate = Estimate(
        "prewarmed-ebs",
        True,
        first_epoch_seconds=copy,
        epoch_read_seconds=epoch,
        data_path_usd=_sum(
            _ebs_volume_usd(gib, hours, prices, table, fleet.count),
            _gets_usd(fleet.count * dataset.objects, fleet, table),
            _list_usd(dataset, fleet, table),
        ),
        assumptions=[
            f"one gp3 volume of {gib:,} GiB per instance (a volume attaches to one instance), each filled "
            f"from S3 by a worker at {rate_words}",
            _ebs_read_words(fleet, epochs, table),
            "the volumes are priced for the hours until the last epoch's reads end (a lower bound); "
            "the worker instance is not counted",
        ],
    )
    if prices.gp3_gb_month is None:
        estimate.unpriced.append(f"gp3 in {fleet.region} (price file)")
    return _finish(estimate, fleet, epochs)


def _snapshot_usd(gib: float, hours: float, prices: EbsPrices) -> float | None:
    if prices.snapshot_gb_month is None:
        return None
    return gib * prices.snapshot_gb_month * hours / HOURS_PER_MONTH


def snapshot_rate(dataset: Dataset, fleet: Fleet, epochs: int, table: DataTable, prices: EbsPrices) -> Estimate:
    rate = table.value("ebs_initialization_rate_mib_s")
    gib = math.ceil(dataset.size_bytes / GIB)
    initialise = gib * GIB / (rate * MIB)
    epoch = _ebs_reads_seconds(epochs * dataset.size_bytes / fleet.count, fleet, table) / epochs
    hours = (initialise + epochs * epoch) / 3600
    estimate = Estimate(
        "snapshot-rate",
        True,
        first_epoch_seconds=initialise,
        epoch_read_seconds=epoch,
        data_path_usd=_sum(_ebs_volume_usd(gib, hours, prices, table, fleet.count), _snapshot_usd(gib, hours, prices)),
        assumptions=[
            "a snapshot of the dataset exists (a first pre-warm from S3 makes one); each instance's volume is "
            f"restored from it with a provisioned initialisation rate of {rate:g} MiB/s, all at once",
            "the first epoch waits until the volume is initialised (blocks read earlier come at the lazy-load pace)",
            _ebs_read_words(fleet, epochs, table),
        ],
    )
    if table.price("ebs_initialization_usd_per_gib", fleet.region) is None:
        estimate.unpriced.append("the provisioned initialisation rate (no published price found)")
    return _finish(estimate, fleet, epochs)


def fast_restore(dataset: Dataset, fleet: Fleet, epochs: int, table: DataTable, prices: EbsPrices) -> Estimate:
    gib = math.ceil(dataset.size_bytes / GIB)
    if gib > table.value("fsr_max_snapshot_gib"):
        return Estimate("fast-restore", False, why_not="fast snapshot restore takes snapshots of 16 TiB or less")
    # The snapshot optimises first (60 minutes per TiB), then its credit bucket, empty when FSR is enabled, earns
    # min(10, 1,024 / GiB) credits an hour; each volume spends one, made as soon as its credit is earned.
    optimise = gib / 1024 * table.value("fsr_optimise_minutes_per_tib") * 60
    per_hour = min(table.value("fsr_credit_cap"), table.value("fsr_credit_numerator_gib") / gib)
    made = [optimise + volume / per_hour * 3600 for volume in range(1, fleet.count + 1)]
    last = made[-1]
    epoch = _ebs_reads_seconds(epochs * dataset.size_bytes / fleet.count, fleet, table) / epochs
    end = last + epochs * epoch
    # Each volume is priced from its making until the last epoch's reads end; the snapshot for the whole time.
    volume_hours = sum(end - at for at in made) / 3600
    dsu = table.price("fsr_usd_per_dsu_hour", fleet.region)
    # Billed per minute with a one-hour minimum, from enabling (optimising included) until the last volume is made.
    fsr_usd = None if dsu is None else dsu * max(1.0, math.ceil(last / 60) / 60)
    estimate = Estimate(
        "fast-restore",
        True,
        first_epoch_seconds=last,
        epoch_read_seconds=epoch,
        data_path_usd=_sum(
            fsr_usd,
            _ebs_volume_usd(gib, volume_hours, prices, table, 1),
            _snapshot_usd(gib, end / 3600, prices),
        ),
        assumptions=[
            f"a snapshot of the dataset exists; fast snapshot restore is enabled in {fleet.zone} and the {gib:,} GiB "
            f"snapshot optimises first, {table.value('fsr_optimise_minutes_per_tib'):g} minutes per TiB "
            f"({optimise / 3600:.3g} h); only then does the plan count volume creation credits",
            f"the snapshot's credit bucket starts empty and earns {per_hour:.3g} credit(s) an hour (at most "
            f"{max(1.0, per_hour):.3g} held): one credit per volume, so the {fleet.count} volume(s) are fully "
            f"initialised {(last - optimise) / 3600:.3g} h after optimising ends, the first epoch waits for the last",
            "fast snapshot restore is billed from enabling until the last volume is made, one hour at least; each "
            "volume from its making",
            _ebs_read_words(fleet, epochs, table),
        ],
    )
    if dsu is None:
        estimate.unpriced.append(f"fast snapshot restore in {fleet.region} (the table has us-east-1's price)")
    return _finish(estimate, fleet, epochs)


def fsx_lustre(dataset: Dataset, fleet: Fleet, epochs: int, table: DataTable) -> Estimate:
    first = table.value("fsx_lustre_first_gib")
    step = table.value("fsx_lustre_step_gib")
    needed = dataset.size_bytes / GIB
    capacity = first if needed <= first else math.ceil(needed / step) * step
    per_tib = table.value("fsx_lustre_mb_s_per_tib")
    throughput = capacity / 1024 * per_tib * 1e6
    # The file system's throughput bounds the fleet; each instance's network (burst, then baseline) bounds its share.
    reads = max(
        epochs * dataset.size_bytes / throughput,
        _network_seconds(epochs * dataset.size_bytes / fleet.count, fleet, table),
    )
    epoch = reads / epochs
    price = table.price("fsx_lustre_usd_per_gb_month", fleet.region)
    hours = epochs * epoch / 3600
    estimate = Estimate(
        "fsx-lustre",
        True,
        first_epoch_seconds=0.0,
        epoch_read_seconds=epoch,
        data_path_usd=None if price is None else capacity * price * hours / HOURS_PER_MONTH,
        assumptions=[
            f"one PERSISTENT_2 SSD file system of {capacity:,.0f} GiB at {per_tib:g} MB/s per TiB "
            f"({throughput / 1e6:,.0f} MB/s in all), linked to the bucket and shared by the fleet",
            "files load from S3 on first read: the first epoch starts at once; the file system's creation "
            "time is not counted",
            f"each instance reads its share over its network ({_network_words(fleet, table)})",
        ],
    )
    if price is None:
        estimate.unpriced.append("FSx for Lustre (no price in the table)")
    return _finish(estimate, fleet, epochs)


def s3_express(dataset: Dataset, fleet: Fleet, epochs: int, table: DataTable) -> Estimate:
    share = dataset.size_bytes / fleet.count
    # One network carries the copy and then the epochs: the burst goes to the copy first.
    copy_network = _network_seconds(share, fleet, table)
    epoch = (_network_seconds(share * (1 + epochs), fleet, table) - copy_network) / epochs
    copy = max(copy_network, _requests_seconds(dataset.objects, dataset, table))
    hours = (copy + epochs * epoch) / 3600
    gigabytes = dataset.size_bytes / GB
    region = fleet.region
    storage = table.price("s3express_storage_usd_per_gb_month", region)
    put = table.price("s3express_put_usd_per_1000", region)
    upload = table.price("s3express_upload_usd_per_gb", region)
    get = table.price("s3express_get_usd_per_1000", region)
    retrieval = table.price("s3express_retrieval_usd_per_gb", region)
    parts = (storage, put, upload, get, retrieval)
    usd = None
    if all(p is not None for p in parts):
        assert storage is not None and put is not None and upload is not None and get is not None
        assert retrieval is not None
        usd = _sum(
            gigabytes * storage * hours / HOURS_PER_MONTH,
            dataset.objects * put / 1000 + gigabytes * upload,
            epochs * (dataset.objects * get / 1000 + gigabytes * retrieval),
            _gets_usd(dataset.objects, fleet, table),
        )
    estimate = Estimate(
        "s3-express",
        True,
        first_epoch_seconds=copy,
        epoch_read_seconds=epoch,
        data_path_usd=usd,
        assumptions=[
            f"the fleet copies the dataset once into a directory bucket in {fleet.zone}, at its network's rate "
            f"({_network_words(fleet, table)})",
            "S3 Express One Zone's request rate is not the bound (hundreds of thousands a second): epochs read "
            "at the network's rate",
            "stored for the hours until the last epoch's reads end (a lower bound)",
        ],
    )
    if usd is None:
        estimate.unpriced.append(f"S3 Express One Zone in {region} (the table has us-east-1's prices)")
    return _finish(estimate, fleet, epochs)


def _money(value: float | None) -> str:
    if value is not None and not math.isfinite(value):
        return "an unbounded sum"
    amount = value or 0.0
    return f"${amount:,.2f}" if amount >= 0.01 or amount == 0 else f"${amount:.6f}"


def recommend(estimates: Sequence[Estimate]) -> tuple[Strategy, str]:
    """The strategy with the lowest data path plus waiting; a tie goes to the simpler one (earlier in STRATEGIES).

    One whose cost cannot be priced is recommended only if nothing priced is available."""
    priced = [e for e in estimates if e.available and e.total_usd is not None and math.isfinite(e.total_usd)]
    if not priced:
        chosen = next(e for e in estimates if e.available)
        return chosen.strategy, f"{chosen.label}: nothing else could be priced"
    # Rounded to a millionth of a cent: float noise is no reason to prefer one strategy.
    ranked = sorted(priced, key=lambda e: (round(e.total_usd or 0.0, 8), STRATEGIES.index(e.strategy)))
    best = ranked[0]
    why = f"{best.label}: {_money(best.total_usd)} of data path and waiting"
    if len(ranked) > 1:
        runner = ranked[1]
        why += f", against {_money(runner.total_usd)} for {runner.label}, the next"
    return best.strategy, why


def plan(
    dataset: Dataset,
    fleet: Fleet,
    epochs: int,
    table: DataTable,
    prices: EbsPrices,
    past: PastPrewarms | None = None,
    past_fills: PastPrewarms | None = None,
) -> Plan:
    check_inputs(size_bytes=dataset.size_bytes, objects=dataset.objects, epochs=epochs, count=fleet.count)
    past = past or PastPrewarms()
    estimates = [
        streaming(dataset, fleet, epochs, table),
        local_cache(dataset, fleet, epochs, table, past_fills),
        prewarmed_ebs(dataset, fleet, epochs, table, prices, past),
        snapshot_rate(dataset, fleet, epochs, table, prices),
        fast_restore(dataset, fleet, epochs, table, prices),
        fsx_lustre(dataset, fleet, epochs, table),
        s3_express(dataset, fleet, epochs, table),
    ]
    recommended, why = recommend(estimates)
    gaps = [f"{g.name}: {g.gap}" for g in table.gaps()]
    return Plan(dataset, fleet, epochs, estimates, recommended, why, table.as_of, gaps)
