"""`trainctl sweep --account ID` / `--all-accounts`, `trainctl cost --account ID` / `--all-accounts` and `trainctl
org status`: the organization from a laptop with the hub's credentials.

The same organization run as the hub's Distributed Map: the covered accounts (opt-in by unit, minus the
deny-list, never the management account unless listed), each account-region swept through its spoke role. A
preview (no --enforce) records nothing and reads no onboarding: every account is a dry-run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import typer

from trainctl.aws.clients import ClientFactory
from trainctl.aws.notifications import SnsNotifier
from trainctl.cli import stack_resources
from trainctl.cli.environment import check_settings
from trainctl.cli.output import EXIT_FAILED, EXIT_USAGE, AsJson, Output, console, emit, fail, output_format, warn
from trainctl.cli.render import Col, print_table
from trainctl.cli.session import factory_of
from trainctl.core import names
from trainctl.core.clock import Clock, format_instant
from trainctl.core.errors import TrainctlError
from trainctl.core.settings import CostSettings, SweepSettings
from trainctl.core.text import one_line
from trainctl.organization.members import plan_organization
from trainctl.organization.record import AccountRecords
from trainctl.organization.rules import Coverage, is_account_id
from trainctl.organization.run import aggregate, sweep_target
from trainctl.organization.settings import OrganizationSettings

org = typer.Typer(help="The AWS Organization the hub covers: accounts, onboarding, last sweeps.", no_args_is_help=True)

# A laptop sweeps a few account-regions at once, each of them already reading its regions' APIs in parallel.
LAPTOP_CONCURRENCY = 4
NOT_COVERED = "not in a covered organizational unit"


def check_accounts(asked: Sequence[str] | None) -> tuple[str, ...]:
    for account in asked or ():
        if not is_account_id(account):
            # The shape, not the value: what was typed is not pasted into the message line.
            raise fail("--account: an account id is 12 digits, such as 123456789012", EXIT_USAGE)
    return tuple(dict.fromkeys(asked or ()))


def organization_settings(environ: dict[str, str], regions: tuple[str, ...]) -> OrganizationSettings:
    chosen = OrganizationSettings.from_env(environ)
    if not chosen.enabled:
        raise TrainctlError(
            "no organization is covered here: set TRAINCTL_ORG_UNITS (or TRAINCTL_ORG_INCLUDE_ACCOUNTS)"
        )
    return chosen.model_copy(update={"org_regions": regions}) if regions else chosen


def sweep_organization(
    factory: ClientFactory,
    settings: SweepSettings,
    clock: Clock,
    environ: dict[str, str],
    *,
    accounts: tuple[str, ...],
    regions: tuple[str, ...],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The organization run (or the accounts asked for) from the hub's credentials: its JSON, and each child's."""
    chosen = organization_settings(environ, regions)
    records = None
    if not settings.dry_run:
        resources = stack_resources.resolve(factory, environ, settings.regions)
        if resources is None:
            raise TrainctlError(
                f"stack {names.STACK_NAME} is not deployed here: --enforce needs its ledger. "
                "Run without --enforce for a read-only preview."
            )
        settings = settings.model_copy(
            update={
                "ledger_table": resources.ledger_table,
                "topic_arn": resources.topic_arn,
                "training_document": resources.training_document,
            }
        )
        records = AccountRecords(factory.dynamodb(), settings.ledger_table)
    coverage = plan_organization(factory, chosen, settings, records)
    for account in accounts:
        if account not in coverage.covered:
            raise TrainctlError(f"--account {account}: not swept: {coverage.excluded.get(account, NOT_COVERED)}")
    targets = [t for t in coverage.targets if not accounts or t.account in accounts]
    notifier = SnsNotifier(factory.sns(), settings.topic_arn) if settings.topic_arn and not settings.dry_run else None

    def one(target: Any) -> dict[str, Any]:
        outcome = sweep_target(factory, target, chosen, settings, clock, records=records, notifier=notifier)
        return outcome.to_json()

    with ThreadPoolExecutor(max_workers=max(1, min(LAPTOP_CONCURRENCY, chosen.org_max_concurrency))) as pool:
        children = list(pool.map(one, targets))
    payload = {
        "dry_run": settings.dry_run,
        "at": format_instant(clock()),
        "regions": list(chosen.regions_or(settings.regions)),
        "covered": list(coverage.covered),
        "excluded": coverage.excluded,
        "accounts": children,
        "summary": aggregate(children),
    }
    return payload, children


