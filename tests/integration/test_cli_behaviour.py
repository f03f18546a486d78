"""The command line as a newcomer meets it (issue 18, items 1-9, and the CLI's clock from issue 16).

Tables fit 80 columns; every command fails in one line with the documented exit code, without credentials, without
a region, with an unknown profile, offline or with bad input; what can be checked locally fails at once; the
pre-warm wait is bounded and visible; the emulator is the sandbox's; output is valid and in human words; flags are
the same everywhere; and a sweep from a laptop with a wrong clock uses AWS's time.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer.main
from moto import mock_aws
from typer.testing import CliRunner

from tests.integration.conftest import run_cli
from tests.integration.fleet import seed_account
from trainctl.aws.clients import ClientFactory
from trainctl.cli import main as cli
from trainctl.cli import stack_resources
from trainctl.cli.output import EXIT_FAILED, EXIT_USAGE, CliState
from trainctl.cli.prewarm_run import follow, start_prewarm
from trainctl.cli.sandbox_fleet import free_loopback_port
from trainctl.core import tags
from trainctl.prewarm.rules import parse_request

ROOT = Path(__file__).resolve().parents[2]
EVENT = str(ROOT / "events" / "cleanup_sweep" / "scheduled.json")
VOL, INST, SNAP = "vol-0123456789abcdef0", "i-0123456789abcdef0", "snap-0123456789abcdef0"
runner = CliRunner()

# Every command that talks to AWS, with arguments that are fine until AWS is asked.
EVERY_COMMAND: list[list[str]] = [
    ["sweep"],
    ["sweep", "--enforce"],
    ["report"],
    ["cost"],
    ["prewarm", VOL, "s3://datasets/imagenet/"],
    ["invoke", "cleanup_sweep", "--event", EVENT],
    ["ebs", "create"],
    ["ebs", "list"],
    ["ebs", "attach", VOL, INST],
    ["ebs", "detach", VOL],
    ["ebs", "delete", VOL, "--yes"],
    ["ebs", "snapshot", "create", VOL],
    ["ebs", "snapshot", "list"],
    ["ebs", "restore", SNAP, "--zone", "us-east-1a"],
    ["ebs", "pre-warm", VOL, "s3://datasets/imagenet/"],
    ["instances", "list"],
    ["instances", "terminate", INST, "--yes"],
    ["resources", "summary"],
    ["resources", "cleanup"],
    ["resources", "graph"],
    ["transfer", "s3://datasets/run-1/", "/tmp/trainctl-never-written/"],
    ["data", "plan", "s3://datasets/imagenet/", "--instance-type", "g5.xlarge"],
]
# Commands of an organization's hub: refused in one line, naming the setting, where no organization is covered.
ORG_COMMANDS = [["org", "status"], ["cost", "--all-accounts"], ["cost", "--account", "123456789012"]]
# Every command that talks to a GPU provider, with its key variable: fine until the provider is asked.
PROVIDER_COMMANDS: list[tuple[list[str], str]] = [
    (["runpod", "pods", "list"], "RUNPOD_API_KEY"),
    (["runpod", "pods", "stop", "pod123", "--yes"], "RUNPOD_API_KEY"),
    (["runpod", "pods", "terminate", "pod123", "--yes"], "RUNPOD_API_KEY"),
    (["runpod", "volumes", "list"], "RUNPOD_API_KEY"),
    (["runpod", "volumes", "delete", "vol123", "--yes"], "RUNPOD_API_KEY"),
    (["lyceum", "vms", "list"], "LYCEUM_API_KEY"),
    (["lyceum", "vms", "terminate", "vm-123", "--yes"], "LYCEUM_API_KEY"),
    (["lyceum", "runs", "list"], "LYCEUM_API_KEY"),
    (["lyceum", "runs", "abort", "run-123", "--yes"], "LYCEUM_API_KEY"),
]
# `trainctl aws …` is today's commands under the original tool's names: the same callbacks, walked above.
ALIAS_GROUP = "aws"
LOCAL_COMMANDS = [
    ["sandbox"],
    ["sandbox", "--organization"],
    ["emulator"],
    [
        "data",
        "loader",
        "--strategy",
        "direct-s3",
        "--dataset",
        "s3://datasets/imagenet/",
        "--instance-type",
        "g5.xlarge",
    ],
]


def leaf_commands() -> set[tuple[str, ...]]:
    def walk(command: Any, path: tuple[str, ...]) -> set[tuple[str, ...]]:
        if hasattr(command, "commands"):
            return {leaf for name, child in command.commands.items() for leaf in walk(child, (*path, name))}
        return {path}

    return walk(typer.main.get_command(cli.app), ())


def command_path(args: list[str]) -> tuple[str, ...]:
    """The command an argument list names: the leading words that are (sub)command names."""
    command: Any = typer.main.get_command(cli.app)
    path: list[str] = []
    for word in args:
        if not hasattr(command, "commands") or word not in command.commands:
            break
        command = command.commands[word]
        path.append(word)
    return tuple(path)


def test_the_walks_below_cover_every_command() -> None:
    walked = EVERY_COMMAND + LOCAL_COMMANDS + ORG_COMMANDS + [args for args, _ in PROVIDER_COMMANDS]
    commands = {leaf for leaf in leaf_commands() if leaf[0] != ALIAS_GROUP}
    assert {command_path(args) for args in walked} == commands
    # The alias group holds only commands the walks already cover under their own names.
    assert {leaf[1:] for leaf in leaf_commands() if leaf[0] == ALIAS_GROUP} <= commands


@pytest.mark.parametrize("args", ORG_COMMANDS, ids=" ".join)
def test_an_organization_command_where_none_is_covered_is_one_line_naming_the_setting(
    args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("TRAINCTL_ORG_UNITS", "TRAINCTL_ORG_INCLUDE_ACCOUNTS"):
        monkeypatch.delenv(key, raising=False)
    result = standard(args)
    assert result.exit_code in (EXIT_FAILED, EXIT_USAGE), result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "TRAINCTL_ORG_UNITS" in errors[0], result.stderr
    assert "Traceback" not in result.output


def standard(args: list[str], **kwargs: Any) -> Any:
    """The command line as a person runs it: no factory handed in, the standard AWS environment."""
    return runner.invoke(cli.app, args, obj=CliState(), **kwargs)


def one_line_error(result: Any, code: int, says: str, args: list[str]) -> str:
    """Exactly one error line saying `says`, no traceback, nothing on stdout, the documented exit code."""
    assert result.exit_code == code, (args, result.output)
    assert "Traceback" not in result.output, args
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and says in errors[0], (args, result.stderr)
    others = [line for line in lines if not line.startswith(("error: ", "waiting for ", "warning: "))]
    assert others == [], (args, result.stderr)
    assert result.stdout.strip() == "", (args, result.stdout)
    return str(errors[0])


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.parametrize("args", EVERY_COMMAND, ids=lambda a: " ".join(a[:3]))
def test_every_command_without_credentials_is_one_line(args: list[str], no_credentials: None) -> None:
    one_line_error(standard(args), EXIT_FAILED, "no AWS credentials", args)


@pytest.mark.parametrize("args", EVERY_COMMAND, ids=lambda a: " ".join(a[:3]))
def test_every_command_without_a_region_is_one_line(args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    one_line_error(standard(args), EXIT_FAILED, "no region: pass --region, or set AWS_REGION", args)


@pytest.mark.parametrize("args", EVERY_COMMAND[:7], ids=lambda a: " ".join(a[:3]))
def test_an_unknown_profile_is_one_line(args: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    (tmp_path / "config").write_text("[profile research]\nregion = eu-west-1\n")
    monkeypatch.setenv("AWS_PROFILE", "nope")
    said = one_line_error(standard(args), EXIT_FAILED, "no AWS profile named nope", args)
    assert "known profiles: research" in said
    monkeypatch.delenv("AWS_PROFILE")
    one_line_error(standard(["--profile", "nope", *args]), EXIT_FAILED, "no AWS profile named nope", args)


@pytest.mark.parametrize("args", EVERY_COMMAND + LOCAL_COMMANDS, ids=lambda a: " ".join(a[:3]))
def test_every_command_with_bad_input_is_one_line_and_wrong_usage(args: list[str]) -> None:
    """No AWS behind it at all: bad input is refused before anything is asked."""
    if args[0] != "sandbox":  # the sandbox makes its own regions
        one_line_error(standard([*args, "--region", "mars"]), EXIT_USAGE, "--region mars: not a region name", args)
    one_line_error(standard([*args, "--bogus"]), EXIT_USAGE, "No such option: --bogus", args)
    one_line_error(standard([*args, "--output", "xml"]), EXIT_USAGE, "--output xml: use table, json or csv", args)


@pytest.mark.parametrize(("args", "variable"), PROVIDER_COMMANDS, ids=[" ".join(a[:3]) for a, _ in PROVIDER_COMMANDS])
def test_every_provider_command_without_its_key_is_one_line_naming_the_variable(
    args: list[str], variable: str, monkeypatch: pytest.MonkeyPatch, no_credentials: None
) -> None:
    """No key, and no AWS either: the provider's command needs neither AWS nor the other provider's key."""
    for name in ("RUNPOD_API_KEY", "LYCEUM_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    said = one_line_error(standard(args), EXIT_FAILED, f"set {variable}", args)
    assert said.startswith(f"error: {args[0]}: no API key"), said


@pytest.mark.parametrize(("args", "variable"), PROVIDER_COMMANDS, ids=[" ".join(a[:3]) for a, _ in PROVIDER_COMMANDS])
def test_every_provider_command_with_bad_input_is_one_line_and_wrong_usage(args: list[str], variable: str) -> None:
    one_line_error(standard([*args, "--bogus"]), EXIT_USAGE, "No such option: --bogus", args)
    one_line_error(standard([*args, "--output", "xml"]), EXIT_USAGE, "--output xml: use table, json or csv", args)
    if len(args) > 3:  # an id goes into the provider's URL path: anything but letters, digits, _ and - is refused
        bad = [*args[:3], "../x", *args[4:]]
        one_line_error(standard(bad), EXIT_USAGE, "../x: not a", args)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["ebs", "attach", "vol-nope", INST], "vol-nope: not a volume id such as vol-0123456789abcdef0"),
        (["ebs", "delete", "i-0123456789abcdef0", "--yes"], "not a volume id"),
        (["instances", "terminate", "vol-0123456789abcdef0"], "not an instance id such as i-"),
        (["ebs", "restore", "vol-0123456789abcdef0", "--zone", "us-east-1a"], "not a snapshot id"),
        (["ebs", "create", "--type", "io2"], "--type io2 needs --iops"),
        (["ebs", "create", "--type", "st1", "--iops", "500"], "st1 volumes take no provisioned IOPS"),
        (["ebs", "create", "--type", "io1", "--throughput", "500", "--iops", "500"], "only gp3 volumes take"),
        (["ebs", "create", "--type", "floppy"], "--type floppy: use gp3"),
        (["prewarm", VOL, "s3://BAD"], "s3_uri: must be an s3://bucket/prefix/ URI"),
        (["prewarm", VOL, "s3://datasets/x/", "--timeout", "soon"], "--timeout soon: 'soon' is not a duration"),
        (["sweep", "--at", "next tuesday"], "--at next tuesday: not an ISO-8601 instant"),
        (["sweep", "--enforce", "--at", "2027-01-01T00:00:00Z"], "cannot be combined with --enforce"),
        (["ebs", "attach", VOL, INST, "--region", "us-east-1", "--region", "eu-west-1"], "works in one region"),
        (["invoke", "nosuch", "--event", EVENT], "no function 'nosuch'"),
        (["invoke", "cleanup_sweep", "--event", "/nonexistent.json"], "cannot read event /nonexistent.json"),
        (["ebs", "list", "--json", "--output", "csv"], "--json and --output csv disagree"),
        (["sandbox", "--output", "csv"], "--output table or json, not csv"),
        (["sandbox", "--organization", "--output", "csv"], "--output table or json, not csv"),
    ],
)
def test_bad_input_is_named_in_human_words_before_any_call(args: list[str], says: str, no_credentials: None) -> None:
    said = one_line_error(standard(args), EXIT_USAGE, says, args)
    for leak in ("pattern", "^", "\\d", "{1,61}", "errors.pydantic.dev"):
        assert leak not in said, said


def test_a_bad_event_is_one_human_line(tmp_path: Path, no_credentials: None) -> None:
    event = tmp_path / "bad.json"
    event.write_text(json.dumps({"detail-type": "Scheduled Event", "detail": {}, "time": "x"}))
    said = one_line_error(standard(["invoke", "cleanup_sweep", "--event", str(event)]), EXIT_USAGE, "refused", [])
    assert "id, source, account" in said and "are missing" in said and "pydantic" not in said


# ------------------------------------------------------------------------------------------- offline, at once


@pytest.fixture
def unreachable(monkeypatch: pytest.MonkeyPatch) -> str:
    endpoint = f"http://127.0.0.1:{free_loopback_port()}"  # nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    return endpoint


@pytest.mark.parametrize(
    "args",
    [
        ["ebs", "list"],
        ["sweep"],
        ["cost"],
        ["invoke", "cleanup_sweep", "--event", EVENT],
        ["prewarm", VOL, "s3://x-y-z/p/"],
    ],
    ids=lambda a: a[0],
)
def test_offline_a_command_says_what_it_waits_for_and_gives_up_soon(args: list[str], unreachable: str) -> None:
    started = time.monotonic()
    result = standard(args)
    elapsed = time.monotonic() - started
    one_line_error(result, EXIT_FAILED, f"cannot reach {unreachable}", args)
    assert "waiting for " in result.stderr and "attempt 2 of 3" in result.stderr
    assert elapsed < 30, elapsed  # was 51 s (ebs list) and 69 s (sweep) with botocore's defaults


def test_what_can_be_checked_locally_fails_at_once_even_offline(unreachable: str) -> None:
    started = time.monotonic()
    result = standard(["invoke", "nosuch", "--event", EVENT])
    assert time.monotonic() - started < 5
    one_line_error(result, EXIT_USAGE, "no function 'nosuch'", [])
    assert "waiting" not in result.stderr


# ------------------------------------------------------------------------------------------- regions


def test_aws_region_is_honoured_and_wins_over_aws_default_region(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    volume_id = (
        ClientFactory("eu-west-1").ec2("eu-west-1").create_volume(Size=1, AvailabilityZone="eu-west-1a")["VolumeId"]
    )
    monkeypatch.setenv("AWS_REGION", "eu-west-1")  # AWS_DEFAULT_REGION stays us-east-1
    listed = standard(["ebs", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [r["volume_id"] for r in json.loads(listed.stdout)] == [volume_id]
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    alone = standard(["ebs", "list", "--json"])
    assert alone.exit_code == 0 and json.loads(alone.stdout)[0]["region"] == "eu-west-1"


def test_a_region_on_the_command_line_is_enough(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    ClientFactory("eu-west-1").ec2("eu-west-1").create_volume(Size=3, AvailabilityZone="eu-west-1a")
    summary = standard(["resources", "summary", "--region", "eu-west-1", "--json"])
    assert summary.exit_code == 0, summary.output
    assert json.loads(summary.stdout)["counts"] == {"volume": {"available": 1}}
    priced = standard(["cost", "--region", "us-east-1", "--json"])
    assert priced.exit_code == 0, priced.output and json.loads(priced.stdout)["regions"] == ["us-east-1"]


def test_a_repeated_region_lists_every_region(factory: ClientFactory) -> None:
    for region in ("us-east-1", "eu-west-1"):
        factory.ec2(region).create_volume(Size=1, AvailabilityZone=f"{region}a")
    for args in (["ebs", "list"], ["ebs", "snapshot", "list"], ["instances", "list"], ["resources", "summary"]):
        result = run_cli(factory, [*args, "--region", "us-east-1", "--region", "eu-west-1", "--json"])
        assert result.exit_code == 0, (args, result.output)
    volumes = json.loads(
        run_cli(factory, ["ebs", "list", "--region", "us-east-1", "--region", "eu-west-1", "--json"]).stdout
    )
    assert sorted(v["region"] for v in volumes) == ["eu-west-1", "us-east-1"]


# ------------------------------------------------------------------------------------------- tables at 80 columns


@pytest.mark.parametrize(
    "args",
    [
        ["sweep", "--region", "us-east-1", "--region", "eu-west-1"],
        ["cost", "--region", "us-east-1", "--region", "eu-west-1"],
        ["ebs", "list"],
        ["ebs", "snapshot", "list"],
        ["instances", "list"],
        ["resources", "summary"],
        ["resources", "graph"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
@pytest.mark.parametrize("columns", [80, 132])
def test_every_table_fits_its_width_with_every_id_whole(factory: ClientFactory, args: list[str], columns: int) -> None:
    seed_account(factory)
    table = run_cli(factory, args, env={"COLUMNS": str(columns)})
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert max(len(line) for line in lines) <= columns, "\n".join(lines)
    if args[1:2] == ["graph"]:
        return
    listed = run_cli(factory, [*args, "--json"])
    ids = set(_ids(json.loads(listed.stdout)))
    assert ids or args[1:2] == ["summary"]
    for resource_id in ids:
        assert resource_id in table.stdout, resource_id  # on one line, never cut


def _ids(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("resource_id", "volume_id", "snapshot_id", "instance_id") and isinstance(item, str):
                yield item
            else:
                yield from _ids(item)
    elif isinstance(value, list):
        for item in value:
            yield from _ids(item)


def test_a_wider_pipe_shows_more_columns(factory: ClientFactory) -> None:
    at = seed_account(factory).after_grace().strftime("%Y-%m-%dT%H:%M:%SZ")
    narrow = run_cli(factory, ["sweep", "--region", "us-east-1", "--at", at], env={"COLUMNS": "80"})
    wide = run_cli(factory, ["sweep", "--region", "us-east-1", "--at", at], env={"COLUMNS": "220"})
    assert "not shown at 80 columns" in narrow.stdout and "detail" not in narrow.stdout.splitlines()[1]
    assert "not shown" not in wide.stdout and "detail" in wide.stdout.splitlines()[1]


# ------------------------------------------------------------------------------------------- output


def test_output_formats_are_everywhere(factory: ClientFactory) -> None:
    volume_id = factory.ec2("us-east-1").create_volume(Size=7, AvailabilityZone="us-east-1a")["VolumeId"]
    as_json = json.loads(run_cli(factory, ["ebs", "list", "--json"]).stdout)
    assert json.loads(run_cli(factory, ["ebs", "list", "--output", "json"]).stdout) == as_json
    assert json.loads(run_cli(factory, ["ebs", "list", "-o", "json"]).stdout) == as_json
    assert json.loads(run_cli(factory, ["--output", "json", "ebs", "list"]).stdout) == as_json
    csv = run_cli(factory, ["ebs", "list", "--output", "csv"]).stdout.splitlines()
    assert csv[0].startswith("volume_id,region,persistent,state") and csv[1].startswith(f"{volume_id},us-east-1,false")
    swept = run_cli(factory, ["sweep", "--output", "csv"]).stdout.splitlines()
    assert swept[0].startswith("resource_id,resource_type,region,action,reasons,protections")
    summary = run_cli(factory, ["resources", "summary", "--output", "csv"]).stdout.splitlines()
    assert summary == ["provider,kind,state,count", "aws,volume,available,1"]


def test_the_summary_counts_what_its_json_counts(factory: ClientFactory) -> None:
    ec2 = factory.ec2("us-east-1")
    volume_id = ec2.create_volume(Size=2, AvailabilityZone="us-east-1a")["VolumeId"]
    for _ in range(3):
        ec2.create_snapshot(VolumeId=volume_id)
    counted = json.loads(run_cli(factory, ["resources", "summary", "--json"]).stdout)["counts"]
    assert counted == {"volume": {"available": 1}, "snapshot": {"completed": 3}}
    shown = run_cli(factory, ["resources", "summary"]).stdout
    assert "snapshot  " in shown and "3 completed" in shown and "GiB" not in shown


def test_summaries_are_words_not_python(factory: ClientFactory) -> None:
    at = seed_account(factory).after_grace().strftime("%Y-%m-%dT%H:%M:%SZ")
    shown = run_cli(factory, ["sweep", "--region", "us-east-1", "--at", at], env={"COLUMNS": "200"}).stdout
    assert "; actions: " in shown and " mark" in shown
    for leak in ("{'", "'}", "day,", "0:05:00", "[]"):
        assert leak not in shown, leak


def test_markup_in_an_error_is_printed_as_it_is(factory: ClientFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINCTL_REGIONS", "[red]us-east-1")
    said = one_line_error(run_cli(factory, ["sweep"]), EXIT_FAILED, "TRAINCTL_REGIONS", [])
    assert "[red]us-east-1" in said


def test_quiet_leaves_out_notes_and_keeps_results(factory: ClientFactory) -> None:
    factory.ec2("us-east-1").create_volume(Size=7, AvailabilityZone="us-east-1a")
    loud = run_cli(factory, ["sweep"], env={"COLUMNS": "120"})
    quiet = run_cli(factory, ["--quiet", "sweep"], env={"COLUMNS": "120"})
    assert "nothing was recorded" in loud.stdout and "nothing was recorded" not in quiet.stdout
    assert "dry-run at" in quiet.stdout


# ------------------------------------------------------------------------------------------- flags, settings


def test_version_help_and_completion() -> None:
    version = runner.invoke(cli.app, ["--version"])
    assert version.exit_code == 0 and version.stdout.startswith("trainctl ")
    for args in (["-h"], ["ebs", "-h"], ["ebs", "delete", "-h"], ["prewarm", "-h"]):
        shown = runner.invoke(cli.app, args)
        assert shown.exit_code == 0 and "Usage:" in shown.stdout, args
    root = runner.invoke(cli.app, ["--help"]).stdout
    for option in ("--install-completion", "--profile", "--quiet", "--output", "--version", "Exit codes"):
        assert option in root, option
    prewarm_help = runner.invoke(cli.app, ["prewarm", "-h"]).stdout
    assert "--region" in prewarm_help and "--timeout" in prewarm_help


def test_an_unknown_trainctl_variable_draws_a_warning_naming_the_nearest(
    factory: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINCTL_MINAGE", "1h")
    listed = run_cli(factory, ["ebs", "list", "--json"])
    assert listed.exit_code == 0
    assert "warning: TRAINCTL_MINAGE is not a trainctl setting and is ignored; did you mean TRAINCTL_MIN_AGE?" in (
        listed.stderr
    )
    monkeypatch.setenv("TRAINCTL_OWNER_MAP", "{}")  # a known one, from the age guard's settings: no warning
    monkeypatch.delenv("TRAINCTL_MINAGE")
    assert "warning" not in run_cli(factory, ["ebs", "list", "--json"]).stderr


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("TRAINCTL_OWNER_MAP", "alice", "TRAINCTL_OWNER_MAP: must be a JSON object of pattern to owner"),
        ("TRAINCTL_OWNER_MAP", '["alice"]', "TRAINCTL_OWNER_MAP: must be a JSON object"),
        ("TRAINCTL_ACCOUNT_ID", "abc", "TRAINCTL_ACCOUNT_ID: must be a 12-digit account id"),
    ],
)
def test_sweep_refuses_a_malformed_setting_of_any_capability(
    factory: ClientFactory, monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str
) -> None:
    monkeypatch.setenv(name, value)
    said = one_line_error(run_cli(factory, ["sweep"]), EXIT_FAILED, says, [])
    assert "\\d" not in said and "should match" not in said


# ------------------------------------------------------------------------------------------- ebs create


def test_ebs_create_takes_iops_and_throughput(factory: ClientFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINCTL_OWNER", "alice")
    ec2 = factory.ec2("us-east-1")
    fast = json.loads(
        run_cli(factory, ["ebs", "create", "--type", "io2", "--size", "100", "--iops", "4000", "--json"]).stdout
    )
    described = ec2.describe_volumes(VolumeIds=[fast["volume_id"]])["Volumes"][0]
    assert described["VolumeType"] == "io2" and described["Iops"] == 4000 and fast["iops"] == 4000
    gp3 = run_cli(factory, ["ebs", "create", "--iops", "6000", "--throughput", "500", "--json"])
    described = ec2.describe_volumes(VolumeIds=[json.loads(gp3.stdout)["volume_id"]])["Volumes"][0]
    assert described["Iops"] == 6000 and described["Throughput"] == 500
    labels = {t["Key"]: t["Value"] for t in described["Tags"]}
    assert labels[tags.MANAGED] == "true" and labels[tags.OWNER] == "alice"


# ------------------------------------------------------------------------------------------- pre-warm


@pytest.fixture
def stack_on_moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[ClientFactory]:
    """As against a plain emulator: the stack's resources are there, and executions are recorded, never run."""
    monkeypatch.setattr(
        stack_resources, "resolve", lambda f, _env, regions: stack_resources.ensure_on_emulator(f, regions)
    )
    with mock_aws(config={"stepfunctions": {"execute_state_machine": False}}):
        yield ClientFactory("us-east-1")


