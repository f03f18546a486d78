"""The sweep's pure decisions: every candidate rule, every protection, the two phases, the blast radius."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from tests.unit.builders import LONG_AGO, NOW, WORKER_PROFILE, image, instance, inventory, snapshot, volume
from trainctl.core.clock import format_instant
from trainctl.core.observations import Training, TrainingCheck, Utilisation
from trainctl.core.resources import BlockDevice
from trainctl.core.settings import SweepSettings
from trainctl.sweep.rules import Decision, Observations, apply_blast_radius, instances_to_check, plan_sweep

SETTINGS = SweepSettings(max_actions=1000, max_action_share=1.0)
IDLE = Utilisation(cpu_percent=1.0, network_bytes_per_second=100.0, gpu_percent=0.0)
BUSY = Utilisation(cpu_percent=90.0, network_bytes_per_second=5e7, gpu_percent=95.0)
# Past the grace period and the delivery lag after it: the mark is due.
MARK_PASSED = format_instant(NOW - SETTINGS.event_delivery_lag - timedelta(minutes=1))
MARK_PENDING = format_instant(NOW + timedelta(hours=3))


def decide_one(
    resource: object,
    observations: Observations | None = None,
    *,
    settings: SweepSettings = SETTINGS,
    images: tuple = (),
    now=NOW,
) -> Decision | None:
    plan = plan_sweep([inventory(resource, images=images)], observations or Observations(), settings, now)
    decisions = [d for d in plan.decisions if d.resource_id == resource.resource_id]  # type: ignore[attr-defined]
    return decisions[0] if decisions else None


def idle_and_checked(instance_id: str, status: Training = Training.IDLE) -> Observations:
    return Observations(utilisation={instance_id: IDLE}, training={instance_id: TrainingCheck(status)})


# Candidate rules ---------------------------------------------------------------------------------


def test_unattached_volume_is_marked_with_the_grace_period() -> None:
    decision = decide_one(volume())
    assert decision is not None
    assert decision.action == "mark"
    assert decision.reasons == ("unattached",)
    assert decision.cleanup_after == NOW + SETTINGS.grace_period


def test_attached_volume_without_other_reason_is_not_a_candidate() -> None:
    assert decide_one(volume(attached_to="i-1", state="in-use")) is None


def test_stopped_instance_becomes_a_candidate_only_after_the_threshold() -> None:
    recent = instance(state="stopped", stopped_since=NOW - timedelta(days=6))
    old = instance(state="stopped", stopped_since=NOW - timedelta(days=8))
    assert decide_one(recent) is None
    decision = decide_one(old)
    assert decision is not None and decision.reasons == ("stopped-too-long",) and decision.action == "mark"


def test_stopped_instance_is_terminated_after_the_grace_period() -> None:
    decision = decide_one(instance(state="stopped", stopped_since=LONG_AGO, cleanup_after=MARK_PASSED))
    assert decision is not None and decision.action == "terminate"


@pytest.mark.parametrize(
    ("usage", "is_candidate"),
    [
        (IDLE, True),
        (BUSY, False),
        # The builder's p4d has GPUs: without a GPU reading there is no evidence of idleness.
        (Utilisation(cpu_percent=1.0, network_bytes_per_second=100.0, gpu_percent=None), False),
        (Utilisation(cpu_percent=1.0, network_bytes_per_second=100.0, gpu_percent=50.0), False),
        (Utilisation(cpu_percent=1.0, network_bytes_per_second=1e6, gpu_percent=0.0), False),
        (Utilisation(cpu_percent=None, network_bytes_per_second=100.0), False),
        (Utilisation(cpu_percent=1.0, network_bytes_per_second=None), False),
    ],
)
def test_idle_needs_low_cpu_network_and_gpu_and_evidence_for_each(usage: Utilisation, is_candidate: bool) -> None:
    observations = Observations(utilisation={"i-1": usage}, training={"i-1": TrainingCheck(Training.IDLE)})
    decision = decide_one(instance(), observations)
    assert (decision is not None and "idle" in decision.reasons) is is_candidate


def test_instance_up_for_less_than_the_idle_window_is_not_idle() -> None:
    fresh = instance(launched=NOW - timedelta(minutes=30))
    assert decide_one(fresh, idle_and_checked("i-1")) is None


def test_idle_instance_is_stopped_by_default_and_terminated_when_configured() -> None:
    marked = instance(cleanup_after=MARK_PASSED)
    assert decide_one(marked, idle_and_checked("i-1")).action == "stop"  # type: ignore[union-attr]
    terminating = SETTINGS.model_copy(update={"idle_action": "terminate"})
    assert decide_one(marked, idle_and_checked("i-1"), settings=terminating).action == "terminate"  # type: ignore[union-attr]


def test_snapshot_past_retention_is_a_candidate() -> None:
    assert decide_one(snapshot(started=NOW - timedelta(days=29))) is None
    decision = decide_one(snapshot(started=NOW - timedelta(days=31)))
    assert decision is not None and decision.reasons == ("snapshot-retention",)


def test_expired_ttl_is_a_candidate_and_counts_from_the_newest_creation_signal() -> None:
    created = NOW - timedelta(hours=8, minutes=5)
    attached = volume(attached_to="i-9", created=created, ttl="8h")
    decision = decide_one(attached)
    assert decision is not None and "ttl-expired" in decision.reasons
    # age_guard's stamp, ten minutes after EC2's time (the event's own time): the newest signal counts.
    stamped = volume(
        attached_to="i-9", created=created, ttl="8h", created_at=format_instant(created + timedelta(minutes=10))
    )
    not_yet = decide_one(stamped)
    assert not_yet is not None and not_yet.reasons == ("ttl-expiring",)  # due in five minutes, not expired yet
    # A stamp written hours later is no creation signal: the resource is named unreadable, not made younger.
    restamped = volume(
        attached_to="i-9", created=created, ttl="8h", created_at=format_instant(NOW - timedelta(hours=1))
    )
    later = decide_one(restamped)
    assert later is not None and "ttl-expired" in later.reasons and "unreadable" in later.protections


def test_unreadable_ttl_is_a_warning_not_a_reason() -> None:
    plan = plan_sweep([inventory(volume(attached_to="i-9", ttl="forever"))], Observations(), SETTINGS, NOW)
    assert plan.decisions == ()
    assert any("forever" in warning for warning in plan.warnings)


def test_leftover_prewarm_worker_is_terminated_without_a_training_check() -> None:
    worker = instance(profile=WORKER_PROFILE, launched=NOW - timedelta(hours=7), cleanup_after=MARK_PASSED)
    decision = decide_one(worker)
    assert decision is not None
    assert decision.action == "terminate" and "prewarm-leftover" in decision.reasons
    young_worker = instance(profile=WORKER_PROFILE, launched=NOW - timedelta(hours=1))
    assert decide_one(young_worker) is None


# Protections ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["true", "yes", "1", "", "keep-forever"])
def test_persistent_tag_protects_with_any_value_but_false(value: str) -> None:
    decision = decide_one(volume(persistent=value, cleanup_after=MARK_PASSED))
    assert decision is not None and decision.action != "delete" and "persistent" in decision.protections


def test_persistent_false_does_not_protect() -> None:
    decision = decide_one(volume(persistent="false", cleanup_after=MARK_PASSED))
    assert decision is not None and decision.action == "delete"


def test_min_age_protects_and_takes_the_newest_creation_signal() -> None:
    young = volume(created=NOW - timedelta(minutes=2))
    assert decide_one(young).protections == ("min-age",)  # type: ignore[union-attr]
    # A stamp a little after EC2's own time (age_guard stamps the call's time) is the newest signal, and counts.
    stamped = volume(created=NOW - timedelta(minutes=10), created_at=format_instant(NOW - timedelta(minutes=1)))
    assert decide_one(stamped).protections == ("min-age",)  # type: ignore[union-attr]
    no_min_age = SETTINGS.model_copy(update={"min_age": timedelta(0)})
    assert decide_one(young, settings=no_min_age).action == "mark"  # type: ignore[union-attr]


def test_attached_protects_a_volume_with_an_expired_ttl() -> None:
    decision = decide_one(volume(attached_to="i-9", ttl="1h", cleanup_after=MARK_PASSED))
    assert decision is not None and "attached" in decision.protections and not decision.destructive


@pytest.mark.parametrize(
    ("training", "action", "protections"),
    [
        (Training.ACTIVE, "unmark", ("training-active",)),  # evidence of use withdraws the mark
        (Training.UNKNOWN, "keep", ()),  # no answer is no evidence: the mark stays, the action waits
        (None, "keep", ()),
        (Training.NOT_MANAGED, "unmark", ("not-managed-by-ssm",)),  # no check will ever answer: never acted on
        (Training.IDLE, "stop", ()),
    ],
)
def test_only_an_idle_verdict_acts_and_only_evidence_of_use_withdraws_a_due_mark(
    training: Training | None, action: str, protections: tuple[str, ...]
) -> None:
    checks = {"i-1": TrainingCheck(training, "no answer in time")} if training else {}
    observations = Observations(utilisation={"i-1": IDLE}, training=checks)
    decision = decide_one(instance(cleanup_after=MARK_PASSED), observations)
    assert decision is not None
    assert (decision.action, decision.protections) == (action, protections)
    if training is Training.UNKNOWN:
        assert "no answer in time" in decision.detail and "mark stays" in decision.detail


@pytest.mark.parametrize("training", [Training.UNKNOWN, None])
def test_a_marked_instance_in_its_grace_keeps_its_mark_when_the_check_cannot_answer(training: Training | None) -> None:
    """Defect (issue 24): an unanswered check during the grace was `training-active`, which unmarked the instance;
    the next sweep marked it afresh, so an idle instance was never stopped and its owner heard every hour."""
    checks = {"i-1": TrainingCheck(training, "deferred: deadline")} if training else {}
    decision = decide_one(
        instance(cleanup_after=MARK_PENDING), Observations(utilisation={"i-1": IDLE}, training=checks)
    )
    assert decision is not None
    assert decision.action == "keep" and decision.protections == ()
    assert "grace period until" in decision.detail


def test_an_unanswered_check_marks_nothing_and_names_why() -> None:
    checks = {"i-1": TrainingCheck(Training.UNKNOWN, "no answer in time")}
    decision = decide_one(instance(), Observations(utilisation={"i-1": IDLE}, training=checks))
    assert decision is not None
    assert decision.action == "keep" and decision.protections == ("training-active",)
    assert "no answer in time" in decision.detail


def test_an_instance_ssm_does_not_manage_is_kept_named_and_counted() -> None:
    observations = Observations(
        utilisation={"i-1": IDLE}, training={"i-1": TrainingCheck(Training.NOT_MANAGED, "not managed by SSM")}
    )
    plan = plan_sweep([inventory(instance())], observations, SETTINGS, NOW)
    (decision,) = plan.decisions
    assert decision.action == "keep" and decision.protections == ("not-managed-by-ssm",)
    assert plan.summary()["not_managed_by_ssm"] == 1


def test_metrics_mode_decides_an_unmanaged_instance_on_utilisation_alone() -> None:
    settings = SETTINGS.model_copy(update={"idle_without_training_check": "metrics"})
    unmanaged = {"i-1": TrainingCheck(Training.NOT_MANAGED, "not managed by SSM")}
    fresh = decide_one(instance(), Observations(utilisation={"i-1": IDLE}, training=unmanaged), settings=settings)
    assert fresh is not None and fresh.action == "mark" and fresh.announced == "stop"
    due = decide_one(
        instance(cleanup_after=MARK_PASSED),
        Observations(utilisation={"i-1": IDLE}, training=unmanaged),
        settings=settings,
    )
    assert due is not None and due.action == "stop"
    # An accelerator type with no accelerator reading is no evidence of idleness, checked or not.
    gpu = decide_one(
        instance(),
        Observations(utilisation={"i-1": IDLE._replace(gpu_percent=None)}, training=unmanaged),
        settings=settings,
    )
    assert gpu is None or gpu.action != "mark"


def test_a_due_mark_waits_out_the_delivery_lag_before_acting() -> None:
    """Defect (issue 24): a use made just before the grace ended is heard minutes later; the sweep acted at once."""
    just_over = format_instant(NOW - SETTINGS.event_delivery_lag + timedelta(minutes=1))
    decision = decide_one(volume(cleanup_after=just_over))
    assert decision is not None and decision.action == "keep"
    assert "late events" in decision.detail
    over_by_the_lag = decide_one(volume(cleanup_after=format_instant(NOW - SETTINGS.event_delivery_lag)))
    assert over_by_the_lag is not None and over_by_the_lag.action == "delete"


def test_marked_instances_are_asked_the_training_check_on_every_sweep_of_their_grace() -> None:
    """Defect (issue 24): only instances about to be marked or acted on were asked."""
    marked = instance("i-marked", cleanup_after=MARK_PENDING)
    fresh = instance("i-fresh")
    unmarked_busy = instance("i-busy")
    observations = Observations(utilisation={"i-marked": IDLE, "i-fresh": IDLE, "i-busy": BUSY})
    asked = instances_to_check([inventory(marked, fresh, unmarked_busy)], observations, SETTINGS, NOW)
    assert sorted(i.resource_id for i in asked) == ["i-fresh", "i-marked"]


def test_an_idle_instance_with_instance_store_is_stopped_by_default_and_told_what_is_lost() -> None:
    store = replace(instance(), instance_type="g5.xlarge", instance_store=True)
    observations = Observations(
        utilisation={"i-1": IDLE}, training={"i-1": TrainingCheck(Training.IDLE, "no training process found")}
    )
    marked = decide_one(store, observations)
    assert marked is not None and marked.action == "mark" and marked.announced == "stop"
    assert "will be lost" in marked.detail and "trainctl:persistent=true" in marked.detail
    assert "TRAINCTL_STOP_INSTANCE_STORE=false" in marked.detail
    acted = decide_one(replace(store, tags={**store.tags, "trainctl:cleanup-after": MARK_PASSED}), observations)
    assert acted is not None and acted.action == "stop"
    kept = decide_one(
        replace(store, tags={**store.tags, "trainctl:cleanup-after": MARK_PASSED}),
        observations,
        settings=SETTINGS.model_copy(update={"stop_instance_store": False}),
    )
    assert kept is not None and "instance-store" in kept.protections


def test_training_check_does_not_apply_to_a_stopped_instance() -> None:
    decision = decide_one(instance(state="stopped", stopped_since=LONG_AGO, cleanup_after=MARK_PASSED))
    assert decision is not None and decision.protections == ()


def test_ami_backed_snapshot_is_protected_even_when_the_ami_is_disabled() -> None:
    decision = decide_one(snapshot("snap-ami", cleanup_after=MARK_PASSED), images=(image("snap-ami"),))
    assert decision is not None and "ami-backed" in decision.protections and not decision.destructive


@pytest.mark.parametrize(
    "backup",
    [
        {"backup_source": "arn:aws:ec2:us-east-1::volume/vol-1"},
        {"dlm": "policy-123"},
        {"description": "This snapshot is created by the AWS Backup service for backup plan x"},
    ],
)
def test_backup_managed_snapshot_is_protected(backup: dict[str, str]) -> None:
    decision = decide_one(snapshot(cleanup_after=MARK_PASSED, **backup))
    assert decision is not None and "backup-managed" in decision.protections and not decision.destructive


@pytest.mark.parametrize("scope_value", [None, "false", "maybe", ""])
def test_out_of_scope_is_reported_and_never_written(scope_value: str | None) -> None:
    resource = volume(cleanup_after=MARK_PASSED)
    resource.tags.pop("trainctl:managed")
    if scope_value is not None:
        resource.tags["trainctl:managed"] = scope_value
    decision = decide_one(resource)
    assert decision is not None
    assert decision.protections == ("out-of-scope",)
    assert decision.action == "keep"  # not even an unmark: IAM forbids writing to unmanaged resources


def test_scope_tag_is_configurable() -> None:
    team_scope = SETTINGS.model_copy(update={"scope_tag": "team:ml"})
    assert decide_one(volume(), settings=team_scope).protections == ("out-of-scope",)  # type: ignore[union-attr]
    assert decide_one(volume(**{"team:ml": "true"}), settings=team_scope).action == "mark"  # type: ignore[union-attr]


# The two phases -----------------------------------------------------------------------------------


def test_marked_resource_waits_for_its_grace_period() -> None:
    decision = decide_one(volume(cleanup_after=MARK_PENDING))
    assert decision is not None and decision.action == "keep" and "grace period until" in decision.detail


def test_marked_resource_is_acted_on_once_the_grace_period_is_over() -> None:
    decision = decide_one(volume(cleanup_after=MARK_PASSED))
    assert decision is not None and decision.action == "delete"


def test_marked_resource_that_stopped_being_a_candidate_is_unmarked() -> None:
    decision = decide_one(volume(attached_to="i-1", cleanup_after=MARK_PASSED))
    assert decision is not None and decision.action == "unmark"


def test_marked_resource_that_became_protected_is_unmarked_for_a_fresh_grace_period() -> None:
    decision = decide_one(volume(persistent="true", cleanup_after=MARK_PASSED))
    assert decision is not None and decision.action == "unmark" and decision.protections == ("persistent",)


def test_unreadable_mark_is_rewritten_not_trusted() -> None:
    decision = decide_one(volume(cleanup_after="yesterday"))
    assert decision is not None and decision.action == "mark"
    assert decision.cleanup_after == NOW + SETTINGS.grace_period


def test_marks_are_utc_iso8601() -> None:
    decision = decide_one(volume())
    assert decision is not None and decision.to_json()["cleanup_after"] == format_instant(NOW + SETTINGS.grace_period)
    assert str(decision.to_json()["cleanup_after"]).endswith("Z")


# Persistent volumes and instances ---------------------------------------------------------------------


def test_terminating_an_instance_keeps_its_persistent_volumes_and_those_of_unknown_owner() -> None:
    devices = (
        BlockDevice("vol-data", "/dev/sdf", delete_on_termination=True),
        BlockDevice("vol-root", "/dev/xvda", delete_on_termination=True),
        BlockDevice("vol-kept", "/dev/sdg", delete_on_termination=False),
    )
    stopped = instance(state="stopped", stopped_since=LONG_AGO, devices=devices, cleanup_after=MARK_PASSED)
    data = volume("vol-data", attached_to=stopped.resource_id, persistent="true")
    root = volume("vol-root", attached_to=stopped.resource_id)
    kept = volume("vol-kept", attached_to=stopped.resource_id, persistent="true")
    plan = plan_sweep([inventory(stopped, data, root, kept)], Observations(), SETTINGS, NOW)
    decision = next(d for d in plan.decisions if d.resource_id == stopped.resource_id)
    assert decision.action == "terminate"
    # The root carries no owner: whose it is is unknown, and unknown protects.
    assert decision.keep_volumes == (("vol-data", "/dev/sdf"), ("vol-root", "/dev/xvda"))


# Blast radius ------------------------------------------------------------------------------------


def test_blast_radius_caps_actions_by_count_longest_marked_first() -> None:
    volumes = [volume(f"vol-{n}", cleanup_after=format_instant(NOW - timedelta(hours=n))) for n in range(1, 6)]
    capped = SETTINGS.model_copy(update={"max_actions": 2})
    plan = plan_sweep([inventory(*volumes)], Observations(), capped, NOW)
    acted = sorted(d.resource_id for d in plan.decisions if d.destructive)
    assert acted == ["vol-4", "vol-5"]
    held = [d for d in plan.decisions if not d.destructive]
    assert all(d.protections == ("blast-radius",) and d.action == "keep" for d in held)


def test_blast_radius_caps_actions_by_share_of_the_in_scope_fleet() -> None:
    volumes = [volume(f"vol-{n}", cleanup_after=MARK_PASSED) for n in range(4)]
    busy = [volume(f"vol-busy-{n}", attached_to="i-1") for n in range(6)]
    share = SETTINGS.model_copy(update={"max_action_share": 0.2})  # 10 in scope -> 2
    plan = plan_sweep([inventory(*volumes, *busy)], Observations(), share, NOW)
    assert sum(d.destructive for d in plan.decisions) == 2


def test_blast_radius_never_caps_marks() -> None:
    decisions = [Decision(f"vol-{n}", "volume", "us-east-1", "mark") for n in range(5)]
    assert apply_blast_radius(decisions, 0) == decisions


# Training checks are asked only where they matter ----------------------------------------------------


def test_only_running_candidates_without_other_protection_need_a_training_check() -> None:
    idle = instance("i-idle")
    busy = instance("i-busy")
    persistent = instance("i-persistent", persistent="true")
    worker = instance("i-worker", profile=WORKER_PROFILE, launched=NOW - timedelta(hours=7))
    stopped = instance("i-stopped", state="stopped", stopped_since=LONG_AGO)
    observations = Observations(
        utilisation=dict.fromkeys(("i-idle", "i-persistent", "i-worker"), IDLE) | {"i-busy": BUSY}
    )
    wanted = instances_to_check([inventory(idle, busy, persistent, worker, stopped)], observations, SETTINGS, NOW)
    assert [i.resource_id for i in wanted] == ["i-idle"]


# Time-to-live: a warning ahead, then the same mark/act cycle -------------------------------------------


def test_expiring_ttl_is_marked_no_sooner_than_a_grace_period_after_the_warning() -> None:
    created = NOW - timedelta(hours=7, minutes=30)  # 8h ttl: expires in 30 minutes, inside the 1h lead
    decision = decide_one(snapshot(started=created, ttl="8h"))
    assert decision is not None
    assert decision.reasons == ("ttl-expiring",) and decision.action == "mark" and decision.announced == "delete"
    # Anyone may write a ttl: its expiry never shortens the notice below the grace period.
    assert decision.cleanup_after == max(created + timedelta(hours=8), NOW + SETTINGS.grace_period)


def test_an_expiring_ttl_is_never_acted_on_before_the_expiry() -> None:
    created = NOW - timedelta(hours=7, minutes=30)
    early_mark = format_instant(NOW - timedelta(minutes=5))  # e.g. left by an earlier, shorter ttl
    decision = decide_one(volume(created=created, ttl="8h", cleanup_after=early_mark, state="in-use", attached_to=None))
    assert decision is not None and not decision.destructive
    assert decision.action == "mark" and decision.cleanup_after == NOW + SETTINGS.grace_period


def test_an_expired_ttl_nobody_was_warned_of_gets_the_whole_grace_period() -> None:
    created = NOW - timedelta(hours=10)
    marked = decide_one(volume(created=created, ttl="8h", state="in-use"))
    assert marked is not None and marked.reasons == ("ttl-expired",)
    assert marked.cleanup_after == NOW + SETTINGS.grace_period
    acted = decide_one(volume(created=created, ttl="8h", state="in-use", cleanup_after=MARK_PASSED))
    assert acted is not None and acted.action == "delete"


def test_extending_the_ttl_unmarks() -> None:
    decision = decide_one(
        volume(created=NOW - timedelta(hours=10), ttl="72h", state="in-use", cleanup_after=MARK_PASSED)
    )
    assert decision is not None and decision.action == "unmark"


def test_default_maximum_age_per_class_is_off_unless_configured() -> None:
    old_snapshot_in_use = snapshot(started=NOW - timedelta(days=3))
    assert decide_one(old_snapshot_in_use) is None
    capped = SETTINGS.model_copy(update={"max_age_snapshot": timedelta(days=2)})
    decision = decide_one(old_snapshot_in_use, settings=capped)
    assert decision is not None and decision.reasons == ("ttl-expired",)
    # An explicit ttl wins over the class default.
    longer = snapshot(started=NOW - timedelta(days=3), ttl="5d")
    assert decide_one(longer, settings=capped) is None


@pytest.mark.parametrize(
    "instance_type", ["p4d.24xlarge", "g5.xlarge", "trn1.32xlarge", "trn2.48xlarge", "inf2.xlarge"]
)
def test_an_accelerator_instance_without_an_accelerator_reading_is_not_idle(instance_type: str) -> None:
    # No CloudWatch agent on a GPU instance, or Neuron chips (neuron-monitor is not read): no evidence is not idleness.
    no_reading = Utilisation(cpu_percent=1.0, network_bytes_per_second=100.0, gpu_percent=None)
    observations = Observations(utilisation={"i-1": no_reading}, training={"i-1": TrainingCheck(Training.IDLE)})
    decision = decide_one(replace(instance(), instance_type=instance_type), observations)
    assert decision is None or "idle" not in decision.reasons


def test_a_type_without_accelerators_is_idle_on_cpu_and_network_alone() -> None:
    no_reading = Utilisation(cpu_percent=1.0, network_bytes_per_second=100.0, gpu_percent=None)
    observations = Observations(utilisation={"i-1": no_reading}, training={"i-1": TrainingCheck(Training.IDLE)})
    decision = decide_one(replace(instance(), instance_type="c6in.xlarge"), observations)
    assert decision is not None and "idle" in decision.reasons


@pytest.mark.parametrize(
    "resource",
    [
        volume(created=LONG_AGO, created_at="8999-01-01T00:00:00Z"),
        snapshot(started=LONG_AGO, created_at=format_instant(NOW - timedelta(days=1))),
        instance(state="stopped", stopped_since=LONG_AGO, created_at="8999-01-01T00:00:00Z"),
    ],
)
def test_a_created_at_later_than_ec2s_own_creation_time_is_unreadable_and_named(resource: object) -> None:
    """Defect (issue 25): trainctl:created-at in 8999 kept a resource young, so protected by min-age, forever."""
    plan = plan_sweep([inventory(resource)], Observations(), SETTINGS, NOW)
    (decision,) = plan.decisions
    assert decision.reasons and decision.protections == ("unreadable",)  # not min-age: the stamp is no age
    assert "later than EC2's own creation time" in decision.detail
    assert any("later than EC2's own creation time" in w for w in plan.warnings)


def test_a_mark_further_ahead_than_trainctl_writes_is_replaced_by_a_fresh_mark() -> None:
    """Defect (issue 25): trainctl:cleanup-after in 8999 was a grace period nobody ever reached."""
    forged = decide_one(volume(cleanup_after="8999-01-01T00:00:00Z"))
    assert forged is not None and forged.action == "mark"
    assert forged.cleanup_after == NOW + SETTINGS.grace_period
    assert "further ahead than trainctl writes" in forged.detail
    # Its own mark, a grace period ahead, stands.
    own = decide_one(volume(cleanup_after=format_instant(NOW + SETTINGS.grace_period)))
    assert own is not None and own.action == "keep" and "grace period until" in own.detail


def test_blast_radius_lets_a_small_fleet_act_once_per_sweep() -> None:
    # The deployed share (25%) of a fleet of one is 0.25: a floor of zero would keep its forgotten volume forever.
    lone = volume("vol-lone", cleanup_after=MARK_PASSED)
    deployed_share = SETTINGS.model_copy(update={"max_action_share": 0.25})
    plan = plan_sweep([inventory(lone)], Observations(), deployed_share, NOW)
    assert [d.resource_id for d in plan.decisions if d.destructive] == ["vol-lone"]


def test_blast_radius_of_no_share_or_no_actions_acts_on_nothing() -> None:
    lone = volume("vol-lone", cleanup_after=MARK_PASSED)
    for update in ({"max_action_share": 0.0}, {"max_actions": 0}):
        plan = plan_sweep([inventory(lone)], Observations(), SETTINGS.model_copy(update=update), NOW)
        assert not any(d.destructive for d in plan.decisions)
