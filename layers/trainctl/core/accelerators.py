"""Accelerators per instance type: how many, which model, and whether nvidia-smi or neuron-monitor reports them.

From AWS's published instance specifications: the GpuInfo and NeuronInfo that EC2 DescribeInstanceTypes
returns (as carried, row by row, in the SkyPilot AWS catalog, skypilot-org/skypilot-catalog
catalogs/v8/aws/vms.csv at 00148f2af3672e2229b4f7bf8157d5a3f36e3c35, read 2026-12-01), and the AWS Neuron
documentation for Trainium and Trainium2 (awsdocs-neuron, trn1-arch and trn2-arch: 16 chips in a
trn1.32xlarge, trn1n.32xlarge, trn2.48xlarge and trn2u.48xlarge; and the Inf1 architecture page: 1, 1, 4 and
16 Inferentia chips in an inf1.xlarge, 2xlarge, 6xlarge and 24xlarge). A g6f or gr6f shares one L4: its count
is the fraction of the GPU it gets (the catalog's GpuPartitionSize: 0.5 for a gr6f.4xlarge; one whole L4 in
each gr6 size).

Pure data and arithmetic: the cost rules report burn per accelerator from it, and any rule that must know
whether an instance has accelerators (the idle rule) can ask it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

# How the device reports its utilisation: NVIDIA GPUs through nvidia-smi (the CloudWatch agent's
# nvidia_smi_* metrics), Trainium and Inferentia through neuron-monitor.
AcceleratorKind = Literal["gpu", "neuron"]
TIMES = "\N{MULTIPLICATION SIGN}"  # between a count and a model: the "8 (times) H100"

SPECIFICATION_SOURCES = (
    "EC2 DescribeInstanceTypes GpuInfo/NeuronInfo, as carried in skypilot-org/skypilot-catalog "
    "catalogs/v8/aws/vms.csv @ 00148f2af3672e2229b4f7bf8157d5a3f36e3c35 (read 2026-12-01)",
    "AWS Neuron documentation: Trn1, Trn2 and Inf1 architecture pages (awsdocs-neuron.readthedocs-hosted.com)",
)


@dataclass(frozen=True, slots=True)
class Accelerators:
    """The accelerators an instance type carries: how many, which model, GPU or Neuron."""

    count: float  # whole devices, or the fraction of one a g6f gets
    model: str
    kind: AcceleratorKind

    @property
    def unit(self) -> str:
        """What one is called in a rate: "8 x H100 at $6.88 per GPU-hour", "16 x Trainium at … per chip-hour"."""
        return "GPU" if self.kind == "gpu" else "chip"

    def count_text(self) -> str:
        if self.count >= 1 and float(self.count).is_integer():
            return str(int(self.count))
        return {0.125: "1/8", 0.25: "1/4", 0.5: "1/2"}.get(self.count, f"{self.count:g}")

    def per_device(self, hourly_usd: float) -> float:
        """The instance's hourly price per whole device (a g6f's share scales up to a whole L4)."""
        return hourly_usd / self.count

    def describe(self, hourly_usd: float | None = None) -> str:
        text = f"{self.count_text()} {TIMES} {self.model}"
        if hourly_usd is None:
            return text
        return f"{text} at ${self.per_device(hourly_usd):,.2f} per {self.unit}-hour"


def _sizes(model: str, kind: AcceleratorKind, counts: Mapping[str, float], family: str) -> dict[str, Accelerators]:
    return {f"{family}.{size}": Accelerators(count, model, kind) for size, count in counts.items()}


# The g5/g6/g6e pattern: one GPU up to 16xlarge, four in 12xlarge and 24xlarge, eight in 48xlarge.
_G_SIZES: dict[str, float] = {
    "xlarge": 1,
    "2xlarge": 1,
    "4xlarge": 1,
    "8xlarge": 1,
    "16xlarge": 1,
    "12xlarge": 4,
    "24xlarge": 4,
    "48xlarge": 8,
}

ACCELERATORS: dict[str, Accelerators] = {
    **_sizes(
        "T4",
        "gpu",
        {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "16xlarge": 1, "12xlarge": 4, "metal": 8},
        "g4dn",
    ),
    **_sizes("A10G", "gpu", _G_SIZES, "g5"),
    **_sizes("L4", "gpu", _G_SIZES, "g6"),
    **_sizes("L40S", "gpu", _G_SIZES, "g6e"),
    **_sizes("L4", "gpu", {"large": 0.125, "xlarge": 0.125, "2xlarge": 0.25, "4xlarge": 0.5}, "g6f"),
    **_sizes("L4", "gpu", {"4xlarge": 1, "8xlarge": 1}, "gr6"),
    "gr6f.4xlarge": Accelerators(0.5, "L4", "gpu"),
    **_sizes("V100", "gpu", {"2xlarge": 1, "8xlarge": 4, "16xlarge": 8}, "p3"),
    "p3dn.24xlarge": Accelerators(8, "V100 32GB", "gpu"),
    "p4d.24xlarge": Accelerators(8, "A100", "gpu"),
    "p4de.24xlarge": Accelerators(8, "A100 80GB", "gpu"),
    "p5.4xlarge": Accelerators(1, "H100", "gpu"),
    "p5.48xlarge": Accelerators(8, "H100", "gpu"),
    "p5e.48xlarge": Accelerators(8, "H200", "gpu"),
    "p5en.48xlarge": Accelerators(8, "H200", "gpu"),
    "p6-b200.48xlarge": Accelerators(8, "B200", "gpu"),
    "p6-b300.48xlarge": Accelerators(8, "B300", "gpu"),
    **_sizes("Inferentia", "neuron", {"xlarge": 1, "2xlarge": 1, "6xlarge": 4, "24xlarge": 16}, "inf1"),
    **_sizes("Inferentia2", "neuron", {"xlarge": 1, "8xlarge": 1, "24xlarge": 6, "48xlarge": 12}, "inf2"),
    "trn1.2xlarge": Accelerators(1, "Trainium", "neuron"),
    "trn1.32xlarge": Accelerators(16, "Trainium", "neuron"),
    "trn1n.32xlarge": Accelerators(16, "Trainium", "neuron"),
    "trn2.3xlarge": Accelerators(1, "Trainium2", "neuron"),
    "trn2.48xlarge": Accelerators(16, "Trainium2", "neuron"),
    "trn2u.48xlarge": Accelerators(16, "Trainium2", "neuron"),
}

# The families a team trains on that the price file must account for, size by size (issue 19), plus p3.
# "p4" is p4d and p4de, "p5" the p5, p5e and p5en, "p6" the Blackwell types.
FAMILIES: dict[str, tuple[str, ...]] = {
    "p4": ("p4d", "p4de"),
    "p5": ("p5", "p5e", "p5en"),
    "p6": ("p6-b200", "p6-b300"),
    "g4dn": ("g4dn",),
    "g5": ("g5",),
    "g6": ("g6",),
    "g6e": ("g6e",),
    "g6f": ("g6f",),
    "gr6": ("gr6",),
    "gr6f": ("gr6f",),
    "inf1": ("inf1",),
    "inf2": ("inf2",),
    "trn1": ("trn1",),
    "trn1n": ("trn1n",),
    "trn2": ("trn2", "trn2u"),
    "p3": ("p3", "p3dn"),
}


def family_of(instance_type: str) -> str:
    """The EC2 family of a type name: "p5en.48xlarge" → "p5en"."""
    return instance_type.split(".", 1)[0]


def types_of(family: str) -> list[str]:
    """Every size of a family in FAMILIES, as the table knows them."""
    members = FAMILIES[family]
    return sorted(t for t in ACCELERATORS if family_of(t) in members)


def accelerators_for(instance_type: str) -> Accelerators | None:
    """The accelerators of a type, or None for a type without any (or one the table does not know)."""
    return ACCELERATORS.get(instance_type)


# EC2's accelerated-computing families by name: GPUs (p, g, gr), Inferentia, Trainium, Gaudi (dl), FPGAs (f),
# video transcoders (vt). A type of these the table does not know may still carry accelerators.
_ACCELERATED_FAMILY = re.compile(r"(?:p|g|gr|inf|trn|dl|f|vt)\d")


def may_have_accelerators(instance_type: str) -> bool:
    """Whether the type has, or may have, accelerators no CPU or network metric would show busy."""
    return accelerators_for(instance_type) is not None or bool(_ACCELERATED_FAMILY.match(family_of(instance_type)))