def test_prewarm_stops_following_an_execution_nothing_runs_and_says_why(stack_on_moto: ClientFactory) -> None:
    volume_id = stack_on_moto.ec2("us-east-1").create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
    started = time.monotonic()
    result = run_cli(stack_on_moto, ["prewarm", volume_id, "s3://datasets/imagenet/"])
    assert time.monotonic() - started < 20
    assert result.exit_code == EXIT_FAILED
    assert "records executions without running them" in result.stderr and "trainctl emulator" in result.stderr


def test_prewarm_waits_no_longer_than_its_timeout(stack_on_moto: ClientFactory) -> None:
    volume_id = stack_on_moto.ec2("us-east-1").create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
    result = run_cli(stack_on_moto, ["prewarm", volume_id, "s3://datasets/imagenet/", "--timeout", "1s", "--json"])
    assert result.exit_code == EXIT_FAILED
    report = json.loads(result.stdout)
    assert report["timed_out"] is True and report["status"] == "RUNNING" and report["waited_seconds"] < 5
    assert "still RUNNING after 1s: stopped following, the workflow goes on" in result.stderr


def test_following_reports_progress_and_a_stall(stack_on_moto: ClientFactory) -> None:
    resources = stack_resources.ensure_on_emulator(stack_on_moto, ("us-east-1",))
    assert resources.prewarm_state_machine
    request = parse_request({"volume_id": VOL, "s3_uri": "s3://datasets/imagenet/"})
    execution = start_prewarm(stack_on_moto, resources.prewarm_state_machine, request)
    progress: list[str] = []
    result = follow(stack_on_moto, execution, None, stall_seconds=0.05, poll_seconds=0.1, on_wait=progress.append)
    assert result["stalled"] and "has not moved for" in result["stalled"]
    assert progress and "transitions" in progress[0]


