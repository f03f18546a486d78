"""Property tests: whatever the fleet, the plan never acts on what the safety model protects."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.builders import NOW, image, instance, inventory, snapshot, volume
from trainctl.core import tags
from trainctl.core.clock import format_instant
from trainctl.core.observations import Training, TrainingCheck, Utilisation
from trainctl.core.protections import in_scope, younger_than_min_age
from trainctl.core.settings import SweepSettings
from trainctl.sweep.rules import Observations, action_budget, plan_sweep

protection_values = st.sampled_from([None, "true", "false", "no", "0", "", "yes", "maybe", "FALSE"])
scope_values = st.sampled_from([None, "true", "false", "yes", "1", "", "maybe"])
ages = st.sampled_from([timedelta(minutes=1), timedelta(hours=3), timedelta(days=2), timedelta(days=40)])
marks = st.sampled_from([None, "garbage", NOW - timedelta(hours=1), NOW + timedelta(hours=1)])
trainings = st.sampled_from([None, Training.ACTIVE, Training.IDLE, Training.UNKNOWN])


def tag_values(persistent: str | None, scope: str | None, mark: object) -> dict[str, str]:
    values: dict[str, str] = {}
    if persistent is not None:
        values["persistent"] = persistent
    if mark is not None:
        values["cleanup_after"] = mark if isinstance(mark, str) else format_instant(mark)
    return values, scope  # type: ignore[return-value]


@st.composite
def fleets(draw: st.DrawFn) -> tuple[list[object], Observations, frozenset[str]]:
    resources: list[object] = []
    utilisation: dict[str, Utilisation] = {}
    training: dict[str, TrainingCheck] = {}
    ami_snapshots: set[str] = set()
    for n in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["volume", "instance", "snapshot"]))
        values, scope = tag_values(draw(protection_values), draw(scope_values), draw(marks))
        age = draw(ages)
        if kind == "volume":
            attached = draw(st.booleans())
            resource = volume(
                f"vol-{n}",
                attached_to="i-x" if attached else None,
                created=NOW - age,
                ttl=draw(st.sampled_from(["", "1h", "bad"])),
                **values,
            )
        elif kind == "snapshot":
            resource = snapshot(
                f"snap-{n}",
                started=NOW - age,
                description=draw(st.sampled_from(["", "This snapshot is created by the AWS Backup service"])),
                **values,
            )
            if draw(st.booleans()):
                ami_snapshots.add(resource.resource_id)
        else:
            state = draw(st.sampled_from(["running", "stopped"]))
            resource = instance(
                f"i-{n}",
                state=state,
                launched=NOW - age,
                stopped_since=NOW - age if state == "stopped" else None,
                **values,
            )
            if draw(st.booleans()):
                utilisation[resource.resource_id] = Utilisation(1.0, 10.0, draw(st.sampled_from([None, 0.0, 80.0])))
            status = draw(trainings)
            if status is not None:
                training[resource.resource_id] = TrainingCheck(status)
        resource.tags.pop(tags.MANAGED)
        if scope is not None:
            resource.tags[tags.MANAGED] = scope
        resources.append(resource)
    return resources, Observations(utilisation=utilisation, training=training), frozenset(ami_snapshots)


@settings(max_examples=400, deadline=None)
@given(fleets(), st.integers(0, 20), st.floats(0, 1))
def test_no_protected_resource_is_ever_acted_on(fleet, max_actions: int, share: float) -> None:
    resources, observations, ami_snapshots = fleet
    sweep_settings = SweepSettings(max_actions=max_actions, max_action_share=share)
    plan = plan_sweep([inventory(*resources, images=(image(*ami_snapshots),))], observations, sweep_settings, NOW)
    by_id = {r.resource_id: r for r in resources}  # type: ignore[attr-defined]
    acted = [d for d in plan.decisions if d.destructive]
    assert len(acted) <= action_budget(plan.in_scope, sweep_settings)
    for decision in acted:
        resource = by_id[decision.resource_id]
        assert in_scope(resource, sweep_settings.scope_tag)
        assert not tags.protects(resource.tags.get(tags.PERSISTENT))
        assert not younger_than_min_age(resource, sweep_settings.min_age, NOW)
        mark = resource.tags.get(tags.CLEANUP_AFTER)
        assert mark is not None and mark != "garbage" and format_instant(NOW) >= mark  # never before the grace period
        if decision.resource_type == "volume":
            assert not resource.attachments
        if decision.resource_type == "snapshot":
            assert decision.resource_id not in ami_snapshots
            assert not resource.description.startswith("This snapshot is created by the AWS Backup service")
        if decision.resource_type == "instance" and resource.state == "running":
            assert observations.training[decision.resource_id].status is Training.IDLE
    for decision in plan.decisions:
        if decision.action in ("mark", "unmark"):
            assert in_scope(by_id[decision.resource_id], sweep_settings.scope_tag)  # never a write outside scope
