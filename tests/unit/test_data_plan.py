"""`trainctl data plan`'s arithmetic against examples worked by hand.

Each expected value is computed here from the data table's and the price file's figures, with the sum written in
a comment, never copied from the plan's output. Units: GB = 10^9 bytes, GiB = 2^30, MiB = 2^20.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from typing import Any

import pytest

from trainctl.core import tags
from trainctl.cost.prices.price_file import PriceFile, load_price_file
from trainctl.data.rules import (
    Dataset,
    EbsPrices,
    Estimate,
    PastPrewarms,
    Plan,
    PlanRefused,
    check_inputs,
    plan,
    rate_text,
    recommend,
    region_of_zone,
)
from trainctl.data.run import GP3_MOST_MIB_S, _rate_of, ebs_prices, fill_ceiling_mib_s, fleet_for
from trainctl.data.table import DataTable, load_data_table


@pytest.fixture(scope="module")
def table() -> DataTable:
    return load_data_table()


@pytest.fixture(scope="module")
def prices() -> PriceFile:
    return load_price_file()


def make_plan(
    table: DataTable,
    prices: PriceFile,
    *,
    size: int,
    objects: int,
    instance_type: str,
    count: int,
    epochs: int,
    zone: str = "us-east-1a",
    past: PastPrewarms | None = None,
) -> Plan:
    fleet = fleet_for(instance_type, count, zone, table, prices, home_region=zone[:-1])
    return plan(Dataset(size, objects), fleet, epochs, table, ebs_prices(prices, fleet.region), past)


# ------------------------------------------------------------- 2 TB across 8 x p5.48xlarge for 20 epochs

TWO_TB = 2 * 10**12
TWO_MILLION = 2_000_000  # 1 MB objects under one prefix


@pytest.fixture(scope="module")
def big(table: DataTable, prices: PriceFile) -> Plan:
    return make_plan(table, prices, size=TWO_TB, objects=TWO_MILLION, instance_type="p5.48xlarge", count=8, epochs=20)


def test_big_run_figures_come_from_the_table(table: DataTable, prices: PriceFile) -> None:
    # The facts the sums below rest on, read once: if the table changes, these say which figure moved.
    facts = table.instances["p5.48xlarge"]
    assert (facts.vcpus, facts.network_gbps, facts.ebs_gbps, facts.instance_store_gb) == (192, 3200, 80, 30400)
    # No burst on a p5.48xlarge: its baselines are its maximums, so nothing below depends on a burst.
    assert (facts.network_baseline_gbps, facts.ebs_baseline_gbps) == (3200, 80)
    assert table.value("s3_get_per_second_per_prefix") == 5500
    assert table.value("ebs_initialization_rate_mib_s") == 300


def test_big_run_streaming(big: Plan, table: DataTable, prices: PriceFile) -> None:
    hourly = prices.prices[_instance_key("p5.48xlarge")].cost(1)  # $55.04 in the file of 2026-12-06
    estimate = big.estimate("streaming")
    # Network: 3,200 Gbps = 3,200e9 / 8 = 4e11 bytes/s; each of 8 instances reads 2e12 / 8 = 2.5e11 bytes an
    # epoch: 2.5e11 / 4e11 = 0.625 s. Requests: 2,000,000 GETs / 5,500 a second = 363.64 s. The larger wins.
    network = table.instances["p5.48xlarge"].network_gbps * 1e9 / 8
    epoch = max(TWO_TB / 8 / network, TWO_MILLION / table.value("s3_get_per_second_per_prefix"))
    assert epoch == pytest.approx(363.636, abs=1e-3)
    assert estimate.first_epoch_seconds == 0
    assert estimate.epoch_read_seconds == pytest.approx(epoch)
    # Waiting: 20 epochs x 363.64 s = 7,272.7 s = 2.0202 h; x 8 instances x $55.04 = $889.54;
    # GPU-hours: 2.0202 h x 8 instances x 8 H100 = 129.29.
    assert estimate.waiting_usd == pytest.approx(20 * epoch / 3600 * 8 * hourly)
    assert estimate.waiting_usd == pytest.approx(889.54, abs=0.01)
    assert estimate.waiting_gpu_hours == pytest.approx(20 * epoch / 3600 * 8 * 8)
    # Data path: 20 x 2,000,000 GETs x $0.0004 / 1,000 = $16.00; each instance lists 2,000 pages of 1,000 keys:
    # 8 x 2,000 x $0.005 / 1,000 = $0.08. In all $16.08.
    gets = 20 * TWO_MILLION * table.value("s3_get_usd_per_1000") / 1000
    lists = 8 * (TWO_MILLION / 1000) * table.value("s3_list_usd_per_1000") / 1000
    assert estimate.data_path_usd == pytest.approx(gets + lists)
    assert estimate.data_path_usd == pytest.approx(16.08)


def test_big_run_local_cache_fill_is_bound_by_requests(big: Plan, table: DataTable) -> None:
    estimate = big.estimate("local-cache")
    # 2,000 GB fit in 8 x 3,800 GB of instance store. Each instance fetches every object: 8 x 2,000,000 =
    # 16,000,000 GETs at 5,500 a second = 2,909.09 s, far above the network's 2e12 / 4e11 = 5 s.
    fill = 8 * TWO_MILLION / table.value("s3_get_per_second_per_prefix")
    assert estimate.available
    assert estimate.first_epoch_seconds == pytest.approx(fill)
    assert fill == pytest.approx(2909.09, abs=0.01)
    # Waiting: 2,909.09 s = 0.80808 h x 8 x $55.04 = $355.81; data path: 16,000,000 x $0.0004 / 1,000 = $6.40,
    # plus the listing's $0.08.
    assert estimate.waiting_usd == pytest.approx(355.81, abs=0.01)
    assert estimate.data_path_usd == pytest.approx(6.48)


def test_big_run_snapshot_with_an_initialisation_rate(big: Plan, table: DataTable, prices: PriceFile) -> None:
    estimate = big.estimate("snapshot-rate")
    # Volume: ceil(2e12 / 2^30) = ceil(1,862.65) = 1,863 GiB, initialised at 300 MiB/s:
    # 1,863 x 1,024 MiB / 300 MiB/s = 6,359.04 s (1.77 h), the "3 TB in about 2.8 hours" at this size.
    gib = math.ceil(TWO_TB / 2**30)
    assert gib == 1863
    initialise = gib * 1024 / table.value("ebs_initialization_rate_mib_s")
    assert estimate.first_epoch_seconds == pytest.approx(initialise)
    assert initialise == pytest.approx(6359.04, abs=0.01)
    # Epoch: 2.5e11 bytes per instance at min(1,000 MiB/s = 1.048576e9 B/s, 80 Gbps = 1e10 B/s) = 238.42 s.
    epoch = TWO_TB / 8 / (1000 * 2**20)
    assert estimate.epoch_read_seconds == pytest.approx(epoch)
    # Waiting: 6,359.04 + 20 x 238.42 = 11,127.4 s = 3.0909 h x 8 x $55.04 = $1,361.01.
    assert estimate.waiting_usd == pytest.approx(1361.01, abs=0.01)
    # Data path: 8 volumes of 1,863 GiB at $0.08/GB-month plus (1,000 - 125) MiB/s at $0.04/MiB/s-month, and the
    # 1,863 GiB snapshot at $0.05/GB-month, for 3.0909 h of a 730-hour month. The rate's own price is a gap.
    ebs = ebs_prices(prices, "us-east-1")
    assert (ebs.gp3_gb_month, ebs.gp3_throughput_mibps_month, ebs.snapshot_gb_month) == (0.08, 0.04, 0.05)
    hours = (initialise + 20 * epoch) / 3600
    volumes = 8 * (gib * 0.08 + 875 * 0.04) * hours / 730
    snapshot = gib * 0.05 * hours / 730
    assert estimate.data_path_usd == pytest.approx(volumes + snapshot)
    assert estimate.unpriced == ["the provisioned initialisation rate (no published price found)"]


def test_big_run_fast_restore_waits_for_optimising_and_a_credit_per_volume(
    big: Plan, table: DataTable, prices: PriceFile
) -> None:
    hourly = prices.prices[_instance_key("p5.48xlarge")].cost(1)  # $55.04
    estimate = big.estimate("fast-restore")
    # Enabled, the 1,863 GiB snapshot first optimises at 60 minutes per TiB: 1,863 / 1,024 TiB x 60 min =
    # 109.16 min = 6,549.61 s. Only then does the plan count credits: the bucket starts at zero and fills at
    # min(10, 1,024 / 1,863) = 0.54965 credits an hour, so each credit takes 1 / 0.54965 h = 1.8193 h = 6,549.61 s
    # (the same as optimising, since 60 min per TiB is 1,024 GiB an hour). One credit per volume, 8 volumes:
    # the last is made at 6,549.61 + 8 x 6,549.61 = 9 x 6,549.61 = 58,946.48 s (16.37 h); the first epoch waits
    # for it. Old plan: one credit at once and the 7 others at 300 MiB/s, 6,359.04 s.
    gib = math.ceil(TWO_TB / 2**30)
    optimise = gib / 1024 * table.value("fsr_optimise_minutes_per_tib") * 60
    per_credit = 3600 / min(table.value("fsr_credit_cap"), table.value("fsr_credit_numerator_gib") / gib)
    assert optimise == pytest.approx(6549.61, abs=0.01) and per_credit == pytest.approx(6549.61, abs=0.01)
    last = optimise + 8 * per_credit
    assert last == pytest.approx(58946.48, abs=0.01)
    assert estimate.first_epoch_seconds == pytest.approx(last)
    # Epochs as in the snapshot-rate row: 238.42 s each (1,000 MiB/s, below the p5's 80 Gbps), 4,768.37 s in all;
    # the last reads end at 58,946.48 + 4,768.37 = 63,714.85 s = 17.699 h.
    epoch = TWO_TB / 8 / (1000 * 2**20)
    assert estimate.epoch_read_seconds == pytest.approx(epoch)
    end = last + 20 * epoch
    # Waiting: 17.699 h x 8 x $55.04 = $7,793.03.
    assert estimate.waiting_usd == pytest.approx(end / 3600 * 8 * hourly)
    assert estimate.waiting_usd == pytest.approx(7793.03, abs=0.01)
    # Data path. FSR is billed by the minute from enabling, optimising included, until the last volume is made:
    # ceil(58,946.48 / 60) = 983 min = 16.383 h x $0.75 = $12.29. Volume i (1..8) is made at 6,549.61 x (1 + i) s
    # and priced until the end: 8 x 63,714.85 - 6,549.61 x (2 + ... + 9 = 44) = 221,536.0 s = 61.538 volume-hours
    # x (1,863 GiB x $0.08 + 875 MiB/s x $0.04 = $184.04 a month) / 730 = $15.51. The snapshot for the whole
    # 17.699 h: 1,863 x $0.05 x 17.699 / 730 = $2.26. In all $30.06.
    fsr = table.value("fsr_usd_per_dsu_hour") * math.ceil(last / 60) / 60
    assert fsr == pytest.approx(0.75 * 983 / 60)
    volume_hours = sum(end - (optimise + i * per_credit) for i in range(1, 9)) / 3600
    assert volume_hours == pytest.approx(61.538, abs=0.001)
    volumes = volume_hours * (gib * 0.08 + 875 * 0.04) / 730
    snapshot = gib * 0.05 * end / 3600 / 730
    assert estimate.data_path_usd == pytest.approx(fsr + volumes + snapshot)
    assert estimate.data_path_usd == pytest.approx(30.06, abs=0.01)
    assert "starts empty and earns 0.55 credit(s) an hour" in estimate.assumptions[1]


def test_one_small_volume_still_waits_for_optimising_and_its_first_credit(small: Plan, table: DataTable) -> None:
    estimate = small.estimate("fast-restore")
    # 50 GB is ceil(5e10 / 2^30) = 47 GiB: optimising 47 / 1,024 TiB x 60 min = 2.754 min = 165.23 s; the bucket
    # starts empty and fills at min(10, 1,024 / 47 = 21.79) = 10 credits an hour: the first credit after 360 s.
    # The volume comes 165.23 + 360 = 525.23 s after enabling (old plan: at once, 0 s).
    optimise = 47 / 1024 * table.value("fsr_optimise_minutes_per_tib") * 60
    first_credit = 3600 / table.value("fsr_credit_cap")
    assert optimise + first_credit == pytest.approx(525.23, abs=0.01)
    assert estimate.first_epoch_seconds == pytest.approx(optimise + first_credit)
    # 525.23 s is under the one-hour minimum: FSR bills a whole DSU-hour, $0.75, above the volume and snapshot.
    assert estimate.data_path_usd is not None
    assert estimate.data_path_usd - table.value("fsr_usd_per_dsu_hour") == pytest.approx(
        small.estimate("snapshot-rate").data_path_usd or 0, abs=0.01
    )


def test_big_run_recommends_the_cheapest_priced_strategy(big: Plan) -> None:
    # S3 Express One Zone: the fleet copies once, bound by 2,000,000 source GETs / 5,500 = 363.64 s; then each
    # epoch reads 2.5e11 bytes at 4e11 B/s = 0.625 s. Waiting: (363.64 + 20 x 0.625) s = 376.14 s = 0.10448 h
    # x 8 x $55.04 = $46.00. Data path: storage 2,000 GB x $0.11 x 0.10448 h / 730 = $0.0315; PUTs 2,000,000 x
    # $0.00113 / 1,000 = $2.26; upload 2,000 GB x $0.0032 = $6.40; per epoch 2,000,000 x $0.00003 / 1,000 +
    # 2,000 GB x $0.0006 = $1.26, x 20 = $25.20; source GETs $0.80. In all $34.69 + $46.00 = $80.70.
    express = big.estimate("s3-express")
    hours = (TWO_MILLION / 5500 + 20 * 0.625) / 3600
    path = 2000 * 0.11 * hours / 730 + 2.26 + 6.4 + 20 * (0.06 + 1.2) + 0.8
    assert express.data_path_usd == pytest.approx(path)
    assert express.waiting_usd == pytest.approx(hours * 8 * 55.04)
    totals = {e.strategy: e.total_usd for e in big.estimates if e.total_usd is not None}
    assert big.recommended == min(totals, key=lambda s: totals[s]) == "s3-express"
    assert "$80.70" in big.why and "$362.29 for local NVMe cache" in big.why
    # FSx for Lustre has no price in the table: shown, never recommended, and listed among the gaps.
    assert big.estimate("fsx-lustre").total_usd is None
    assert any(g.startswith("fsx_lustre_usd_per_gb_month") for g in big.gaps)


# ------------------------------------------------------------- 50 GB on one g5.xlarge for 1 epoch

FIFTY_GB = 50 * 10**9
FIFTY_THOUSAND = 50_000


@pytest.fixture(scope="module")
def small(table: DataTable, prices: PriceFile) -> Plan:
    return make_plan(table, prices, size=FIFTY_GB, objects=FIFTY_THOUSAND, instance_type="g5.xlarge", count=1, epochs=1)


def test_small_run_streaming_and_local_cache_tie_and_the_simpler_wins(small: Plan, prices: PriceFile) -> None:
    hourly = prices.prices[_instance_key("g5.xlarge")].cost(1)  # $1.006
    # Network: up to 10 Gbps = 1.25e9 B/s: 5e10 / 1.25e9 = 40 s; requests 50,000 / 5,500 = 9.09 s: 40 s.
    streaming = small.estimate("streaming")
    assert streaming.epoch_read_seconds == pytest.approx(40.0)
    # Waiting: 40 s / 3,600 x 1 x $1.006 = $0.011178. Data path: 50,000 x $0.0004 / 1,000 = $0.02, plus 50 LIST
    # pages x $0.005 / 1,000 = $0.00025.
    assert streaming.waiting_usd == pytest.approx(40 / 3600 * hourly)
    assert streaming.data_path_usd == pytest.approx(0.02025)
    # The cache (50 GB in 250 GB) fills in the same 40 s and reads for free after: the same total for one epoch.
    cache = small.estimate("local-cache")
    assert cache.first_epoch_seconds == pytest.approx(40.0) and cache.epoch_read_seconds == 0
    assert cache.total_usd == pytest.approx(streaming.total_usd or 0)
    assert small.recommended == "streaming"


def test_small_run_prewarmed_ebs(small: Plan) -> None:
    estimate = small.estimate("prewarmed-ebs")
    # Copy: 5e10 / (1,000 x 2^20) = 47.68 s (above 50,000 / 5,500 = 9.09 s). Epoch: 5e10 at min(1,000 MiB/s,
    # 3.5 Gbps = 4.375e8 B/s) = 114.29 s. Volume: ceil(5e10 / 2^30) = 47 GiB.
    assert estimate.first_epoch_seconds == pytest.approx(5e10 / (1000 * 2**20))
    assert estimate.epoch_read_seconds == pytest.approx(5e10 / 4.375e8)
    assert "47 GiB" in estimate.assumptions[0]


# ------------------------------------------------------------- 200 GB on one g5.xlarge for 5 epochs: past the burst

TWO_HUNDRED_GB = 200 * 10**9
TWO_HUNDRED_THOUSAND = 200_000


@pytest.fixture(scope="module")
def long(table: DataTable, prices: PriceFile) -> Plan:
    return make_plan(
        table, prices, size=TWO_HUNDRED_GB, objects=TWO_HUNDRED_THOUSAND, instance_type="g5.xlarge", count=1, epochs=5
    )


def test_small_types_name_their_baselines_as_the_guide_does(table: DataTable) -> None:
    # network burst / baseline and EBS maximum / baseline, Gbps, from the EC2 Instance Types Guide.
    found = {
        name: (f.network_gbps, f.network_baseline_gbps, f.ebs_gbps, f.ebs_baseline_gbps)
        for name, f in table.instances.items()
    }
    assert found == {
        "p5.48xlarge": (3200, 3200, 80, 80),
        "p4d.24xlarge": (400, 400, 19, 19),
        "g5.xlarge": (10, 2.5, 3.5, 0.7),
        "g6.xlarge": (10, 2.5, 5, 1.0),
        "g4dn.xlarge": (25, 5, 3.5, 0.95),
    }
    assert (table.value("ebs_burst_minutes"), table.value("network_burst_minutes")) == (30, 5)


def test_a_baseline_above_the_maximum_is_refused_when_the_table_is_read() -> None:
    raw: dict[str, Any] = json.loads(
        resources.files("trainctl.data").joinpath("figures.json").read_text(encoding="utf-8")
    )
    raw["instances"]["g5.xlarge"]["ebs_baseline_gbps"] = 7
    with pytest.raises(ValueError) as refused:
        DataTable.from_json(raw)
    assert str(refused.value) == "g5.xlarge: ebs_baseline_gbps must be above 0 and at most ebs_gbps"


def test_a_small_type_reads_its_volume_at_the_ebs_baseline_after_30_minutes(
    long: Plan, table: DataTable, prices: PriceFile
) -> None:
    hourly = prices.prices[_instance_key("g5.xlarge")].cost(1)  # $1.006
    facts = table.instances["g5.xlarge"]
    # 5 epochs x 2e11 bytes = 1e12 bytes read from the volume. For 30 minutes at min(1,000 MiB/s = 1.048576e9 B/s,
    # 3.5 Gbps = 4.375e8 B/s) = 4.375e8 B/s: 1,800 s move 7.875e11 bytes. The other 2.125e11 at min(1.048576e9,
    # the 0.7 Gbps baseline = 8.75e7 B/s) = 8.75e7 B/s: 2,428.57 s. In all 4,228.57 s, 845.71 s an epoch on
    # average. Old plan: 2e11 / 4.375e8 = 457.14 s every epoch, as if the maximum held for ever.
    peak = min(1000 * 2**20, facts.ebs_gbps * 1e9 / 8)
    baseline = min(1000 * 2**20, facts.ebs_baseline_gbps * 1e9 / 8)
    burst = table.value("ebs_burst_minutes") * 60
    reads = burst + (5 * TWO_HUNDRED_GB - peak * burst) / baseline
    assert (peak, baseline) == (4.375e8, 8.75e7)
    assert reads == pytest.approx(4228.57, abs=0.01)
    for strategy in ("prewarmed-ebs", "snapshot-rate", "fast-restore"):
        estimate = long.estimate(strategy)
        assert estimate.epoch_read_seconds == pytest.approx(reads / 5), strategy
        assert "0.7 Gbps baseline after" in " ".join(estimate.assumptions), strategy
    # Snapshot at the init rate: ceil(2e11 / 2^30) = 187 GiB x 1,024 MiB / 300 MiB/s = 638.29 s, then the reads:
    # (638.29 + 4,228.57) s = 1.3519 h x $1.006 = $1.36 of waiting.
    initialise = 187 * 1024 / table.value("ebs_initialization_rate_mib_s")
    assert long.estimate("snapshot-rate").waiting_usd == pytest.approx((initialise + reads) / 3600 * hourly)
    assert long.estimate("snapshot-rate").waiting_usd == pytest.approx(1.36, abs=0.01)


def test_a_small_types_network_falls_to_its_baseline_after_its_burst(long: Plan, table: DataTable) -> None:
    facts = table.instances["g5.xlarge"]
    burst = table.value("network_burst_minutes") * 60  # 5 minutes, the low end of AWS's "5 to 60"
    peak = facts.network_gbps * 1e9 / 8  # 10 Gbps = 1.25e9 B/s
    baseline = facts.network_baseline_gbps * 1e9 / 8  # 2.5 Gbps = 3.125e8 B/s
    # Streaming 5 epochs reads 1e12 bytes: 300 s at 1.25e9 move 3.75e11, the other 6.25e11 at 3.125e8 take
    # 2,000 s: 2,300 s, 460 s an epoch (above 200,000 GETs / 5,500 = 36.36 s). Old plan: 2e11 / 1.25e9 = 160 s.
    streaming = burst + (5 * TWO_HUNDRED_GB - peak * burst) / baseline
    assert streaming == pytest.approx(2300)
    assert long.estimate("streaming").epoch_read_seconds == pytest.approx(streaming / 5)
    # S3 Express One Zone: the copy's 2e11 bytes take 160 s of the burst; its 140 s left move 1.75e11 of the
    # epochs' 1e12, the other 8.25e11 at 3.125e8 take 2,640 s: 2,780 s, 556 s an epoch.
    express = long.estimate("s3-express")
    assert express.first_epoch_seconds == pytest.approx(TWO_HUNDRED_GB / peak)
    left = burst - TWO_HUNDRED_GB / peak
    epochs = left + (5 * TWO_HUNDRED_GB - peak * left) / baseline
    assert (left, epochs) == (pytest.approx(140), pytest.approx(2780))
    assert express.epoch_read_seconds == pytest.approx(epochs / 5)
    # The local cache's fill, 2e11 bytes in 160 s, ends inside the burst: a g5.xlarge's 250 GB of instance store
    # is less than the burst's 3.75e11 bytes, so its fill never reaches the baseline.
    assert long.estimate("local-cache").first_epoch_seconds == pytest.approx(TWO_HUNDRED_GB / peak)


def test_a_dataset_larger_than_the_instance_store_has_no_local_cache(table: DataTable, prices: PriceFile) -> None:
    estimate = make_plan(
        table, prices, size=300 * 10**9, objects=10, instance_type="g5.xlarge", count=1, epochs=1
    ).estimate("local-cache")
    assert not estimate.available
    assert estimate.why_not == "g5.xlarge has 250 GB of instance store: the dataset does not fit"


def test_past_prewarms_set_the_copy_rate(table: DataTable, prices: PriceFile) -> None:
    # Three past pre-warms measured 200, 400 and 250 MiB/s: their median, 250 MiB/s, replaces the assumed 1,000.
    learned = make_plan(
        table,
        prices,
        size=FIFTY_GB,
        objects=10,
        instance_type="g5.xlarge",
        count=1,
        epochs=1,
        past=PastPrewarms((200.0, 400.0, 250.0)),
    ).estimate("prewarmed-ebs")
    assert learned.first_epoch_seconds == pytest.approx(5e10 / (250 * 2**20))
    assert "250 MiB/s, the median of 3 pre-warm(s) measured in this account" in learned.assumptions[0]


def test_past_cache_fills_set_the_local_cache_fill_rate(table: DataTable, prices: PriceFile) -> None:
    # Two past fills measured 500 and 700 MiB/s: their median, 600 MiB/s, replaces the network-rate assumption.
    # 5e10 bytes / (600 x 2^20 B/s) = 79.47 s; 10 objects at 5,500 GETs/s take far less.
    fleet = fleet_for("g5.xlarge", 1, "us-east-1a", table, prices, home_region="us-east-1")
    prices_here = ebs_prices(prices, fleet.region)
    learned = plan(
        Dataset(FIFTY_GB, 10), fleet, 1, table, prices_here, past_fills=PastPrewarms((500.0, 700.0))
    ).estimate("local-cache")
    assumed = plan(Dataset(FIFTY_GB, 10), fleet, 1, table, prices_here).estimate("local-cache")
    assert learned.first_epoch_seconds == pytest.approx(5e10 / (600 * 2**20))
    assert learned.first_epoch_seconds != pytest.approx(assumed.first_epoch_seconds)
    assert "600 MiB/s, the median of 2 cache fill(s) measured in this account" in learned.assumptions[0]
    # The plan names the command that fills the cache.
    assert any("--to-cache" in line for line in learned.assumptions)


def test_prices_published_for_us_east_1_are_not_used_elsewhere(table: DataTable, prices: PriceFile) -> None:
    elsewhere = make_plan(
        table, prices, size=FIFTY_GB, objects=10, instance_type="g5.xlarge", count=1, epochs=1, zone="eu-west-1b"
    )
    assert elsewhere.estimate("streaming").data_path_usd is None
    assert elsewhere.estimate("s3-express").unpriced == [
        "S3 Express One Zone in eu-west-1 (the table has us-east-1's prices)"
    ]


# ------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("size", "objects", "epochs", "count", "words"),
    [
        (0, 1, 1, 1, "the dataset's size must be more than zero bytes"),
        (1, 0, 1, 1, "the dataset must hold at least one object"),
        (1, 1, 0, 1, "--epochs 0: a plan needs at least one epoch"),
        (1, 1, 1, 0, "--count 0: a fleet has at least one instance"),
    ],
)
def test_bad_numbers_are_refused_in_words(size: int, objects: int, epochs: int, count: int, words: str) -> None:
    with pytest.raises(PlanRefused) as refused:
        check_inputs(size_bytes=size, objects=objects, epochs=epochs, count=count)
    assert str(refused.value) == words


def test_unknown_types_and_zones_of_another_region_are_refused(table: DataTable, prices: PriceFile) -> None:
    with pytest.raises(PlanRefused, match="no on-demand price for it in us-east-1"):
        fleet_for("x9.mega", 1, "us-east-1a", table, prices, home_region="us-east-1")
    with pytest.raises(PlanRefused, match="is in eu-west-1, not in us-east-1"):
        fleet_for("g5.xlarge", 1, "eu-west-1a", table, prices, home_region="us-east-1")
    with pytest.raises(PlanRefused, match="not an availability zone"):
        fleet_for("g5.xlarge", 1, "us-east-1", table, prices, home_region="us-east-1")
    # Priced, but the data table has no network or instance-store figures for it.
    with pytest.raises(PlanRefused, match="the data table has no network or instance-store figures"):
        fleet_for("g5.2xlarge", 1, "us-east-1a", table, prices, home_region="us-east-1")
    assert region_of_zone("us-west-2-lax-1a") == "us-west-2"


def test_every_figure_cites_a_dated_page_and_every_gap_says_why(table: DataTable) -> None:
    for figure in table.figures.values():
        assert figure.url.startswith("https://") and figure.source and figure.date
        assert figure.value is not None or figure.gap
    assumptions = {f.name for f in table.figures.values() if f.assumption}
    assert {"s5cmd_share_of_network", "stream_share_of_network", "gp3_throughput_mib_s"} <= assumptions


def _instance_key(instance_type: str) -> object:
    from trainctl.cost.prices.model import PriceKey

    return PriceKey("instance", "us-east-1", instance_type)


def test_ebs_prices_missing_from_the_price_file_leave_the_volumes_unpriced(table: DataTable, prices: PriceFile) -> None:
    fleet = fleet_for("g5.xlarge", 1, "us-east-1a", table, prices, home_region="us-east-1")
    result = plan(Dataset(FIFTY_GB, 10), fleet, 1, table, EbsPrices(None, None, None))
    assert result.estimate("prewarmed-ebs").data_path_usd is None
    assert result.estimate("prewarmed-ebs").unpriced == ["gp3 in us-east-1 (price file)"]


# ------------------------------------------------------------------ learned rates: bounds and what they are held to

TWO_HUNDRED_GB = 200 * 10**9


def _g5_plan(
    table: DataTable, prices: PriceFile, *, past: PastPrewarms | None = None, fills: PastPrewarms | None = None
) -> Plan:
    fleet = fleet_for("g5.xlarge", 1, "us-east-1a", table, prices, home_region="us-east-1")
    return plan(Dataset(TWO_HUNDRED_GB, 1000), fleet, 1, table, ebs_prices(prices, fleet.region), past, fills)


def test_a_learned_cache_rate_is_held_to_what_the_instances_network_carries(
    table: DataTable, prices: PriceFile
) -> None:
    # A g5.xlarge carries up to 10 Gbps = 1.25e9 bytes/s for 5 minutes (3.75e11 bytes, more than the data): 2e11 /
    # 1.25e9 = 160 s is the fastest fill. A median of 99,999 MiB/s would say 1.9 s: it is held to 160 s.
    facts = table.instances["g5.xlarge"]
    assert (facts.network_gbps, table.value("network_burst_minutes")) == (10, 5)
    estimate = _g5_plan(table, prices, fills=PastPrewarms((99_999.0,))).estimate("local-cache")
    assert estimate.first_epoch_seconds == pytest.approx(TWO_HUNDRED_GB / (10e9 / 8))
    assert "99,999 MiB/s, the median of 1 cache fill(s)" in estimate.assumptions[0]
    assert "held to what the instance's network carries (up to 10 Gbps" in estimate.assumptions[0]
    # A rate below the network's is believed as measured, and nothing is said to hold it.
    slower = _g5_plan(table, prices, fills=PastPrewarms((500.0,))).estimate("local-cache")
    assert slower.first_epoch_seconds == pytest.approx(TWO_HUNDRED_GB / (500 * 2**20))
    assert "held to" not in slower.assumptions[0]


def test_a_learned_prewarm_rate_is_held_to_the_volumes_provisioned_throughput(
    table: DataTable, prices: PriceFile
) -> None:
    # The plan's volume is provisioned at 1,000 MiB/s (within gp3's 2,000 maximum): a pre-warm writes it no
    # faster. 2e11 / (1,000 x 2^20) = 190.73 s, not 2e11 / (1,900 x 2^20) = 100.4 s.
    assert table.value("gp3_throughput_mib_s") == 1000
    estimate = _g5_plan(table, prices, past=PastPrewarms((1900.0,))).estimate("prewarmed-ebs")
    assert estimate.first_epoch_seconds == pytest.approx(TWO_HUNDRED_GB / (1000 * 2**20))
    assert "the volume's provisioned 1,000 MiB/s: the median of 1 pre-warm(s)" in estimate.assumptions[0]
    assert "1,900 MiB/s, is more than the volume takes" in estimate.assumptions[0]


@pytest.mark.parametrize("rate", [math.nan, math.inf, -math.inf, 1e-300, 5e-324, 0.05, 0.0, -1.0])
def test_a_rate_no_real_run_measured_teaches_the_plan_nothing(table: DataTable, prices: PriceFile, rate: float) -> None:
    # trainctl writes rates to one decimal: below 0.1 MiB/s (or not a finite number) it is not one of its own.
    assert PastPrewarms((rate,)).median_mib_s is None
    assumed = _g5_plan(table, prices)
    forged = _g5_plan(table, prices, past=PastPrewarms((rate,)), fills=PastPrewarms((rate,)))
    for name in ("local-cache", "prewarmed-ebs"):
        assert forged.estimate(name).first_epoch_seconds == assumed.estimate(name).first_epoch_seconds
        assert forged.estimate(name).assumptions == assumed.estimate(name).assumptions
    json.dumps(forged.to_json(), allow_nan=False)  # strict JSON: no Infinity, no NaN


def test_the_slowest_rate_learned_is_said_as_it_was_measured(table: DataTable, prices: PriceFile) -> None:
    # 0.1 MiB/s is the least trainctl writes: said "0.1", never rounded to "0".
    estimate = _g5_plan(table, prices, past=PastPrewarms((0.1, math.nan))).estimate("prewarmed-ebs")
    assert "0.1 MiB/s, the median of 1 pre-warm(s)" in estimate.assumptions[0]
    assert estimate.first_epoch_seconds == pytest.approx(TWO_HUNDRED_GB / (0.1 * 2**20))
    assert (rate_text(0.25), rate_text(9.94), rate_text(1234.6)) == ("0.25", "9.9", "1,235")


def test_no_number_the_plan_prints_is_infinite_or_not_a_number() -> None:
    estimate = Estimate("streaming", True, first_epoch_seconds=math.inf, epoch_read_seconds=math.nan)
    estimate.data_path_usd, estimate.waiting_usd = 1.0, math.inf
    printed = estimate.to_json()
    assert printed["first_epoch_seconds"] is None and printed["epoch_read_seconds"] is None
    assert printed["waiting_usd"] is None and printed["total_usd"] is None
    json.dumps(printed, allow_nan=False)
    # An unbounded total is not recommended over a priced one.
    priced = Estimate("local-cache", True, data_path_usd=2.0, waiting_usd=0.0)
    assert recommend([estimate, priced])[0] == "local-cache"


def _tagged(rate: str, scope: str | None = "true") -> list[dict[str, str]]:
    found = [{"Key": tags.PREWARMED_RATE, "Value": rate}]
    return found + ([{"Key": tags.MANAGED, "Value": scope}] if scope is not None else [])


@pytest.mark.parametrize(
    ("labels", "most", "learned"),
    [
        (_tagged("120"), 2000.0, 120.0),
        (_tagged("120", "yes"), 2000.0, 120.0),  # the scope tag read as the sweep reads it
        (_tagged("120", None), 2000.0, None),  # outside the scope: anyone's to write
        (_tagged("120", "false"), 2000.0, None),
        (_tagged("2000"), 2000.0, 2000.0),
        (_tagged("2000.1"), 2000.0, None),  # more than the hardware it was measured on can move
        (_tagged("0.1"), 2000.0, 0.1),
        (_tagged("0.09"), 2000.0, None),  # finer than trainctl writes
        (_tagged("1e-300"), 2000.0, None),
        (_tagged("inf"), 2000.0, None),
        (_tagged("nan"), 2000.0, None),
        (_tagged("not a number"), 2000.0, None),
        # float() reads these; trainctl never writes them.
        (_tagged(" 120 "), 2000.0, None),
        (_tagged("1_000"), 2000.0, None),
        (_tagged("\u0661\u0662\u0660"), 2000.0, None),
        (_tagged("1.2e2"), 2000.0, None),
    ],
)
def test_a_rate_tag_is_read_only_in_scope_and_within_what_the_hardware_moves(
    labels: list[dict[str, str]], most: float, learned: float | None
) -> None:
    assert _rate_of(labels, tags.PREWARMED_RATE, tags.MANAGED, most) == learned


def test_a_cache_fill_is_held_to_its_own_types_network_or_the_fastest_the_table_knows(table: DataTable) -> None:
    # g5.xlarge: 10 Gbps = 1.25e9 bytes/s = 1,192.09 MiB/s; a type the table does not know: p5.48xlarge's 3,200 Gbps.
    assert fill_ceiling_mib_s("g5.xlarge", table) == pytest.approx(10e9 / 8 / 2**20)
    assert fill_ceiling_mib_s("x9.nothing", table) == pytest.approx(3200e9 / 8 / 2**20)
    assert GP3_MOST_MIB_S == 2000
