"""Every benchmark, one run, one file: python -m bench.results  (or `make bench`) rewrites bench/RESULTS.md.

    python -m bench.results [--sizes 1000,10000,50000] [--regions 1,2] [--latency 0.05] [--output PATH]
    python -m bench.results --section timelapse [--timelapse-days 30] [--timelapse-seed 1]
    python -m bench.results --section imports
    python -m bench.results --section sizes
    python -m bench.results --section data-plan
    python -m bench.results --section providers [--latency 0.05]
    python -m bench.results --section organization [--latency 0.05]

Scenarios: (a) the sweep against Cloud Custodian, (b) the spot handler and every handler's cold import,
(c) Lambda package sizes, (d) pre-warm workflow runs, (e) cost price look-ups, (f) the time-lapse (weeks of the
deployed schedules against a cast of users, judged by an oracle), (g) `data plan` on a listing of a million
objects, (h) the RunPod and Lyceum sweeps on large accounts behind their emulators, (i) an organization dry-run over
200 accounts x 4 regions, Distributed Map against a serial loop. Figures are this machine's, on
the day it ran;
the file says which machine and which day. `--section timelapse` reruns (f) alone and replaces only its section;
`--section imports` does the same for (b)'s cold imports, `--section sizes` for (c), `--section data-plan` for (g),
`--section providers` for (h), `--section organization` for (i).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from bench import (
    cold_start,
    custodian,
    data_plan,
    organization,
    providers,
    spot_checkpoint,
    sweep_compare,
    workflow_runs,
)
from bench.aws_like import MUTATING, NON_MUTATING, PAGE_LIMITS
from bench.report import Table
from bench.timelapse.report import SECTION_HEADING, markdown_section
from bench.timelapse.run import time_lapse

ROOT = Path(__file__).resolve().parents[1]
DRY_RUN_TARGET_SECONDS = 300
SPEEDUP_TARGET = 2.0


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        memory_kib = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        memory = f"{memory_kib / 2**20:.0f} GiB"
    except (OSError, StopIteration):
        memory = "unknown memory"
    system = f"{platform.system()} {platform.machine()}"
    return f"{system}, {os.cpu_count()} cores ({cpu}), {memory}, Python {platform.python_version()}"


def custodian_version() -> str:
    out = subprocess.run([str(custodian.CUSTODIAN), "version"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def targets(comparisons: list[sweep_compare.Comparison], imports: Table, spot: Table) -> Table:
    table = Table("Targets", ["target", "measured", "met"])
    largest = max(c.resources for c in comparisons)
    for c in comparisons:
        if c.mode == "dry-run" and c.resources == largest:
            table.rows.append(
                [
                    f"dry-run sweep of {c.resources:,} resources, {c.regions} region(s), "
                    f"under {DRY_RUN_TARGET_SECONDS} s",
                    f"{c.trainctl_wall:.1f} s",
                    "yes" if c.trainctl_wall < DRY_RUN_TARGET_SECONDS else "no",
                ]
            )
    surfaced = sum(c.trainctl_surfaced for c in comparisons if c.mode != "dry-run")
    throttled = sum(c.trainctl_throttled for c in comparisons if c.mode != "dry-run")
    table.rows.append(
        [
            "enforced sweeps: no throttling error surfacing",
            f"{throttled} RequestLimitExceeded answered, {surfaced} surfaced",
            "yes" if surfaced == 0 else "no",
        ]
    )
    slowest = min(comparisons, key=lambda c: c.speedup)
    table.rows.append(
        [
            f"at least {SPEEDUP_TARGET:.0f}x as fast as Custodian (wall time), every run",
            f"{min(c.speedup for c in comparisons):.1f}x to {max(c.speedup for c in comparisons):.1f}x "
            f"(slowest: {slowest.mode}, {slowest.resources:,} resources, {slowest.regions} region(s))",
            "yes" if slowest.speedup >= SPEEDUP_TARGET else "no",
        ]
    )
    more = [c for c in comparisons if c.trainctl_calls > c.custodian_calls]
    table.rows.append(
        [
            "equal or fewer API calls than Custodian, every run",
            "fewer in every run" if not more else f"more in {len(more)} run(s)",
            "yes" if not more else "no",
        ]
    )
    spot_max = max(float(row[3]) for row in spot.rows)
    table.rows.append(
        [
            "spot checkpoint command issued within 1 s, warm",
            f"max {spot_max:.0f} ms",
            "yes" if spot_max < 1000 else "no",
        ]
    )
    under = imports.headers.index(f"under {cold_start.IMPORT_TARGET_MS} ms (best)")
    over = [f"{row[0]} {float(row[1]):.0f} ms" for row in imports.rows if row[under] == "no"]
    table.rows.append(
        [
            f"each handler's cold import under {cold_start.IMPORT_TARGET_MS} ms",
            "all under" if not over else "over: " + ", ".join(over),
            "yes" if not over else "no",
        ]
    )
    ratio, within = (
        imports.headers.index("best / floor"),
        imports.headers.index(f"within {cold_start.FLOOR_RATIO_TARGET}x"),
    )
    handler_rows = [row for row in imports.rows if row[ratio] != "-"]
    beyond = [f"{row[0]} {row[ratio]}x" for row in handler_rows if row[within] == "no"]
    table.rows.append(
        [
            f"each handler's cold import within {cold_start.FLOOR_RATIO_TARGET}x of its libraries' floor (best)",
            f"at most {max(float(row[ratio]) for row in handler_rows):.2f}x"
            if not beyond
            else "over: " + ", ".join(beyond),
            "yes" if not beyond else "no",
        ]
    )
    return table


def timelapse_section(days: float, seed: int) -> str:
    """(f): the large cast for `days` on the deployed schedules, judged; the command that reproduces it."""
    print(f"(f) time-lapse, {days:g} days, seed {seed} ...", flush=True)
    run = time_lapse(days=days, seed=seed, cast="large")
    command = f"python -m bench.timelapse --days {days:g} --seed {seed} --cast large"
    return markdown_section(run.record, run.judgement, command=command, wall_seconds=run.wall_seconds)


IMPORTS_HEADING = "### Cold import of each handler module"


def imports_section() -> str:
    """(b)'s cold imports alone: every handler against the floor its libraries set."""
    print("(b) cold imports ...", flush=True)
    imports = cold_start.import_table()
    imports.notes.insert(
        0,
        f"- Measured on {datetime.now(UTC):%Y-%m-%d} on {machine()}; `python -m bench.results --section imports` "
        "reruns it.",
    )
    return imports.markdown()