# ------------------------------------------------------------------------------------------- hand commands


def test_a_destructive_command_off_a_terminal_needs_yes(factory: ClientFactory) -> None:
    volume_id = factory.ec2("us-east-1").create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
    refused = run_cli(factory, ["ebs", "delete", volume_id, "--allow-out-of-scope"])
    assert refused.exit_code == EXIT_USAGE and "pass --yes" in refused.stderr
    assert f"delete {volume_id}: 1 GiB" in refused.stderr  # what it would have done is shown first


# ------------------------------------------------------------------------------------------- the CLI's clock


def sweep_with_clock(factory: ClientFactory, behind: timedelta, *args: str) -> Any:
    """A sweep from a laptop whose clock runs `behind` AWS's."""
    state = CliState(make_factory=lambda: factory, local_clock=lambda: datetime.now(UTC) - behind)
    return runner.invoke(cli.app, ["sweep", "--json", *args], obj=state)


def test_a_laptop_clock_off_by_more_than_a_minute_is_replaced_by_aws_time_and_said(factory: ClientFactory) -> None:
    skewed = sweep_with_clock(factory, timedelta(minutes=10))
    assert skewed.exit_code == 0, skewed.output
    at = datetime.fromisoformat(json.loads(skewed.stdout)["at"].replace("Z", "+00:00"))
    assert abs(at - datetime.now(UTC)) < timedelta(seconds=30)  # AWS's now, not the laptop's
    assert "this computer's clock is 10m behind AWS's" in skewed.stderr and "using AWS's time" in skewed.stderr
    close = sweep_with_clock(factory, timedelta(seconds=20))
    assert close.exit_code == 0 and "clock" not in close.stderr


