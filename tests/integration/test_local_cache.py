"""Issue 27 items 3 and 5: a local cache on the instance store, filled from S3 by an SSM document.

`trainctl transfer s3://bucket/prefix/ instance:i-...:/opt/dlami/nvme/FOLDER/ --to-cache` checks everything it
can before sending (the path, the instance, its type's instance store, the bucket, the objects), runs trainctl's
local-cache document through SSM (answered here by the emulated agent, which syncs from moto's S3), reads the
document's figures back and tags the instance with them. A second fill of the same objects copies nothing.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.integration.conftest import run_cli
from trainctl.aws import ssm_documents
from trainctl.aws.clients import ClientFactory
from trainctl.cli.ssm_agent import SsmAgents
from trainctl.core import names, tags
from trainctl.core.clock import parse_instant
from trainctl.handwork.refusals import Refused
from trainctl.handwork.transfer import (
    BadEndpoint,
    CacheFill,
    InstanceStore,
    cache_tags,
    check_cache_endpoints,
    check_cache_fits,
    parse_cache_report,
    parse_endpoint,
)

REGION = "us-east-1"
CACHE = "/opt/dlami/nvme/imagenet/"
SHARDS = {"run-1/train/0000.tar": b"a" * 3000, "run-1/train/0001.tar": b"b" * 2000, "run-1/meta.json": b"{}"}


@pytest.fixture
def sent(factory: ClientFactory) -> list[dict[str, Any]]:
    """Every SendCommand the command line makes, with its parameters."""
    calls: list[dict[str, Any]] = []
    factory.register("provide-client-params.ssm.SendCommand", lambda params, **_: calls.append(dict(params)))
    return calls


def launch(factory: ClientFactory, instance_type: str = "g5.xlarge", **labels: str) -> str:
    """An instance in trainctl's scope (nobody's, unless `labels` say otherwise): a fill on it needs no waiver."""
    marks = [{"Key": k, "Value": v} for k, v in {tags.MANAGED: "true", **labels}.items() if v]
    labelled: dict[str, Any] = {"TagSpecifications": [{"ResourceType": "instance", "Tags": marks}]} if marks else {}
    return str(
        factory.ec2(REGION).run_instances(
            ImageId="ami-0abcdef1234567890", MinCount=1, MaxCount=1, InstanceType=instance_type, **labelled
        )["Instances"][0]["InstanceId"]
    )


def datasets(factory: ClientFactory) -> Any:
    s3 = factory.client("s3", REGION)
    s3.create_bucket(Bucket="datasets")
    for key, body in SHARDS.items():
        s3.put_object(Bucket="datasets", Key=key, Body=body)
    s3.put_object(Bucket="datasets", Key="run-1/", Body=b"")  # a console folder marker: nothing to copy
    s3.put_object(Bucket="datasets", Key="run-2/other.tar", Body=b"x" * 999)  # another prefix: not copied
    # The document exists as the stack (or the emulator bootstrap) creates it.
    factory.ssm(REGION).create_document(
        Name=names.LOCAL_CACHE_DOCUMENT,
        Content=json.dumps(ssm_documents.load(ssm_documents.LOCAL_CACHE)),
        DocumentType="Command",
        DocumentFormat="JSON",
    )
    return s3


def fill(factory: ClientFactory, instance_id: str, source: str = "s3://datasets/run-1/", path: str = CACHE) -> Any:
    result = run_cli(factory, ["transfer", source, f"instance:{instance_id}:{path}", "--to-cache", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def instance_tags(factory: ClientFactory, instance_id: str) -> dict[str, str]:
    found = factory.ec2(REGION).describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return {t["Key"]: t["Value"] for t in found.get("Tags", [])}


def test_a_fill_copies_the_prefix_reports_bytes_and_seconds_and_tags_the_instance(
    factory: ClientFactory, ssm_agents: SsmAgents, sent: list[dict[str, Any]]
) -> None:
    datasets(factory)
    instance_id = launch(factory)
    before = datetime.now(UTC).replace(microsecond=0)
    filled = fill(factory, instance_id)
    data = sum(len(body) for body in SHARDS.values())
    assert (filled["files"], filled["bytes"]) == (3, data)
    cache = filled["cache"]
    assert cache["path"] == CACHE and cache["source"] == "s3://datasets/run-1/"
    assert isinstance(cache["seconds"], float) and cache["seconds"] >= 0
    assert (cache["cache_bytes"], cache["cache_files"], cache["source_bytes"], cache["source_objects"]) == (
        data,
        3,
        data,
        3,
    )
    # g5.xlarge: one 250 GB NVMe disk, as DescribeInstanceTypes says; the agent's store is the same disk.
    assert cache["instance_store_bytes"] == 250 * 10**9 == cache["filesystem_bytes"]
    assert cache["free_bytes"] == 250 * 10**9 - data
    assert ssm_agents.cached(instance_id, CACHE) == {"train/0000.tar": 3000, "train/0001.tar": 2000, "meta.json": 2}
    assert [c["DocumentName"] for c in sent] == [names.LOCAL_CACHE_DOCUMENT]
    assert sent[0]["Parameters"] == {"S3Uri": ["s3://datasets/run-1/"], "CachePath": [CACHE]}
    recorded = instance_tags(factory, instance_id)
    assert recorded[tags.CACHE_FROM] == "s3://datasets/run-1/" and recorded[tags.CACHE_PATH] == CACHE
    assert recorded[tags.CACHE_BYTES] == str(data)
    assert recorded[tags.CACHE_SECONDS] == str(round(cache["seconds"]))
    assert before <= parse_instant(recorded[tags.CACHE_AT]) <= datetime.now(UTC)
    rate = cache["rate_mib_s"]
    assert rate is not None and rate > 0  # the agent read the bytes: some time passed
    assert recorded[tags.CACHE_RATE] == f"{data / 2**20 / cache['seconds']:.1f}"


def test_a_second_fill_of_the_same_objects_copies_nothing_and_a_changed_object_is_copied_again(
    factory: ClientFactory, ssm_agents: SsmAgents, sent: list[dict[str, Any]]
) -> None:
    s3 = datasets(factory)
    instance_id = launch(factory)
    fill(factory, instance_id)
    first = instance_tags(factory, instance_id)
    again = fill(factory, instance_id)
    assert (again["files"], again["bytes"]) == (0, 0)
    assert again["cache"]["cache_bytes"] == sum(len(body) for body in SHARDS.values())
    assert again["cache"]["tagged"] is False and again["cache"]["rate_mib_s"] is None
    assert instance_tags(factory, instance_id) == first  # the tags still describe the fill that moved data
    words = run_cli(factory, ["transfer", "s3://datasets/run-1/", f"instance:{instance_id}:{CACHE}", "--to-cache"])
    said = " ".join(words.stdout.split())
    assert words.exit_code == 0 and "nothing new to copy" in said and "250 GB instance store (g5.xlarge)" in said
    s3.put_object(Bucket="datasets", Key="run-1/meta.json", Body=b'{"classes": 1000}')
    changed = fill(factory, instance_id)
    assert (changed["files"], changed["bytes"]) == (1, 17)
    assert ssm_agents.cached(instance_id, CACHE)["meta.json"] == 17
    assert instance_tags(factory, instance_id)[tags.CACHE_BYTES] == "17"
    assert len(sent) == 4


@pytest.mark.parametrize(
    ("source", "destination", "code", "said"),
    [
        # Found from the input alone: wrong usage, before any AWS call.
        ("s3://datasets/run-1/", "instance:{id}:/home/ubuntu/cache/", 2, "not a folder under the instance store"),
        ("s3://datasets/run-1/", "instance:{id}:/opt/dlami/nvme/../../etc/", 2, "no . or .. parts"),
        ("s3://datasets/run-1/", "instance:{id}:/opt/dlami/nvme/./x/", 2, "no . or .. parts"),
        ("s3://datasets/run-1/", "instance:{id}:/opt/dlami/nvme", 2, "not a folder under the instance store"),
        ("s3://datasets/run-1/../run-2/", "instance:{id}:/mnt/cache/", 2, "no . or .. parts"),
        ("s3://datasets/run-1/meta.json", "instance:{id}:/mnt/cache/", 2, "from an S3 prefix"),
        ("s3://datasets/run-1/", "local-cache/", 2, "a cache lives on an instance"),
        # Found by reading AWS: refused, nothing sent.
        ("s3://datasets/run-1/", "instance:i-0123456789abcdef0:/mnt/cache/", 1, "no instance i-0123456789abcdef0"),
        ("s3://no-such-bucket/run-1/", "instance:{id}:/mnt/cache/", 1, "no S3 bucket named no-such-bucket"),
        ("s3://datasets/run-9/", "instance:{id}:/mnt/cache/", 1, "nothing under s3://datasets/run-9/"),
        ("s3://datasets/run-1/", "instance:{small}:/mnt/cache/", 1, "t3.micro, which has no instance store"),
        ("s3://datasets/run-1/", "instance:{stopped}:/mnt/cache/", 1, "is stopped, not running"),
    ],
)
def test_bad_input_is_one_line_and_sends_nothing(
    factory: ClientFactory,
    ssm_agents: SsmAgents,
    sent: list[dict[str, Any]],
    source: str,
    destination: str,
    code: int,
    said: str,
) -> None:
    datasets(factory)
    ids = {"id": launch(factory), "small": launch(factory, "t3.micro"), "stopped": launch(factory)}
    factory.ec2(REGION).stop_instances(InstanceIds=[ids["stopped"]])
    result = run_cli(factory, ["transfer", source, destination.format(**ids), "--to-cache"])
    assert result.exit_code == code, result.output
    assert said in result.stderr and result.stderr.startswith("error:")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert sent == []
    for instance_id in ids.values():
        assert not any(key.startswith("trainctl:cache-") for key in instance_tags(factory, instance_id))


@pytest.mark.parametrize(
    ("labels", "waiver", "said"),
    [
        ({tags.OWNER: "bob"}, "--allow-other-owner", "its owner is bob, not mallory: --allow-other-owner to go ahead"),
        (
            {tags.MANAGED: ""},
            "--allow-out-of-scope",
            "it is outside trainctl's scope (no trainctl:managed=true): --allow-out-of-scope to go ahead",
        ),
    ],
)
def test_a_fill_on_someone_elses_or_an_unscoped_instance_needs_the_waiver_and_a_yes(
    factory: ClientFactory,
    ssm_agents: SsmAgents,
    sent: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    labels: dict[str, str],
    waiver: str,
    said: str,
) -> None:
    """A fill runs as root on the instance and tags it: like ebs attach and detach, what is not the person's own
    needs the override that names it, and then a yes (off a terminal: --yes); until then nothing is sent."""
    monkeypatch.setenv("TRAINCTL_OWNER", "mallory")
    datasets(factory)
    instance_id = launch(factory, **labels)
    args = ["transfer", "s3://datasets/run-1/", f"instance:{instance_id}:{CACHE}", "--to-cache"]
    refused = run_cli(factory, args)
    assert refused.exit_code == 1 and said in " ".join(refused.stderr.split()), refused.output
    assert f"{CACHE} on {instance_id} not filled" in refused.stderr
    unanswered = run_cli(factory, [*args, waiver])
    assert unanswered.exit_code == 2 and "pass --yes to go ahead" in unanswered.stderr, unanswered.output
    assert f"waived: {said.split(': ', maxsplit=1)[0]}" in " ".join(unanswered.stderr.split())
    assert sent == [] and ssm_agents.cached(instance_id, CACHE) == {}
    assert not any(key.startswith("trainctl:cache-") for key in instance_tags(factory, instance_id))
    filled = run_cli(factory, [*args, waiver, "--yes", "--json"])
    assert filled.exit_code == 0, filled.output
    assert json.loads(filled.stdout)["files"] == 3 and len(sent) == 1
    assert instance_tags(factory, instance_id)[tags.CACHE_BYTES] == str(sum(len(b) for b in SHARDS.values()))


def test_a_fill_on_ones_own_instance_in_scope_asks_nothing(
    factory: ClientFactory, ssm_agents: SsmAgents, sent: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINCTL_OWNER", "mallory")
    datasets(factory)
    instance_id = launch(factory, **{tags.OWNER: "mallory"})
    assert fill(factory, instance_id)["files"] == 3 and len(sent) == 1


def test_a_folder_the_instance_store_is_not_mounted_on_is_refused_by_the_document(
    factory: ClientFactory, ssm_agents: SsmAgents, sent: list[dict[str, Any]]
) -> None:
    """The roots keep typos away; the device check on the instance is the proof: here the store is mounted at
    /opt/dlami/nvme, so /mnt/cache is on the root volume and the document exits 3, copying nothing."""
    datasets(factory)
    instance_id = launch(factory)
    result = run_cli(factory, ["transfer", "s3://datasets/run-1/", f"instance:{instance_id}:/mnt/cache/", "--to-cache"])
    assert result.exit_code == 1, result.output
    assert "/mnt/cache/ on " in result.stderr and "is not on an instance-store volume there" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert len(sent) == 1 and ssm_agents.cached(instance_id, "/mnt/cache/") == {}
    assert not any(key.startswith("trainctl:cache-") for key in instance_tags(factory, instance_id))


def test_the_store_is_checked_against_the_data_before_anything_is_sent() -> None:
    store = InstanceStore("c5d.large", True, 50 * 10**9)
    check_cache_fits(store, 50 * 10**9, "i-0123456789abcdef0")
    with pytest.raises(Refused, match=r"the data \(50\.1 GB\) does not fit the 50 GB instance store"):
        check_cache_fits(store, 50_100_000_000, "i-0123456789abcdef0")
    with pytest.raises(Refused, match=r"t3\.micro, which has no instance store"):
        check_cache_fits(InstanceStore("t3.micro", False), 1, "i-0123456789abcdef0")
    check_cache_fits(InstanceStore("x9.huge", None), 10**15, "i-0123456789abcdef0")  # unknown: the instance says


def test_the_documents_last_line_is_read_and_nothing_else() -> None:
    line = (
        '{"copied_bytes": 5002, "copied_files": 3, "seconds": 2.5, "cache_bytes": 5002, "cache_files": 3, '
        '"store_bytes": 250000000000, "free_bytes": 249000000000, "tool": "s5cmd"}'
    )
    parsed = parse_cache_report(f"cp s3://datasets/run-1/a a\n{line}\n")
    assert parsed == CacheFill(5002, 3, 2.5, 5002, 3, 250_000_000_000, 249_000_000_000, "s5cmd")
    assert parse_cache_report("") is None and parse_cache_report('{"bytes": 1}\n') is None
    assert parse_cache_report(line.replace('"s5cmd"', '"rm -rf"')).tool == "unknown"  # type: ignore[union-attr]


def test_the_tags_are_plain_figures_and_a_long_source_is_named_by_its_hash() -> None:
    fill = CacheFill(3 * 2**30, 10, 12.4, 3 * 2**30, 10, 250 * 10**9, 1, "aws-cli")
    at = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
    written = {t["Key"]: t["Value"] for t in cache_tags(fill, source="s3://datasets/run-1/", path=CACHE, at=at)}
    assert written == {
        tags.CACHE_FROM: "s3://datasets/run-1/",
        tags.CACHE_PATH: CACHE,
        tags.CACHE_AT: "2026-12-06T10:00:00Z",
        tags.CACHE_BYTES: str(3 * 2**30),
        tags.CACHE_SECONDS: "12",
        tags.CACHE_RATE: "247.7",
    }
    long_uri = "s3://datasets/" + "a/" * 200
    hashed = {t["Key"]: t["Value"] for t in cache_tags(fill, source=long_uri, path=CACHE, at=at)}[tags.CACHE_FROM]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", hashed)
    nothing = CacheFill(0, 0, 0.4, 5, 1, 10, 5, "s5cmd")
    assert tags.CACHE_RATE not in {t["Key"] for t in cache_tags(nothing, source="s3://d/x/", path=CACHE, at=at)}


def test_every_parameter_is_typed_patterned_and_passed_as_an_environment_variable() -> None:
    document = ssm_documents.load(ssm_documents.LOCAL_CACHE)
    assert set(document["parameters"]) == {"S3Uri", "CachePath"}
    for name, parameter in document["parameters"].items():
        assert parameter["type"] == "String", name
        assert parameter["allowedPattern"].startswith("^") and parameter["allowedPattern"].endswith("$"), name
    for step in document["mainSteps"]:
        assert step["inputs"]["interpolationType"] == "ENV_VAR"
        script = "\n".join(step["inputs"]["runCommand"])
        assert "{{" not in script and "sync" in script
        # Values reach the script only as environment variables, each inside double quotes (never split or globbed).
        uses = 0
        for line in step["inputs"]["runCommand"]:
            for found in re.finditer(r"\$\{?SSM_", line):
                uses += 1
                assert len(re.findall(r'(?<!\\)"', line[: found.start()])) % 2 == 1, line
        assert uses >= 2


CACHE_PATHS = {
    "/opt/dlami/nvme/imagenet/": True,
    "/opt/dlami/nvme/imagenet": True,
    "/opt/dlami/nvme/a/b.c/.hidden/v1.2/": True,
    "/mnt/cache/": True,
    "/opt/dlami/nvme/": False,  # the mount itself: a cache is a folder of its own
    "/opt/dlami/nvme/../etc/": False,
    "/opt/dlami/nvme/./x/": False,
    "/opt/dlami/nvme/x/..": False,
    "/mnt/..": False,
    "/home/ubuntu/cache/": False,
    "/opt/dlami/nvmex/cache/": False,
    "/opt/dlami/nvme/a b/": False,
    "/opt/dlami/nvme/x/\n": False,
    "/opt/dlami/nvme/$(reboot)/": False,
}


@pytest.mark.parametrize(("path", "fine"), sorted(CACHE_PATHS.items()))
def test_the_command_line_and_the_document_agree_on_the_cache_folder(path: str, fine: bool) -> None:
    pattern = ssm_documents.load(ssm_documents.LOCAL_CACHE)["parameters"]["CachePath"]["allowedPattern"]
    assert (re.fullmatch(pattern, path) is not None) is fine
    try:
        check_cache_endpoints(
            parse_endpoint("s3://datasets/run-1/"), parse_endpoint(f"instance:i-0123456789abcdef0:{path}")
        )
        ours = True
    except BadEndpoint:
        ours = False
    assert ours is fine


def test_the_documents_source_has_no_dot_segment_and_is_always_read_as_a_prefix() -> None:
    document = ssm_documents.load(ssm_documents.LOCAL_CACHE)
    pattern = document["parameters"]["S3Uri"]["allowedPattern"]
    for fine in ("s3://datasets/", "s3://datasets/run-1/", "s3://datasets/run-1", "s3://datasets/a=1/v1.2/"):
        assert re.fullmatch(pattern, fine), fine
    for bad in ("s3://datasets/run-1/../x/", "s3://datasets/./x/", "s3://datasets/run-1/\n", "s3://Datasets/x/"):
        assert not re.fullmatch(pattern, bad), bad
    # The script adds the last / itself: `run-1` never syncs `run-10/` as well.
    assert 'src="${SSM_S3Uri%/}/"' in document["mainSteps"][0]["inputs"]["runCommand"]


STAND_INS = {
    # The disk under any folder: an NVMe instance-store disk, unless the test says otherwise.
    "findmnt": "#!/bin/bash\necho /dev/nvme1n1\n",
    "lsblk": '#!/bin/bash\necho "${DISK_MODEL:-Amazon EC2 NVMe Instance Storage}"\n',
    # s5cmd --log error sync "s3://bucket/prefix/*" DIR/: copies from $BUCKET_DIR what is missing or of another size.
    "s5cmd": (
        "#!/bin/bash\n"
        '[ -z "${S5CMD_FAILS:-}" ] || exit 1\n'
        'prefix="${4#s3://*/}"; prefix="${prefix%\\*}"; dst="$5"\n'
        'cd "$BUCKET_DIR/$prefix" && find . -type f | while read -r f; do\n'
        '  if [ ! -e "$dst/$f" ] || [ "$(stat -c %s "$f")" != "$(stat -c %s "$dst/$f")" ]; then\n'
        '    mkdir -p "$dst/$(dirname "$f")"; cp "$f" "$dst/$f"; echo "cp $f"\n'
        "  fi\n"
        "done\n"
    ),
}


def run_document(tmp_path: Any, cache: str, **environment: str) -> tuple[int, str, str]:
    """The document's own script under bash, SSM's parameters as SSM_ variables, with stand-ins for the tools that
    only an instance has; the rest (realpath, find, df, awk, date) is this machine's."""
    import os
    import shutil
    import subprocess

    bash = shutil.which("bash")
    assert bash is not None
    tools = tmp_path / "bin"
    tools.mkdir(exist_ok=True)
    for name, text in STAND_INS.items():
        (tools / name).write_text(text)
        (tools / name).chmod(0o755)
    script = "\n".join(ssm_documents.load(ssm_documents.LOCAL_CACHE)["mainSteps"][0]["inputs"]["runCommand"])
    env = {
        "PATH": f"{tools}:{os.environ['PATH']}",
        "SSM_S3Uri": "s3://datasets/run-1/",
        "SSM_CachePath": cache,
        "BUCKET_DIR": str(tmp_path / "bucket"),
        **environment,
    }
    done = subprocess.run([bash, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False)
    return done.returncode, done.stdout, done.stderr


def test_the_documents_script_copies_once_reports_one_line_and_refuses_off_the_store(tmp_path: Any) -> None:
    for key, body in SHARDS.items():
        (tmp_path / "bucket" / "datasets" / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "bucket" / "datasets" / key).write_bytes(body)
    (tmp_path / "bucket" / "run-1").symlink_to(tmp_path / "bucket" / "datasets" / "run-1")
    cache = f"{tmp_path}/store/imagenet/"
    code, out, err = run_document(tmp_path, cache)
    assert code == 0, err
    first = parse_cache_report(out)
    data = sum(len(body) for body in SHARDS.values())
    assert first is not None and (first.copied_files, first.copied_bytes) == (3, data)
    assert (first.cache_files, first.cache_bytes, first.tool) == (3, data, "s5cmd") and first.seconds >= 0
    assert first.store_bytes > 0 and out.count("\n") == 1  # the figures alone: s5cmd's own lines stay out
    code, out, _ = run_document(tmp_path, cache)
    again = parse_cache_report(out)
    assert (
        code == 0 and again is not None and (again.copied_files, again.copied_bytes, again.cache_bytes) == (0, 0, data)
    )
    code, out, err = run_document(tmp_path, f"{tmp_path}/root-volume/x/", DISK_MODEL="Amazon Elastic Block Store")
    assert code == 3 and out == "" and "is not on an instance-store volume" in err
    assert not (tmp_path / "root-volume").exists()  # refused before the folder was made
    code, out, err = run_document(tmp_path, cache, S5CMD_FAILS="1")
    assert code == 5 and out == "" and "could not sync s3://datasets/run-1/" in err
