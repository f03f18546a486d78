from datetime import timedelta

import pytest

from trainctl.core.errors import SettingsError
from trainctl.core.settings import SweepSettings, age_guard_env_names, cost_env_names, env_names, spot_env_names


def test_defaults_are_safe() -> None:
    settings = SweepSettings.from_env({})
    assert settings.dry_run is True
    assert settings.min_age == timedelta(minutes=5)
    assert settings.grace_period == timedelta(hours=24)


def test_reads_trainctl_variables() -> None:
    settings = SweepSettings.from_env(
        {
            "TRAINCTL_MIN_AGE": "0s",
            "TRAINCTL_GRACE_PERIOD": "2h",
            "TRAINCTL_REGIONS": "us-east-1, eu-west-1",
            "TRAINCTL_DRY_RUN": "false",
            "TRAINCTL_IDLE_ACTION": "terminate",
        }
    )
    assert settings.min_age == timedelta(0)
    assert settings.grace_period == timedelta(hours=2)
    assert settings.regions == ("us-east-1", "eu-west-1")
    assert settings.dry_run is False
    assert settings.idle_action == "terminate"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TRAINCTL_GRACE_PERIOD", "soon"),
        ("TRAINCTL_MIN_AGE", "5 minutes"),
        ("TRAINCTL_GRACE_PERIOD", "0s"),
        ("TRAINCTL_REGIONS", "us-east-1;rm -rf /"),
        ("TRAINCTL_DRY_RUN", "perhaps"),
        ("TRAINCTL_MAX_ACTION_SHARE", "2"),
        ("TRAINCTL_IDLE_ACTION", "delete"),
        ("TRAINCTL_TRAINING_PROCESS_PATTERNS", "train.py;$(reboot)"),
        ("TRAINCTL_TRAINING_PID_FILE", "relative/path"),
        # Issue 17 item 7: no `.` or `..` segment, and `$` no longer lets a trailing newline through.
        ("TRAINCTL_TRAINING_PID_FILE", "/var/run/../../etc/shadow"),
        ("TRAINCTL_TRAINING_PID_FILE", "/var/run/./train.pid"),
        ("TRAINCTL_TRAINING_PID_FILE", "/var/run/train.pid\n"),
    ],
)
def test_an_invalid_setting_is_a_clear_error_naming_it(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        SweepSettings.from_env({variable: value})


def test_every_field_has_a_documented_variable() -> None:
    readme = (__import__("pathlib").Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [
        name
        for name in {*env_names(), *age_guard_env_names(), *cost_env_names(), *spot_env_names()}
        if name not in readme
    ]
    assert missing == []


def test_age_guard_settings_read_owner_map_and_scope_rules() -> None:
    from trainctl.core.settings import AgeGuardSettings

    settings = AgeGuardSettings.from_env(
        {
            "TRAINCTL_OWNER_MAP": '{"arn:aws:iam::*:role/ML*": "ml-team"}',
            "TRAINCTL_SCOPE_PRINCIPALS": "arn:aws:iam::*:role/ML*, arn:aws:iam::*:user/ci",
            "TRAINCTL_SCOPE_FROM_TAG": "team=ml",
            "TRAINCTL_ACCOUNT_ID": "123456789012",
        }
    )
    assert settings.owner_map == {"arn:aws:iam::*:role/ML*": "ml-team"}
    assert settings.scope_principals == ("arn:aws:iam::*:role/ML*", "arn:aws:iam::*:user/ci")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TRAINCTL_OWNER_MAP", "{not json"),
        ("TRAINCTL_OWNER_MAP", "[1, 2]"),
        ("TRAINCTL_ACCOUNT_ID", "12345"),
        ("TRAINCTL_SCOPE_FROM_TAG", "no-equals-sign"),
    ],
)
def test_bad_age_guard_settings_name_themselves(variable: str, value: str) -> None:
    from trainctl.core.settings import AgeGuardSettings

    with pytest.raises(SettingsError, match=variable):
        AgeGuardSettings.from_env({variable: value})


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TRAINCTL_SPOT_HOOKS", "default,$(reboot)"),
        ("TRAINCTL_SPOT_DEFAULT_HOOK", "unlisted"),
        ("TRAINCTL_SPOT_SIGNAL", "SIGKILL"),
        ("TRAINCTL_SPOT_CHECKPOINT_S3_URI", "s3://x; rm -rf /"),
        ("TRAINCTL_SPOT_CHECKPOINT_DIR", "relative/path"),
        ("TRAINCTL_SPOT_CHECKPOINT_DIR", "/opt/ckpt/../../root"),
        ("TRAINCTL_SPOT_CHECKPOINT_S3_URI", "s3://team-checkpoints/runs/../other-team/"),
        ("TRAINCTL_SPOT_CHECKPOINT_S3_URI", "s3://team-checkpoints/runs/\n"),
        ("TRAINCTL_SPOT_DEFAULT_HOOK", "default\n"),
        ("TRAINCTL_RECOVERY_MAX_ATTEMPTS", "0"),
    ],
)
def test_spot_settings_refuse_what_could_reach_a_shell(variable: str, value: str) -> None:
    from trainctl.core.errors import SettingsError
    from trainctl.core.settings import SpotSettings

    with pytest.raises(SettingsError, match="invalid setting"):
        SpotSettings.from_env({variable: value})
