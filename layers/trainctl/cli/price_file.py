"""Regenerate the shipped price file from the Price List Query API: `make prices` (needs AWS credentials).

    python -m trainctl.cli.price_file --output layers/trainctl/cost/prices/prices.json

Every GPU and accelerator type trainctl knows (every size of every family, see core/accelerators.py), the
types trainctl itself launches (the pre-warm workers) and common helpers, in the regions training teams use
(--region to choose others), with EBS storage, IOPS, throughput and snapshot prices. Every price goes through the
same filters and ambiguity check as the live chain; a key without exactly one price is left out (and so reported
unpriced at run time), never guessed, and the file says so: a type without an on-demand price in a region is
listed as not sold on demand there, anything else as no price found. Each region's prices are one block, dated
the day they were fetched.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from trainctl.aws.clients import ClientFactory
from trainctl.core.accelerators import ACCELERATORS
from trainctl.core.clock import system_clock
from trainctl.core.errors import TrainctlError
from trainctl.cost.prices.model import Price, PriceKey, PriceNotFound
from trainctl.cost.prices.price_file import PRICE_FILE_FORMAT, PriceBlock, PriceFile, PriceGap
from trainctl.cost.prices.price_list import PriceListApi, RateLimiter
from trainctl.prewarm.rules import WORKER_TYPES

# The regions the shipped file covers: where ML teams rent accelerators most.
DEFAULT_REGIONS = ("us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1", "ap-northeast-1")
# Besides every accelerator type: the instances trainctl itself launches (the pre-warm workers) and common helpers.
LAUNCHED_INSTANCE_TYPES = tuple(worker.name for worker in WORKER_TYPES)
HELPER_INSTANCE_TYPES = ("t3.micro", "t3.medium", "m5.large", "m5.xlarge", "c5.xlarge", "c6in.xlarge", "c6in.4xlarge")
OTHER_INSTANCE_TYPES = (*LAUNCHED_INSTANCE_TYPES, *HELPER_INSTANCE_TYPES)
DEFAULT_INSTANCE_TYPES = (*sorted(ACCELERATORS), *OTHER_INSTANCE_TYPES)
VOLUME_TYPES = ("gp3", "gp2", "io1", "io2", "st1", "sc1", "standard")
SOURCE = (
    "AWS Price List Query API: EC2 on demand, Linux, shared tenancy; EBS volumes, provisioned IOPS and "
    "throughput, standard snapshots. Regenerate with `make prices`."
)
API_SOURCE = "AWS Price List Query API (pricing:GetProducts), EC2 on demand, Linux, shared tenancy"


def keys_for(regions: Iterable[str], instance_types: Iterable[str]) -> list[PriceKey]:
    keys = []
    for region in regions:
        keys += [PriceKey("instance", region, t) for t in instance_types]
        keys += [PriceKey("storage", region, v) for v in VOLUME_TYPES]
        keys += [PriceKey("iops", region, v) for v in ("gp3", "io1", "io2")]
        keys += [PriceKey("throughput", region, "gp3"), PriceKey("snapshot", region, "standard")]
    return keys


def build_price_file(api: PriceListApi, keys: Sequence[PriceKey], as_of: str) -> tuple[PriceFile, list[str]]:
    """The file, and what could not be priced (with why)."""
    prices: dict[PriceKey, Price] = {}
    missing = []
    not_sold: list[PriceKey] = []
    not_found: list[PriceKey] = []
    for key in keys:
        try:
            fetched = api.price(key)
        except TrainctlError as exc:
            missing.append(f"{key}: {exc}")
            # No on-demand price for an instance type in a region: AWS does not sell it on demand there.
            (not_sold if isinstance(exc, PriceNotFound) and key.kind == "instance" else not_found).append(key)
            continue
        prices[key] = Price(fetched.tiers, fetched.unit, "price-file", as_of)
    regions = tuple(dict.fromkeys(k.region for k in keys))
    blocks = tuple(
        PriceBlock(
            f"price-list-api-{region}", f"{API_SOURCE}, {region}", as_of, tuple(k for k in prices if k.region == region)
        )
        for region in regions
        if any(k.region == region for k in prices)
    )
    gaps = []
    if not_sold:
        gaps.append(
            PriceGap(
                "not-sold-on-demand",
                "the Price List has no on-demand price for it here",
                API_SOURCE,
                as_of,
                tuple(not_sold),
            )
        )
    if not_found:
        gaps.append(
            PriceGap(
                "no-price-found", "the Price List API gave no single price for it", API_SOURCE, as_of, tuple(not_found)
            )
        )
    return PriceFile(as_of, SOURCE, prices, blocks, tuple(gaps), regions), missing


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--region", action="append", help=f"region to price; repeat for more; default: {', '.join(DEFAULT_REGIONS)}"
    )
    parser.add_argument(
        "--instance-type",
        action="append",
        help="instance type; default: every accelerator type and those trainctl runs",
    )
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    factory = ClientFactory()
    api = PriceListApi(factory.client("pricing", "us-east-1"), limiter=RateLimiter(5.0), clock=system_clock)
    keys = keys_for(args.region or DEFAULT_REGIONS, args.instance_type or DEFAULT_INSTANCE_TYPES)
    try:
        price_file, missing = build_price_file(api, keys, date.today().isoformat())
    except (ClientError, BotoCoreError) as exc:
        print(f"error: the Price List API failed: {exc}", file=sys.stderr)
        return 1
    document = price_file.to_json()
    assert document["format"] == PRICE_FILE_FORMAT
    args.output.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {len(price_file.prices)} prices to {args.output}; {len(missing)} left out")
    for line in missing:
        print(f"  left out {line}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
