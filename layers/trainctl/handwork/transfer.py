"""Moving data between local paths, S3 and instances.

Local and S3 go through boto3's transfer manager (multipart, concurrent) around a plain client. S3 and an
instance go through trainctl's SSM document (s5cmd, else the AWS CLI on the instance). Local and an instance go
through a staging S3 prefix, cleaned up afterwards. Every endpoint is parsed against a strict pattern, and each
bucket and instance it names is read (HeadBucket, DescribeInstances), before anything moves. A copy to or from an
instance runs as root on it: an instance outside the scope, or another owner's, needs the waiver that names it, and
a waived problem is put to the person (`Consent`) before anything is sent or staged.

The local cache (`fill_cache`) is S3 into a folder on an instance's instance store, through trainctl's local-cache
document: a sync, so a second fill of the same objects copies nothing. The instance's type must have an instance
store big enough for the data (DescribeInstanceTypes), and the instance is tagged with what the fill measured.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from boto3.exceptions import RetriesExceededError, S3UploadFailedError
from boto3.s3.transfer import S3Transfer, TransferConfig
from botocore.exceptions import ClientError

from trainctl.aws.clients import error_code
from trainctl.core import tags
from trainctl.core.clock import Clock, format_instant, system_clock
from trainctl.core.errors import TrainctlError
from trainctl.core.paths import below, escaping_keys, is_absolute_path, split_s3_uri
from trainctl.core.permissions import needs
from trainctl.core.resources import Instance
from trainctl.core.text import one_line
from trainctl.handwork.instances import instance
from trainctl.handwork.ownership import Problem, Waivers, ownership
from trainctl.handwork.refusals import NotFound, Refused

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ssm import SSMClient

# S3's actions: listing (and HeadBucket) is ListBucket, the transfer manager's reads and writes GetObject and
# PutObject. The instance is read through trainctl.aws.ec2 (DescribeInstances, declared there).
# The local cache also reads the instance type's instance store and tags the instance with what a fill measured
# (trainctl:cache-* keys only).
PERMISSIONS = needs(
    "s3:ListBucket",
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObjects",
    "ssm:SendCommand",
    "ssm:GetCommandInvocation",
    "ec2:DescribeInstanceTypes",
    "ec2:CreateTags",
)

INSTANCE = re.compile(r"instance:(?P<id>i-(?:[0-9a-f]{8}|[0-9a-f]{17})):(?P<path>/.*)", re.DOTALL)
TRANSFER_CONFIG = TransferConfig(multipart_threshold=64 * 2**20, multipart_chunksize=64 * 2**20, max_concurrency=16)
_DONE = {"Success", "Failed", "Cancelled", "TimedOut", "Undeliverable", "Terminated", "DeliveryTimedOut"}
ROUTES = frozenset(
    {
        ("local", "s3"),
        ("s3", "local"),
        ("s3", "instance"),
        ("instance", "s3"),
        ("local", "instance"),
        ("instance", "local"),
    }
)


class BadEndpoint(TrainctlError):
    """A transfer endpoint that is not a local path, an s3:// URI or instance:ID:/path."""


class TransferFailed(TrainctlError):
    """The copy did not complete."""


@dataclass(frozen=True)
class Endpoint:
    kind: Literal["local", "s3", "instance"]
    text: str
    bucket: str = ""
    key: str = ""
    instance_id: str = ""
    path: str = ""

    @property
    def is_directory(self) -> bool:
        if self.kind == "s3":
            return self.key == "" or self.key.endswith("/")
        if self.kind == "instance":
            return self.path.endswith("/")
        return Path(self.path).is_dir()

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_endpoint(text: str) -> Endpoint:
    if text.startswith("s3://"):
        split = split_s3_uri(text)
        if split is None:
            raise BadEndpoint(
                f"{one_line(text, 80)} is not an s3://bucket/key URI "
                "(letters, digits and _ . - / = only, no . or .. parts)"
            )
        return Endpoint("s3", text, bucket=split[0], key=split[1])
    if text.startswith("instance:"):
        match = INSTANCE.fullmatch(text)
        if not match or not is_absolute_path(match["path"]):
            raise BadEndpoint(
                f"{one_line(text, 80)} is not instance:i-...:/absolute/path (letters, digits and _ . - / only, "
                "no . or .. parts)"
            )
        return Endpoint("instance", text, instance_id=match["id"], path=match["path"])
    if "\x00" in text or not text:
        raise BadEndpoint("an empty or NUL-bearing local path")
    return Endpoint("local", text, path=text)


