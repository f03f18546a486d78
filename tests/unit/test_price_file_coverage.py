"""The shipped price file cannot silently rot: fresh, every family accounted for, every number with its source.

A type/region the file has no price for must be listed as not sold on demand there, or as no published price
found: a gap it knows about, never a silent one.
"""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

import pytest
from rich.console import Console

from trainctl.cli.price_file import DEFAULT_INSTANCE_TYPES, DEFAULT_REGIONS, LAUNCHED_INSTANCE_TYPES
from trainctl.cli.render import print_cost
from trainctl.core.accelerators import ACCELERATORS, FAMILIES, accelerators_for, family_of, types_of
from trainctl.cost.prices.model import Price, PriceKey, PriceNotFound
from trainctl.cost.prices.price_file import MAX_AGE_DAYS, PriceFile, PriceGap, load_price_file
from trainctl.cost.rules import ResourceCost
from trainctl.cost.run import CostResult
from trainctl.prewarm.rules import WORKER_TYPES

# The families issue 19 names: a test fails when one is missing from the file.
REQUIRED_FAMILIES = (
    *("p4", "p5", "p6", "g4dn", "g5", "g6", "g6e", "g6f", "inf2", "trn1", "trn1n", "trn2"),
    # issue 26: sold on demand, and missing from both the file and the accelerator table
    *("inf1", "gr6", "gr6f"),
)
REQUIRED_REGIONS = ("us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1", "ap-northeast-1")
EBS_KEYS = (
    *(("storage", v) for v in ("gp3", "gp2", "io1", "io2", "st1", "sc1", "standard")),
    *(("iops", v) for v in ("gp3", "io1", "io2")),
    ("throughput", "gp3"),
    ("snapshot", "standard"),
)
# What the sandbox fleet (cli/sandbox_fleet.py and the runs in cli/sandbox_run.py) makes: all of it is priced.
SANDBOX_KEYS = (
    *(
        PriceKey("instance", "us-east-1", t)
        for t in ("p4d.24xlarge", "g5.12xlarge", "g5.2xlarge", "g5.xlarge", "c6in.xlarge", "p3.2xlarge", "t3.micro")
    ),
    PriceKey("instance", "eu-west-1", "g4dn.xlarge"),
    *(PriceKey("storage", r, v) for r in ("us-east-1", "eu-west-1") for v in ("gp3", "gp2")),
    *(PriceKey("snapshot", r, "standard") for r in ("us-east-1", "eu-west-1")),
)


@pytest.fixture(scope="module")
def shipped() -> PriceFile:
    return load_price_file()


def accounted(shipped: PriceFile, key: PriceKey) -> bool:
    return key in shipped.prices or shipped.gap(key) is not None


def test_the_shipped_price_file_is_at_most_180_days_old(shipped: PriceFile) -> None:
    age = shipped.age_days(date.today())
    assert age <= MAX_AGE_DAYS, (
        f"the price file is {age} days past its as_of {shipped.as_of} (at most {MAX_AGE_DAYS}): "
        "regenerate it with `make prices`, or re-check it against AWS's published prices"
    )


def test_the_age_check_fails_one_day_past_180_days() -> None:
    stale = PriceFile("2026-01-01", "x", {})
    assert stale.age_days(date(2026, 6, 30)) == MAX_AGE_DAYS
    assert stale.age_days(date(2026, 7, 1)) > MAX_AGE_DAYS


def test_the_file_covers_the_regions_ml_teams_train_in(shipped: PriceFile) -> None:
    assert set(REQUIRED_REGIONS) <= set(shipped.regions)
    assert set(REQUIRED_REGIONS) <= set(DEFAULT_REGIONS)


@pytest.mark.parametrize("family", sorted({*REQUIRED_FAMILIES, *FAMILIES}))
def test_every_size_of_every_family_is_priced_or_a_known_gap_in_every_region(shipped: PriceFile, family: str) -> None:
    assert family in FAMILIES, f"{family} is not in the accelerator table"
    sizes = types_of(family)
    assert sizes, f"no sizes of {family} are known"
    silent = [
        str(key)
        for t in sizes
        for region in shipped.regions
        if not accounted(shipped, key := PriceKey("instance", region, t))
    ]
    assert silent == [], f"{family}: neither priced nor listed as a gap"
    # `make prices` asks the Price List API for every one of them.
    assert set(sizes) <= set(DEFAULT_INSTANCE_TYPES)


