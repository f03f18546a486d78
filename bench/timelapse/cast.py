"""The cast: users, each a small script with a known truth (trainctl.oracle's Truth per resource they own).

Each story acts through the users' EC2 client as its user (so CloudTrail hears it, minutes late) and says what
its instances run (the SSM agent's process table and CloudWatch's load). Its truth is written as it acts: when
a resource is in use, and when it became a lasting candidate for what.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from bench.timelapse.deliveries import CLOUDTRAIL_TAIL
from bench.timelapse.harness import REGION, World
from bench.timelapse.oracle import Promise, Quiet, Told, Truth
from trainctl.core import tags
from trainctl.core.clock import ensure_utc, format_instant, parse_instant
from trainctl.core.protections import PREWARM_LONGEST_WAIT, Protection
from trainctl.prewarm.rules import make_plan, new_volume, parse_request

IMAGE = "ami-0abcdef1234567890"
ZONE = f"{REGION}a"
MANAGED = [{"Key": tags.MANAGED, "Value": "true"}]
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
TRAINING = "torchrun --nproc_per_node=8 train.py"
NOTEBOOK = "jupyter-lab --no-browser"


def _tags(resource_type: str, extra: dict[str, str] | None = None) -> list[dict[str, Any]]:
    pairs = MANAGED + [{"Key": k, "Value": v} for k, v in (extra or {}).items()]
    return [{"ResourceType": resource_type, "Tags": pairs}]


class Story:
    """A user and their script; `truths` are the resources they own, judged by the oracle."""

    def __init__(self, world: World, user: str, story: str) -> None:
        self.world = world
        self.user = user
        self.story = story
        self.truths: list[Truth] = []

    def ec2(self) -> Any:
        return self.world.ec2(self.user)

    def at(self, when: datetime, step: Callable[[], None]) -> None:
        self.world.at(when, f"{self.user}: {self.story}", step)

    def truth(self, resource_id: str, kind: str) -> Truth:
        found = Truth(self.user, self.story, resource_id, kind)
        self.truths.append(found)
        return found

    def launch(self, instance_type: str, *, spot: bool = False, name: str = "") -> str:
        extra: dict[str, Any] = {"InstanceMarketOptions": {"MarketType": "spot"}} if spot else {}
        reservation = self.ec2().run_instances(
            ImageId=IMAGE,
            InstanceType=instance_type,
            MinCount=1,
            MaxCount=1,
            Placement={"AvailabilityZone": ZONE},
            TagSpecifications=_tags("instance", {"Name": name or f"{self.user}-{self.story}"}),
            **extra,
        )
        return str(reservation["Instances"][0]["InstanceId"])

    def create_volume(self, size: int, *, persistent: bool = False) -> str:
        extra = {tags.PERSISTENT: "true"} if persistent else {}
        volume = self.ec2().create_volume(
            AvailabilityZone=ZONE, Size=size, VolumeType="gp3", TagSpecifications=_tags("volume", extra)
        )
        return str(volume["VolumeId"])

    def attach(self, volume_id: str, instance_id: str, device: str) -> None:
        self.ec2().attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device=device)

    def detach(self, volume_id: str, instance_id: str) -> None:
        self.ec2().detach_volume(VolumeId=volume_id, InstanceId=instance_id)

    def restore(self, snapshot_id: str, size_gib: int, rate_mibps: int) -> tuple[str, datetime, int]:
        """CreateVolume as the pre-warm workflow's snapshot path makes it (its own plan: the provisioned rate, its
        tags); the volume, EC2's CreateTime and the plan's estimate in seconds."""
        spec = {"zone": ZONE, "snapshot_id": snapshot_id, "initialization_rate": rate_mibps}
        request = parse_request({"volume": spec})
        assert request.volume is not None
        data_bytes = size_gib * 2**30
        target = new_volume(request, request.volume, data_bytes, snapshot_gib=size_gib)
        plan = make_plan(request, target, data_bytes=data_bytes, objects=0, region=REGION, instance_profile_arn="")
        assert plan.create_volume is not None
        volume = self.ec2().create_volume(**plan.create_volume.model_dump())
        return str(volume["VolumeId"]), ensure_utc(volume["CreateTime"]), plan.estimated_seconds


def weekday(world: World, day: int) -> int:
    return (world.start + day * DAY).weekday()


class ForgottenNotebook(Story):
    """A GPU notebook used on weekdays, idle at night, forgotten every Friday at five and started again on Monday."""

    def __init__(self, world: World, user: str) -> None:
        super().__init__(world, user, "notebook forgotten on Friday")
        self.at(world.start + 8 * HOUR + 30 * MINUTE, self.first_launch)

    def first_launch(self) -> None:
        self.instance = self.launch("g5.xlarge")
        self.me = self.truth(self.instance, "instance")
        self.world.idle(self.instance, NOTEBOOK)
        days = int((self.world.end - self.world.start) / DAY) + 1
        for day in range(days):
            if weekday(self.world, day) >= 5:
                continue
            morning = self.world.start + day * DAY + 9 * HOUR
            self.at(morning, self.work)
            friday = weekday(self.world, day) == 4
            self.at(morning + (8 if friday else 9) * HOUR, self.forget if friday else self.go_home)

    def work(self) -> None:
        if self.world.state_of(self.instance) == "stopped":
            self.ec2().start_instances(InstanceIds=[self.instance])
        elif self.world.state_of(self.instance) != "running":
            return
        self.world.busy(self.instance, NOTEBOOK, "python -m ipykernel_launcher", gpu=True)
        self.me.begin_use(self.world.now)

    def go_home(self) -> None:
        self.world.idle(self.instance, NOTEBOOK)
        self.me.end_use(self.world.now)

    def forget(self) -> None:
        self.go_home()
        self.me.promises.append(Promise("idle instance stopped", self.world.now, "stop", idle=True))

    def owner_rewritten(self, at: datetime, new_owner: str) -> None:
        """Someone else's name on the marked notebook: its mark is void, the stop owed restarts with a full grace
        from the moment trainctl hears of it, and the owner of record hears of everything from now on."""
        promise = self.me.promises.pop()
        self.me.promises.append(Promise(promise.name, at, promise.action, late_news=CLOUDTRAIL_TAIL))
        self.me.told.append(Told((self.user, new_owner), at))


class TrainingQueue(Story):
    """Jobs night and day, 2 to 6 hours each, with 20 to 90 minute gaps: idle gaps shorter than the idle window."""

    def __init__(self, world: World, user: str) -> None:
        super().__init__(world, user, "training queue with short gaps")
        self.at(world.start + 7 * HOUR, self.first_launch)

    def first_launch(self) -> None:
        self.instance = self.launch("g5.2xlarge")
        self.me = self.truth(self.instance, "instance")
        self.me.begin_use(self.world.now)  # the queue is in use, gaps and all
        self.job()

    def job(self) -> None:
        self.world.busy(self.instance, TRAINING, gpu=True)
        hours = self.world.rng.uniform(2, 6)
        self.at(self.world.now + timedelta(hours=hours), self.gap)

    def gap(self) -> None:
        self.world.idle(self.instance)
        minutes = self.world.rng.uniform(20, 90)
        self.at(self.world.now + timedelta(minutes=minutes), self.job)


class DevBoxWithScratch(Story):
    """A CPU dev box always at work, and a scratch volume attached each morning and detached each evening."""

    def __init__(self, world: World, user: str) -> None:
        super().__init__(world, user, "scratch volume re-attached daily")
        self.at(world.start + 6 * HOUR, self.set_up)

    def set_up(self) -> None:
        self.instance = self.launch("t3.medium", name=f"{self.user}-devbox")
        self.box = self.truth(self.instance, "instance")
        self.box.begin_use(self.world.now)
        self.world.busy(self.instance, "make -j4", "bash")
        self.scratch = self.create_volume(100)
        self.volume = self.truth(self.scratch, "volume")
        days = int((self.world.end - self.world.start) / DAY) + 1
        for day in range(days):
            self.at(self.world.start + day * DAY + 9 * HOUR + 5 * MINUTE, self.morning)
            self.at(self.world.start + day * DAY + 19 * HOUR, self.evening)

    def morning(self) -> None:
        self.attach(self.scratch, self.instance, "/dev/sdf")
        self.volume.begin_use(self.world.now)

    def evening(self) -> None:
        self.detach(self.scratch, self.instance)
        self.volume.end_use(self.world.now)


class SharedDataset(Story):
    """A persistent dataset volume, attached to a dev box for a few hours twice a week, detached the rest."""

    def __init__(self, world: World, user: str, devbox: DevBoxWithScratch) -> None:
        super().__init__(world, user, "shared dataset volume (persistent)")
        self.devbox = devbox
        self.at(world.start + 6 * HOUR + 30 * MINUTE, self.set_up)

    def set_up(self) -> None:
        self.dataset = self.create_volume(500, persistent=True)
        self.volume = self.truth(self.dataset, "volume")
        self.volume.begin_use(self.world.now)  # persistent: always wanted
        days = int((self.world.end - self.world.start) / DAY) + 1
        for day in range(days):
            if weekday(self.world, day) in (1, 3):
                self.at(self.world.start + day * DAY + 10 * HOUR, self.read)

    def read(self) -> None:
        self.attach(self.dataset, self.devbox.instance, "/dev/sdg")
        self.at(self.world.now + 2 * HOUR, lambda: self.detach(self.dataset, self.devbox.instance))


class CheckpointWithTtl(Story):
    """A checkpoint snapshot of the dev box's disk with trainctl:ttl=72h: gone after its ttl, never before."""

    TTL = timedelta(hours=72)

    def __init__(self, world: World, user: str, devbox: DevBoxWithScratch) -> None:
        super().__init__(world, user, "checkpoint snapshot with a ttl")
        self.devbox = devbox
        self.at(world.start + DAY + 11 * HOUR, self.snapshot)

    def snapshot(self) -> None:
        snapshot = self.ec2().create_snapshot(
            VolumeId=self.devbox.scratch,
            Description="epoch 12 checkpoint",
            TagSpecifications=_tags("snapshot", {tags.TTL: "72h"}),
        )
        me = self.truth(str(snapshot["SnapshotId"]), "snapshot")
        expiry = self.world.now + self.TTL
        lead = self.world.stack.config.sweep.ttl_warning_lead
        me.promises.append(Promise("snapshot deleted after its ttl", expiry - lead, "delete", not_before=expiry))