SIZES_HEADING = "## (c) Package sizes\n"


def sizes_section() -> str:
    """(c): each function's package and the layer as the bundler builds it."""
    print("(c) package sizes ...", flush=True)
    measured = f"Measured on {datetime.now(UTC):%Y-%m-%d}; `python -m bench.results --section sizes` reruns it.\n"
    return SIZES_HEADING + "\n" + measured + "\n" + cold_start.size_table().markdown()


DATA_PLAN_HEADING = "## (g) Data plan: a listing of a million objects\n"


def data_plan_section(latency: float) -> str:
    """(g): `trainctl data plan` on 1,000,000 objects in 1,000 folders, listed through the AWS-like endpoint."""
    print("(g) data plan on a listing of 1,000,000 objects ...", flush=True)
    run = data_plan.measure(latency=latency)
    measured = (
        f"Measured on {datetime.now(UTC):%Y-%m-%d} on {machine()}; `python -m bench.results --section data-plan` "
        "reruns it.\n"
    )
    return DATA_PLAN_HEADING + "\n" + measured + "\n" + data_plan.table(run, latency).markdown()


PROVIDERS_HEADING = "## (h) RunPod and Lyceum: large accounts behind the emulators\n"


def providers_section(latency: float) -> str:
    """(h): a RunPod account of 2,000 pods and 500 network volumes, and a Lyceum account, swept to the act."""
    print("(h) RunPod and Lyceum sweeps ...", flush=True)
    runpod = providers.measure_runpod(
        providers.DEFAULT_PODS, providers.DEFAULT_VOLUMES, latency, providers.DEFAULT_QUOTA
    )
    lyceum = providers.measure_lyceum(providers.DEFAULT_VMS, latency)
    measured = (
        f"Measured on {datetime.now(UTC):%Y-%m-%d} on {machine()}; `python -m bench.results --section providers` "
        "reruns it (`python -m bench.providers` prints it). Every figure is the emulators' (`trainctl.cli."
        "runpod_emulator`, `trainctl.cli.lyceum_emulator`): neither provider was called.\n"
    )
    return (
        PROVIDERS_HEADING
        + "\n"
        + measured
        + "\n"
        + providers.runpod_table(runpod, latency, providers.DEFAULT_QUOTA).markdown()
        + "\n"
        + providers.lyceum_table(lyceum).markdown()
    )