def test_every_family_sold_on_demand_has_prices(shipped: PriceFile) -> None:
    priced_families = {family_of(k.name) for k in shipped.prices if k.kind == "instance"}
    # trn2 has no on-demand price in any covered region: it is listed as not sold on demand, size by size.
    for family in set(REQUIRED_FAMILIES) - {"trn2"}:
        assert priced_families & set(FAMILIES[family]), family


def test_every_ebs_price_is_priced_or_a_known_gap_in_every_region(shipped: PriceFile) -> None:
    silent = [
        str(key)
        for region in shipped.regions
        for kind, name in EBS_KEYS
        if not accounted(shipped, key := PriceKey(kind, region, name))  # type: ignore[arg-type]
    ]
    assert silent == []


def test_every_price_has_one_dated_source(shipped: PriceFile) -> None:
    in_blocks = [k for b in shipped.blocks for k in b.keys]
    assert sorted(in_blocks) == sorted(shipped.prices), "each price belongs to exactly one block"
    for block in shipped.blocks:
        assert block.source and block.id
        assert date.fromisoformat(block.date) <= date.fromisoformat(shipped.as_of), block.id


def test_every_gap_says_why_where_from_and_when(shipped: PriceFile) -> None:
    seen: set[PriceKey] = set()
    for gap in shipped.gaps:
        assert gap.why and gap.source and date.fromisoformat(gap.date)
        assert not set(gap.keys) & set(shipped.prices), "a key is either priced or a gap"
        assert not set(gap.keys) & seen, "a key is in one gap"
        seen |= set(gap.keys)


def test_what_the_sandbox_runs_is_priced(shipped: PriceFile) -> None:
    assert [str(k) for k in SANDBOX_KEYS if k not in shipped.prices] == []


def test_the_issues_own_figures(shipped: PriceFile) -> None:
    assert shipped.price(PriceKey("instance", "us-east-1", "p5.48xlarge")).cost(1) == 55.04
    assert shipped.price(PriceKey("instance", "us-east-1", "p5en.48xlarge")).cost(1) == 63.296
    assert shipped.price(PriceKey("instance", "us-east-1", "p4d.24xlarge")).cost(1) == 21.957642
    per_gpu = accelerators_for("p5.48xlarge")
    assert per_gpu is not None and per_gpu.describe(55.04) == "8 \N{MULTIPLICATION SIGN} H100 at $6.88 per GPU-hour"


def test_a_type_not_sold_on_demand_says_so_when_asked(shipped: PriceFile) -> None:
    with pytest.raises(PriceNotFound, match="not offered in eu-west-1"):
        shipped.price(PriceKey("instance", "eu-west-1", "p5.48xlarge"))
    with pytest.raises(PriceNotFound, match="no on-demand price"):
        shipped.price(PriceKey("instance", "us-east-2", "trn2.48xlarge"))