class StoppedTwoWeeks(Story):
    """An instance used for a day, then stopped for two weeks: terminated after the stopped maximum age."""

    def __init__(self, world: World, user: str) -> None:
        super().__init__(world, user, "instance stopped for two weeks")
        self.at(world.start + 10 * HOUR, self.set_up)

    def set_up(self) -> None:
        self.instance = self.launch("g4dn.xlarge")
        self.me = self.truth(self.instance, "instance")
        self.me.begin_use(self.world.now)
        self.world.busy(self.instance, TRAINING, gpu=True)
        self.at(self.world.now + DAY, self.stop)

    def stop(self) -> None:
        self.ec2().stop_instances(InstanceIds=[self.instance])
        self.me.end_use(self.world.now)
        stopped_max_age = self.world.stack.config.sweep.stopped_max_age
        self.me.promises.append(
            Promise("long-stopped instance terminated", self.world.now + stopped_max_age, "terminate")
        )


class SpotReclaimedTwice(Story):
    """A spot training job EC2 reclaims twice (warning, then termination two minutes later); relaunched each time.

    What the oracle checks of each reclaim: the spot_interruption run on the warning and the owner's notice.
    The recovery workflow is left out (its instances carry no trainctl:recover tag)."""

    def __init__(self, world: World, user: str, reclaims: tuple[timedelta, ...]) -> None:
        super().__init__(world, user, "spot job reclaimed twice")
        self.reclaims = list(reclaims)
        self.at(world.start + 8 * HOUR, self.launch_job)

    def launch_job(self) -> None:
        instance = self.launch("g5.xlarge", spot=True)
        me = self.truth(instance, "instance")
        me.begin_use(self.world.now)
        self.world.busy(instance, TRAINING, gpu=True)
        if self.reclaims and self.world.start + self.reclaims[0] < self.world.end - 3 * MINUTE:
            warned = self.world.start + self.reclaims.pop(0)
            me.spot_warnings.append(warned)
            me.ended_by_others = warned + 2 * MINUTE
            self.world.spot_reclaim(instance, warned)
            self.at(warned + 12 * MINUTE, self.launch_job)