def test_an_enforced_sweep_marks_by_aws_time(stack_on_moto: ClientFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINCTL_MIN_AGE", "0s")
    volume_id = stack_on_moto.ec2("us-east-1").create_volume(
        Size=1,
        AvailabilityZone="us-east-1a",
        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": tags.MANAGED, "Value": "true"}]}],
    )["VolumeId"]
    result = sweep_with_clock(stack_on_moto, timedelta(hours=3), "--enforce", "--region", "us-east-1")
    assert result.exit_code == 0, result.output
    marked = next(d for d in json.loads(result.stdout)["decisions"] if d["resource_id"] == volume_id)
    assert marked["action"] == "mark" and marked["outcome"] == "done"
    until = datetime.fromisoformat(marked["cleanup_after"].replace("Z", "+00:00"))
    assert abs(until - (datetime.now(UTC) + timedelta(hours=24))) < timedelta(minutes=1)
    assert "behind AWS's" in result.stderr


# ------------------------------------------------------------------------------------------- the emulator


def _read_until(process: subprocess.Popen[str], marker: str, timeout: float) -> str:
    """The emulator's output up to the line with `marker` (it keeps running, so read in a thread)."""
    assert process.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()  # type: ignore[union-attr]
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            if process.poll() is not None:
                break
            continue
        seen += line
        if marker in line:
            return seen
    raise AssertionError(f"no {marker!r} from the emulator: {seen}")


def test_the_emulator_is_the_sandboxs_and_the_commands_work_against_it(tmp_path: Path) -> None:
    port = free_loopback_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TRAINCTL_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "trainctl.cli.main", "emulator", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**base, "COLUMNS": "200"},
        cwd=ROOT,
    )
    try:
        shown = _read_until(process, "export AWS_ENDPOINT_URL", timeout=120)
        exports = shown.split("export ", 1)[1].split("; unset AWS_PROFILE")[0]
        env = {**base, **dict(part.split("=", 1) for part in exports.split())}
        assert env["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{port}" and env["AWS_REGION"] == "us-east-1"

        def trainctl(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "trainctl.cli.main", *args],
                capture_output=True,
                text=True,
                env=env,
                cwd=ROOT,
                timeout=120,
                check=False,
            )

        snapshots = trainctl("ebs", "snapshot", "list", "--json")
        assert snapshots.returncode == 0 and json.loads(snapshots.stdout) == []  # no default snapshots
        swept = trainctl("sweep", "--json")
        assert swept.returncode == 0, swept.stderr
        assert json.loads(swept.stdout)["summary"]["scanned"] == 0
        made = trainctl("ebs", "create", "--size", "10", "--zone", "us-east-1a", "--json")
        volume_id = json.loads(made.stdout)["volume_id"]
        from botocore.session import Session

        s3 = Session().create_client(
            "s3",
            region_name="us-east-1",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
        s3.create_bucket(Bucket="datasets")
        s3.put_object(Bucket="datasets", Key="shards/a.bin", Body=b"\0" * 1024)
        for _ in range(2):  # a workflow runs again, and a finished one's history stays readable
            warmed = trainctl("prewarm", volume_id, "s3://datasets/shards/", "--json")
            assert warmed.returncode == 0, warmed.stdout[-2000:] + warmed.stderr[-2000:]
            assert json.loads(warmed.stdout)["status"] == "SUCCEEDED"
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    assert process.returncode == 0


def test_the_sandbox_prints_one_valid_json_object() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    completed = subprocess.run(
        [sys.executable, "-m", "trainctl.cli.main", "sandbox", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
        check=False,
    )
    report = json.loads(completed.stdout)
    assert completed.returncode == report["done"]["exit_code"]
    assert [s["dry_run"] for s in report["sweeps"]] == [True, False, False, False, False]
    assert {"sandbox", "age_guard", "cost", "spot", "prewarm", "ssm_agents", "providers", "done"} <= set(report)
    # Issue 28: RunPod and Lyceum swept on their emulators; the step's checks are in the exit code.
    assert report["providers"]["ok"] is True, report["providers"]["checks"]
    # Issue 24: each instance's emulated SSM agent answers the training check.
    seeded = report["sandbox"]["seeded"]

    def decided(name: str) -> list[dict | None]:
        return [
            next((d for d in s["decisions"] if d["resource_id"] == seeded[name]), None) for s in report["sweeps"][1:]
        ]

    marked, during_grace, acted, after = decided("forgotten-notebook")
    assert after is None  # the stop took its fulfilled mark off: no news for its owner the next hour
    assert marked is not None and during_grace is not None and acted is not None
    assert (marked["action"], marked["outcome"]) == ("mark", "done")
    assert during_grace["action"] == "keep" and during_grace["cleanup_after"] == marked["cleanup_after"]
    assert (acted["action"], acted["outcome"]) == ("stop", "done")
    mark_at = datetime.fromisoformat(report["sweeps"][1]["at"].replace("Z", "+00:00"))
    acted_at = datetime.fromisoformat(report["sweeps"][3]["at"].replace("Z", "+00:00"))
    assert acted_at - mark_at == timedelta(hours=2, minutes=15)  # the sandbox's grace, then the delivery lag
    for decision in decided("data-wait-finetune"):
        assert decision is not None
        assert decision["action"] == "keep" and decision["protections"] == ["training-active"]
        assert decision["detail"] == "training running (pattern=torchrun)"
    for decision in decided("debug-box-no-ssm"):
        assert decision is not None
        assert decision["action"] == "keep" and decision["protections"] == ["not-managed-by-ssm"]
    assert [s["summary"]["not_managed_by_ssm"] for s in report["sweeps"][1:]] == [1, 1, 1, 1]


def test_prewarm_asks_as_its_owner_and_names_the_persistent_override(
    stack_on_moto: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINCTL_OWNER", "alice")
    volume_id = stack_on_moto.ec2("us-east-1").create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
    args = ["prewarm", volume_id, "s3://datasets/imagenet/", "--allow-persistent", "--timeout", "1s", "--json"]
    started = json.loads(run_cli(stack_on_moto, args).stdout)
    sfn = stack_on_moto.client("stepfunctions")
    asked = json.loads(sfn.describe_execution(executionArn=started["execution_arn"])["input"])
    assert asked["volume_id"] == volume_id and asked["owner"] == "alice" and asked["force"] is True