# Prices as the file's own sources publish them, copied by hand (issue 26): each must be the file's price, never
# one of its listed gaps. Key: (hourly USD, where it is published).
_KARPENTER_2026_07 = "Karpenter's us-east-1 Price List extract generated 2026-07-20 (commit 6fc13b52)"
_SKYPILOT = "SkyPilot AWS catalog vms.csv @ 00148f2a, column Price"
_EBS_FEED = "AWS's EBS price feed published 2024-07-18 (ebs.json as archived in yeo/ec2.shop @ 74c9fd8a)"
_EC2_FEED = "AWS's EC2 on-demand price feed published 2025-04-04 (as archived in yeo/ec2.shop @ 74c9fd8a)"
PUBLISHED: dict[PriceKey, tuple[float, str]] = {
    PriceKey("instance", "us-east-1", "p6-b300.48xlarge"): (142.416, _KARPENTER_2026_07),
    PriceKey("instance", "us-east-1", "inf1.xlarge"): (0.228, _KARPENTER_2026_07),
    PriceKey("instance", "us-east-1", "inf1.24xlarge"): (4.721, _KARPENTER_2026_07),
    PriceKey("instance", "us-east-1", "gr6.4xlarge"): (1.5392, _KARPENTER_2026_07),
    PriceKey("instance", "us-east-1", "gr6.8xlarge"): (2.4464, _KARPENTER_2026_07),
    PriceKey("instance", "us-east-1", "gr6f.4xlarge"): (1.066, _KARPENTER_2026_07),
    PriceKey("instance", "eu-west-1", "inf1.6xlarge"): (1.315, _SKYPILOT),
    PriceKey("instance", "eu-central-1", "gr6.8xlarge"): (3.05927, _SKYPILOT),
    PriceKey("instance", "ap-northeast-1", "gr6f.4xlarge"): (1.54602, _SKYPILOT),
    PriceKey("instance", "ap-northeast-1", "inf1.2xlarge"): (0.489, _SKYPILOT),
    PriceKey("instance", "eu-west-1", "c5.xlarge"): (0.192, _SKYPILOT),
    # issue 26: EBS prices listed as "no price found" that AWS publishes (the issue's own example first)
    PriceKey("storage", "ap-northeast-1", "gp3"): (0.096, _EBS_FEED + ", rate code C8Y3GJZBQTH8T5JV"),
    PriceKey("storage", "us-east-2", "gp3"): (0.08, _EBS_FEED + ", rate code M6UGCCQ3CDJQAA37"),
    PriceKey("storage", "us-west-2", "st1"): (0.045, _EBS_FEED + ", rate code Y87WPNXVYWJCJ5ZM"),
    PriceKey("storage", "eu-west-1", "io2"): (0.138, _EBS_FEED + ", rate code TN2XFMNDXRZZ5CGK"),
    PriceKey("storage", "eu-central-1", "sc1"): (0.018, _EBS_FEED + ", rate code ZYSKSVGZYKJ85CXE"),
    PriceKey("storage", "ap-northeast-1", "standard"): (0.08, _EBS_FEED + ", rate code H3DK473URKC757VE"),
    PriceKey("iops", "eu-central-1", "gp3"): (0.006, _EBS_FEED + ", rate code 8AGS2P58KKNUHB49"),
    PriceKey("iops", "us-west-2", "io1"): (0.065, _EBS_FEED + ", rate code ZS6E9ESZZKGW2ZVG"),
    PriceKey("throughput", "eu-west-1", "gp3"): (45.056 / 1024, _EBS_FEED + ", $45.056 per GiBps-month"),
    PriceKey("snapshot", "eu-central-1", "standard"): (0.054, _EBS_FEED + ", rate code 42HPMPRPNWRJYGZM"),
    # issue 26: the helper types, and the pre-warm workers the workflow launches
    PriceKey("instance", "eu-central-1", "m5.large"): (0.115, _EC2_FEED),
    PriceKey("instance", "ap-northeast-1", "c6in.4xlarge"): (1.1424, _EC2_FEED),
    PriceKey("instance", "us-west-2", "c6in.xlarge"): (0.2268, _EC2_FEED),
    PriceKey("instance", "eu-west-1", "m6i.large"): (0.107, _SKYPILOT),
    PriceKey("instance", "us-east-1", "m6i.8xlarge"): (1.536, _SKYPILOT),
    PriceKey("instance", "ap-northeast-1", "m6i.xlarge"): (0.248, _SKYPILOT),
}
# io2 IOPS tiers per IOPS-month (up to 32,000; 32,001 to 64,000; above 64,000) as the same feed publishes them.
PUBLISHED_IO2_TIERS: dict[str, tuple[float, float, float]] = {
    "us-east-1": (0.065, 0.0455, 0.03185),
    "eu-west-1": (0.072, 0.0504, 0.03528),
    "ap-northeast-1": (0.074, 0.0518, 0.03626),
}


def test_every_type_trainctl_prices_is_priced_or_a_listed_gap_in_every_region(shipped: PriceFile) -> None:
    """The file says every gap is listed: that holds for the helper types the workflows launch (c5, c6in, m5, t3)."""
    silent = [
        str(key)
        for t in DEFAULT_INSTANCE_TYPES
        for region in shipped.regions
        if not accounted(shipped, key := PriceKey("instance", region, t))
    ]
    assert silent == []