def print_organization_sweep(children: Sequence[dict[str, Any]], title: str) -> None:
    columns = [Col("account", 1, whole=True), Col("region", 2, whole=True), Col("mode", 2), Col("actions", 1)]
    rows = []
    for child in children:
        actions = {a: n for a, n in dict(child["summary"].get("actions") or {}).items() if a != "keep"}
        said = ", ".join(f"{n} {a}" for a, n in sorted(actions.items())) or "none"
        mode = "dry-run" if child["dry_run"] else "enforced"
        rows.append([child["account"], child["region"], mode, child["error"] or said])
    print_table(console, title, columns, rows)


def exit_for(children: Sequence[dict[str, Any]]) -> None:
    failed = [c for c in children if c["outcome"] == "failed"]
    for child in failed:
        warn(str(child["error"]))
    if failed:
        raise typer.Exit(EXIT_FAILED)


# -- trainctl cost --all-accounts ------------------------------------------------------------------------------


def cost_organization(
    factory: ClientFactory,
    settings: CostSettings,
    clock: Clock,
    environ: dict[str, str],
    *,
    accounts: tuple[str, ...],
    regions: tuple[str, ...],
) -> dict[str, Any]:
    """The organization's burn (or the accounts asked for) from the hub's credentials, as the cost run sums it.

    A report: it reads the stack's price table where the stack is deployed, keeps nothing and alerts nobody.
    """
    # Cold start: the cost check's code loads only when accounts are priced.
    from trainctl.cost.run import has_price_list_api
    from trainctl.organization.cost import child_price_book, price_account
    from trainctl.organization.cost_total import summarise

    chosen = organization_settings(environ, regions)
    resources = stack_resources.resolve(factory, environ, settings.regions)
    if resources is not None:
        settings = settings.model_copy(update={"price_table": resources.price_table})
    sweep = SweepSettings.from_env(environ).model_copy(update={"regions": settings.regions, "dry_run": True})
    coverage = plan_organization(factory, chosen, sweep, None)
    for account in accounts:
        if account not in coverage.covered:
            raise TrainctlError(f"--account {account}: not priced: {coverage.excluded.get(account, NOT_COVERED)}")
    priced = [a for a in coverage.covered if not accounts or a in accounts]
    use_api = has_price_list_api(environ)

    def one(account: str) -> dict[str, Any]:
        def book_for(spoke: ClientFactory) -> Any:
            return child_price_book(factory, spoke, settings, clock, use_table=resources is not None, use_api=use_api)

        return price_account(factory, account, chosen, settings, clock, book_for=book_for).to_json()

    with ThreadPoolExecutor(max_workers=max(1, min(LAPTOP_CONCURRENCY, chosen.org_max_concurrency))) as pool:
        children = list(pool.map(one, priced))
    excluded = {} if accounts else coverage.excluded
    total = summarise(children, priced, excluded, chosen, settings)
    return {
        "at": format_instant(clock()),
        "regions": list(chosen.regions_or(settings.regions)),
        "covered": priced,
        **total.to_json(),
        "children": children,
    }


def _usd(value: float | None, unit: str = "") -> str:
    return "not read" if value is None else f"${value:,.2f}{unit}"


