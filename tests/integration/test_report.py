"""`trainctl report` (issue 18): what the sweeps did, read back from the ledger, per owner and in total, and why,
with dollars avoided as a stated estimate; what cannot be priced is counted as unpriced, never as $0."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws
from typer.testing import CliRunner, Result

from tests.integration.fleet import ENFORCING, seed_account
from trainctl.aws.clients import ClientFactory
from trainctl.cli import stack_resources
from trainctl.cli.main import app
from trainctl.cli.output import EXIT_FAILED, EXIT_USAGE, CliState
from trainctl.core import names
from trainctl.core.clock import fixed_clock, parse_instant, system_clock
from trainctl.report import run as report_module
from trainctl.sweep.record import DynamoDbLedger, ledger_items
from trainctl.sweep.rules import Decision, Seen
from trainctl.sweep.run import SweepResult, run_sweep

REGION = "us-east-1"
NOW = parse_instant("2027-03-01T12:00:00Z")
HOURS = 168  # --noticed-after's default, 7d
# The shipped price file's us-east-1 prices (layers/trainctl/cost/prices/prices.json).
G5_2XLARGE, G5_XLARGE, GP3_GB_MONTH, SNAPSHOT_GB_MONTH = 1.212, 1.006, 0.08, 0.05


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[ClientFactory]:
    """The stack's resources on moto, found as `trainctl` finds them on an emulator."""
    monkeypatch.setattr(
        stack_resources, "resolve", lambda f, _env, regions: stack_resources.ensure_on_emulator(f, regions)
    )
    with mock_aws():
        factory = ClientFactory(REGION)
        stack_resources.ensure_on_emulator(factory, (REGION,))
        yield factory


def report(factory: ClientFactory, args: list[str], at: datetime = NOW, obj: CliState | None = None) -> Result:
    state = obj or CliState(make_factory=lambda: factory, local_clock=fixed_clock(at))
    return CliRunner().invoke(app, ["report", *args], obj=state)


def report_json(factory: ClientFactory, args: list[str], at: datetime = NOW) -> Any:
    result = report(factory, [*args, "--json"], at)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# ------------------------------------------------------------------------------------ a sweep's own ledger


def sweeps_over_the_seeded_fleet(factory: ClientFactory) -> tuple[list[SweepResult], datetime]:
    account = seed_account(factory)
    ledger = DynamoDbLedger(factory.dynamodb(), names.LEDGER_TABLE)
    results = [
        run_sweep(factory, ENFORCING, fixed_clock(at), ledger=ledger, notifier=None)
        for at in (account.t0, account.after_grace())
    ]
    return results, account.after_grace() + timedelta(hours=1)


def test_the_report_counts_what_the_sweeps_recorded_per_owner_and_in_total(stack: ClientFactory) -> None:
    results, later = sweeps_over_the_seeded_fleet(stack)
    said = report_json(stack, [], later)
    decisions = [d for result in results for d in result.decisions]

    def done(action: str, owner: str | None = None) -> set[str]:
        return {
            d.resource_id
            for d in decisions
            if d.action == action and d.outcome == "done" and (owner is None or (d.owner or "(no owner)") == owner)
        }

    total = said["total"]
    assert [s["sweep_id"] for s in said["sweeps"]] == [r.sweep_id for r in results]
    assert said["decisions"] == len(decisions)
    assert (total["marked"], total["deleted"], total["terminated"]) == (
        len(done("mark")),
        len(done("delete")),
        len(done("terminate")),
    )
    assert total["marked"] > 0 and total["deleted"] > 0 and total["terminated"] > 0
    # Kept: a reason to act, a protection kept it, and nothing later acted on it.
    latest = {d.resource_id: d for d in decisions}
    kept = {rid for rid, d in latest.items() if d.action == "keep" and d.reasons and d.outcome != "failed"}
    assert total["kept"] == len(kept) > 0
    protected: dict[str, set[str]] = {}
    for d in decisions:
        if d.action == "keep":
            for name in d.protections:
                protected.setdefault(name, set()).add(d.resource_id)
    assert total["protections"] == {name: len(ids) for name, ids in sorted(protected.items())}
    assert total["reasons"]["unattached"] == len({d.resource_id for d in decisions if "unattached" in d.reasons})
    for owner in said["owners"]:
        assert owner["deleted"] == len(done("delete", owner["owner"])), owner
        assert owner["marked"] == len(done("mark", owner["owner"])), owner
    for key in ("marked", "deleted", "terminated", "kept", "priced", "unpriced"):
        assert sum(o[key] for o in said["owners"]) == total[key], key
    # Every stop, termination and deletion is priced or counted unpriced, with why: never $0.
    acted = said["acted"]
    assert {a["resource_id"] for a in acted} == done("delete") | done("terminate") | done("stop")
    for each in acted:
        assert (each["avoided_usd"] is None and each["problem"]) or each["avoided_usd"] > 0, each
    avoided = said["dollars_avoided"]
    assert avoided["estimate"] is True and avoided["noticed_after"] == "7d" and avoided["hours"] == HOURS
    assert avoided["priced"] + avoided["unpriced"] == len(acted)
    assert avoided["complete"] is (avoided["unpriced"] == 0)