@dataclass
class Moved:
    files: int = 0
    bytes: int = 0
    route: str = ""
    command_ids: tuple[str, ...] = ()


Progress = Callable[[int], None]


@dataclass(frozen=True)
class Consent:
    """Who asks for a copy on an instance, what they waived, and how a waived problem is put to them: `ask` gets
    the instance and its waived problems, and raises to stop (nothing is sent then)."""

    me: str | None
    scope_tag: str
    waivers: Waivers
    ask: Callable[[Instance, list[Problem]], None]


def check_consent(machine: Instance, consent: Consent, refusal: str) -> None:
    """An instance outside the scope or another owner's is refused unless waived (`refusal` says what was not
    done); a waived problem is asked about. Nobody's instance in the scope asks nothing: a copy deletes nothing."""
    problems = ownership(machine, me=consent.me, scope_tag=consent.scope_tag)
    unwaived = consent.waivers.unwaived(problems)
    if unwaived:
        raise Refused(f"{refusal}: {'; '.join(map(str, unwaived))}")
    waived = consent.waivers.waived(problems)
    if waived:
        consent.ask(machine, waived)


def check_bucket(s3: Any, bucket: str, *, read_here: bool = True) -> None:
    """The bucket exists and, where this machine reads or writes it (`read_here`), these credentials may use it;
    else the copy is refused before anything is sent. Only the instance writes an instance's copy to S3, with its
    own role: that bucket needs only to exist."""
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = error_code(exc)
        if code in ("404", "NoSuchBucket"):
            raise TransferFailed(f"there is no S3 bucket named {bucket}: nothing was copied") from None
        if code in ("403", "AccessDenied") and not read_here:
            return
        if code in ("403", "AccessDenied"):
            raise TransferFailed(
                f"S3 bucket {bucket} is not open to these credentials (access denied): nothing was copied"
            ) from None
        raise TransferFailed(f"S3 bucket {bucket} cannot be used ({one_line(code, 40)}): nothing was copied") from None


def check_instance(ec2: EC2Client, region: str, instance_id: str) -> Instance:
    """A copy to or from an instance runs on it through SSM: it must exist and be running."""
    try:
        machine = instance(ec2, region, instance_id)
    except NotFound as exc:
        raise NotFound(f"{exc}: nothing was sent") from None
    if machine.state != "running":
        raise Refused(
            f"{instance_id} is {one_line(machine.state, 20)}, not running: a copy runs on the instance, "
            "so start it first; nothing was sent"
        )
    return machine


def s3_failure(exc: ClientError | S3UploadFailedError | RetriesExceededError, uri: str) -> TransferFailed:
    """The transfer manager's failure in words, naming the object (parsed against the strict pattern) and no class."""
    # S3UploadFailedError is raised while handling the ClientError that says why.
    cause = exc if isinstance(exc, ClientError) else exc.__context__
    code = error_code(cause) if isinstance(cause, ClientError) else ""
    if isinstance(exc, RetriesExceededError):
        return TransferFailed(f"{uri}: S3 did not answer after retries")
    if code == "NoSuchBucket":
        return TransferFailed(f"{uri}: the bucket does not exist")
    if code in ("404", "NoSuchKey"):
        return TransferFailed(f"{uri}: no such object")
    if code in ("403", "AccessDenied"):
        return TransferFailed(f"{uri}: access denied to these credentials")
    return TransferFailed(f"{uri}: S3 refused the copy ({one_line(code, 40) or 'no reason given'})")


def _local_files(root: Path) -> Iterator[tuple[Path, str]]:
    if root.is_file():
        yield root, root.name
        return
    for path in sorted(root.rglob("*")):
        if path.is_file():
            yield path, path.relative_to(root).as_posix()


