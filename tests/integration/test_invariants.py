"""Stateful property test under moto: whatever people, a stranger and clocks do, the safety model holds.

Random sequences of: creations (volumes, instances with data volumes, snapshots); people attaching, using and
detaching volumes and starting and stopping instances between sweeps, CloudTrail telling the age_guard handler
each time; a stranger writing any `trainctl:` tag with any value on any resource (past, future, replayed and
out-of-range marks, ttl 0 and huge, dates out of range, unicode, near-miss keys, controller tags) and taking
tags away; scope flipped out and back; Auto Scaling membership; launch templates restoring snapshots; a training
job on an instance; one refused API call in the next sweep; clock steps; dry-run and enforced sweeps sharing one
DynamoDB ledger and lease, as a deployment does.

After every sweep:
- no sweep raises (the one exception the design owns: a refused ledger write, after the owner was told);
- nothing is stopped, deleted or terminated unless trainctl's own ledger holds the newest mark on it, written by a
  sweep, announcing that very action, for the instant the tag names, at least one grace period before; the owner
  was told of it in the marking sweep's message; no use (attach, start, a scope flip, a training job) came after
  it; and no enforced sweep since, nor the acting one, found it protected by what people set;
- a volume goes without a decision of its own only with an instance trainctl terminated legitimately, and only
  when in scope, not persistent and of the instance's owner;
- every destructive call (DeleteVolume, DeleteSnapshot, TerminateInstances, StopInstances) comes after a
  BatchWriteItem that wrote its intent row, in the order the factory's before-call hook saw them;
- a dry-run writes nothing and changes nothing; no persistent volume is ever lost.

CloudWatch and the SSM training check answer from the model (moto has neither metrics nor an SSM agent): an
instance is busy from the `train` step until the next enforced sweep has seen it, so every use is observable.

Two holes the focused tests in test_sweep_adversary.py show (a ttl's short notice, a volume of unknown owner taken
along; both closed in 95ba99b) are failed on as issue 16 states the promise; the two STRICT_ switches below turn
them into counts instead, to run the machine against an older main.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import time_machine
from botocore.awsrequest import AWSResponse
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from moto import mock_aws

from tests.conftest import CALLS, load_event
from trainctl.aws.clients import ClientFactory
from trainctl.aws.lease import DynamoDbLease
from trainctl.aws.notifications import InMemoryNotifier
from trainctl.cli.local_run import LocalContext, load_handler
from trainctl.core import names, tags
from trainctl.core.clock import format_instant, parse_instant
from trainctl.core.durations import parse_duration
from trainctl.core.errors import TrainctlError
from trainctl.core.observations import Training, TrainingCheck, Utilisation
from trainctl.core.settings import SweepSettings
from trainctl.sweep import run as sweep_run
from trainctl.sweep.record import DynamoDbLedger
from trainctl.sweep.run import run_sweep

REGION = "us-east-1"
ZONE = "us-east-1a"
GRACE = timedelta(hours=24)
MIN_AGE = timedelta(minutes=5)
SETTINGS = SweepSettings(
    regions=(REGION,),
    grace_period=GRACE,
    min_age=MIN_AGE,
    max_actions=6,
    max_action_share=0.5,
    snapshot_retention=timedelta(days=2),
    stopped_max_age=timedelta(days=1),
    training_check_timeout=timedelta(seconds=1),
    ledger_table=names.LEDGER_TABLE,
)
EXAMPLES = 30
STEPS = 15
# Two holes the focused tests in test_sweep_adversary.py show, checked here as issue 16 states the promise. Turned
# off, the machine only counts them (STATS) instead of failing: for a run against a main older than 95ba99b.
STRICT_TTL_NOTICE = True  # test_hole_a_strangers_ttl_0s_gets_a_resource_destroyed_an_hour_after_its_first_notice
STRICT_UNKNOWN_OWNER = True  # test_hole_a_volume_of_unknown_owner_dies_with_a_swept_instance

TAG_VALUES = st.sampled_from(["true", "false", "no", "0", "", "yes", "maybe", "$(reboot)", "a;rm -rf /", "ü✓", "`id`"])
GONE_STATES = ("stopping", "stopped", "shutting-down", "terminated")
DESTRUCTIVE_CALLS = {
    "DeleteVolume": "delete",
    "DeleteSnapshot": "delete",
    "TerminateInstances": "terminate",
    "StopInstances": "stop",
}
CONTROLLER_KEYS = ("aws:autoscaling:groupName", "eks:nodegroup-name", "karpenter.sh/nodepool")

# The stranger: any trainctl key (near misses and other controllers' keys too), any value.
STRANGER_KEYS = st.sampled_from(
    [
        tags.CLEANUP_AFTER,
        tags.CLEANUP_AFTER,
        tags.CLEANUP_AFTER,
        tags.TTL,
        tags.TTL,
        tags.TTL,
        tags.CREATED_AT,
        tags.MANAGED,
        tags.PERSISTENT,
        tags.OWNER,
        tags.ROLE,
        tags.CREATED_BY,
        tags.PREWARMED_FROM,
        "Trainctl:Persistent",
        "trainctl:persistant",
        "Trainctl:Managed",
        "trainctl:cleanup-after ",
        "eks:nodegroup-name",
        "karpenter.sh/nodepool",
    ]
)
RAW_VALUES = [
    "2000-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z",
    "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00+01:00",
    "8999-12-31T23:59:59Z",
    "9000-01-01T00:00:00Z",
    "\uff12\uff10\uff12\uff16-01-01T00:00:00Z",  # fullwidth digits
    "2026-W01-1",
    "0s",
    " 0s ",
    "0S",
    "1s",
    "0000000m",
    "9999999w",
    "521w",
    "522w",
    "\uff18h",  # looks like 8h
    "-1h",
    "1e3s",
    "forever",
    "",
    " ",
    "true",
    " TRUE ",
    "yes",
    "false",
    "no",
    "0",
    "maybe",
    "ü✓",
    "$(reboot)",
    "a;rm -rf /",
    "`id`",
    "prewarm-worker",
    "alice",
]
# A forged value: ("raw", text, 0); ("instant", shift, format): the model's clock shifted and formatted; ("copy",
# ...): the mark another resource carries; ("replay", ...): an old mark trainctl wrote on this very resource.
SHIFTS = [
    -timedelta(days=3650),
    -GRACE - timedelta(hours=1),
    -timedelta(hours=1),
    timedelta(0),
    timedelta(minutes=1),
    GRACE - timedelta(minutes=1),
    GRACE,
    timedelta(days=3650),
]
FORMATS = [
    format_instant,
    lambda t: t.isoformat(),
    lambda t: t.astimezone(timezone(timedelta(hours=14))).isoformat(),
    lambda t: (t + timedelta(microseconds=500_000)).isoformat(),
    lambda t: t.strftime("%Y%m%dT%H%M%SZ"),
    lambda t: t.strftime("%Y-%m-%d"),
]


def _raw(values: list[str]) -> st.SearchStrategy[tuple[str, Any, int]]:
    return st.sampled_from(values).map(lambda value: ("raw", value, 0))


INSTANTS = st.tuples(st.just("instant"), st.integers(0, len(SHIFTS) - 1), st.integers(0, len(FORMATS) - 1))
BORROWED = st.tuples(st.sampled_from(["copy", "replay"]), st.just(0), st.just(0))
ANY_VALUE = st.one_of(_raw(RAW_VALUES), INSTANTS, BORROWED)
DURATIONS = [
    "0s",
    "0s",
    " 0s ",
    "0S",
    "1s",
    "59m",
    "1h",
    "1h",
    "2h",
    "25h",
    "0000000m",
    "9999999w",
    "521w",
    "522w",
    "\uff18h",
    "-1h",
    "1e3s",
    "forever",
    "",
]
FLAGS = ["true", " TRUE ", "yes", "1", "false", "No", "0", "", "maybe", "ü✓", "\uff54rue"]
# Half the time a value made for the key (so that ttl 0s meets a young snapshot often enough), half anything.
VALUES_FOR = {
    tags.CLEANUP_AFTER: st.one_of(INSTANTS, BORROWED, _raw(RAW_VALUES[:9])),
    tags.CREATED_AT: st.one_of(INSTANTS, _raw(RAW_VALUES[:9])),
    tags.TTL: _raw(DURATIONS),
    tags.MANAGED: _raw(FLAGS),
    tags.PERSISTENT: _raw(FLAGS),
    "Trainctl:Persistent": _raw(FLAGS),
    "trainctl:persistant": _raw(FLAGS),
}
# One API call of the next enforced sweep refused (before anything is sent).
REFUSABLE = st.sampled_from(
    [
        "CreateTags",
        "DeleteTags",
        "DeleteVolume",
        "DeleteSnapshot",
        "TerminateInstances",
        "StopInstances",
        "ModifyInstanceAttribute",
        "BatchWriteItem",
        "Query",
    ]
)

# No shrinking by default: shrinking a sequence under moto can take many minutes, and the suite has ten. A failure
# still prints its whole sequence, and is replayed first on the next run; SHRINK_INVARIANTS=1 shrinks it.
PHASES = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if os.environ.get("SHRINK_INVARIANTS") else [])
STATS: Counter[str] = Counter()
_AGE_GUARD: list[Any] = []
# One trainctl factory and one for people, for the whole run: a botocore client reads its service model (EC2's is
# megabytes of JSON) when it is built, and moto's state lives in the mock, not in the clients. The hooks on the
# trainctl factory hand each call to the machine that runs now.
_FACTORIES: dict[str, ClientFactory] = {}
_RUNNING: list[SweepUnderAdversary] = []


def factories() -> tuple[ClientFactory, ClientFactory]:
    if not _FACTORIES:
        trainctl = ClientFactory(REGION)
        trainctl.register("before-call", lambda **kw: _RUNNING[-1].calls.before(**kw) if _RUNNING else None)
        trainctl.register("after-call", lambda **kw: _RUNNING[-1].calls.after(**kw) if _RUNNING else None)
        trainctl.register("before-call", lambda **kw: _RUNNING[-1].refuse(**kw) if _RUNNING else None, first=True)
        people = ClientFactory(REGION)
        # People's calls are no trainctl module's: the suite's declared-permissions hook (tests/conftest.py) would
        # walk their whole stack to find none. Taken off people's clients only; trainctl's keep it.
        people._events.unregister("before-call", CALLS.record)
        _FACTORIES.update(trainctl=trainctl, people=people)
    return _FACTORIES["trainctl"], _FACTORIES["people"]


def age_guard_handler() -> Any:
    """The deployed age_guard handler, loaded once; each machine points its client factory at its own moto."""
    if not _AGE_GUARD:
        _AGE_GUARD.append(load_handler("age_guard"))
    return _AGE_GUARD[0]


def _persistent(labels: dict[str, str]) -> bool:
    return any(k.strip().lower() == tags.PERSISTENT and tags.protects(v) for k, v in labels.items())


def _unreadable_or_young(labels: dict[str, str], now: datetime) -> str | None:
    """What the README makes a protection from a value people write: min-age (newest signal), unreadable dates."""
    stamped = labels.get(tags.CREATED_AT)
    if stamped is not None:
        try:
            if now - parse_instant(stamped) < MIN_AGE:
                return "min-age"
        except ValueError:
            return "unreadable"
    ttl = labels.get(tags.TTL)
    if ttl is not None and ttl.strip():
        try:
            parse_duration(ttl)
        except ValueError:
            return "unreadable"
    return None


class CallOrder:
    """Every call trainctl's factory makes, in order (before-call), and which intent rows were written (after-call)."""

    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        self._pending = threading.local()

    def before(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        body = params.get("body")
        if model.name == "BatchWriteItem" and isinstance(body, bytes | str):
            self._pending.items = [
                request["PutRequest"]["Item"]
                for writes in json.loads(body)["RequestItems"].values()
                for request in writes
                if "PutRequest" in request
            ]
        elif model.name in DESTRUCTIVE_CALLS and isinstance(body, dict):
            ids = [str(v) for k, v in body.items() if k in ("VolumeId", "SnapshotId") or k.startswith("InstanceId.")]
            with self._lock:
                self.log.append((model.name, ids))

    def after(self, model: Any, http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        if model.name != "BatchWriteItem":
            return
        items = getattr(self._pending, "items", [])
        self._pending.items = []
        if http_response is None or http_response.status_code >= 300:
            return
        unprocessed = {
            json.dumps(request["PutRequest"]["Item"], sort_keys=True)
            for writes in (parsed.get("UnprocessedItems") or {}).values()
            for request in writes
        }
        written = [i for i in items if json.dumps(i, sort_keys=True) not in unprocessed]
        with self._lock:
            self.log.append(("written", written))


class SweepUnderAdversary(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        STATS["sequences"] += 1
        self.mock = mock_aws()
        self.mock.start()
        self.factory, self.people = factories()  # trainctl's; everyone else's, never seen by the call order
        self.ec2 = self.people.ec2(REGION)
        self.people.dynamodb().create_table(
            TableName=names.LEDGER_TABLE,
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            BillingMode="PAY_PER_REQUEST",
        )
        self.now = (datetime.now(UTC) + timedelta(minutes=10)).replace(microsecond=0)
        self.notifier = InMemoryNotifier()
        self.calls = CallOrder()
        self.refuse_next: str | None = None
        self.ids: dict[str, list[str]] = {"volume": [], "instance": [], "snapshot": []}
        self.seen: dict[str, dict[str, Any]] | None = None
        self.swept: tuple[dict[str, Any], dict[str, Any]] | bool = False
        self.busy: set[str] = set()  # training until the next enforced sweep has seen it
        self.ssm_managed: dict[str, bool] = {}
        self.launched_with: dict[str, str] = {}  # volume id -> the instance whose launch created it
        self.template_snapshots: set[str] = set()
        self.templates = 0
        self.group: str | None = None
        self.used: dict[str, list[datetime]] = {}  # what must void a mark made before it
        # Each enforced sweep: (its instant, why each resource had to be kept by what people set, or None).
        self.enforced: list[tuple[datetime, dict[str, str | None]]] = []
        self.marked_in: dict[str, list[tuple[datetime, int, int]]] = {}  # sweep instant -> message span
        handler = age_guard_handler()
        handler.client_factory = lambda: self.factory
        # Last, so that nothing above can fail with them in place (teardown undoes them).
        self._observe = (sweep_run.read_utilisation, sweep_run.SsmTrainingCheck)
        sweep_run.read_utilisation = self._utilisation  # type: ignore[assignment]
        sweep_run.SsmTrainingCheck = self._training_check()  # type: ignore[misc]
        _RUNNING.append(self)

    def teardown(self) -> None:
        _RUNNING.remove(self)
        sweep_run.read_utilisation, sweep_run.SsmTrainingCheck = self._observe  # type: ignore[misc]
        self.mock.stop()

    # The world's observations: CloudWatch and SSM as the model says -------------------------------------------

    def _utilisation(self, _: Any, instance_ids: Any, window: timedelta, now: datetime) -> dict[str, Utilisation]:
        return {
            i: Utilisation(90.0, 5e6, 80.0) if i in self.busy else Utilisation(0.5, 10.0, 0.0) for i in instance_ids
        }

    def _training_check(self) -> Any:
        machine = self

        class ModelCheck:
            def __init__(self, *_: Any, **__: Any) -> None:
                pass

            def check(self, instance_ids: Any) -> dict[str, TrainingCheck]:
                answers = {}
                for instance_id in instance_ids:
                    if not machine.ssm_managed.get(instance_id, False):
                        answers[instance_id] = TrainingCheck(Training.NOT_MANAGED, "not managed by SSM")
                    elif instance_id in machine.busy:
                        answers[instance_id] = TrainingCheck(Training.ACTIVE, "training running (torchrun)")
                    else:
                        answers[instance_id] = TrainingCheck(Training.IDLE, "no training process found")
                return answers

            def unmanaged(self, instance_ids: Any) -> dict[str, TrainingCheck]:
                # What a dry-run asks: a read of which instances SSM does not manage, no command sent.
                return {
                    i: TrainingCheck(Training.NOT_MANAGED, "not managed by SSM")
                    for i in instance_ids
                    if not machine.ssm_managed.get(i, False)
                }

        return ModelCheck

    def refuse(self, model: Any, **_: Any) -> tuple[Any, dict[str, Any]] | None:
        if self.refuse_next is None or model.name != self.refuse_next:
            return None
        self.refuse_next = None
        STATS["refused calls"] += 1
        response = AWSResponse("https://refused.invalid/", 400, {}, None)
        error = {
            "Code": "AccessDeniedException" if model.name in ("BatchWriteItem", "Query") else "UnauthorizedOperation"
        }
        return response, {"Error": {**error, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": 400}}

    # People and the stranger ----------------------------------------------------------------------------------

    def _tick(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now

    def _use(self, resource_id: str) -> None:
        self.used.setdefault(resource_id, []).append(self._tick())

    def _tell_age_guard(self, event_name: str, request: dict[str, Any]) -> dict[str, Any]:
        event = load_event("age_guard", "attach_volume_console_user")
        event["detail"]["eventName"] = event_name
        event["detail"]["requestParameters"] = request
        event["detail"]["eventTime"] = format_instant(self.now)
        STATS["age_guard events"] += 1
        told: dict[str, Any] = age_guard_handler().lambda_handler(
            event, LocalContext(function_name="trainctl-age_guard")
        )
        return told

    @staticmethod
    def _tags(scoped: bool, persistent: str | None, owner: str = "prop") -> list[dict[str, Any]]:
        values = [{"Key": tags.OWNER, "Value": owner}]
        if scoped:
            values.append({"Key": tags.MANAGED, "Value": "true"})
        if persistent is not None:
            values.append({"Key": tags.PERSISTENT, "Value": persistent})
        return values

    # What people, the stranger and the clock do: few rules, each choosing among many actions, so that every
    # kind of step comes up in every run (hypothesis enables a random subset of rules per sequence).

    @initialize()
    def baseline(self) -> None:
        """Every run starts with each kind of protected resource beside an unprotected one: a stopped instance with a
        persistent data volume, another whose in-scope data volume has no owner, volumes persistent, out of scope
        and in scope, and a young in-scope snapshot."""
        self._launch(scoped=True, data="persistent", stopped=True, instance_type="t3.micro", ssm=True)
        self._launch(scoped=True, data="unowned-in-scope", stopped=True, instance_type="t3.micro", ssm=True)
        for scoped, persistent in ((True, "true"), (True, "yes"), (False, None), (True, None)):
            self._create_volume(scoped, persistent)
        snapshot = self.ec2.create_snapshot(
            VolumeId=self.ids["volume"][-1],
            TagSpecifications=[{"ResourceType": "snapshot", "Tags": self._tags(True, None)}],
        )["SnapshotId"]
        self.ids["snapshot"].append(str(snapshot))

    @rule(kind=st.sampled_from(["volume", "volume", "instance", "snapshot"]), data=st.data())
    def create(self, kind: str, data: st.DataObject) -> None:
        self.seen = None  # the world changes: the next sweep reads it afresh
        STATS["steps"] += 1
        if kind == "volume":
            self._create_volume(data.draw(st.booleans(), "scoped"), data.draw(st.none() | TAG_VALUES, "persistent"))
        elif kind == "instance":
            self._launch(
                scoped=data.draw(st.booleans(), "scoped"),
                data=data.draw(st.sampled_from(["untagged", "persistent", "same-owner", "unowned-in-scope"]), "data"),
                stopped=data.draw(st.booleans(), "stopped"),
                instance_type=data.draw(st.sampled_from(["t3.micro", "g5.xlarge"]), "type"),
                ssm=data.draw(st.booleans(), "ssm"),
            )
        elif self.ids["volume"]:
            volume = data.draw(st.sampled_from(self.ids["volume"]), "volume")
            if self._state(volume) is not None:
                scoped = data.draw(st.booleans(), "scoped")
                snapshot = self.ec2.create_snapshot(
                    VolumeId=volume, TagSpecifications=[{"ResourceType": "snapshot", "Tags": self._tags(scoped, None)}]
                )["SnapshotId"]
                self.ids["snapshot"].append(str(snapshot))
        self._tick()

    @rule(
        action=st.sampled_from(
            [
                "attach",
                "detach",
                "use between sweeps",
                "start and stop",
                "train",
                "flip scope",
                "edit tag",
                "join auto scaling group",
                "launch template restores",
            ]
        ),
        data=st.data(),
    )
    def people_act(self, action: str, data: st.DataObject) -> None:
        self.seen = None  # the world changes: the next sweep reads it afresh
        STATS["steps"] += 1
        STATS[f"people: {action}"] += 1
        needs = {"attach": ("volume", "instance"), "use between sweeps": ("volume", "instance")}.get(action, ())
        needs += {"detach": ("volume",), "start and stop": ("instance",), "train": ("instance",)}.get(action, ())
        needs += {"join auto scaling group": ("instance",), "launch template restores": ("snapshot",)}.get(action, ())
        if any(not self.ids[kind] for kind in needs):
            return
        pick = lambda kind: data.draw(st.sampled_from(self.ids[kind]), kind)  # noqa: E731
        if action == "attach":
            self._attach(pick("volume"), pick("instance"), data.draw(st.sampled_from("ghijklmnop"), "device"))
        elif action == "detach":
            self._detach(pick("volume"))
        elif action == "use between sweeps":
            told = data.draw(st.sampled_from(["while attached", "after detach", "twice"]), "told")
            self._use_between_sweeps(pick("volume"), pick("instance"), told)
        elif action == "start and stop":
            self._start_and_stop(pick("instance"))
        elif action == "train":
            self._train(pick("instance"))
        elif action in ("flip scope", "edit tag"):
            kinds = [
                k
                for k in ("volume", "instance", "snapshot")
                if self.ids[k] and (action == "flip scope" or k != "snapshot")
            ]
            if not kinds:
                return
            target_id = pick(data.draw(st.sampled_from(kinds), "kind"))
            (self._flip_scope if action == "flip scope" else self._edit_tag)(target_id, data)
        elif action == "join auto scaling group":
            self._join_auto_scaling_group(pick("instance"))
        else:
            self._launch_template_restores(pick("snapshot"), data.draw(st.booleans(), "new version"))

    @rule(remove=st.sampled_from([False, False, False, True]), key=STRANGER_KEYS, data=st.data())
    def stranger(self, remove: bool, key: str, data: st.DataObject) -> None:
        """Any trainctl tag, any value, on any resource; CloudTrail hands every CreateTags/DeleteTags to age_guard."""
        self.seen = None  # the world changes: the next sweep reads it afresh
        STATS["steps"] += 1
        kind = data.draw(st.sampled_from(sorted(k for k in self.ids if self.ids[k])), "kind")
        target_id = data.draw(st.sampled_from(self.ids[kind]), "target")  # alive: sweeps prune the gone
        labels = self._labels(target_id)
        was_in = tags.opts_in(labels.get(tags.MANAGED))
        if remove:
            if key not in labels:
                return
            self.ec2.delete_tags(Resources=[target_id], Tags=[{"Key": key}])
            tag_set: dict[str, Any] = {"items": [{"key": key}]}
            labels.pop(key)
        else:
            value = self._forge(target_id, data.draw(st.one_of(VALUES_FOR.get(key, ANY_VALUE), ANY_VALUE), "value"))
            if value is None:
                return
            self.ec2.create_tags(Resources=[target_id], Tags=[{"Key": key, "Value": value}])
            tag_set = {"items": [{"key": key, "value": value}]}
            labels[key] = value
        STATS[f"stranger {'removed' if remove else 'wrote'} {key.strip()}"] += 1
        if tags.opts_in(labels.get(tags.MANAGED)) != was_in:
            self._use(target_id)
        else:
            self._tick()
        self._tell_age_guard(
            "DeleteTags" if remove else "CreateTags",
            {"resourcesSet": {"items": [{"resourceId": target_id}]}, "tagSet": tag_set},
        )

    @rule(ttl=_raw(DURATIONS), data=st.data())
    def stranger_sets_a_lifetime(self, ttl: tuple[str, Any, int], data: st.DataObject) -> None:
        """`trainctl:ttl` is no key the README's service control policy keeps to trainctl: anyone may shorten it."""
        self.seen = None  # the world changes: the next sweep reads it afresh
        STATS["steps"] += 1
        kind = data.draw(st.sampled_from(sorted(k for k in self.ids if self.ids[k])), "kind")
        target_id = data.draw(st.sampled_from(self.ids[kind]), "target")
        self.ec2.create_tags(Resources=[target_id], Tags=[{"Key": tags.TTL, "Value": str(ttl[1])}])
        STATS["stranger wrote trainctl:ttl"] += 1
        self._tick()
        self._tell_age_guard(
            "CreateTags",
            {
                "resourcesSet": {"items": [{"resourceId": target_id}]},
                "tagSet": {"items": [{"key": tags.TTL, "value": str(ttl[1])}]},
            },
        )

    # The actions ----------------------------------------------------------------------------------------------

    def _create_volume(self, scoped: bool, persistent: str | None) -> None:
        self._tick()
        volume = self.ec2.create_volume(
            Size=1,
            AvailabilityZone=ZONE,
            TagSpecifications=[{"ResourceType": "volume", "Tags": self._tags(scoped, persistent)}],
        )["VolumeId"]
        self.ids["volume"].append(str(volume))

    def _launch(self, *, scoped: bool, data: str, stopped: bool, instance_type: str, ssm: bool) -> None:
        self._tick()
        specs = [{"ResourceType": "instance", "Tags": self._tags(scoped, None)}]
        if data == "same-owner":
            specs.append({"ResourceType": "volume", "Tags": self._tags(True, None)})
        instance_id = str(
            self.ec2.run_instances(
                ImageId="ami-0abcdef1234567890",
                MinCount=1,
                MaxCount=1,
                InstanceType=instance_type,
                Placement={"AvailabilityZone": ZONE},
                BlockDeviceMappings=[{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 1, "DeleteOnTermination": True}}],
                TagSpecifications=specs,
            )["Instances"][0]["InstanceId"]
        )
        described = self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
        volumes = {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in described["BlockDeviceMappings"]}
        if data == "persistent":
            self.ec2.create_tags(
                Resources=[volumes["/dev/sdf"]],
                Tags=[{"Key": tags.PERSISTENT, "Value": "true"}, {"Key": tags.MANAGED, "Value": "true"}],
            )
        self.launched_with.update(dict.fromkeys(volumes.values(), instance_id))
        if data == "unowned-in-scope":
            # Attached by hand after the launch and set to go with it; whose it is, nobody knows: it must outlive it.
            with time_machine.travel(datetime.now(UTC) + timedelta(minutes=10), tick=False):
                spec = [{"ResourceType": "volume", "Tags": [{"Key": tags.MANAGED, "Value": "true"}]}]
                unowned = self.ec2.create_volume(Size=1, AvailabilityZone=ZONE, TagSpecifications=spec)["VolumeId"]
                self.ec2.attach_volume(VolumeId=unowned, InstanceId=instance_id, Device="/dev/sdg")
            self.ec2.modify_instance_attribute(
                InstanceId=instance_id,
                BlockDeviceMappings=[{"DeviceName": "/dev/sdg", "Ebs": {"DeleteOnTermination": True}}],
            )
            volumes["/dev/sdg"] = str(unowned)
        if stopped:
            self.ec2.stop_instances(InstanceIds=[instance_id])
        self.ssm_managed[instance_id] = ssm
        self.ids["instance"].append(instance_id)
        self.ids["volume"].extend(volumes.values())

    def _attach(self, volume: str, instance: str, device: str) -> None:
        """A person attaches a volume and keeps it attached; CloudTrail tells age_guard."""
        if self._state(volume) == "available" and self._state(instance) in ("running", "stopped"):
            try:
                self.ec2.attach_volume(VolumeId=volume, InstanceId=instance, Device=f"/dev/sd{device}")
            except self.ec2.exceptions.ClientError:  # device name taken: people get that error too
                return
            self._use(volume)
            self._tell_age_guard("AttachVolume", {"volumeId": volume, "instanceId": instance, "device": device})

    def _detach(self, volume: str) -> None:
        self._tick()
        attachments = self._attachments(volume)
        if attachments:
            # Named explicitly: moto's own error path needs the instance id to report a failure.
            self.ec2.detach_volume(VolumeId=volume, InstanceId=attachments[0])

    def _use_between_sweeps(self, volume: str, instance: str, told: str) -> None:
        """Attached, used and detached before the next sweep: only CloudTrail (age_guard) hears of it."""
        if self._state(volume) != "available" or self._state(instance) not in ("running", "stopped"):
            return
        try:
            self.ec2.attach_volume(VolumeId=volume, InstanceId=instance, Device="/dev/sdz")
        except self.ec2.exceptions.ClientError:
            return
        self._use(volume)
        request = {"volumeId": volume, "instanceId": instance, "device": "/dev/sdz"}
        if told in ("while attached", "twice"):
            self._tell_age_guard("AttachVolume", request)
        self.ec2.detach_volume(VolumeId=volume, InstanceId=instance)
        if told in ("after detach", "twice"):
            self._tell_age_guard("AttachVolume", request)  # delivered late, or again: at least once

    def _start_and_stop(self, instance: str) -> None:
        """A stopped instance is started, used, and stopped again before the next sweep."""
        if self._state(instance) != "stopped":
            return
        self.ec2.start_instances(InstanceIds=[instance])
        self._use(instance)
        self._tell_age_guard("StartInstances", {"instancesSet": {"items": [{"instanceId": instance}]}})
        self.ec2.stop_instances(InstanceIds=[instance])

    def _train(self, instance: str) -> None:
        """A training job runs on it until the next enforced sweep has seen it."""
        if self._state(instance) == "running":
            self._use(instance)
            self.busy.add(instance)

    def _flip_scope(self, target_id: str, data: st.DataObject) -> None:
        """Out of scope (and back in, before any sweep sees it): age_guard hears each scope-tag write."""
        if self._state(target_id) is None:
            return
        was = self._labels(target_id).get(tags.MANAGED)
        back = data.draw(st.booleans(), "and back")
        for value in ("false", "true") if back else ("false" if tags.opts_in(was) else "true",):
            self.ec2.create_tags(Resources=[target_id], Tags=[{"Key": tags.MANAGED, "Value": value}])
            self._use(target_id)
            self._tell_age_guard(
                "CreateTags",
                {
                    "resourcesSet": {"items": [{"resourceId": target_id}]},
                    "tagSet": {"items": [{"key": tags.MANAGED, "value": value}]},
                },
            )

    def _edit_tag(self, target_id: str, data: st.DataObject) -> None:
        """A person edits their own tags; a scope change is heard by age_guard like any other."""
        if self._state(target_id) is None:
            return
        key = data.draw(st.sampled_from([tags.PERSISTENT, tags.MANAGED, tags.TTL]), "key")
        values = (
            st.sampled_from(["1h", "3d", "\uff18h", "forever", "$(reboot)", "0s"]) if key == tags.TTL else TAG_VALUES
        )
        value = data.draw(values, "value")
        was_in = tags.opts_in(self._labels(target_id).get(tags.MANAGED))
        self.ec2.create_tags(Resources=[target_id], Tags=[{"Key": key, "Value": value}])
        if tags.opts_in(self._labels(target_id).get(tags.MANAGED)) != was_in:
            self._use(target_id)
            self._tell_age_guard(
                "CreateTags",
                {
                    "resourcesSet": {"items": [{"resourceId": target_id}]},
                    "tagSet": {"items": [{"key": key, "value": value}]},
                },
            )
        else:
            self._tick()

    def _join_auto_scaling_group(self, instance: str) -> None:
        if self._state(instance) != "running":
            return
        self._tick()
        autoscaling = self.people.client("autoscaling", REGION)
        if self.group is None:
            template = self.ec2.create_launch_template(
                LaunchTemplateName="pool", LaunchTemplateData={"ImageId": "ami-0abcdef1234567890"}
            )["LaunchTemplate"]["LaunchTemplateId"]
            autoscaling.create_auto_scaling_group(
                AutoScalingGroupName="pool",
                LaunchTemplate={"LaunchTemplateId": template},
                MinSize=0,
                MaxSize=50,
                DesiredCapacity=0,
                AvailabilityZones=[ZONE],
            )
            self.group = "pool"
        autoscaling.attach_instances(InstanceIds=[instance], AutoScalingGroupName=self.group)

    def _launch_template_restores(self, snapshot: str, new_version: bool) -> None:
        if self._state(snapshot) is None:
            return
        self._tick()
        data = {
            "ImageId": "ami-0abcdef1234567890",
            "BlockDeviceMappings": [{"DeviceName": "/dev/sdf", "Ebs": {"SnapshotId": snapshot}}],
        }
        if new_version and self.templates:
            self.ec2.create_launch_template_version(LaunchTemplateName="trainer-0", LaunchTemplateData=data)
        else:
            self.ec2.create_launch_template(LaunchTemplateName=f"trainer-{self.templates}", LaunchTemplateData=data)
            self.templates += 1
        self.template_snapshots.add(snapshot)

    # Sweeps and their invariants ------------------------------------------------------------------------------

    # Sweeps: three rules of seven, so that sweeps come often and few sequences go without (hypothesis turns a
    # random subset of rules off in each sequence).

    @rule(hours=st.sampled_from([25, 49]))
    def enforced_sweep_a_day_later(self, hours: int) -> None:
        self.sweep(True, hours)

    @rule(operation=REFUSABLE, hours=st.sampled_from([1, 6, 25]))
    def enforced_sweep_with_a_refused_call(self, operation: str, hours: int) -> None:
        """The sweep finds one call of this operation refused (before anything is sent)."""
        self.refuse_next = operation
        self.sweep(True, hours)

    @rule(enforce=st.sampled_from([True, True, False]), hours=st.sampled_from([0, 1, 6, 25, 25, 49]))
    def sweep(self, enforce: bool, hours: int) -> None:
        STATS["steps"] += 1
        self.now += timedelta(hours=hours, minutes=1)
        STATS["enforced sweeps" if enforce else "dry-run sweeps"] += 1
        before = self.seen or self._world()  # what the last sweep left, when nobody acted since
        kept_by_people = {rid: self._must_keep(rid, state) for rid, state in before.items()}
        settings = SETTINGS.model_copy(update={"dry_run": not enforce})
        writes_before = sum(self.factory.calls.writes().values())
        calls_before = len(self.calls.log)
        messages_before = len(self.notifier.messages)
        refused = self.refuse_next
        ledger = DynamoDbLedger(self.factory.dynamodb(), names.LEDGER_TABLE)
        try:
            run_sweep(
                self.factory,
                settings,
                lambda: self.now,
                ledger=ledger,
                notifier=self.notifier if enforce else None,
                lease=DynamoDbLease(self.factory.dynamodb(), names.LEDGER_TABLE) if enforce else None,
            )
        except TrainctlError as exc:
            # The one raise the design owns: the ledger refused the record, after the owners were told.
            if refused != "BatchWriteItem" or "BatchWriteItem" not in str(exc):
                raise AssertionError(f"the sweep at {format_instant(self.now)} raised {exc!r}") from exc
            STATS["ledger refusals raised after acting"] += 1
        after = self.seen = self._world()
        self.swept = (before, after)
        for kind, ids in self.ids.items():
            self.ids[kind] = [i for i in ids if i in after]  # people and the stranger act on what is left
        if not enforce:
            assert sum(self.factory.calls.writes().values()) == writes_before, "a dry-run wrote"
            assert after == before, "a dry-run changed the world"
            return
        self.refuse_next = None
        calls = self.calls.log[calls_before:]
        self._check_intent_before_every_destructive_call(calls)
        self._check_every_destruction(before, after, calls, kept_by_people)
        self._remember_marks(calls, messages_before)
        self.enforced.append((self.now, kept_by_people))
        self.busy.clear()  # seen by an enforced sweep: the training job ends
        STATS["steps checked"] += 1

    def _check_intent_before_every_destructive_call(self, calls: list[tuple[str, Any]]) -> None:
        written: set[tuple[str, str]] = set()
        for name, payload in calls:
            if name == "written":
                for item in payload:
                    if item.get("outcome", {}).get("S") == "intended":
                        written.add((item["pk"]["S"].removeprefix("resource#"), item["action"]["S"]))
                continue
            STATS["destructive calls"] += 1
            for resource_id in payload:
                assert (resource_id, DESTRUCTIVE_CALLS[name]) in written, (
                    f"{name} {resource_id} without an intent row written before it"
                )

    def _check_every_destruction(
        self,
        before: dict[str, dict[str, Any]],
        after: dict[str, dict[str, Any]],
        calls: list[tuple[str, Any]],
        kept_by_people: dict[str, str | None],
    ) -> None:
        called = {(rid, DESTRUCTIVE_CALLS[name]) for name, ids in calls if name != "written" for rid in ids}
        terminated: set[str] = set()
        for rid, state in before.items():
            now_state = after.get(rid, {}).get("state")
            if rid in after and (now_state == state["state"] or now_state not in GONE_STATES):
                continue
            if state["kind"] == "instance":
                action = "stop" if now_state in ("stopping", "stopped") else "terminate"
            else:
                action = "delete"
            if (rid, action) not in called:
                continue  # checked below: a volume that went with its instance
            self._check_kept_promise(rid, action, state, self._history(rid), kept_by_people[rid])
            STATS[f"{action}s checked"] += 1
            if action == "terminate":
                terminated.add(rid)
        acted_on = {rid for rid, _ in called}
        for rid, state in before.items():
            if rid in after or rid in acted_on:
                continue
            assert state["kind"] == "volume", f"{rid} disappeared without a decision"
            assert not _persistent(state["tags"]), f"persistent {rid} died with an instance"
            instances = [i for i in state["attached_to"] if i in terminated]
            assert instances, f"{rid} disappeared without a decision and without a terminated instance"
            instance_owner = before[instances[0]]["tags"].get(tags.OWNER)
            owner = state["tags"].get(tags.OWNER)
            if self.launched_with.get(rid) == instances[0]:
                # The launch's own volume follows its instance unless its own tags say otherwise (issue 25).
                scope = [v for k, v in state["tags"].items() if k.casefold() == tags.MANAGED.casefold()]
                assert all(tags.opts_in(v) for v in scope), f"{rid}, taken out of scope, died with {instances[0]}"
                assert owner in (None, instance_owner), f"{rid}, owned by {owner}, died with {instances[0]}"
                STATS["launch volumes taken along with their instance"] += 1
                continue
            assert tags.opts_in(state["tags"].get(tags.MANAGED)), f"{rid}, out of scope, died with {instances[0]}"
            if owner is None:
                STATS["unowned in-scope volumes taken along (hole)"] += 1
                assert not STRICT_UNKNOWN_OWNER, f"{rid}, of unknown owner, died with {instances[0]}"
            else:
                assert owner == instance_owner, f"{rid}, owned by {owner}, died with {instances[0]}"
            STATS["volumes taken along with their instance"] += 1

    def _check_kept_promise(
        self, rid: str, action: str, state: dict[str, Any], rows: list[dict[str, Any]], kept_by: str | None
    ) -> None:
        assert kept_by is None, f"{action} {rid} although {kept_by}"
        tag = state["tags"].get(tags.CLEANUP_AFTER)
        assert tag is not None, f"{action} {rid} without a mark"
        earlier = [r for r in rows if parse_instant(r["at"]) < self.now]
        marks = [r for r in earlier if r["action"] == "mark" and r["outcome"] == "done"]
        assert marks, f"{action} {rid}: its ledger holds no mark trainctl wrote"
        mark = max(marks, key=lambda r: r["at"])
        marked_at = parse_instant(mark["at"])
        assert mark.get("recorded_by") != "age_guard", f"{action} {rid} on a mark age_guard wrote"
        assert mark.get("announced") == action, f"{action} {rid}: its mark announced {mark.get('announced')}"
        assert mark.get("cleanup_after") and parse_instant(mark["cleanup_after"]) == parse_instant(tag), (
            f"{action} {rid}: the tag {tag!r} is not the mark trainctl recorded ({mark.get('cleanup_after')})"
        )
        assert parse_instant(tag) <= self.now, f"{action} {rid} before its mark's instant"
        notice = self.now - marked_at
        if notice < GRACE:
            ttl_mark = {"ttl-expired", "ttl-expiring"} & set(mark.get("reasons") or ())
            STATS["ttl marks acted on with less than a grace period (hole)"] += 1
            assert ttl_mark and not STRICT_TTL_NOTICE, (
                f"{action} {rid} {notice} after its mark; the grace period is {GRACE}"
            )
        used = [t for t in self.used.get(rid, []) if t > marked_at]
        assert not used, f"{action} {rid} on a mark of {mark['at']}, used since at {format_instant(used[0])}"
        voids = [r for r in earlier if parse_instant(r["at"]) > marked_at and r["action"] == "unmark"]
        assert not voids, f"{action} {rid} on a mark of {mark['at']} voided since: {voids[0].get('detail')}"
        for at, kept in self.enforced:
            if marked_at < at < self.now:
                assert kept.get(rid) is None, (
                    f"{action} {rid} on a mark of {mark['at']}; the sweep at {format_instant(at)} had to keep it: "
                    f"{kept.get(rid)}"
                )
        told = [
            message
            for at, start, end in self.marked_in.get(rid, [])
            if at == marked_at
            for _, message in self.notifier.messages[start:end]
            if rid in message
        ]
        assert told, f"{action} {rid}: nobody was told of its mark of {mark['at']}"

    def _remember_marks(self, calls: list[tuple[str, Any]], messages_before: int) -> None:
        """Which resources this sweep marked (its record rows, as the after-call hook saw them written), and which
        messages it sent: a later act on such a mark must find the resource named in one of them."""
        for name, items in calls:
            if name != "written":
                continue
            for item in items:
                row = json.loads(item["decision"]["S"]) if "decision" in item else {}
                if row.get("action") == "mark" and row.get("outcome") == "done":
                    span = (self.now, messages_before, len(self.notifier.messages))
                    self.marked_in.setdefault(str(row["resource_id"]), []).append(span)

    def _must_keep(self, rid: str, state: dict[str, Any]) -> str | None:
        """What people set that keeps the resource, whatever trainctl reads: the README's protections."""
        labels = state["tags"]
        if not tags.opts_in(labels.get(tags.MANAGED)):
            return "out of scope"
        if _persistent(labels):
            return "persistent"
        young = _unreadable_or_young(labels, self.now)
        if young:
            return young
        if state["kind"] == "volume" and state["state"] != "available":
            return "attached"
        if state["kind"] == "instance":
            if any(key in labels for key in CONTROLLER_KEYS):
                return "managed elsewhere"
            if rid in self.busy:
                return "training"
        if state["kind"] == "snapshot" and rid in self.template_snapshots:
            return "a launch template restores it"
        return None

    @invariant()
    def persistent_volumes_are_never_lost(self) -> None:
        """Only a sweep can lose a volume (people here never delete one): checked after each, against before it."""
        if self.swept is False:
            return
        before, after = self.swept
        self.swept = False
        persistent = {rid for rid, s in before.items() if s["kind"] == "volume" and _persistent(s["tags"])}
        lost = {v for v in persistent if v not in after}
        assert not lost, f"persistent volumes lost: {lost}"

    # Reading the world and the ledger (people's clients: not trainctl's calls) -------------------------------

    def _forge(self, target_id: str, forged: tuple[str, Any, int]) -> str | None:
        kind, index, fmt = forged
        if kind == "raw":
            return str(index)
        if kind == "instant":
            return str(FORMATS[fmt](self.now + SHIFTS[index]))
        if kind == "copy":
            found = self.ec2.describe_tags(Filters=[{"Name": "key", "Values": [tags.CLEANUP_AFTER]}])["Tags"]
            marks = [str(t["Value"]) for t in found if t["ResourceId"] != target_id]
            return marks[0] if marks else None
        old = [r["cleanup_after"] for r in self._history(target_id) if r.get("cleanup_after")]
        return old[0] if old else None

    def _history(self, resource_id: str) -> list[dict[str, Any]]:
        """Every row the ledger holds for the resource (the sweeps' and age_guard's), as written."""
        pages = (
            self.people.dynamodb()
            .get_paginator("query")
            .paginate(
                TableName=names.LEDGER_TABLE,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": f"resource#{resource_id}"}},
            )
        )
        return [json.loads(item["decision"]["S"]) for page in pages for item in page["Items"] if "decision" in item]

    def _world(self) -> dict[str, dict[str, Any]]:
        world: dict[str, dict[str, Any]] = {}
        for volume in self.ec2.describe_volumes()["Volumes"]:
            world[volume["VolumeId"]] = {
                "kind": "volume",
                "state": volume["State"],
                "tags": {t["Key"]: t["Value"] for t in volume.get("Tags", [])},
                "attached_to": [a["InstanceId"] for a in volume.get("Attachments", [])],
            }
        for reservation in self.ec2.describe_instances()["Reservations"]:
            for instance in reservation["Instances"]:
                if instance["State"]["Name"] == "terminated":
                    continue
                world[instance["InstanceId"]] = {
                    "kind": "instance",
                    "state": instance["State"]["Name"],
                    "tags": {t["Key"]: t["Value"] for t in instance.get("Tags", [])},
                }
        for snap in self.ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]:
            world[snap["SnapshotId"]] = {
                "kind": "snapshot",
                "state": snap["State"],
                "tags": {t["Key"]: t["Value"] for t in snap.get("Tags", [])},
            }
        return world

    def _labels(self, resource_id: str) -> dict[str, str]:
        found = self.ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [resource_id]}])["Tags"]
        return {t["Key"]: t["Value"] for t in found}

    def _attachments(self, volume_id: str) -> list[str]:
        found = self.ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": [volume_id]}])["Volumes"]
        return [a["InstanceId"] for v in found for a in v.get("Attachments", []) if a.get("State") == "attached"]

    def _state(self, resource_id: str) -> str | None:
        if resource_id.startswith("vol-"):
            volumes = self.ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": [resource_id]}])["Volumes"]
            return str(volumes[0]["State"]) if volumes else None
        if resource_id.startswith("snap-"):
            found = self.ec2.describe_snapshots(Filters=[{"Name": "snapshot-id", "Values": [resource_id]}])
            return str(found["Snapshots"][0]["State"]) if found["Snapshots"] else None
        found = self.ec2.describe_instances(Filters=[{"Name": "instance-id", "Values": [resource_id]}])
        for reservation in found["Reservations"]:
            state = str(reservation["Instances"][0]["State"]["Name"])
            return None if state == "terminated" else state
        return None


def test_the_sweep_keeps_its_promises_under_people_and_a_stranger(record_property: Any) -> None:
    STATS.clear()
    run_state_machine_as_test(
        SweepUnderAdversary,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            phases=PHASES,
        ),
    )
    # The README's reliability table cites these: shown with `pytest -s` or `-rP`, and in the junit XML.
    print("generated cases this run:", dict(sorted(STATS.items())))
    for name, count in STATS.items():
        record_property(name.replace(" ", "_"), count)
    assert STATS["sequences"] >= EXAMPLES
    assert STATS["destructive calls"] > 0, "no sweep ever acted: the invariants were never put to the test"
