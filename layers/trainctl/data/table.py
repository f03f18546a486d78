"""The dated table the data plan reads: throughputs, limits and prices, each with its source and date.

In the manner of the price file (trainctl.cost.prices): every figure names the published page it came from and
when it was read; a figure no page states is marked an assumption and says why it is taken; a price nobody
published where we looked is null, a gap the plan lists instead of a number it made up. Instance facts the plan
needs beyond the price file (vCPUs, network and EBS bandwidth at burst and at baseline, instance store) live here
too, type by type.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from importlib import resources
from typing import Any

from trainctl.core.errors import SettingsError

TABLE_FORMAT = 1
PRICED_REGION = "us-east-1"  # the region the table's own prices were published for


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    value: float | None  # None: a gap, no published source was found
    unit: str
    source: str
    url: str
    date: str
    region: str = ""  # a price's region; empty for a figure that holds everywhere
    assumption: str = ""  # why a figure no page states is taken
    gap: str = ""  # why there is no value

    def value_in(self, region: str) -> float | None:
        """The figure for a region: a price published for another region is not this one's."""
        if self.region and self.region != region:
            return None
        return self.value

    def cited(self) -> str:
        """One line: the page and its date (and, for an assumption, that it is one)."""
        kind = "assumption" if self.assumption else "source"
        return f"{self.name}: {kind}: {self.source}, {self.url} (read {self.date})"


@dataclass(frozen=True, slots=True)
class InstanceFacts:
    instance_type: str
    vcpus: int
    network_gbps: float
    network_up_to: bool  # "up to": a burst figure, the sustained baseline is lower
    network_baseline_gbps: float  # what an "up to" type sustains after its burst; the same figure for the others
    ebs_gbps: float  # the maximum
    ebs_baseline_gbps: float  # held after the maximum's 30 minutes; equal to the maximum for the large types
    instance_store_gb: float  # decimal GB, as AWS states instance store; 0 for none
    instance_store_devices: int
    source: str
    url: str
    date: str

    @property
    def network_bytes_per_second(self) -> float:
        return self.network_gbps * 1e9 / 8

    @property
    def network_baseline_bytes_per_second(self) -> float:
        return self.network_baseline_gbps * 1e9 / 8

    @property
    def ebs_bytes_per_second(self) -> float:
        return self.ebs_gbps * 1e9 / 8

    @property
    def ebs_baseline_bytes_per_second(self) -> float:
        return self.ebs_baseline_gbps * 1e9 / 8


@dataclass(frozen=True)
class DataTable:
    as_of: str
    source: str
    figures: Mapping[str, Figure]
    instances: Mapping[str, InstanceFacts]

    def figure(self, name: str) -> Figure:
        return self.figures[name]

    def value(self, name: str) -> float:
        """A figure that must have a value (a throughput or a limit, never a gap)."""
        value = self.figures[name].value
        if value is None:
            raise SettingsError(f"the data table of {self.as_of} has no value for {name}")
        return value

    def price(self, name: str, region: str) -> float | None:
        return self.figures[name].value_in(region)

    def gaps(self) -> list[Figure]:
        return [f for f in self.figures.values() if f.value is None]

    def age_days(self, today: date) -> int:
        return (today - date.fromisoformat(self.as_of)).days

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> DataTable:
        if raw.get("format") != TABLE_FORMAT:
            raise ValueError(f"format must be {TABLE_FORMAT}, got {raw.get('format')!r}")
        date.fromisoformat(str(raw["as_of"]))
        figures = {}
        for name, entry in raw["figures"].items():
            date.fromisoformat(str(entry["date"]))
            value = entry["value"]
            if value is None and not entry.get("gap"):
                raise ValueError(f"{name}: a figure without a value must say why (gap)")
            figures[name] = Figure(
                name,
                None if value is None else float(value),
                str(entry["unit"]),
                str(entry["source"]),
                str(entry["url"]),
                str(entry["date"]),
                str(entry.get("region", "")),
                str(entry.get("assumption", "")),
                str(entry.get("gap", "")),
            )
        instances = {name: _instance_facts(name, entry) for name, entry in raw["instances"].items()}
        return cls(str(raw["as_of"]), str(raw["source"]), figures, instances)


def _instance_facts(name: str, entry: Mapping[str, Any]) -> InstanceFacts:
    facts = InstanceFacts(
        name,
        int(entry["vcpus"]),
        float(entry["network_gbps"]),
        bool(entry["network_up_to"]),
        float(entry["network_baseline_gbps"]),
        float(entry["ebs_gbps"]),
        float(entry["ebs_baseline_gbps"]),
        float(entry["instance_store_gb"]),
        int(entry["instance_store_devices"]),
        str(entry["source"]),
        str(entry["url"]),
        str(entry["date"]),
    )
    # A baseline above the maximum is a typo in the table, and would make the burst a slowdown.
    if not 0 < facts.network_baseline_gbps <= facts.network_gbps:
        raise ValueError(f"{name}: network_baseline_gbps must be above 0 and at most network_gbps")
    if not 0 < facts.ebs_baseline_gbps <= facts.ebs_gbps:
        raise ValueError(f"{name}: ebs_baseline_gbps must be above 0 and at most ebs_gbps")
    return facts


def load_data_table() -> DataTable:
    """The table shipped with trainctl; an unreadable one is a SettingsError at start, not a wrong plan later."""
    try:
        text = resources.files("trainctl.data").joinpath("figures.json").read_text(encoding="utf-8")
        return DataTable.from_json(json.loads(text))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SettingsError(
            f"the data table shipped with trainctl cannot be read: {type(exc).__name__}: {exc}"
        ) from exc