def test_a_type_of_a_covered_family_has_an_entry_or_a_listed_gap_in_every_region(shipped: PriceFile) -> None:
    """A family the file prices anywhere is covered: each of its types the file names or trainctl knows (the
    accelerator table, the helpers and the workers it launches) is accounted for in every region."""
    named = {k.name for k in shipped.prices if k.kind == "instance"} | set(DEFAULT_INSTANCE_TYPES)
    named |= {k.name for g in shipped.gaps for k in g.keys if k.kind == "instance"}
    covered = {family_of(k.name) for k in shipped.prices if k.kind == "instance"}
    silent = [
        str(key)
        for t in sorted(named)
        if family_of(t) in covered
        for region in shipped.regions
        if not accounted(shipped, key := PriceKey("instance", region, t))
    ]
    assert silent == []


def test_the_coverage_check_fails_on_a_silent_type_of_a_covered_family(shipped: PriceFile) -> None:
    c5 = PriceKey("instance", "us-east-1", "c5.xlarge")
    half = PriceFile("2026-12-06", "x", {c5: shipped.price(c5)}, regions=REQUIRED_REGIONS)
    with pytest.raises(AssertionError):
        test_a_type_of_a_covered_family_has_an_entry_or_a_listed_gap_in_every_region(half)


def test_the_coverage_check_fails_on_a_type_trainctl_launches_that_the_file_never_names() -> None:
    # m6i is covered (m6i.xlarge priced everywhere), and the workflow's smallest worker m6i.large is nowhere.
    xlarge = {
        PriceKey("instance", r, "m6i.xlarge"): Price.flat(0.2, "hour", "price-file", "x") for r in REQUIRED_REGIONS
    }
    without_large = PriceFile("2026-12-06", "x", xlarge, regions=REQUIRED_REGIONS)
    with pytest.raises(AssertionError):
        test_a_type_of_a_covered_family_has_an_entry_or_a_listed_gap_in_every_region(without_large)


def contradicted_gaps(price_file: PriceFile, published: dict[PriceKey, tuple[float, str]]) -> list[str]:
    """Listed gaps that a source of the file publishes a price for."""
    return [
        f"{key} is listed as {gap.kind} but {published[key][1]} gives ${published[key][0]}"
        for key in published
        if (gap := price_file.gap(key)) is not None
    ]


def test_no_listed_gap_has_a_price_in_the_files_own_sources(shipped: PriceFile) -> None:
    assert contradicted_gaps(shipped, PUBLISHED) == []


def test_the_gap_check_fails_on_a_gap_its_sources_price() -> None:
    gp3 = PriceKey("storage", "ap-northeast-1", "gp3")
    stale = PriceFile(
        "2026-12-06", "x", {}, gaps=(PriceGap("no-price-found", "none found", "x", "2026-12-01", (gp3,)),)
    )
    assert contradicted_gaps(stale, PUBLISHED) == [
        f"{gp3} is listed as no-price-found but {PUBLISHED[gp3][1]} gives $0.096"
    ]


@pytest.mark.parametrize("key", list(PUBLISHED), ids=str)
def test_a_price_the_files_own_sources_publish_is_the_files_price(shipped: PriceFile, key: PriceKey) -> None:
    usd, where = PUBLISHED[key]
    assert key in shipped.prices, f"{key}: {where} gives ${usd}"
    assert shipped.price(key).cost(1) == pytest.approx(usd), where


@pytest.mark.parametrize("region", list(PUBLISHED_IO2_TIERS))
def test_io2_iops_are_priced_at_each_published_tier(shipped: PriceFile, region: str) -> None:
    first, second, third = PUBLISHED_IO2_TIERS[region]
    price = shipped.price(PriceKey("iops", region, "io2"))
    assert [(t.begin, t.end, t.usd) for t in price.tiers] == [
        (0, 32_000, first),
        (32_000, 64_000, second),
        (64_000, None, third),
    ]
    # 70,000 IOPS for a month: the last 6,000 at the third tier, unrounded (issue 26: 0.032 against 0.03185).
    assert price.cost(70_000) == pytest.approx(32_000 * first + 32_000 * second + 6_000 * third)