def print_organization_cost(shown: dict[str, Any], title: str) -> None:
    """Per account, per owner, then the total with what it leaves out and every threshold crossed."""
    account_rows = [
        [account, _usd(a["hourly_usd"], "/h"), _usd(a["daily_usd"], "/day"), a["error"] or f"{a['resources']}"]
        for account, a in shown["accounts"].items()
    ]
    columns = [
        Col("account", 1, whole=True),
        Col("burn", 1, whole=True),
        Col("24 hours", 2, whole=True),
        Col("resources", 1),
    ]
    print_table(console, f"{title}: per account", columns, account_rows)
    owner_rows = [
        [one_line(owner), _usd(o["hourly_usd"], "/h"), _usd(o["daily_usd"], "/day"), ", ".join(sorted(o["accounts"]))]
        for owner, o in shown["owners"].items()
    ]
    columns = [Col("owner", 1), Col("burn", 1, whole=True), Col("24 hours", 2, whole=True), Col("accounts", 2)]
    print_table(console, f"{title}: per owner", columns, owner_rows)
    console.print(
        f"total: {_usd(shown['hourly_usd'], '/h')} ({_usd(shown['daily_usd'], '/day')}) {shown['total_covers']}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    for breach in shown["breaches"]:
        console.print(f"breach: {one_line(breach['message'])}", markup=False, highlight=False, soft_wrap=True)
    for account, why in sorted(shown["excluded"].items()):
        console.print(f"not covered: account {account}: {why}", markup=False, highlight=False, soft_wrap=True)


def exit_for_cost(shown: dict[str, Any]) -> None:
    for unreachable in shown["unreachable"]:
        warn(one_line(unreachable["error"]))
    if shown["unreachable"]:
        raise typer.Exit(EXIT_FAILED)


# -- trainctl org status ---------------------------------------------------------------------------------------


def organization_status(factory: ClientFactory, environ: dict[str, str]) -> dict[str, Any]:
    chosen = organization_settings(environ, ())
    sweep = SweepSettings.from_env(environ)
    resources = stack_resources.resolve(factory, environ, sweep.regions)
    if resources is None:
        raise TrainctlError(f"stack {names.STACK_NAME} is not deployed here: org status reads its ledger")
    records = AccountRecords(factory.dynamodb(), resources.ledger_table)
    coverage: Coverage = plan_organization(factory, chosen, sweep, records)
    onboarded = records.onboarded(coverage.covered) if coverage.covered else frozenset()
    accounts = []
    for account in coverage.covered:
        runs = records.newest_runs(account)
        accounts.append(
            {
                "account": account,
                "onboarded": account in onboarded,
                "last_sweep": format_instant(runs[0].at) if runs else None,
                "failures": [r.to_json() for r in runs if r.outcome == "failed"],
            }
        )
    return {"covered": accounts, "excluded": coverage.excluded}


@org.command("status")
def status(ctx: typer.Context, as_json: AsJson = False, output: Output = None) -> None:
    """Accounts covered, onboarded (first dry-run done) and excluded; each account's last sweep and failures."""
    fmt = output_format(ctx, output, as_json)
    environ = dict(os.environ)
    check_settings(environ)
    shown = organization_status(factory_of(ctx), environ)

    def table() -> None:
        columns = [
            Col("account", 1, whole=True),
            Col("onboarded", 2),
            Col("last sweep", 2, whole=True),
            Col("failures", 1),
        ]
        rows = [
            [
                a["account"],
                "yes" if a["onboarded"] else "no: its first sweep is a dry-run",
                a["last_sweep"] or "never",
                "; ".join(f"{f['region']}: {f['error']}" for f in a["failures"]) or "none",
            ]
            for a in shown["covered"]
        ]
        print_table(console, "covered accounts", columns, rows)
        excluded = [[account, why] for account, why in sorted(shown["excluded"].items())]
        print_table(console, "excluded accounts", [Col("account", 1, whole=True), Col("why", 1)], excluded)

    rows = [{**a, "failures": len(a["failures"])} for a in shown["covered"]]
    emit(fmt, shown, table, rows=rows)
