"""python -m bench.timelapse --days 30 --seed N [--cast large|small] [--markdown]"""

from __future__ import annotations

import argparse
import random

from bench.timelapse.report import markdown_section, text_report
from bench.timelapse.run import CASTS, time_lapse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.timelapse", description=__doc__)
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--seed", type=int, default=None, help="default: a random seed, printed first")
    parser.add_argument("--cast", choices=sorted(CASTS), default="large")
    parser.add_argument("--markdown", action="store_true", help="print the RESULTS.md section instead")
    parser.add_argument("--verbose", action="store_true", help="show the handlers' own logs on stderr")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)
    print(f"time-lapse seed {seed}", flush=True)
    run = time_lapse(days=args.days, seed=seed, cast=args.cast, quiet=not args.verbose)
    if args.markdown:
        command = f"python -m bench.timelapse --days {args.days:g} --seed {seed} --cast {args.cast}"
        print(markdown_section(run.record, run.judgement, command=command))
    else:
        print(text_report(run.record, run.judgement, wall_seconds=run.wall_seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