def test_the_table_fits_80_columns_with_every_id_whole_and_says_the_estimate(stack: ClientFactory) -> None:
    _, later = sweeps_over_the_seeded_fleet(stack)
    said = report_json(stack, [], later)
    table = CliRunner().invoke(
        app,
        ["report"],
        obj=CliState(make_factory=lambda: stack, local_clock=fixed_clock(later)),
        env={"COLUMNS": "80"},
    )
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    words = " ".join(table.stdout.split())
    assert max(len(line) for line in lines) <= 80, "\n".join(lines)
    for each in said["acted"]:
        assert each["resource_id"] in table.stdout  # on one line, never cut
    for owner in said["owners"]:
        assert any(line.startswith(owner["owner"]) for line in lines), owner["owner"]
    assert any(line.startswith("total") for line in lines)
    assert "(estimated)" in words and "until someone would otherwise have noticed" in words
    assert "7d (168 h, --noticed-after)" in words
    assert "then a Scan filtered to decisions in the window" in words and "only a Scan finds them" in words


def test_csv_has_a_row_per_owner_and_the_total(stack: ClientFactory) -> None:
    _, later = sweeps_over_the_seeded_fleet(stack)
    said = report_json(stack, [], later)
    result = report(stack, ["--output", "csv"], later)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["owner"] for r in rows] == [o["owner"] for o in said["owners"]] + ["total"]
    assert list(rows[0])[:7] == ["owner", "marked", "unmarked", "stopped", "terminated", "deleted", "kept"]
    assert int(rows[-1]["deleted"]) == said["total"]["deleted"]
    # Plain text, not JSON (issue 26, item 9): name=count;name=count.
    protections = dict(pair.split("=") for pair in rows[-1]["protections"].split(";"))
    assert {name: int(n) for name, n in protections.items()} == said["total"]["protections"]


# ------------------------------------------------------------------------------------ a written ledger


def write(
    factory: ClientFactory,
    at: datetime,
    decisions: list[Decision],
    *,
    sweep_id: str = "sweep1",
    described: dict[str, dict[str, Any]] | None = None,
    intent_only: bool = False,
) -> None:
    """What a sweep writes (sweep/record.py's own items), a decision optionally carrying EC2's description; an
    intent only, as a sweep that stopped before recording its outcome leaves it."""
    if intent_only:
        DynamoDbLedger(factory.dynamodb(), names.LEDGER_TABLE).record_intent(sweep_id, at, decisions)
        return
    for item in ledger_items(sweep_id, at, {"scanned": len(decisions)}, decisions):
        if "decision" in item and described:
            raw = json.loads(item["decision"]["S"])
            if raw["resource_id"] in described:
                raw["described"] = described[raw["resource_id"]]
                item["decision"]["S"] = json.dumps(raw)
        factory.dynamodb().put_item(TableName=names.LEDGER_TABLE, Item=item)


