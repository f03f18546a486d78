"""Regenerate the shipped price file from the Price List Query API: `make prices` (needs AWS credentials).

    python -m trainctl.cli.price_file --region us-east-1 --output layers/trainctl/cost/prices/prices.json

Every price goes through the same filters and ambiguity check as the live chain; a key without exactly one
price is left out (and so reported unpriced at run time), never guessed.
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
from trainctl.core.clock import system_clock
from trainctl.core.errors import TrainctlError
from trainctl.cost.prices.model import Price, PriceKey
from trainctl.cost.prices.price_file import PRICE_FILE_FORMAT, PriceFile
from trainctl.cost.prices.price_list import PriceListApi, RateLimiter

# Instance types training teams run most, and the instances trainctl itself launches (pre-warm workers).
DEFAULT_INSTANCE_TYPES = (
    "t3.micro",
    "t3.medium",
    "m5.large",
    "m5.xlarge",
    "c5.xlarge",
    "c6in.xlarge",
    "c6in.4xlarge",
    "g4dn.xlarge",
    "g4dn.12xlarge",
    "g5.xlarge",
    "g5.2xlarge",
    "g5.4xlarge",
    "g5.12xlarge",
    "g5.48xlarge",
    "g6.xlarge",
    "g6e.xlarge",
    "p3.2xlarge",
    "p3.8xlarge",
    "p3.16xlarge",
    "p4d.24xlarge",
    "p5.48xlarge",
    "trn1.2xlarge",
    "trn1.32xlarge",
    "inf2.xlarge",
)
VOLUME_TYPES = ("gp3", "gp2", "io1", "io2", "st1", "sc1", "standard")
SOURCE = (
    "AWS Price List Query API: EC2 on demand, Linux, shared tenancy; EBS volumes and standard snapshots. "
    "Regenerate with `make prices`."
)


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
    for key in keys:
        try:
            fetched = api.price(key)
        except TrainctlError as exc:
            missing.append(f"{key}: {exc}")
            continue
        prices[key] = Price(fetched.tiers, fetched.unit, "price-file", as_of)
    return PriceFile(as_of, SOURCE, prices), missing


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--region", action="append", required=True, help="region to price; repeat for more")
    parser.add_argument("--instance-type", action="append", help="instance type; default: common training types")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    factory = ClientFactory()
    api = PriceListApi(factory.client("pricing", "us-east-1"), limiter=RateLimiter(5.0), clock=system_clock)
    keys = keys_for(args.region, args.instance_type or DEFAULT_INSTANCE_TYPES)
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