class LateUse(Story):
    """A volume forgotten, then used in the last minutes before the sweep that would delete it; the AttachVolume
    record arrives in CloudTrail's tail, after that sweep. Forgotten for good afterwards."""

    def __init__(self, world: World, user: str, devbox: DevBoxWithScratch) -> None:
        super().__init__(world, user, "volume used in the last minutes of its grace")
        self.devbox = devbox
        self.at(world.start + 10 * HOUR + 20 * MINUTE, self.set_up)

    def set_up(self) -> None:
        self.volume_id = self.create_volume(200)
        self.me = self.truth(self.volume_id, "volume")
        self.me.promises.append(Promise("unattached volume deleted", self.world.now, "delete"))
        self.at(self.world.now + 2 * HOUR, self.read_mark)

    def read_mark(self) -> None:
        mark = self.world.tag_of(self.volume_id, tags.CLEANUP_AFTER)
        if mark is None:
            self.at(self.world.now + HOUR, self.read_mark)
            return
        lag = getattr(self.world.stack.config.sweep, "event_delivery_lag", None) or timedelta(0)
        acting = self.world.next_sweep_after(parse_instant(mark) + lag)
        self.at(acting - 10 * MINUTE, self.use)

    def use(self) -> None:
        self.world.late_cloudtrail(timedelta(minutes=14))
        self.attach(self.volume_id, self.devbox.instance, "/dev/sdm")
        self.me.begin_use(self.world.now)
        self.me.promises.clear()
        self.at(self.world.now + 8 * MINUTE, self.done)

    def done(self) -> None:
        self.detach(self.volume_id, self.devbox.instance)
        self.me.end_use(self.world.now)
        self.me.promises.append(Promise("unattached volume deleted", self.world.now, "delete"))