def _transfer_manager(s3: Any) -> S3Transfer:
    # boto3's S3Transfer takes boto3's TransferConfig (its own client.upload_file passes one); the stubs say
    # botocore's Config by mistake.
    return S3Transfer(s3, TRANSFER_CONFIG)  # type: ignore[arg-type]


def missing_source(source: Path) -> BadEndpoint:
    return BadEndpoint(f"{one_line(source, 200)} does not exist")


def upload(s3: Any, source: Path, destination: Endpoint, progress: Progress | None = None) -> Moved:
    if not source.exists():
        raise missing_source(source)
    moved = Moved(route="transfer manager")
    into_prefix = destination.is_directory or source.is_dir()
    key = destination.key
    try:
        with _transfer_manager(s3) as manager:
            for path, relative in _local_files(source):
                key = (destination.key.rstrip("/") + "/" + relative).lstrip("/") if into_prefix else destination.key
                manager.upload_file(str(path), destination.bucket, key, callback=progress)
                moved.files += 1
                moved.bytes += path.stat().st_size
    except (ClientError, S3UploadFailedError, RetriesExceededError) as exc:
        raise s3_failure(exc, f"s3://{destination.bucket}/{key}") from None
    return moved


def _objects(s3: Any, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        yield from page.get("Contents", [])


def _resolves_under(target: Path, root: Path) -> bool:
    return target.resolve().is_relative_to(root)


def download(s3: Any, source: Endpoint, destination: Path, progress: Progress | None = None) -> Moved:
    moved = Moved(route="transfer manager")
    if source.is_directory:
        # A key ending in `/` is a folder marker the console makes: there is nothing in it to copy.
        found = [item for item in _objects(s3, source.bucket, source.key) if not item["Key"].endswith("/")]
        if not found:
            raise TransferFailed(f"nothing under {source.uri}")
        # A key is anyone's text: one that would climb out of the destination folder stops the copy before it starts.
        escaping = escaping_keys((item["Key"] for item in found), source.key)
        if escaping:
            raise TransferFailed(
                f"{len(escaping)} key(s) under {source.uri} would be written outside {destination}, "
                f"for example {one_line(escaping[0], 80)}: nothing was copied"
            )
        root = destination.resolve()
        targets = [(item, destination / below(item["Key"], source.key)) for item in found]
        # A folder already in the destination may be a link to elsewhere: every file must land under it, resolved.
        outside = [str(target) for _, target in targets if not _resolves_under(target, root)]
        if outside:
            raise TransferFailed(
                f"{one_line(outside[0], 120)} leads outside {destination} (a symbolic link on the way): "
                "nothing was copied"
            )
        try:
            with _transfer_manager(s3) as manager:
                for item, target in targets:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    manager.download_file(source.bucket, item["Key"], str(target), callback=progress)
                    moved.files += 1
                    moved.bytes += int(item["Size"])
        except (ClientError, RetriesExceededError) as exc:
            raise s3_failure(exc, source.uri) from None
        return moved
    target = destination / Path(source.key).name if destination.is_dir() else destination
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _transfer_manager(s3) as manager:
            manager.download_file(source.bucket, source.key, str(target), callback=progress)
    except (ClientError, RetriesExceededError) as exc:
        raise s3_failure(exc, source.uri) from None
    moved.files, moved.bytes = 1, target.stat().st_size
    return moved


def run_on_instance(
    ssm: SSMClient,
    document: str,
    *,
    instance_id: str,
    direction: Literal["to-instance", "from-instance"],
    s3_uri: str,
    path: str,
    timeout_seconds: float = 3600,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """One SSM command through trainctl's transfer document; waits for it and raises if it did not succeed."""
    command_id, invocation = send_and_wait(
        ssm,
        document,
        instance_id=instance_id,
        parameters={"Direction": [direction], "S3Uri": [s3_uri], "Path": [path]},
        comment=f"trainctl transfer {direction}",
        timeout_seconds=timeout_seconds,
        sleep=sleep,
    )
    status = str(invocation.get("Status", "Pending"))
    if status != "Success":
        raise TransferFailed(f"the copy on {instance_id} ended {status}")
    return command_id


def send_and_wait(
    ssm: SSMClient,
    document: str,
    *,
    instance_id: str,
    parameters: dict[str, list[str]],
    comment: str,
    timeout_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[str, dict[str, Any]]:
    """Send one command to one instance and wait until it ends (or the wait does): its id and last invocation."""
    try:
        command_id = str(
            ssm.send_command(
                DocumentName=document, InstanceIds=[instance_id], Parameters=parameters, Comment=comment[:100]
            )["Command"]["CommandId"]
        )
    except ClientError as exc:
        raise TransferFailed(f"{instance_id} cannot take the command: {error_code(exc)}") from None
    deadline = time.monotonic() + timeout_seconds
    invocation: dict[str, Any] = {"Status": "Pending"}
    while time.monotonic() < deadline:
        try:
            invocation = dict(ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id))
        except ClientError as exc:
            if error_code(exc) != "InvocationDoesNotExist":
                raise TransferFailed(f"{instance_id}: {error_code(exc)}") from None
        if invocation.get("Status") in _DONE:
            break
        sleep(2.0)
    return command_id, invocation


def refuse_escaping_keys(s3: Any, source: Endpoint, destination: Endpoint) -> None:
    """The document syncs as root on the instance: a key that climbs out of the destination path never goes."""
    escaping = escaping_keys((item["Key"] for item in _objects(s3, source.bucket, source.key)), source.key)
    if escaping:
        raise TransferFailed(
            f"{len(escaping)} key(s) under {source.uri} would be written outside {destination.path} on "
            f"{destination.instance_id}, for example {one_line(escaping[0], 80)}: nothing was sent"
        )


def staging_prefix(staging_uri: str | None) -> Endpoint:
    if not staging_uri:
        raise BadEndpoint(
            "a copy between this machine and an instance goes through S3: set TRAINCTL_TRANSFER_STAGING_URI"
        )
    base = parse_endpoint(staging_uri.rstrip("/") + "/")
    return Endpoint("s3", base.text, bucket=base.bucket, key=f"{base.key}trainctl-transfer-{uuid.uuid4().hex}/")


def remove_prefix(s3: Any, staged: Endpoint) -> None:
    keys = [{"Key": item["Key"]} for item in _objects(s3, staged.bucket, staged.key)]
    for start in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=staged.bucket, Delete={"Objects": keys[start : start + 1000], "Quiet": True})


def check_before_moving(
    source: Endpoint,
    destination: Endpoint,
    staged: Endpoint | None,
    *,
    s3: Any,
    ec2_for: Callable[[], EC2Client],
    region: str,
) -> list[Instance]:
    """Reads only: the local source exists, each instance runs, each bucket is there (and open to these
    credentials where this machine reads or writes it). The instances read, for the consent asked after."""
    if source.kind == "local" and not Path(source.path).exists():
        raise missing_source(Path(source.path))
    machines = [
        check_instance(ec2_for(), region, end.instance_id) for end in (source, destination) if end.kind == "instance"
    ]
    read_here = {end.bucket for end in (source, staged) if end is not None and end.kind == "s3"}
    if destination.kind == "s3" and source.kind == "local":
        read_here.add(destination.bucket)
    for bucket in sorted(read_here):
        check_bucket(s3, bucket)
    if destination.kind == "s3" and destination.bucket not in read_here:
        check_bucket(s3, destination.bucket, read_here=False)
    return machines


def transfer(
    source: Endpoint,
    destination: Endpoint,
    *,
    s3: Any,
    ssm_for: Callable[[], SSMClient],
    ec2_for: Callable[[], EC2Client],
    region: str,
    document: str,
    staging_uri: str | None,
    consent: Consent,
    progress: Progress | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Moved:
    """Copy along one route. Reads first (endpoints, buckets, keys); then the consent for each instance involved,
    before anything is staged or sent."""
    kinds = (source.kind, destination.kind)
    if kinds not in ROUTES:
        raise BadEndpoint(f"no route from {source.kind} to {destination.kind}: use cp, aws s3 cp or two transfers")
    staged = staging_prefix(staging_uri) if "local" in kinds and "instance" in kinds else None
    machines = check_before_moving(source, destination, staged, s3=s3, ec2_for=ec2_for, region=region)
    if kinds == ("s3", "instance"):
        refuse_escaping_keys(s3, source, destination)
    for machine in machines:
        check_consent(machine, consent, f"nothing was sent to {machine.resource_id}")
    if kinds == ("local", "s3"):
        return upload(s3, Path(source.path), destination, progress)
    if kinds == ("s3", "local"):
        return download(s3, source, Path(destination.path), progress)
    if kinds == ("s3", "instance"):
        command = run_on_instance(
            ssm_for(),
            document,
            instance_id=destination.instance_id,
            direction="to-instance",
            s3_uri=source.uri,
            path=destination.path,
            sleep=sleep,
        )
        return Moved(route="SSM on the instance", command_ids=(command,))
    if kinds == ("instance", "s3"):
        command = run_on_instance(
            ssm_for(),
            document,
            instance_id=source.instance_id,
            direction="from-instance",
            s3_uri=destination.uri,
            path=source.path,
            sleep=sleep,
        )
        return Moved(route="SSM on the instance", command_ids=(command,))
    assert staged is not None  # local and an instance, either way: staged above
    if kinds == ("local", "instance"):
        try:
            moved = upload(s3, Path(source.path), staged, progress)
            single = Path(source.path).is_file() and not destination.is_directory
            uri = staged.uri + Path(source.path).name if single else staged.uri
            command = run_on_instance(
                ssm_for(),
                document,
                instance_id=destination.instance_id,
                direction="to-instance",
                s3_uri=uri,
                path=destination.path,
                sleep=sleep,
            )
        finally:
            remove_prefix(s3, staged)
        return Moved(moved.files, moved.bytes, f"staged through {staged.uri}", (command,))
    try:
        command = run_on_instance(
            ssm_for(),
            document,
            instance_id=source.instance_id,
            direction="from-instance",
            s3_uri=staged.uri if source.is_directory else staged.uri + Path(source.path).name,
            path=source.path,
            sleep=sleep,
        )
        moved = download(s3, staged, Path(destination.path), progress)
    finally:
        remove_prefix(s3, staged)
    return Moved(moved.files, moved.bytes, f"staged through {staged.uri}", (command,))


# ------------------------------------------------------------------------------------------------ local cache

# Where a cache folder may be: where the Deep Learning AMIs mount the instance store, and /mnt, where people mount
# theirs. The document's allowedPattern repeats this, and on the instance it refuses a folder whose device is not
# an instance-store disk: the roots keep a typo away from system folders, the device check is the proof.
CACHE_ROOTS = ("/opt/dlami/nvme", "/mnt")
CACHE_WAIT_SECONDS = 43200  # the document's own timeoutSeconds: a fill may take as long as the document allows
# What the document's exit codes mean, in the command line's words (the instance's own text is never repeated).
CACHE_EXITS = {
    3: "is not on an instance-store volume there: mount the instance store at that folder first",
    5: "could not be filled: s5cmd (or the AWS CLI) failed on the instance; see the command's output in SSM",
}
GB = 10**9  # EC2 states instance store in decimal GB


@dataclass(frozen=True)
class InstanceStore:
    """What EC2 says of an instance type's instance store; None where it would not say."""

    instance_type: str
    present: bool | None
    total_bytes: int | None = None


@dataclass(frozen=True)
class CacheFill:
    """The document's last line: what this fill copied, how long it took, and the cache and store after it."""

    copied_bytes: int
    copied_files: int
    seconds: float
    cache_bytes: int
    cache_files: int
    store_bytes: int
    free_bytes: int
    tool: str

    @property
    def rate_mib_s(self) -> float | None:
        """MiB/s of what was copied; None when nothing was (a rate over nothing is not a rate)."""
        if self.copied_bytes <= 0 or self.seconds <= 0:
            return None
        return self.copied_bytes / 2**20 / self.seconds


@dataclass(frozen=True)
class CacheResult:
    fill: CacheFill
    command_id: str
    source: str
    path: str
    data_bytes: int
    objects: int
    store: InstanceStore
    tagged: bool
    tag_error: str = ""


def check_cache_endpoints(source: Endpoint, destination: Endpoint) -> None:
    """Pure: an S3 prefix into a folder under a cache root on an instance; anything else is wrong usage."""
    if source.kind != "s3" or not source.is_directory:
        raise BadEndpoint("a cache is filled from an S3 prefix: give s3://bucket/prefix/ (ending in /) as the source")
    if destination.kind != "instance":
        raise BadEndpoint(
            "a cache lives on an instance: give instance:i-...:/opt/dlami/nvme/FOLDER/ as the destination"
        )
    folder = destination.path.rstrip("/")
    if not any(folder.startswith(root + "/") for root in CACHE_ROOTS):
        raise BadEndpoint(
            f"{one_line(destination.path, 120)} is not a folder under the instance store's mount "
            f"({' or '.join(root + '/' for root in CACHE_ROOTS)})"
        )


def instance_store(ec2: EC2Client, instance_type: str) -> InstanceStore:
    """The type's instance store from DescribeInstanceTypes; unknown (None) where EC2 does not answer for it."""
    try:
        found = ec2.describe_instance_types(InstanceTypes=[instance_type])["InstanceTypes"]  # type: ignore[list-item]
    except ClientError:
        return InstanceStore(instance_type, None)
    if not found or found[0].get("InstanceStorageSupported") is None:
        return InstanceStore(instance_type, None)
    total = found[0].get("InstanceStorageInfo", {}).get("TotalSizeInGB")
    return InstanceStore(instance_type, bool(found[0]["InstanceStorageSupported"]), total * GB if total else None)


def check_cache_fits(store: InstanceStore, data_bytes: int, instance_id: str) -> None:
    """Pure: a type without instance store, or one too small for the data, is refused before anything is sent."""
    if store.present is False:
        raise Refused(
            f"{instance_id} is a {store.instance_type}, which has no instance store: a local cache needs one "
            "(stream from S3 or pre-warm an EBS volume instead); nothing was sent"
        )
    if store.total_bytes is not None and data_bytes > store.total_bytes:
        raise Refused(
            f"the data ({data_bytes / GB:,.1f} GB) does not fit the {store.total_bytes / GB:,.0f} GB instance store "
            f"of {instance_id} ({store.instance_type}); nothing was sent"
        )


def parse_cache_report(output: str) -> CacheFill | None:
    """Pure: the document's figures from its last JSON line; None when it printed none."""
    for line in reversed(output.strip().splitlines()):
        try:
            found = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(found, dict) or "copied_bytes" not in found:
            continue
        try:
            return CacheFill(
                copied_bytes=int(found["copied_bytes"]),
                copied_files=int(found["copied_files"]),
                seconds=float(found["seconds"]),
                cache_bytes=int(found["cache_bytes"]),
                cache_files=int(found["cache_files"]),
                store_bytes=int(found["store_bytes"]),
                free_bytes=int(found["free_bytes"]),
                tool=str(found["tool"]) if found.get("tool") in ("s5cmd", "aws-cli") else "unknown",
            )
        except (KeyError, TypeError, ValueError):
            return None
    return None


def cache_tags(fill: CacheFill, *, source: str, path: str, at: datetime) -> list[dict[str, str]]:
    """Pure: the instance's record of its last fill. Plain values a later plan reads back: the source (its
    SHA-256 where the URI is longer than a tag value may be), the folder, the instant, bytes copied, whole
    seconds and MiB/s to one decimal (no rate when nothing was copied)."""
    origin = source if len(source) <= 256 else "sha256:" + hashlib.sha256(source.encode()).hexdigest()
    found = [
        {"Key": tags.CACHE_FROM, "Value": origin},
        {"Key": tags.CACHE_PATH, "Value": path[:256]},
        {"Key": tags.CACHE_AT, "Value": format_instant(at)},
        {"Key": tags.CACHE_BYTES, "Value": str(fill.copied_bytes)},
        {"Key": tags.CACHE_SECONDS, "Value": str(round(fill.seconds))},
    ]
    rate = fill.rate_mib_s
    if rate is not None:
        found.append({"Key": tags.CACHE_RATE, "Value": f"{rate:.1f}"})
    return found


def data_under(s3: Any, source: Endpoint) -> tuple[int, int]:
    """Bytes and objects under the prefix (folder markers hold nothing); a key that would climb out of the cache
    folder, or an empty prefix, stops the fill before anything is sent."""
    found = [item for item in _objects(s3, source.bucket, source.key) if not item["Key"].endswith("/")]
    if not found:
        raise TransferFailed(f"nothing under {source.uri}: nothing was sent")
    escaping = escaping_keys((item["Key"] for item in found), source.key)
    if escaping:
        raise TransferFailed(
            f"{len(escaping)} key(s) under {source.uri} would be written outside the cache folder, "
            f"for example {one_line(escaping[0], 80)}: nothing was sent"
        )
    return sum(int(item["Size"]) for item in found), len(found)


def fill_cache(
    source: Endpoint,
    destination: Endpoint,
    *,
    s3: Any,
    ssm: SSMClient,
    ec2: EC2Client,
    region: str,
    document: str,
    consent: Consent,
    clock: Clock = system_clock,
    sleep: Callable[[float], None] = time.sleep,
) -> CacheResult:
    """Fill (or top up) a cache folder on an instance's instance store from an S3 prefix, then tag the instance.

    Reads first (the instance running, its type's instance store, the bucket, the objects); then the consent (an
    instance outside the scope or another owner's needs its waiver, and is asked about); one SendCommand; a tag
    write only when the fill copied something, so the tags keep describing the last fill that moved data."""
    check_cache_endpoints(source, destination)
    try:
        machine = instance(ec2, region, destination.instance_id)
    except NotFound as exc:
        raise NotFound(f"{exc}: nothing was sent") from None
    if machine.state != "running":
        raise Refused(
            f"{destination.instance_id} is {one_line(machine.state, 20)}, not running: the cache is filled on the "
            "instance, so start it first; nothing was sent"
        )
    store = instance_store(ec2, machine.instance_type)
    check_cache_fits(store, 0, destination.instance_id)
    check_bucket(s3, source.bucket)
    data_bytes, objects = data_under(s3, source)
    check_cache_fits(store, data_bytes, destination.instance_id)
    folder = destination.path.rstrip("/") + "/"
    check_consent(machine, consent, f"{folder} on {destination.instance_id} not filled")
    command_id, invocation = send_and_wait(
        ssm,
        document,
        instance_id=destination.instance_id,
        parameters={"S3Uri": [source.uri], "CachePath": [folder]},
        comment="trainctl transfer --to-cache",
        timeout_seconds=CACHE_WAIT_SECONDS,
        sleep=sleep,
    )
    status = str(invocation.get("Status", "Pending"))
    if status != "Success":
        code = invocation.get("ResponseCode")
        words = CACHE_EXITS.get(code) if isinstance(code, int) else None
        if words:
            raise TransferFailed(f"{folder} on {destination.instance_id} {words}")
        raise TransferFailed(f"the cache fill on {destination.instance_id} ended {one_line(status, 30)}")
    fill = parse_cache_report(str(invocation.get("StandardOutputContent", "")))
    if fill is None:
        raise TransferFailed(
            f"the cache fill on {destination.instance_id} succeeded but reported no figures: is the "
            f"{document} document trainctl's?"
        )
    tagged, tag_error = False, ""
    if fill.copied_bytes > 0:
        try:
            ec2.create_tags(
                Resources=[destination.instance_id],
                Tags=cache_tags(fill, source=source.uri, path=folder, at=clock()),  # type: ignore[arg-type]
            )
            tagged = True
        except ClientError as exc:
            # The data is in place: the fill stands, and the missing record is said, not hidden.
            tag_error = error_code(exc)
    return CacheResult(fill, command_id, source.uri, folder, data_bytes, objects, store, tagged, tag_error)
