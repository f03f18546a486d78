"""Holes an adversarial review found in the second safety round (issue 16), kept as regression tests.

Each `test_hole_*` is a sequence of tags, clock steps, people's actions or API failures after which a resource
that should live was destroyed, the owner was never told, or a sweep raised where the safety model promises it
does not. Each failed on main at 4737da0 (the review's target) and passes since the fixes; its docstring gives
the exact sequence and the promise it broke (ARCHITECTURE.md's safety model, the README, or issue 16).

People act through their own clients (`people`), never through the sweep's factory, so that every call the
sweep's factory sees is trainctl's own.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ReadTimeoutError

from tests.conftest import load_event
from tests.integration.faults import Faults
from trainctl.aws.clients import ClientFactory
from trainctl.aws.notifications import InMemoryNotifier, SnsNotifier
from trainctl.cli import stack_resources
from trainctl.cli.local_run import LocalContext, load_handler
from trainctl.core import names, tags
from trainctl.core.clock import fixed_clock, format_instant
from trainctl.core.errors import TrainctlError
from trainctl.core.observations import Training, TrainingCheck, Utilisation
from trainctl.core.settings import SweepSettings
from trainctl.sweep.record import DynamoDbLedger
from trainctl.sweep.run import SweepResult, run_sweep

REGION = "us-east-1"
ZONE = "us-east-1a"
T0 = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
GRACE = timedelta(hours=24)
SETTINGS = SweepSettings(
    regions=(REGION,),
    dry_run=False,
    grace_period=GRACE,
    min_age=timedelta(minutes=5),
    max_action_share=1.0,
    training_check_timeout=timedelta(seconds=1),
    training_document=names.TRAINING_DOCUMENT,
)


@dataclass
class Account:
    factory: ClientFactory
    people: ClientFactory
    notifier: Any = field(default_factory=InMemoryNotifier)

    @property
    def ledger(self) -> DynamoDbLedger:
        return DynamoDbLedger(self.factory.dynamodb(), names.LEDGER_TABLE)

    @property
    def ec2(self) -> Any:
        """People's EC2: not the sweep's factory."""
        return self.people.ec2(REGION)

    def sweep(self, at: datetime, settings: SweepSettings = SETTINGS) -> SweepResult:
        return run_sweep(self.factory, settings, fixed_clock(at), ledger=self.ledger, notifier=self.notifier)

    def volume(self, **labels: str) -> str:
        values = {tags.MANAGED: "true", tags.OWNER: "alice", tags.CREATED_AT: format_instant(T0 - timedelta(days=3))}
        values.update(labels)
        spec = [{"ResourceType": "volume", "Tags": [{"Key": k, "Value": v} for k, v in values.items()]}]
        return str(self.ec2.create_volume(Size=10, AvailabilityZone=ZONE, TagSpecifications=spec)["VolumeId"])

    def instance(self, *, stopped: bool = False, **labels: str) -> str:
        values = {tags.MANAGED: "true", tags.OWNER: "alice", **labels}
        instance_id = str(
            self.ec2.run_instances(
                ImageId="ami-12c6146b",
                MinCount=1,
                MaxCount=1,
                InstanceType="t3.micro",
                Placement={"AvailabilityZone": ZONE},
                TagSpecifications=[
                    {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in values.items()]}
                ],
            )["Instances"][0]["InstanceId"]
        )
        if stopped:
            self.ec2.stop_instances(InstanceIds=[instance_id])
        return instance_id

    def set_tags(self, resource_id: str, **labels: str) -> None:
        self.ec2.create_tags(Resources=[resource_id], Tags=[{"Key": k, "Value": v} for k, v in labels.items()])

    def exists(self, volume_id: str) -> bool:
        return bool(self.ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": [volume_id]}])["Volumes"])

    def snapshot_exists(self, snapshot_id: str) -> bool:
        found = self.ec2.describe_snapshots(Filters=[{"Name": "snapshot-id", "Values": [snapshot_id]}])
        return bool(found["Snapshots"])

    def state(self, instance_id: str) -> str:
        found = self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
        return str(found["State"]["Name"])

    def told(self, resource_id: str, since: int = 0) -> bool:
        return any(resource_id in message for _, message in self.notifier.messages[since:])

    def tell_age_guard(
        self, monkeypatch: pytest.MonkeyPatch, event_name: str, request: dict[str, Any], at: datetime
    ) -> dict[str, Any]:
        """What CloudTrail hands the age_guard function, through its handler (the deployed path)."""
        event = load_event("age_guard", "attach_volume_console_user")
        event["detail"]["eventName"] = event_name
        event["detail"]["requestParameters"] = request
        event["detail"]["eventTime"] = format_instant(at)
        monkeypatch.setenv("TRAINCTL_REGIONS", REGION)
        handler = load_handler("age_guard")
        monkeypatch.setattr(handler, "client_factory", lambda: self.factory)
        told: dict[str, Any] = handler.lambda_handler(event, LocalContext(function_name="trainctl-age_guard"))
        return told


@pytest.fixture
def account(factory: ClientFactory) -> Account:
    stack_resources.ensure_on_emulator(factory, (REGION,))
    return Account(factory, ClientFactory(REGION))


def decision(result: SweepResult, resource_id: str) -> Any:
    return next(d for d in result.decisions if d.resource_id == resource_id)


def once_before(factory: ClientFactory, operation: str, when: Any, act: Any) -> list[bool]:
    """Run `act` once, just before the first call of `operation` (by trainctl's factory) whose params satisfy `when`.

    This is a person acting while a sweep runs: between what the sweep read and what it does.
    """
    fired: list[bool] = []
    lock = threading.Lock()

    def hook(params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name != operation:
            return
        with lock:
            if fired or not when(params):
                return
            fired.append(True)
        act()

    factory.register("before-parameter-build", hook)
    return fired


def in_another_thread(act: Any) -> Any:
    """A person's calls on a stack of their own: the suite's call ledger (tests/aws_calls.py) attributes a call to the
    trainctl module on its stack, and a person acting inside a sweep's hook is no trainctl module."""

    def wrapped() -> None:
        errors: list[BaseException] = []

        def guarded() -> None:
            try:
                act()
            except BaseException as exc:  # re-raised in the sweep's thread
                errors.append(exc)

        thread = threading.Thread(target=guarded)
        thread.start()
        thread.join()
        if errors:
            raise errors[0]

    return wrapped


def refuse(factory: ClientFactory, operation: str, code: str) -> None:
    """Every `operation` through this factory is refused with `code`, and nothing reaches the emulator.

    (tests/integration/faults.py answers at before-send, where moto's own handler still runs: a write it "fails" is
    still made in the emulator. Refusing at before-call stops the call before anything is sent.)
    """

    def answer(model: Any, **_: Any) -> tuple[Any, dict[str, Any]] | None:
        if model.name != operation:
            return None
        response = AWSResponse("https://refused.invalid/", 400, {}, None)
        return response, {"Error": {"Code": code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": 400}}

    factory.register("before-call", answer, first=True)


# 1. A stranger's trainctl:ttl shortens the grace period to the ttl warning lead -------------------------------


@pytest.mark.parametrize("kind", ["snapshot", "stopped-instance"])
def test_hole_a_strangers_ttl_0s_gets_a_resource_destroyed_an_hour_after_its_first_notice(
    account: Account, kind: str
) -> None:
    """Sequence: Alice's in-scope snapshot (a week old, under the 30-day retention) or her instance, stopped a day
    ago (under the 7-day stopped age), is no candidate at all. A stranger writes `trainctl:ttl=0s` on it (the README's
    SCP keeps only cleanup-after, managed and role to trainctl). Sweep at T0: reasons {ttl-expired} only, so
    `fresh_mark` gives it `ttl_warning_lead` (1 h), not the grace period (24 h). Sweep at T0+1h05: the ledger vouches
    for that mark, and the resource is deleted / terminated 65 minutes after the first notice anyone got.

    Breaks: issue 16 defect 1 ("`trainctl:ttl=0s` works the same way ... replaced by a fresh one, with a full grace
    period"), the README's "a forged mark can never shorten a grace period", and the invariant "announced that very
    action at least one grace period earlier". (sweep/rules.py fresh_mark; the TTL_EXPIRING mark at expiry has the
    same short notice.)
    """
    if kind == "snapshot":
        volume_id = account.volume(**{tags.PERSISTENT: "true"})
        target = str(
            account.ec2.create_snapshot(
                VolumeId=volume_id,
                TagSpecifications=[
                    {
                        "ResourceType": "snapshot",
                        "Tags": [{"Key": tags.MANAGED, "Value": "true"}, {"Key": tags.OWNER, "Value": "alice"}],
                    }
                ],
            )["SnapshotId"]
        )
    else:
        target = account.instance(stopped=True)
    assert not [d for d in account.sweep(T0).decisions if d.resource_id == target and d.action != "keep"]
    account.set_tags(target, **{tags.TTL: "0s"})  # the stranger
    first = decision(account.sweep(T0 + timedelta(minutes=1)), target)
    assert first.action == "mark"
    account.sweep(T0 + timedelta(hours=1, minutes=5))
    gone = (
        not account.snapshot_exists(target)
        if kind == "snapshot"
        else account.state(target) in ("shutting-down", "terminated")
    )
    assert not gone, f"{kind} destroyed 64 minutes after its first notice (grace period {GRACE})"
    assert first.cleanup_after is not None and first.cleanup_after >= T0 + timedelta(minutes=1) + GRACE


# 2. Use heard while the marking sweep runs is forgotten -------------------------------------------------------


def test_hole_an_attach_heard_before_the_sweep_writes_its_mark_is_forgotten(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sequence: sweep S1 at T0 reads the inventory (volume unattached: a candidate) and goes on observing (SSM
    checks, CloudWatch, ledger reads: minutes on a big fleet). Meanwhile, at T0+30s, Bob attaches the volume;
    CloudTrail hands AttachVolume to age_guard, which finds no `trainctl:cleanup-after` yet ("unchanged") and so
    records nothing. Bob detaches. S1 then writes its mark, recorded at T0. Sweeps at T0+6h and T0+25h see an
    unattached candidate both times and delete it: on a mark older than a use that trainctl heard of.

    Breaks: safety model 3 ("only if the resource stayed a candidate the whole time ... used in between earns a
    fresh mark"). age_guard/run.py void_marks_on_use records a use only when a mark tag is there at that moment.
    """
    volume_id = account.volume()
    instance_id = account.instance()
    told: list[dict[str, Any]] = []

    def bob_uses_it() -> None:
        account.ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")
        request = {"volumeId": volume_id, "instanceId": instance_id, "device": "/dev/sdf"}
        told.append(account.tell_age_guard(monkeypatch, "AttachVolume", request, T0 + timedelta(seconds=30)))
        account.ec2.detach_volume(VolumeId=volume_id, InstanceId=instance_id)

    fired = once_before(
        account.factory,
        "CreateTags",
        lambda params: (
            volume_id in params.get("Resources", [])
            and any(t["Key"] == tags.CLEANUP_AFTER for t in params.get("Tags", []))
        ),
        in_another_thread(bob_uses_it),
    )
    assert decision(account.sweep(T0), volume_id).action == "mark"
    assert fired and told and told[0]["status"] == "unchanged"  # age_guard heard it, and let it go
    account.sweep(T0 + timedelta(hours=6))
    account.sweep(T0 + GRACE + timedelta(hours=1))
    assert account.exists(volume_id), "deleted on a mark older than a use age_guard heard"


def test_hole_a_use_in_the_same_second_as_the_mark_sorts_before_it_by_sweep_id(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sequence: as above, but age_guard does record the use. Sweep S1 starts at T0 (12:00:00.1, say) and reads the
    volume unattached. Bob attaches it at 12:00:00.8; CloudTrail's eventTime has whole seconds: T0. The use row's sort
    key is "T0#age_guard", the mark's "T0#<sweep id>". The ledger reads a resource's history newest first and stops
    at the newest mark: when the sweep id sorts above "age_guard" (ids starting b-f: about a third of all sweeps;
    pinned here to one starting with f), the use row is "older" than the mark and never read. Bob detaches; two
    sweeps later the volume is deleted on that mark.

    Breaks: safety model 3. aws/ledger.py sweep_decision keys rows by whole seconds then writer id;
    sweep/record.py history() trusts that order, and core/marks.py distrust() trusts history().
    """
    import uuid

    from trainctl.sweep import run

    class FixedIds:
        @staticmethod
        def uuid4() -> uuid.UUID:
            return uuid.UUID("f" * 8 + uuid.uuid4().hex[8:])

    monkeypatch.setattr(run, "uuid", FixedIds)
    volume_id = account.volume()
    instance_id = account.instance()
    told: list[dict[str, Any]] = []

    def bob_uses_it() -> None:
        account.ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")
        request = {"volumeId": volume_id, "instanceId": instance_id, "device": "/dev/sdf"}
        told.append(account.tell_age_guard(monkeypatch, "AttachVolume", request, T0))
        account.ec2.detach_volume(VolumeId=volume_id, InstanceId=instance_id)

    fired = once_before(
        account.factory,
        "CreateTags",
        lambda params: (
            volume_id in params.get("Resources", [])
            and any(t["Key"] == tags.CLEANUP_AFTER for t in params.get("Tags", []))
        ),
        in_another_thread(bob_uses_it),
    )
    assert decision(account.sweep(T0), volume_id).action == "mark"
    assert fired and told
    account.sweep(T0 + timedelta(hours=6))
    account.sweep(T0 + GRACE + timedelta(hours=1))
    assert account.exists(volume_id), "deleted on a mark made in the same second as a use age_guard recorded"


# 3. An instance started while the acting sweep runs is terminated ---------------------------------------------


# The volumes' deletes no longer come between the vouching and the instances (they need no guards and run beside
# the instances' guard reads): the long gap is now the guard reads, read one call per resource.
@pytest.mark.parametrize("moment", ["while it writes its intent", "while it reads the instance's guards"])
def test_hole_an_instance_started_during_the_acting_sweep_is_terminated_running(
    account: Account, monkeypatch: pytest.MonkeyPatch, moment: str
) -> None:
    """Sequence: Alice's instance, stopped for days, is marked "terminate" at T0 (stopped_max_age 1h), beside an
    unattached volume marked at the same time. At T0+25h the acting sweep reads the instance stopped and vouches for
    its mark. Alice starts the instance while the sweep writes its intent rows, or while it reads EC2's guards of
    the instance (on a big fleet hundreds of calls, a minute). age_guard hears StartInstances and
    voids the mark: the ledger row and the tag removal land BEFORE the sweep's TerminateInstances. The sweep
    terminates the running instance anyway.

    Breaks: safety model 3 (use in between voids the mark) and the age_guard promise in the README ("voids the
    mark ... of an instance on StartInstances"). sweep/run.py, sweep/act.py: what is checked at the start of acting
    is not what holds at the call (time-of-check to time-of-use).
    """
    settings = SETTINGS.model_copy(update={"stopped_max_age": timedelta(hours=1)})
    instance_id = account.instance(stopped=True)
    volume_id = account.volume()
    marked = account.sweep(T0, settings)
    assert decision(marked, instance_id).action == "mark" and decision(marked, volume_id).action == "mark"
    account.sweep(T0 + timedelta(hours=6), settings)
    told: list[dict[str, Any]] = []
    acting = T0 + GRACE + timedelta(hours=1)

    def alice_starts_it() -> None:
        account.ec2.start_instances(InstanceIds=[instance_id])
        request = {"instancesSet": {"items": [{"instanceId": instance_id}]}}
        told.append(account.tell_age_guard(monkeypatch, "StartInstances", request, acting + timedelta(seconds=5)))

    if moment == "while it writes its intent":
        operation, when = "BatchWriteItem", lambda params: instance_id in json.dumps(params)
    else:
        operation, when = "DescribeInstanceAttribute", lambda params: params.get("InstanceId") == instance_id
    fired = once_before(account.factory, operation, when, in_another_thread(alice_starts_it))
    result = account.sweep(acting, settings)
    assert fired and told and told[0]["status"] == "unmarked"  # age_guard voided the mark before the terminate
    assert account.state(instance_id) == "running", (
        f"terminated while running, after age_guard voided its mark: {decision(result, instance_id).outcome}"
    )


# 4. age_guard's ledger write fails: the use is lost and the tag stays -----------------------------------------


def test_hole_when_age_guard_cannot_write_the_ledger_it_leaves_the_mark_and_the_used_volume_dies(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sequence: volume marked at T0. At T0+3h Bob attaches it; age_guard hears AttachVolume, but its PutItem is
    refused (KMS key denied, the same failure as issue 16 defect 8), so MarkVoider.void raises before it removes
    the tag (the tag removal alone would have voided the mark: an untagged candidate gets a fresh one). Every retry
    of the event fails the same way. Bob detaches. Sweeps at T0+6h and T0+25h: deleted on the old mark.

    Breaks: safety model 3 (used in between) and fail-safety: one failed write turns the void off entirely.
    age_guard/use.py void(): "record the use first, then take the tag away" stops at the first step.
    """
    volume_id = account.volume()
    instance_id = account.instance()
    assert decision(account.sweep(T0), volume_id).action == "mark"
    denied = ClientFactory(REGION)
    refuse(denied, "PutItem", "AccessDeniedException")
    monkeypatch.setenv("TRAINCTL_REGIONS", REGION)
    account.ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")
    event = load_event("age_guard", "attach_volume_console_user")
    event["detail"]["requestParameters"] = {"volumeId": volume_id, "instanceId": instance_id, "device": "/dev/sdf"}
    event["detail"]["eventTime"] = format_instant(T0 + timedelta(hours=3))
    handler = load_handler("age_guard")
    monkeypatch.setattr(handler, "client_factory", lambda: denied)
    for _ in range(3):  # Lambda's asynchronous invocation: the first try and two retries
        with contextlib.suppress(TrainctlError):
            handler.lambda_handler(event, LocalContext(function_name="trainctl-age_guard"))
    account.ec2.detach_volume(VolumeId=volume_id, InstanceId=instance_id)
    account.sweep(T0 + timedelta(hours=6))
    account.sweep(T0 + GRACE + timedelta(hours=1))
    assert account.exists(volume_id), "used between sweeps, deleted on its old mark"


# 5. A mark nobody was told about is trusted -------------------------------------------------------------------


def test_hole_a_mark_whose_notice_never_went_out_is_acted_on(account: Account) -> None:
    """Sequence: sweep at T0 marks the volume, records the mark in the ledger, then SNS Publish fails
    (KMS denied on the encrypted topic, or throttled): the sweep raises, but the ledger already vouches for the
    mark. Sweep at T0+6h: "grace period" keeps are not news, nothing is published. Sweep at T0+25h (SNS fine
    again): deleted. The owner's first word of it is the deletion notice.

    Breaks: safety model 2 ("a sweep first marks and notifies; a later sweep acts") and README "A mark is a
    promise": the promise was never made to a person. sweep/run.py records marks as done whether or not the
    notice went out, and nothing re-sends it.
    """
    topic = account.factory.sns().create_topic(Name=names.SWEEP_TOPIC)["TopicArn"]
    sent: list[str] = []
    sns = account.factory.sns()
    account.notifier = SnsNotifier(sns, topic)
    Faults(account.factory).fail("Publish", code="KMSAccessDenied", status=400, times=1)
    sns.meta.events.register("before-parameter-build.sns.Publish", lambda params, **_: sent.append(params["Message"]))
    volume_id = account.volume()
    with contextlib.suppress(TrainctlError):
        account.sweep(T0)
    account.sweep(T0 + timedelta(hours=6))
    delivered_before = [m for m in sent[1:] if volume_id in m]  # sent[0] is the refused one
    account.sweep(T0 + GRACE + timedelta(hours=1))
    assert account.exists(volume_id) or delivered_before, "deleted; the owner never heard of its mark"


# 6. The 201st mark of a sweep is never named to anyone --------------------------------------------------------


@pytest.mark.parametrize("whose", ["another owner's", "the same owner's"])
def test_hole_a_mark_past_the_notice_line_limit_is_announced_to_nobody_and_carried_out(
    account: Account, whose: str
) -> None:
    """Sequence: 200 of Alice's volumes and one more (Zoe's, or Alice's own 201st) become candidates in one sweep
    (a team's teardown). A message lists at most 200 lines (MAX_LINES); the last mark is "... and 1 more in the
    ledger", which people do not read (and may not be allowed to). After the grace period that volume is deleted;
    nobody was ever told which volume it was.

    Breaks: safety model 2/3 (the mark is a promise to a person) and 7 ("the owner hears about every action").
    sweep/notice.py: one message per sweep, cut at 200 lines (per owner, the cut moves but stays).
    """
    alices = [account.volume() for _ in range(200)]
    last = account.volume(**({tags.OWNER: "zoe"} if whose == "another owner's" else {}))
    first = account.sweep(T0)
    assert all(decision(first, v).action == "mark" for v in [*alices, last])
    unnamed = [v for v in [*alices, last] if not account.told(v)]
    account.sweep(T0 + GRACE + timedelta(hours=1), SETTINGS.model_copy(update={"max_actions": 500}))
    deleted_unnamed = [v for v in unnamed if not account.exists(v)]
    assert not deleted_unnamed, f"deleted, their marks never named in any notice: {deleted_unnamed}"


# 7. The outcome write leaves items unprocessed: RuntimeError, and nobody is told ------------------------------


def _unprocessed_outcomes(factory: ClientFactory) -> None:
    """DynamoDB under throttling: every record (outcome) batch comes back unprocessed; intent rows go through."""

    def answer(params: dict[str, Any], model: Any, **_: Any) -> tuple[Any, dict[str, Any]] | None:
        if model.name != "BatchWriteItem":
            return None
        body = json.loads(params["body"])
        items = [request["PutRequest"]["Item"] for writes in body["RequestItems"].values() for request in writes]
        if all(item.get("outcome", {}).get("S") == "intended" for item in items):
            return None
        response = AWSResponse("https://dynamodb.us-east-1.amazonaws.com/", 200, {}, None)
        return response, {"UnprocessedItems": body["RequestItems"], "ResponseMetadata": {"HTTPStatusCode": 200}}

    factory.register("before-call", answer, first=True)


def test_hole_unprocessed_ledger_items_after_acting_silence_the_owners_message(account: Account) -> None:
    """Sequence: volume marked at T0 and seen at T0+6h. At T0+25h the intent rows are written, the volume is
    deleted, then the outcome BatchWriteItem keeps coming back with UnprocessedItems (throttled table). After 8
    rounds DynamoDbLedger._write raises a bare RuntimeError, which _sweep does not catch (it catches
    TrainctlError): the sweep dies before `notifier.publish`. The volume is gone and nobody is told.

    Breaks: safety model 7 ("the owner hears about every action even when the ledger fails") and "no sweep raises"
    anything but its one ledger error. The same RuntimeError from record_intent escapes _record_intent too.
    """
    volume_id = account.volume()
    assert decision(account.sweep(T0), volume_id).action == "mark"
    account.sweep(T0 + timedelta(hours=6))
    before = len(account.notifier.messages)
    _unprocessed_outcomes(account.factory)
    raised: BaseException | None = None
    try:
        account.sweep(T0 + GRACE + timedelta(hours=1))
    except Exception as exc:  # which exception escapes is the finding
        raised = exc
    assert not account.exists(volume_id)
    assert account.told(volume_id, since=before), f"deleted, nobody told; the sweep raised {raised!r}"
    assert raised is None or isinstance(raised, TrainctlError), f"raised {raised!r}"


# 8. One timed-out DeleteVolume stops the sweep: the deletions before it are unreported -----------------------


@pytest.fixture
def impatient(aws: None) -> Account:
    """An account whose clients give up after one attempt: what a call looks like once botocore's retries are spent."""
    factory = ClientFactory(REGION, config=Config(retries={"total_max_attempts": 1}, max_pool_connections=32))
    stack_resources.ensure_on_emulator(factory, (REGION,))
    return Account(factory, ClientFactory(REGION))


def test_hole_one_timed_out_delete_stops_the_sweep_and_the_done_deletions_go_unreported(impatient: Account) -> None:
    """Sequence: volumes A and B marked at T0, seen at T0+6h. At T0+25h A's DeleteVolume succeeds; B's times out
    (ReadTimeoutError once botocore's retries are spent: a network partition, an overloaded endpoint). SweepExecutor
    ._act catches ClientError only, so the timeout escapes pool.map, execute() and _sweep: no outcome is recorded,
    no message is sent. A is gone with only an "intended" row, and its owner never hears.

    Breaks: safety model 6/7/8 (one resource never stops the sweep; the owner hears about every action; a failed
    action is reported as failed). The same holds for a timeout in CreateTags/DeleteTags, ModifyInstanceAttribute,
    Terminate/StopInstances or the re-read.
    """
    account = impatient
    first, second = account.volume(), account.volume()
    account.sweep(T0)
    account.sweep(T0 + timedelta(hours=6))
    before = len(account.notifier.messages)

    def timeout(request: Any, **_: Any) -> None:
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
        if "Action=DeleteVolume" in body and f"VolumeId={second}" in body:
            raise ReadTimeoutError(endpoint_url=request.url)

    account.factory.register("before-send", timeout, first=True)
    raised: BaseException | None = None
    try:
        account.sweep(T0 + GRACE + timedelta(hours=1))
    except Exception as exc:  # which exception escapes is the finding
        raised = exc
    assert not account.exists(first)
    assert account.told(first, since=before), f"{first} deleted, nobody told; the sweep raised {raised!r}"


# 9. A snapshot a launch configuration restores is deleted by retention ----------------------------------------


def test_hole_a_snapshot_a_launch_configuration_restores_is_deleted_by_retention(account: Account) -> None:
    """Sequence: an Auto Scaling group's launch configuration (still common in older accounts; Auto Scaling
    launches from it) has a block device restored from snapshot S. S is in scope and past retention. Sweep at
    T0+10d marks it (no protection: only AMIs and launch templates count as users), sweep after the grace
    period deletes it; the group's next scale-out fails. The same holds for a persistent spot request's or a
    Spot Fleet's launch specification.

    Breaks: issue 16 defect 6's intent (a snapshot something relaunches from must live). aws/ec2.py reads only
    DescribeLaunchTemplateVersions; DescribeLaunchConfigurations is never asked.
    """
    volume_id = account.volume(**{tags.PERSISTENT: "true"})
    snapshot_id = account.ec2.create_snapshot(
        VolumeId=volume_id,
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": tags.MANAGED, "Value": "true"}]}],
    )["SnapshotId"]
    account.people.client("autoscaling", REGION).create_launch_configuration(
        LaunchConfigurationName="trainer-lc",
        ImageId="ami-12c6146b",
        InstanceType="g5.xlarge",
        BlockDeviceMappings=[{"DeviceName": "/dev/sdf", "Ebs": {"SnapshotId": snapshot_id}}],
    )
    settings = SETTINGS.model_copy(update={"snapshot_retention": timedelta(days=1)})
    later = T0 + timedelta(days=10)
    account.sweep(later, settings)
    account.sweep(later + GRACE + timedelta(hours=1), settings)
    assert account.snapshot_exists(snapshot_id), "a launch configuration's snapshot was deleted by retention"


# 10. An in-scope volume whose owner is unknown dies with someone's instance -----------------------------------


def test_hole_a_volume_of_unknown_owner_dies_with_a_swept_instance(account: Account) -> None:
    """Sequence: Bob's data volume is in scope but carries no `trainctl:owner` (made before trainctl was deployed,
    or a CreateVolume age_guard never heard). It is attached to Alice's stopped instance with DeleteOnTermination
    true. The instance is marked and, after the grace period, terminated; `must_outlive` lets a volume without an
    owner go ("owner is not None and ..."), so the volume dies with it, never marked itself.

    Breaks: issue 16 defect 7 ("every attached volume that is not in scope with the same owner" keeps
    DeleteOnTermination=false) and "unknown protects". core/protections.py must_outlive.
    """
    settings = SETTINGS.model_copy(update={"stopped_max_age": timedelta(hours=1)})
    instance_id = account.instance()
    bobs = account.ec2.create_volume(
        Size=10,
        AvailabilityZone=ZONE,
        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": tags.MANAGED, "Value": "true"}]}],
    )["VolumeId"]
    # Attached by hand once the instance runs (a launch's own volumes follow their instance: issue 25).
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=10), tick=False):
        account.ec2.attach_volume(VolumeId=bobs, InstanceId=instance_id, Device="/dev/sdg")
    account.ec2.modify_instance_attribute(
        InstanceId=instance_id, BlockDeviceMappings=[{"DeviceName": "/dev/sdg", "Ebs": {"DeleteOnTermination": True}}]
    )
    account.ec2.stop_instances(InstanceIds=[instance_id])
    later = T0 + timedelta(days=3)
    assert decision(account.sweep(later, settings), instance_id).action == "mark"
    acted = decision(account.sweep(later + GRACE + timedelta(hours=1), settings), instance_id)
    assert acted.action == "terminate"
    assert account.exists(bobs), "a volume whose owner nobody knows died with Alice's instance"


# 11. Use between two sweeps further apart than the idle window is invisible -----------------------------------


@dataclass
class Timeline:
    """When the instance was busy: what CloudWatch and the training process would show."""

    busy: list[tuple[datetime, datetime]] = field(default_factory=list)

    def busy_within(self, start: datetime, end: datetime) -> bool:
        return any(b_start < end and start < b_end for b_start, b_end in self.busy)


@pytest.fixture
def observed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Timeline]:
    """CloudWatch and the SSM check answer from the timeline (moto has neither metrics nor an SSM agent)."""
    from trainctl.sweep import run

    timeline = Timeline()

    def utilisation(_: Any, instance_ids: Any, window: timedelta, now: datetime) -> dict[str, Utilisation]:
        busy = timeline.busy_within(now - window, now)
        return {i: Utilisation(90.0 if busy else 0.5, 1e6 if busy else 10.0, None) for i in instance_ids}

    class Check:
        def __init__(self, *_: Any, **__: Any) -> None:
            pass

        def check(self, instance_ids: Any) -> dict[str, TrainingCheck]:
            return {i: TrainingCheck(Training.IDLE, "no training process found") for i in instance_ids}

    monkeypatch.setattr(run, "read_utilisation", utilisation)
    monkeypatch.setattr(run, "SsmTrainingCheck", Check)
    yield timeline


def test_hole_an_idle_instance_used_for_a_day_between_sparse_sweeps_is_stopped_on_its_old_mark(
    account: Account, observed: Timeline
) -> None:
    """Sequence: Alice's running instance is idle; sweep at T0 marks it "stop". The hourly schedule then misses a
    day (the function failing, throttled or held off by a stuck lease: any enforced sweep that never recorded).
    Alice trains on it from T0+1h to T0+22h, then leaves it idle. The next recorded sweep at T0+25h sees two idle
    hours (the idle window), an idle SSM check, and a chain of recorded sweeps with no gap it notices: it stops the
    instance on the T0 mark, three hours after 21 hours of use.

    Breaks: safety model 3 ("only if the resource stayed a candidate the whole time"). The chain in core/marks.py
    checks the recorded sweeps, not the time between them; for a running instance there is no CloudTrail use to
    hear, and the idle window (2 h) is all the sweep looks at.
    """
    instance_id = account.instance()
    settings = SETTINGS.model_copy(update={"stop_instance_store": True})  # t3.micro has none; not what is tested
    first = decision(account.sweep(T0, settings), instance_id)
    assert first.action == "mark" and first.announced == "stop"
    observed.busy.append((T0 + timedelta(hours=1), T0 + timedelta(hours=22)))
    result = account.sweep(T0 + GRACE + timedelta(hours=1), settings)
    assert account.state(instance_id) == "running", (
        f"stopped on a mark older than 21 hours of use: {decision(result, instance_id).action}"
    )