class TagWritingColleague(Story):
    """Writes trainctl's tags on other people's resources: a far-future mark, a mark in the past, a ttl of 0s."""

    def __init__(
        self,
        world: World,
        user: str,
        *,
        far_future: Callable[[], str],
        past: Callable[[], str],
        zero_ttl: Callable[[], str],
    ) -> None:
        super().__init__(world, user, "colleague writing tags on others' resources")
        self.writes: list[str] = []
        self.at(
            world.start + 2 * DAY + 9 * HOUR + 30 * MINUTE,
            lambda: self.write(far_future(), tags.CLEANUP_AFTER, "2099-01-01T00:00:00Z"),
        )
        self.at(
            world.start + DAY + 20 * HOUR,
            lambda: self.write(past(), tags.CLEANUP_AFTER, format_instant(world.start - 30 * DAY)),
        )
        self.at(world.start + 3 * DAY + 14 * HOUR, lambda: self.write(zero_ttl(), tags.TTL, "0s"))

    def write(self, resource_id: str, key: str, value: str) -> None:
        self.ec2().create_tags(Resources=[resource_id], Tags=[{"Key": key, "Value": value}])
        self.writes.append(f"{key}={value} on {resource_id} at {format_instant(self.world.now)}")


class PrewarmedDataset(Story):
    """Issue 27: a 2 TiB dataset's snapshot restored the way the pre-warm workflow restores it (150 MiB/s of
    provisioned initialisation, the workflow's tags), left unattached for hours while EBS initialises it and the
    workflow polls; the workflow reports (trainctl:prewarmed-at and its figures), the volume feeds a training
    instance for a day or two, then is detached and forgotten. In use from creation to detach: kept as
    pre-warming until the report, never marked or told meanwhile; deleted once forgotten. The dataset's own
    volume and snapshot are persistent."""

    SIZE_GIB = 2000
    RATE_MIBPS = 150  # CreateVolume takes 100 to 300 MiB/s

    def __init__(self, world: World, user: str, *, at: timedelta) -> None:
        super().__init__(world, user, "dataset pre-warmed from a snapshot")
        self.at(world.start + at, self.snapshot_dataset)

    def snapshot_dataset(self) -> None:
        source = self.create_volume(self.SIZE_GIB, persistent=True)
        self.truth(source, "volume").begin_use(self.world.now)  # persistent: always wanted
        snapshot = self.ec2().create_snapshot(
            VolumeId=source,
            Description="dataset v3",
            TagSpecifications=_tags("snapshot", {tags.PERSISTENT: "true"}),
        )
        self.snapshot = str(snapshot["SnapshotId"])
        self.truth(self.snapshot, "snapshot").begin_use(self.world.now)
        self.at(self.world.now + HOUR, self.prewarm)

    def prewarm(self) -> None:
        self.volume_id, created, estimate = self.restore(self.snapshot, self.SIZE_GIB, self.RATE_MIBPS)
        self.me = self.truth(self.volume_id, "volume")
        self.me.begin_use(created)
        self.waiting = Quiet("never marked while pre-warming", created, None, str(Protection.PREWARMING))
        self.me.quiet.append(self.waiting)
        self.world.prewarm_workflow(self.volume_id, estimated_seconds=estimate, reported=self.reported)

    def reported(self) -> None:
        self.waiting.until = self.world.now
        self.at(self.world.now + 5 * MINUTE, self.train)

    def train(self) -> None:
        self.instance = self.launch("g5.xlarge", name=f"{self.user}-train")
        self.box = self.truth(self.instance, "instance")
        self.box.begin_use(self.world.now)
        self.world.busy(self.instance, TRAINING, gpu=True)
        self.attach(self.volume_id, self.instance, "/dev/sdf")
        hours = self.world.rng.uniform(24, 48)
        self.at(self.world.now + timedelta(hours=hours), self.done)

    def done(self) -> None:
        self.world.idle(self.instance)
        self.detach(self.volume_id, self.instance)
        self.me.end_use(self.world.now)
        self.me.promises.append(Promise("unattached volume deleted", self.world.now, "delete"))
        self.ec2().terminate_instances(InstanceIds=[self.instance])
        self.box.end_use(self.world.now)
        self.box.ended_by_others = self.world.now


