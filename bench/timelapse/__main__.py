"""python -m bench.timelapse --days 30 --seed N [--cast large|small] [--organization] [--no-providers] [--markdown]"""

from __future__ import annotations

import argparse
import random

from bench.timelapse.accounts import accounts_report
from bench.timelapse.report import markdown_section, text_report
from bench.timelapse.run import CASTS, time_lapse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.timelapse", description=__doc__)
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--seed", type=int, default=None, help="default: a random seed, printed first")
    parser.add_argument("--cast", choices=sorted(CASTS), default="large")
    parser.add_argument("--markdown", action="store_true", help="print the RESULTS.md section instead")
    parser.add_argument("--verbose", action="store_true", help="show the handlers' own logs on stderr")
    parser.add_argument(
        "--organization",
        action="store_true",
        help="a member account beside the hub's, joining the covered unit on day 2, swept by the organization run",
    )
    parser.add_argument(
        "--providers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="RunPod's and Lyceum's stories beside the AWS cast, against their emulators (default: on)",
    )
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)
    print(f"time-lapse seed {seed}", flush=True)
    run = time_lapse(
        days=args.days,
        seed=seed,
        cast=args.cast,
        quiet=not args.verbose,
        organization=args.organization,
        providers=args.providers,
    )
    if args.markdown:
        command = f"python -m bench.timelapse --days {args.days:g} --seed {seed} --cast {args.cast}"
        command += " --organization" if args.organization else ""
        command += "" if args.providers else " --no-providers"
        print(markdown_section(run.record, run.judgement, command=command))
    else:
        print(text_report(run.record, run.judgement, wall_seconds=run.wall_seconds))
    if run.accounts is not None:
        print("\n" + "\n".join(accounts_report(run.accounts, run.account_lines)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
