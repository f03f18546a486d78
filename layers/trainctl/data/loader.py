"""Write a plain, readable PyTorch DataLoader script for the chosen strategy: the user owns it afterwards.

The choices follow the plan and the instance: a map-style dataset where reads are cheap at random (a mounted
volume, the local cache, S3 with few objects), an iterable one that streams S3 in order where the objects are
many; DataLoader workers from the vCPUs each training process gets, and a deeper prefetch where each read is a
network round trip. Every choice is written in the script as a comment, with why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from trainctl.core.paths import is_absolute_path, split_s3_uri
from trainctl.data.table import InstanceFacts

LoaderStrategy = Literal["prewarmed-ebs", "existing-ebs", "direct-s3", "local-cache"]
LOADER_STRATEGIES: tuple[LoaderStrategy, ...] = ("prewarmed-ebs", "existing-ebs", "direct-s3", "local-cache")
# Past this many objects a map-style S3 dataset lists and holds every key in each process: stream instead.
ITERABLE_FROM_OBJECTS = 100_000
# Workers past this many only add memory: local reads are quick, S3 reads wait on the network.
MAX_WORKERS_LOCAL = 8
MAX_WORKERS_S3 = 16
PREFETCH_LOCAL = 2  # PyTorch's default: a local read is fast
PREFETCH_S3 = 4  # each S3 read is a round trip: keep more batches in flight per worker
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")


class LoaderRefused(ValueError):
    """A loader the writer cannot make from these inputs, in one line."""


@dataclass(frozen=True, slots=True)
class LoaderChoice:
    strategy: LoaderStrategy
    dataset: str  # an s3:// URI (direct S3, and the local cache's source) or a mount point
    region: str
    instance_type: str
    vcpus: int
    processes: int  # training processes per instance: one per GPU
    style: Literal["map", "iterable"]
    workers: int
    prefetch: int
    batch_size: int
    cache_dir: str = ""
    objects: int | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "strategy": self.strategy,
            "dataset": self.dataset,
            "style": self.style,
            "workers": self.workers,
            "prefetch": self.prefetch,
            "batch_size": self.batch_size,
            "processes": self.processes,
            "vcpus": self.vcpus,
            "cache_dir": self.cache_dir or None,
        }


def choose(
    strategy: LoaderStrategy,
    dataset: str,
    *,
    facts: InstanceFacts,
    accelerators: float,
    region: str,
    objects: int | None = None,
    batch_size: int = 32,
    cache_dir: str = "/mnt/cache",
) -> LoaderChoice:
    """The loader's shape for a strategy, a dataset and an instance; refuses what it cannot write safely."""
    reads_s3 = strategy == "direct-s3"
    if strategy in ("direct-s3", "local-cache"):
        if split_s3_uri(dataset) is None:
            raise LoaderRefused(f"--dataset: {strategy} needs an s3://bucket/prefix/ URI")
    elif not is_absolute_path(dataset):
        raise LoaderRefused(f"--dataset: {strategy} needs the volume's mount point, an absolute path such as /mnt/data")
    if strategy == "local-cache" and not is_absolute_path(cache_dir):
        raise LoaderRefused("--cache-dir: an absolute path such as /mnt/cache")
    if not _REGION.match(region):
        raise LoaderRefused(f"region {region!r}: not a region name such as us-east-1")
    if batch_size < 1:
        raise LoaderRefused("--batch-size: at least 1")
    processes = max(1, int(accelerators)) if accelerators >= 1 else 1
    per_process = max(1, facts.vcpus // processes)
    # One vCPU per process stays with the training loop itself; the rest load data.
    workers = max(1, min(per_process - 1, MAX_WORKERS_S3 if reads_s3 else MAX_WORKERS_LOCAL))
    style: Literal["map", "iterable"] = (
        "iterable" if reads_s3 and (objects is None or objects > ITERABLE_FROM_OBJECTS) else "map"
    )
    return LoaderChoice(
        strategy,
        dataset,
        region,
        facts.instance_type,
        facts.vcpus,
        processes,
        style,
        workers,
        PREFETCH_S3 if reads_s3 else PREFETCH_LOCAL,
        batch_size,
        cache_dir if strategy == "local-cache" else "",
        objects,
    )


def _header(choice: LoaderChoice) -> str:
    objects = f"{choice.objects:,} objects" if choice.objects is not None else "an unmeasured number of objects"
    return f'''"""DataLoader for {choice.dataset} ({choice.strategy}), written by `trainctl data loader`.

Yours to change. Assumptions, each a choice you may revisit:
- {choice.instance_type}: {choice.vcpus} vCPUs, {choice.processes} training process(es) (one per GPU), so
  {choice.vcpus // choice.processes} vCPUs each; one stays with the training loop, {choice.workers} load data.
- {choice.style}-style dataset: {_style_why(choice, objects)}
- prefetch_factor={choice.prefetch}: {_prefetch_why(choice)}
- decode() returns each sample's raw bytes; replace it with your own decoding (images, tokens, records).
"""
'''


def _style_why(choice: LoaderChoice, objects: str) -> str:
    if choice.strategy != "direct-s3":
        return "files on a local file system read cheaply in any order, so the sampler may shuffle freely."
    if choice.style == "iterable":
        return (
            f"{objects}: streaming them in listing order, sharded over\n  processes and workers, "
            "avoids holding every key in each process."
        )
    return f"{objects}: few enough to list once and read in any order."


def _prefetch_why(choice: LoaderChoice) -> str:
    if choice.strategy == "direct-s3":
        return "each read is an S3 round trip, so more batches stay in flight."
    return "PyTorch's default; local reads are quick."


_COMMON_TAIL = """

def make_loader() -> DataLoader:
    return DataLoader(
        make_dataset(),
        batch_size=BATCH_SIZE,
        num_workers=WORKERS,
        prefetch_factor=PREFETCH,
        persistent_workers=True,  # workers outlive an epoch: no start-up cost every epoch
        pin_memory=torch.cuda.is_available(),
        collate_fn=list,  # samples are raw bytes of any length; batch them your own way
        {shuffle}
    )


if __name__ == "__main__":
    # One pass over the data: what a first epoch reads, and how fast.
    started = time.monotonic()
    samples = 0
    read = 0
    for batch in make_loader():
        samples += len(batch)
        read += sum(len(sample) for sample in batch)
    seconds = max(time.monotonic() - started, 1e-9)
    print(json.dumps({{"samples": samples, "bytes": read, "seconds": round(seconds, 3)}}))
"""


def loader_script(choice: LoaderChoice) -> str:
    """The script's text: it compiles, and it runs where torch (and, for S3, s3torchconnector) is installed."""
    constants = f"BATCH_SIZE = {choice.batch_size}\nWORKERS = {choice.workers}\nPREFETCH = {choice.prefetch}\n"
    if choice.strategy == "direct-s3":
        body = _s3_body(choice)
        shuffle = "" if choice.style == "iterable" else "shuffle=True,"
    else:
        body = _file_body(choice)
        shuffle = "shuffle=True,"
    tail = _COMMON_TAIL.replace("{{", "{").replace("}}", "}").replace("{shuffle}", shuffle)
    text = _header(choice) + "\nfrom __future__ import annotations\n\nimport json\nimport time\n" + body
    text = re.sub(r"\n{4,}", "\n\n\n", text + "\n\n" + constants + tail).replace("\n        \n    )", "\n    )")
    compile(text, "dataloader.py", "exec")  # a script that does not compile is never written
    return text


def _file_body(choice: LoaderChoice) -> str:
    if choice.strategy == "prewarmed-ebs":
        ready = (
            f"    # Refuses to start on a volume that is not mounted, empty, or smaller than its pre-warm wrote.\n"
            f"    return prewarmed_ebs({choice.dataset!r}, expected_bytes=EXPECTED_BYTES)\n"
        )
        imports = "from trainctl.data.strategies import prewarmed_ebs\n"
        extra = (
            "# The volume's trainctl:prewarmed-bytes tag, when you know it: a partly filled volume is refused.\n"
            "EXPECTED_BYTES: int | None = None\n"
        )
    elif choice.strategy == "existing-ebs":
        ready = (
            f"    # Refuses to start on a directory that is not a mounted volume.\n"
            f"    return existing_ebs({choice.dataset!r})\n"
        )
        imports = "from trainctl.data.strategies import existing_ebs\n"
        extra = ""
    else:
        ready = (
            f"    # Creates the cache directory and fills it from S3 on first use; later runs reuse it.\n"
            f"    return local_cache({choice.cache_dir!r}, {choice.dataset!r})\n"
        )
        imports = "from trainctl.data.strategies import local_cache\n"
        extra = ""
    return f'''from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

{imports}
{extra}

def data_root() -> Path:
{ready}

def decode(sample: bytes) -> bytes:
    return sample


class FileDataset(Dataset[bytes]):
    """Every file under the root, in a fixed order, read whole."""

    def __init__(self, root: Path) -> None:
        self.files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".trainctl"))

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> bytes:
        return decode(self.files[index].read_bytes())


def make_dataset() -> FileDataset:
    return FileDataset(data_root())
'''


def _s3_body(choice: LoaderChoice) -> str:
    if choice.style == "iterable":
        dataset = (
            "    # enable_sharding splits the objects over processes and DataLoader workers, so none reads twice.\n"
            "    return S3IterableDataset.from_prefix(\n"
            "        DATASET, region=REGION, enable_sharding=True, transform=read_sample\n"
            "    )\n"
        )
        connector = "from s3torchconnector import S3IterableDataset, S3Reader\n"
        returns = "S3IterableDataset"
    else:
        dataset = "    return S3MapDataset.from_prefix(DATASET, region=REGION, transform=read_sample)\n"
        connector = "from s3torchconnector import S3MapDataset, S3Reader\n"
        returns = "S3MapDataset"
    return f"""
import torch
from torch.utils.data import DataLoader
{connector}
# The Amazon S3 Connector for PyTorch reads at up to the instance's network bandwidth for large objects;
# many small objects are bound by S3's request rate per prefix instead (the plan says which).
DATASET = {choice.dataset!r}
REGION = {choice.region!r}


def decode(sample: bytes) -> bytes:
    return sample


def read_sample(reader: S3Reader) -> bytes:
    return decode(reader.read())


def make_dataset() -> {returns}:
{dataset}"""