def decided(resource_id: str, kind: str, action: str, owner: str | None, *reasons: str, **more: Any) -> Decision:
    return Decision(resource_id, kind, REGION, action, reasons=reasons, owner=owner, outcome="done", **more)


def persistent(resource_id: str) -> Decision:
    kept = ("unattached",), ("persistent",)
    return Decision(resource_id, "volume", REGION, "keep", *kept, owner="bob", outcome="kept")


@pytest.fixture
def priced_ledger(stack: ClientFactory) -> dict[str, str]:
    """A week of sweeps: each kind of stop, termination and deletion, priced or not, and a few that count no money."""
    ec2 = stack.ec2(REGION)
    stopped = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, InstanceType="g5.2xlarge")
    stopped_id = stopped["Instances"][0]["InstanceId"]
    ec2.stop_instances(InstanceIds=[stopped_id])
    ids = {
        "stopped-idle": stopped_id,  # alice: stopped while running; its type from EC2 now
        "volume": "vol-00000000000000001",  # alice: gp3 500 GiB, described in the ledger
        "snapshot": "snap-00000000000000001",  # bob: 100 GiB, described
        "spot": "i-00000000000000002",  # bob: a running spot g5.xlarge, described: on demand, an upper bound
        "long-stopped": "i-00000000000000003",  # bob: stopped when terminated: its volumes, unsized
        "bare-volume": "vol-00000000000000002",  # no owner: deleted, no size recorded
        "odd-type": "i-00000000000000004",  # alice: an instance type no price link knows
        "marked": "vol-00000000000000003",  # alice: marked
        "kept": "vol-00000000000000004",  # bob: persistent, kept
        "unfinished": "vol-00000000000000005",  # alice: an intent no outcome replaced
        "too-old": "vol-00000000000000006",  # alice: deleted before the window
    }
    day = timedelta(days=1)
    write(
        stack,
        NOW - 40 * day,
        [decided(ids["too-old"], "volume", "delete", "alice", "unattached")],
        sweep_id="old",
        described={ids["too-old"]: {"Size": 9000, "VolumeType": "gp3"}},
    )
    write(
        stack,
        NOW - 7 * day,
        [
            decided(ids["marked"], "volume", "mark", "alice", "unattached", announced="delete"),
            decided(ids["volume"], "volume", "mark", "alice", "unattached", announced="delete"),
            persistent(ids["kept"]),
        ],
        sweep_id="monday",
    )
    write(
        stack,
        NOW - 6 * day,
        [
            decided(ids["stopped-idle"], "instance", "stop", "alice", "idle"),
            decided(ids["volume"], "volume", "delete", "alice", "unattached"),
            decided(ids["snapshot"], "snapshot", "delete", "bob", "snapshot-retention"),
            decided(ids["spot"], "instance", "terminate", "bob", "ttl-expired"),
            decided(ids["long-stopped"], "instance", "terminate", "bob", "stopped-too-long"),
            decided(ids["bare-volume"], "volume", "delete", None, "unattached"),
            decided(ids["odd-type"], "instance", "terminate", "alice", "idle"),
            persistent(ids["kept"]),
        ],
        sweep_id="tuesday",
        described={
            ids["volume"]: {"VolumeId": ids["volume"], "Size": 500, "VolumeType": "gp3", "Iops": 3000},
            ids["snapshot"]: {"SnapshotId": ids["snapshot"], "VolumeSize": 100},
            ids["spot"]: {"InstanceType": "g5.xlarge", "InstanceLifecycle": "spot", "State": {"Name": "running"}},
            ids["odd-type"]: {"InstanceType": "x9.unheard", "State": {"Name": "running"}},
        },
    )
    write(
        stack,
        NOW - 5 * day,
        [decided(ids["unfinished"], "volume", "delete", "alice", "unattached")],
        sweep_id="crashed",
        intent_only=True,
    )
    return ids