ORGANIZATION_HEADING = "## (i) A whole AWS Organization: 200 accounts x 4 regions\n"


def organization_section(latency: float) -> str:
    """(i): the organization dry-run's children measured in a serial loop, then scheduled as the Distributed Map."""
    print("(i) organization dry-run over 200 accounts x 4 regions ...", flush=True)
    run = organization.measure(latency=latency)
    measured = (
        f"Measured on {datetime.now(UTC):%Y-%m-%d} on {machine()}; `python -m bench.results --section organization` "
        "reruns it (`python -m bench.organization` prints it). The deployed organization_plan and "
        "organization_sweep handlers run in a process of their own against the AWS-like endpoint, with EC2's "
        "request buckets kept per account and region; moto serves the Organization and the hub's ledger.\n"
    )
    concurrencies = organization.DEFAULT_CONCURRENCIES
    return ORGANIZATION_HEADING + "\n" + measured + "\n" + organization.table(run, concurrencies, latency).markdown()


def before_preserved(text: str, heading: str, section: str) -> str:
    """`text` with `section` in place of the one under `heading`; a new one goes before the preserved sections."""
    if heading not in text:
        starts = [i for i in (text.find("\n" + h) for h in PRESERVED_HEADINGS) if i >= 0]
        if starts:
            cut = min(starts) + 1
            return text[:cut] + section + "\n" + text[cut:]
    return replace_section(text, heading, section)


def replace_section(text: str, heading: str, section: str) -> str:
    """`text` with the section under `heading` (up to the next heading of its level or above) replaced by
    `section`, or it appended."""
    start = text.find(heading)
    if start < 0:
        return text.rstrip("\n") + "\n\n" + section
    levels = ("\n## ", "\n### ") if heading.startswith("### ") else ("\n## ",)
    ends = [i for i in (text.find(level, start + len(heading)) for level in levels) if i >= 0]
    end = min(ends, default=-1)
    return text[:start] + section + ("" if end < 0 else "\n" + text[end + 1 :])


# Sections another command writes (`make mutate`, by hand from its figures): a full regeneration carries them over.
PRESERVED_HEADINGS = ("## Mutation testing",)