def test_the_workers_the_prewarm_workflow_launches_are_priced_in_every_region(shipped: PriceFile) -> None:
    launched = [worker.name for worker in WORKER_TYPES]
    assert set(launched) <= set(LAUNCHED_INSTANCE_TYPES) <= set(DEFAULT_INSTANCE_TYPES), "`make prices` asks for them"
    silent = [
        str(key)
        for t in launched
        for region in shipped.regions
        if not accounted(shipped, key := PriceKey("instance", region, t))
    ]
    assert silent == [], "a worker the workflow launches is neither priced nor a listed gap"


# --------------------------------------------------------------------------------------------------- accelerators


def test_every_accelerator_type_belongs_to_a_family() -> None:
    members = {m for family in FAMILIES.values() for m in family}
    assert {family_of(t) for t in ACCELERATORS} <= members


@pytest.mark.parametrize(
    ("instance_type", "count", "model", "kind"),
    [
        ("p4d.24xlarge", 8, "A100", "gpu"),
        ("p4de.24xlarge", 8, "A100 80GB", "gpu"),
        ("p5.4xlarge", 1, "H100", "gpu"),
        ("p5en.48xlarge", 8, "H200", "gpu"),
        ("p6-b200.48xlarge", 8, "B200", "gpu"),
        ("g5.12xlarge", 4, "A10G", "gpu"),
        ("g6e.48xlarge", 8, "L40S", "gpu"),
        ("g6f.large", 0.125, "L4", "gpu"),
        ("g4dn.metal", 8, "T4", "gpu"),
        ("inf2.48xlarge", 12, "Inferentia2", "neuron"),
        ("inf1.xlarge", 1, "Inferentia", "neuron"),
        ("inf1.2xlarge", 1, "Inferentia", "neuron"),
        ("inf1.6xlarge", 4, "Inferentia", "neuron"),
        ("inf1.24xlarge", 16, "Inferentia", "neuron"),
        ("gr6.4xlarge", 1, "L4", "gpu"),
        ("gr6.8xlarge", 1, "L4", "gpu"),
        ("gr6f.4xlarge", 0.5, "L4", "gpu"),
        ("trn1.32xlarge", 16, "Trainium", "neuron"),
        ("trn2.48xlarge", 16, "Trainium2", "neuron"),
    ],
)
def test_accelerators_per_instance_type(instance_type: str, count: float, model: str, kind: str) -> None:
    found = accelerators_for(instance_type)
    assert found is not None and (found.count, found.model, found.kind) == (count, model, kind)


def test_a_fractional_gpu_is_priced_per_whole_gpu() -> None:
    g6f = accelerators_for("g6f.large")
    assert g6f is not None and g6f.describe(0.202) == "1/8 \N{MULTIPLICATION SIGN} L4 at $1.62 per GPU-hour"
    assert accelerators_for("c6in.xlarge") is None


# ------------------------------------------------------------------------------------------------- the cost table

AT = datetime(2026, 12, 1, 12, tzinfo=UTC)


def result(as_of: str, source: str = "price-file", lookups: dict[str, int] | None = None) -> CostResult:
    p5 = ResourceCost(
        "i-p5",
        "instance",
        "us-east-1",
        "alice",
        "p5.48xlarge on-demand running",
        55.04,
        110.08,
        source,
        AT,
        accelerators=accelerators_for("p5.48xlarge"),
    )
    return CostResult(AT, ("us-east-1",), (p5,), (), lookups if lookups is not None else {"file": 1}, as_of)


def shown(cost: CostResult, *, quiet: bool) -> str:
    console = Console(width=200, record=True, file=io.StringIO())
    print_cost(console, cost, "trainctl cost", quiet=quiet)
    return console.export_text()


@pytest.mark.parametrize("quiet", [False, True])
def test_trainctl_cost_says_the_price_files_age_whenever_it_prices_from_it(quiet: bool) -> None:
    text = shown(result("2026-11-01"), quiet=quiet)
    assert "priced from the price file of 2026-11-01, 30 days old" in text
    assert "8 \N{MULTIPLICATION SIGN} H100 at $6.88 per GPU-hour" in text


def test_a_stale_price_file_is_called_stale() -> None:
    text = shown(result("2026-05-01"), quiet=True)
    assert f"214 days old: older than {MAX_AGE_DAYS} days, regenerate it with `make prices`" in text


def test_no_word_about_the_file_when_nothing_came_from_it() -> None:
    text = shown(result("2026-11-01", "price-list-api", {"api": 1}), quiet=False)
    assert "price file of" not in text