def test_dollars_avoided_prices_what_can_be_priced_and_counts_the_rest_unpriced(
    stack: ClientFactory, priced_ledger: dict[str, str]
) -> None:
    ids = priced_ledger
    said = report_json(stack, [])
    acted = {a["resource_id"]: a for a in said["acted"]}
    assert set(acted) == {ids[k] for k in ("stopped-idle", "volume", "snapshot", "spot", "long-stopped")} | {
        ids["bare-volume"],
        ids["odd-type"],
    }
    expected = {
        "stopped-idle": G5_2XLARGE,
        "volume": 500 * GP3_GB_MONTH / 730,
        "snapshot": 100 * SNAPSHOT_GB_MONTH / 730,
        "spot": G5_XLARGE,
    }
    for name, hourly in expected.items():
        assert acted[ids[name]]["hourly_usd"] == pytest.approx(hourly, abs=1e-4), name
        assert acted[ids[name]]["avoided_usd"] == pytest.approx(hourly * HOURS, abs=0.01), name
    assert "type from EC2 now" in acted[ids["stopped-idle"]]["source"]
    assert "size from ledger" in acted[ids["volume"]]["source"]
    assert acted[ids["spot"]]["upper_bound"] and acted[ids["snapshot"]]["upper_bound"]
    for name, why in (
        ("long-stopped", "stopped when terminated"),
        ("bare-volume", "no size"),
        ("odd-type", "x9.unheard"),
    ):
        assert acted[ids[name]]["avoided_usd"] is None and why in acted[ids[name]]["problem"], name
    money = said["dollars_avoided"]
    assert money["usd"] == pytest.approx(sum(expected.values()) * HOURS, abs=0.02)
    assert (money["priced"], money["unpriced"], money["complete"]) == (4, 3, False)
    assert "never as $0" in money["assumption"] and "168 h" in money["assumption"]

    owners = {o["owner"]: o for o in said["owners"]}
    assert list(owners) == ["alice", "bob", "(no owner)"]
    alice, bob, nobody = owners["alice"], owners["bob"], owners["(no owner)"]
    assert (alice["marked"], alice["stopped"], alice["deleted"], alice["terminated"]) == (2, 1, 1, 1)
    assert alice["unfinished"] == 1 and alice["deleted"] == 1  # the intent is not a deletion
    assert (alice["priced"], alice["unpriced"]) == (2, 1)
    assert alice["avoided_usd"] == pytest.approx((expected["stopped-idle"] + expected["volume"]) * HOURS, abs=0.01)
    assert (bob["kept"], bob["protections"], bob["terminated"], bob["deleted"]) == (1, {"persistent": 1}, 2, 1)
    # Nothing of it could be priced: unknown, not $0.
    assert nobody["avoided_usd"] is None and nobody["unpriced"] == 1
    assert said["total"]["reasons"]["unattached"] == 5  # the decision before the window is not counted
    assert [s["sweep_id"] for s in said["sweeps"]] == ["monday", "tuesday"]  # the crashed one wrote no summary


def test_the_table_never_shows_an_unpriced_resource_as_zero(
    stack: ClientFactory, priced_ledger: dict[str, str]
) -> None:
    result = report(stack, [])
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "$0.00" not in text
    nobody = next(line for line in text.splitlines() if line.startswith("(no owner)"))
    assert "unpriced" in nobody
    assert "3 unpriced, so the total is low" in " ".join(text.split())


def test_the_assumption_and_the_filters_change_what_is_counted(
    stack: ClientFactory, priced_ledger: dict[str, str]
) -> None:
    week = report_json(stack, [])["dollars_avoided"]["usd"]
    day = report_json(stack, ["--noticed-after", "24h"])["dollars_avoided"]
    assert day["usd"] == pytest.approx(week / 7, abs=0.02) and day["noticed_after"] == "1d" and day["hours"] == 24
    bob = report_json(stack, ["--owner", "bob"])
    assert [o["owner"] for o in bob["owners"]] == ["bob"] and bob["owner"] == "bob"
    assert {a["owner"] for a in bob["acted"]} == {"bob"}
    assert bob["total"]["deleted"] == 1 and bob["total"]["terminated"] == 2
    nobody = report_json(stack, ["--owner", "(no owner)"])
    assert nobody["total"]["deleted"] == 1
    recent = report_json(stack, ["--since", "5d"])  # after Tuesday's sweep: only the crashed intent
    assert recent["sweeps"] == [] and recent["acted"] == [] and recent["total"]["unfinished"] == 1
    since_instant = report_json(stack, ["--since", "2027-01-01T00:00:00Z"])
    assert since_instant["total"]["deleted"] == 4  # the deletion of January 20 is inside this window
    assert since_instant["since"] == "2027-01-01T00:00:00Z"