def preserved_sections(text: str) -> list[str]:
    """Each preserved section of `text` (from its heading up to the next `## `), as it stands."""
    kept = []
    for heading in PRESERVED_HEADINGS:
        start = text.find(heading)
        if start >= 0:
            end = text.find("\n## ", start + len(heading))
            kept.append(text[start:] if end < 0 else text[start : end + 1])
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--regions", default="1,2")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument(
        "--section",
        choices=["timelapse", "imports", "sizes", "data-plan", "providers", "organization"],
        help="regenerate only this section of the output",
    )
    parser.add_argument("--timelapse-days", type=float, default=30)
    parser.add_argument("--timelapse-seed", type=int, default=1)
    args = parser.parse_args()
    if args.section is not None:
        if args.section == "timelapse":
            heading, section = SECTION_HEADING, timelapse_section(args.timelapse_days, args.timelapse_seed)
        elif args.section == "imports":
            heading, section = IMPORTS_HEADING, imports_section()
        elif args.section == "data-plan":
            heading, section = DATA_PLAN_HEADING, data_plan_section(args.latency)
        elif args.section == "providers":
            heading, section = PROVIDERS_HEADING, providers_section(args.latency)
        elif args.section == "organization":
            heading, section = ORGANIZATION_HEADING, organization_section(args.latency)
        else:
            heading, section = SIZES_HEADING, sizes_section()
        current = args.output.read_text() if args.output.exists() else "# trainctl benchmarks\n"
        args.output.write_text(before_preserved(current, heading, section))
        print(f"wrote the {args.section} section of {args.output}")
        return
    started = time.perf_counter()
    workflow_runs.prepare()
    sizes = [int(s) for s in args.sizes.split(",")]
    counts = [int(c) for c in args.regions.split(",")]
    print("(a) sweep against Cloud Custodian ...", flush=True)
    sweep_tables, comparisons = sweep_compare.measure(sizes, counts, args.latency)
    print("(b) spot handler and cold imports ...", flush=True)
    spot = spot_checkpoint.table()
    imports = cold_start.import_table()
    sizes = sizes_section()
    print("(d) pre-warm runs, (e) cost look-ups ...", flush=True)
    prewarm = workflow_runs.prewarm_table()
    cost = workflow_runs.cost_table()
    timelapse = timelapse_section(args.timelapse_days, args.timelapse_seed)
    listing = data_plan_section(args.latency)
    provider_accounts = providers_section(args.latency)
    organization_accounts = organization_section(args.latency)
    took = time.perf_counter() - started

    now = datetime.now(UTC)
    previous = args.output.read_text() if args.output.exists() else ""
    parts = [
        "# trainctl benchmarks\n",
        f"Regenerated by `make bench` (`python -m bench.results`) on {now:%Y-%m-%d at %H:%M} UTC, in {took / 60:.0f} "
        f"minutes, on {machine()}.\n",
        f"Tools: trainctl {version('trainctl')} (boto3 {version('boto3')}), Cloud Custodian {custodian_version()}, "
        f"moto {version('moto')}.\n",
        "## The environment\n",
        "Every AWS call of both tools goes to one local endpoint (`bench/aws_like.py`) that behaves as AWS does "
        f"where speed is decided: {args.latency * 1000:.0f} ms per call, EC2's request-rate token buckets per "
        f"region and API ({NON_MUTATING.capacity:.0f} tokens refilled at {NON_MUTATING.refill_per_second:.0f}/s "
        f"for Describe*, {MUTATING.capacity:.0f} at {MUTATING.refill_per_second:.0f}/s for mutating calls) "
        "answering `RequestLimitExceeded`, and EC2's page sizes "
        f"({', '.join(f'{k} {v}' for k, v in PAGE_LIMITS.items())}). The fleet's EC2 calls are answered from "
        "memory (XML rendered from botocore's EC2 model), everything else by moto; the endpoint's own time is "
        "shown as 'emulator s'. Two costs of moto's server that AWS lacks are taken away: moto answers a DynamoDB "
        "Query by sorting the whole table (here it reads the queried partition, with the same items in the same "
        "order), and a listen backlog of 5 that dropped the connections of a client opening 32 at once. "
        "Each tool runs as its own process on a freshly built, identical fleet "
        "(`bench/fleet.py`): 20 % instances, 50 % volumes, 30 % snapshots, about 2 % of them forgotten.\n",
        "Custodian runs equivalent policies (`bench/custodian.py`): the same scope and protection tags, the same "
        "age thresholds, the same grace period (mark, then act a day later), and idleness by CPU with no "
        "datapoints meaning not idle. trainctl runs its deployed `cleanup_sweep` handler with its blast-radius "
        "cap lifted, as Custodian acts on everything it matches.\n",
        "## Summary\n",
        targets(comparisons, imports, spot).markdown(),
        "## (a) Sweep: trainctl and Cloud Custodian on the same fleet\n",
        *[t.markdown() for t in sweep_tables],
        "## (b) Spot handler and cold imports\n",
        spot.markdown(),
        imports.markdown(),
        sizes,
        "## (d) Pre-warm workflow\n",
        prewarm.markdown(),
        "## (e) Cost report\n",
        cost.markdown(),
        timelapse,
        listing,
        provider_accounts,
        organization_accounts,
        *preserved_sections(previous),
    ]
    args.output.write_text("\n".join(parts))
    print(f"wrote {args.output} in {took:.0f} s")


if __name__ == "__main__":
    main()
