"""PriceList entries as GetProducts returns them (JSON strings, format aws_v1), for the published prices below.

moto has no Price List API: these records stand in for it. Each follows the real response: product
attributes, and OnDemand terms whose price dimensions carry pricePerUnit.USD as a string.
"""

from __future__ import annotations

import json
from typing import Any

# Published on-demand prices (USD) used by the tests' hand computations.
PUBLISHED = {
    ("instance", "us-east-1", "p5.48xlarge"): 55.04,
    ("instance", "us-east-1", "g5.xlarge"): 1.006,
    ("instance", "us-east-1", "g5.12xlarge"): 5.672,
    ("instance", "us-east-1", "t3.micro"): 0.0104,
    ("storage", "us-east-1", "gp3"): 0.08,
    ("storage", "us-east-1", "io2"): 0.125,
    ("iops", "us-east-1", "gp3"): 0.005,
    ("throughput", "us-east-1", "gp3"): 0.04,
    ("snapshot", "us-east-1", "standard"): 0.05,
}
IO2_IOPS_TIERS = {
    "EBS:VolumeP-IOPS.io2": 0.065,
    "EBS:VolumeP-IOPS.io2.tier2": 0.0455,
    "EBS:VolumeP-IOPS.io2.tier3": 0.03185,
}


def entry(
    sku: str,
    family: str,
    attributes: dict[str, str],
    usd: str,
    *,
    unit: str = "Hrs",
    description: str = "",
    begin: str = "0",
    end: str = "Inf",
) -> str:
    term = f"{sku}.JRTCKXETXF"
    record: dict[str, Any] = {
        "product": {
            "productFamily": family,
            "attributes": {
                "servicecode": "AmazonEC2",
                "regionCode": "us-east-1",
                "location": "US East (N. Virginia)",
                **attributes,
            },
            "sku": sku,
        },
        "serviceCode": "AmazonEC2",
        "terms": {
            "OnDemand": {
                term: {
                    "priceDimensions": {
                        f"{term}.6YS6EN2CT7": {
                            "unit": unit,
                            "endRange": end,
                            "description": description,
                            "appliesTo": [],
                            "rateCode": f"{term}.6YS6EN2CT7",
                            "beginRange": begin,
                            "pricePerUnit": {"USD": usd},
                        }
                    },
                    "sku": sku,
                    "effectiveDate": "2026-11-01T00:00:00Z",
                    "offerTermCode": "JRTCKXETXF",
                    "termAttributes": {},
                }
            }
        },
        "version": "20261101000000",
        "publicationDate": "2026-11-01T00:00:00Z",
    }
    return json.dumps(record)


def instance(instance_type: str, usd: float, sku: str = "") -> str:
    return entry(
        sku or "SKU" + instance_type.replace(".", "").upper(),
        "Compute Instance",
        {
            "instanceType": instance_type,
            "operatingSystem": "Linux",
            "tenancy": "Shared",
            "preInstalledSw": "NA",
            "capacitystatus": "Used",
            "marketoption": "OnDemand",
            "licenseModel": "No License required",
            "usagetype": f"BoxUsage:{instance_type}",
        },
        f"{usd:.10f}",
        description=f"${usd} per On Demand Linux {instance_type} Instance Hour",
    )


def storage(volume_api_name: str, usd: float) -> str:
    usage = {"io1": "piops", "standard": ""}.get(volume_api_name, volume_api_name)
    return entry(
        f"STOR{volume_api_name.upper()}",
        "Storage",
        {"volumeApiName": volume_api_name, "usagetype": f"EBS:VolumeUsage{'.' + usage if usage else ''}"},
        f"{usd:.10f}",
        unit="GB-Mo",
    )


def iops(volume_api_name: str, usd: float, usage: str = "") -> str:
    return entry(
        f"IOPS{(usage or volume_api_name).replace('.', '').replace(':', '').upper()}",
        "System Operation",
        {
            "volumeApiName": volume_api_name,
            "group": "EBS IOPS",
            "usagetype": usage or f"EBS:VolumeP-IOPS.{volume_api_name}",
        },
        f"{usd:.10f}",
        unit="IOPS-Mo",
    )


def throughput(usd: float) -> str:
    return entry(
        "THRUGP3",
        "Provisioned Throughput",
        {"volumeApiName": "gp3", "group": "EBS Throughput", "usagetype": "EBS:VolumeP-Throughput.gp3"},
        f"{usd:.10f}",
        unit="GiBps-mo",
    )


def snapshots(standard: float = 0.05, archive: float = 0.0125) -> list[str]:
    return [
        entry(
            "SNAPSTD",
            "Storage Snapshot",
            {"usagetype": "EBS:SnapshotUsage", "storageMedia": "Amazon S3"},
            f"{standard:.10f}",
            unit="GB-Mo",
        ),
        entry(
            "SNAPARC",
            "Storage Snapshot",
            {"usagetype": "EBS:SnapshotArchiveStorage", "storageMedia": "Amazon S3"},
            f"{archive:.10f}",
            unit="GB-Mo",
        ),
    ]


def records_for(kind: str, name: str) -> list[str]:
    """What GetProducts answers for one price key in us-east-1, from the published prices above."""
    if kind == "snapshot":
        return snapshots(PUBLISHED[("snapshot", "us-east-1", "standard")])
    if kind == "iops" and name == "io2":
        return [iops("io2", usd, usage) for usage, usd in IO2_IOPS_TIERS.items()]
    usd = PUBLISHED.get((kind, "us-east-1", name))
    if usd is None:
        return []
    if kind == "instance":
        return [instance(name, usd)]
    if kind == "storage":
        return [storage(name, usd)]
    if kind == "iops":
        return [iops(name, usd)]
    return [throughput(usd)]