class AbandonedRestore(Story):
    """Issue 27: a restore like the one above whose execution was stopped (a stop runs no compensation): never
    reported, never attached. Kept as pre-warming for the workflow's longest wait from EC2's creation time, never
    marked or told meanwhile; then the usual mark and grace, and deleted."""

    def __init__(self, world: World, user: str, dataset: PrewarmedDataset, *, at: timedelta) -> None:
        super().__init__(world, user, "pre-warm restore abandoned")
        self.dataset = dataset
        self.at(world.start + at, self.prewarm)

    def prewarm(self) -> None:
        volume_id, created, _ = self.restore(self.dataset.snapshot, self.dataset.SIZE_GIB, self.dataset.RATE_MIBPS)
        me = self.truth(volume_id, "volume")
        bound = created + PREWARM_LONGEST_WAIT
        me.quiet.append(Quiet("never marked while pre-warming", created, bound, str(Protection.PREWARMING)))
        me.promises.append(Promise("unattached volume deleted", bound, "delete"))


class OwnerRewritingColleague(Story):
    """Issue 25: a colleague rewrites trainctl:owner on the forgotten notebook once it is marked (the CreateTags
    record reaches age_guard in CloudTrail's tail). The mark is withdrawn; a fresh mark and a full grace follow,
    and every notice from then on goes to the owner of record (the notebook's maker) as well as to the tag's
    owner."""

    def __init__(self, world: World, user: str, notebook: ForgottenNotebook) -> None:
        super().__init__(world, user, "colleague rewriting the owner of a marked notebook")
        self.notebook = notebook
        first_friday = next(day for day in range(7) if weekday(world, day) == 4)
        forgotten = world.start + first_friday * DAY + 17 * HOUR
        self.at(forgotten + world.stack.config.sweep.idle_window, self.read_mark)

    def read_mark(self) -> None:
        if self.world.tag_of(self.notebook.instance, tags.CLEANUP_AFTER) is None:
            self.at(self.world.now + HOUR, self.read_mark)
            return
        self.at(self.world.now + 2 * HOUR, self.rewrite)

    def rewrite(self) -> None:
        if self.world.state_of(self.notebook.instance) != "running":
            return
        self.world.late_cloudtrail(CLOUDTRAIL_TAIL)
        self.ec2().create_tags(Resources=[self.notebook.instance], Tags=[{"Key": tags.OWNER, "Value": self.user}])
        self.notebook.owner_rewritten(self.world.now, self.user)


def small_cast(world: World) -> list[Story]:
    """One resource per story at least: what tests/integration/test_timelapse.py runs for 14 days."""
    return cast_of(world, copies=1)


def large_cast(world: World) -> list[Story]:
    """Each story three times over (different users, different timings): what the 30-day bench runs."""
    return cast_of(world, copies=3)


def cast_of(world: World, *, copies: int) -> list[Story]:
    stories: list[Story] = []
    for copy in range(copies):
        suffix = "" if copy == 0 else str(copy + 1)
        offset = copy * 37 * MINUTE
        notebook = ForgottenNotebook(world, f"nora{suffix}")
        dataset = PrewarmedDataset(world, f"pia{suffix}", at=DAY + 7 * HOUR + offset)
        queue = TrainingQueue(world, f"theo{suffix}")
        devbox = DevBoxWithScratch(world, f"sami{suffix}")
        stopped = StoppedTwoWeeks(world, f"stan{suffix}")
        spot = SpotReclaimedTwice(
            world, f"spencer{suffix}", (2 * DAY + 11 * HOUR + offset, 6 * DAY + 15 * HOUR + offset)
        )
        stories += [
            notebook,
            queue,
            devbox,
            SharedDataset(world, f"dana{suffix}", devbox),
            CheckpointWithTtl(world, f"cleo{suffix}", devbox),
            stopped,
            spot,
            LateUse(world, f"lena{suffix}", devbox),
            TagWritingColleague(
                world,
                f"colm{suffix}",
                far_future=lambda s=stopped: s.instance,
                past=lambda d=devbox: d.scratch,
                zero_ttl=lambda q=queue: q.instance,
            ),
            dataset,
            AbandonedRestore(world, f"abe{suffix}", dataset, at=DAY + 9 * HOUR + offset),
            OwnerRewritingColleague(world, f"olga{suffix}", notebook),
        ]
    return stories


def truths_of(stories: list[Story]) -> list[Truth]:
    return [truth for story in stories for truth in story.truths]