def test_the_ledger_is_read_in_pages_and_in_parallel_segments_alike(
    stack: ClientFactory, priced_ledger: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    stack.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    whole = report_json(stack, [])
    assert calls.count("Query") == 1 and calls.count("Scan") == 1
    assert whole["read"]["segments"] == 1 and whole["read"]["scanned_items"] > whole["read"]["matched_items"]
    calls.clear()
    monkeypatch.setattr(report_module, "PAGE_ITEMS", 1)
    paged = report_json(stack, [])
    assert calls.count("Query") >= 2 and calls.count("Scan") >= 10
    calls.clear()
    monkeypatch.setattr(report_module, "_table_bytes", lambda *_: 3 * report_module.SEGMENT_BYTES)
    parallel = report_json(stack, [])
    assert parallel["read"]["segments"] == 3 and calls.count("Scan") >= 3
    for other in (paged, parallel):
        for key in ("owners", "total", "acted", "sweeps", "decisions"):
            assert other[key] == whole[key], key


def test_the_report_reads_the_price_and_what_was_seen_from_the_decision(stack: ClientFactory) -> None:
    seen_spot = Seen("running", "g5.xlarge", zone="us-east-1a", lifecycle="spot")
    write(
        stack,
        NOW - timedelta(days=2),
        [
            # Decided at a price other than today's: the report keeps the decision's.
            decided(
                "vol-0000000000000000a",
                "volume",
                "delete",
                "alice",
                "unattached",
                seen=Seen("available", "gp3", 500),
                hourly_usd=0.25,
                price_source="file",
            ),
            # Terminated long ago (EC2 no longer lists it): what the sweep saw is enough to price it today.
            decided("i-0000000000000000b", "instance", "terminate", "bob", "ttl-expired", seen=seen_spot),
        ],
    )
    calls: list[str] = []
    stack.register("before-call.ec2", lambda model, **_: calls.append(model.name))
    acted = {a["resource_id"]: a for a in report_json(stack, [])["acted"]}
    volume, spot = acted["vol-0000000000000000a"], acted["i-0000000000000000b"]
    assert volume["hourly_usd"] == 0.25 and "price when decided" in volume["source"]
    assert volume["description"] == "gp3 500 GiB"
    assert spot["hourly_usd"] == pytest.approx(G5_XLARGE, abs=1e-4) and spot["upper_bound"]
    assert "type from ledger" in spot["source"] and calls == []


def test_a_sweeps_decisions_carry_what_it_saw_and_the_price_it_decided_at(stack: ClientFactory) -> None:
    results, later = sweeps_over_the_seeded_fleet(stack)
    done = [d for d in results[-1].decisions if d.outcome == "done" and d.action in ("stop", "terminate", "delete")]
    assert done and all(d.seen is not None and d.price_source for d in done)
    acted = {(a["resource_id"], a["action"]): a for a in report_json(stack, [], later)["acted"]}
    compared = 0
    for d in done:
        said = acted[(d.resource_id, d.action)]
        if d.hourly_usd is not None and said["hourly_usd"] is not None:
            assert said["hourly_usd"] == pytest.approx(d.hourly_usd, abs=1e-4)
            assert "price when decided" in said["source"]
            compared += 1
    assert compared


def test_an_empty_ledger_reports_nothing_done(stack: ClientFactory) -> None:
    said = report_json(stack, [])
    assert said["sweeps"] == [] and said["owners"] == [] and said["acted"] == []
    assert said["dollars_avoided"]["priced"] == 0 and said["dollars_avoided"]["unpriced"] == 0
    table = report(stack, [])
    assert table.exit_code == 0 and "nothing was stopped, terminated or deleted" in table.stdout


def test_the_report_counts_the_instances_ssm_does_not_manage(stack: ClientFactory) -> None:
    ledger = DynamoDbLedger(stack.dynamodb(), names.LEDGER_TABLE)
    unmanaged = Decision(
        "i-0a1b2c3d4e5f60718",
        "instance",
        REGION,
        "keep",
        reasons=("idle",),
        protections=("not-managed-by-ssm",),
        detail="SSM does not manage it",
        owner="alice",
    )
    for hours_ago in (3, 2):  # one instance, seen by two sweeps
        ledger.record(f"sweep-{hours_ago}", NOW - timedelta(hours=hours_ago), {}, [unmanaged])
    assert report_json(stack, [])["not_managed_by_ssm"] == 1
    table = report(stack, [])
    assert table.exit_code == 0 and "instances SSM does not manage: 1;" in table.stdout


def test_the_report_lists_what_was_kept_over_a_week_as_unreadable_or_min_age_with_its_owner(
    stack: ClientFactory,
) -> None:
    """Issue 25: `trainctl:ttl=forever` or a created-at in 8999 kept a resource silently; the team sees it now."""
    ledger = DynamoDbLedger(stack.dynamodb(), names.LEDGER_TABLE)

    def kept(resource_id: str, protection: str, owner: str) -> Decision:
        return Decision(
            resource_id, "volume", REGION, "keep", reasons=("unattached",), protections=(protection,), owner=owner
        )

    for days_ago in (12, 6, 1):
        ledger.record(
            f"sweep-{days_ago}",
            NOW - timedelta(days=days_ago),
            {},
            [kept("vol-0forever000000001", "unreadable", "mallory"), kept("vol-0young0000000002", "min-age", "bob")],
        )
    ledger.record("sweep-0", NOW - timedelta(hours=3), {}, [kept("vol-0newcomer0000003", "unreadable", "carol")])
    said = report_json(stack, ["--since", "30d"])
    listed = {(e["resource_id"], e["protection"], e["owner"]) for e in said["evading"]}
    assert listed == {("vol-0forever000000001", "unreadable", "mallory"), ("vol-0young0000000002", "min-age", "bob")}
    assert all(e["days"] == 11.0 for e in said["evading"])
    table = report(stack, ["--since", "30d"])
    assert table.exit_code == 0 and "kept for over 7d as unreadable or min-age" in table.stdout
    assert "vol-0forever000000001" in table.stdout and "vol-0newcomer0000003" not in table.stdout.split("kept for")[1]


# ------------------------------------------------------------------------------------ refusals, one line each


def one_line(result: Result, code: int, says: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and result.stdout.strip() == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and says in errors[0], result.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--since", "soon"], "--since soon: 'soon' is not a duration"),
        (["--since", "2999-01-01T00:00:00Z"], "not in the past"),
        (["--noticed-after", "0s"], "--noticed-after 0s: must be longer than 0s"),
        (["--noticed-after", "a while"], "--noticed-after a while:"),
        (["--owner", " "], "--owner needs a name"),
        (["--region", "mars"], "--region mars: not a region name"),
        (["--region", "us-east-1", "--region", "eu-west-1"], "works in one region"),
        (["--output", "xml"], "--output xml: use table, json or csv"),
        (["--json", "--output", "csv"], "--json and --output csv disagree"),
    ],
)
def test_bad_input_is_one_line_before_any_call(args: list[str], says: str) -> None:
    one_line(report(ClientFactory(REGION), args, obj=CliState(local_clock=system_clock)), EXIT_USAGE, says)


def test_without_the_stack_there_is_nothing_to_report(factory: ClientFactory) -> None:
    one_line(report(factory, []), EXIT_FAILED, "is not deployed here: there is no ledger to report on")


def test_without_credentials_or_a_region_it_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    one_line(report(ClientFactory(), [], obj=CliState()), EXIT_FAILED, "no region: pass --region, or set AWS_REGION")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    one_line(report(ClientFactory(), ["--region", REGION], obj=CliState()), EXIT_FAILED, "no AWS credentials")
