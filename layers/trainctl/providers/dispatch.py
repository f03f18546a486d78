"""Which provider's room serves a run: its settings, and its client with the key running its sweep.

Written once for the command line and the provider_sweep handler. Each provider's room loads only when that
provider is asked for, so an AWS-only run, or the other provider's, does not pay for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from trainctl.core.clock import Clock
from trainctl.core.sweep_settings import SweepSettings

if TYPE_CHECKING:  # only named: each room is imported by the call that needs it
    from trainctl.aws.notifications import Notifier
    from trainctl.lyceum.settings import LyceumSettings
    from trainctl.providers.sweep import ProviderLedger, ProviderSweepResult
    from trainctl.runpod.settings import RunpodSettings


def provider_settings(provider: str, environ: Mapping[str, str]) -> RunpodSettings | LyceumSettings:
    """The provider's own settings ("runpod", else Lyceum's), from the same environment variables everywhere."""
    if provider == "runpod":
        # Cold start: RunPod's room only when RunPod is asked for.
        from trainctl.runpod.settings import RunpodSettings

        return RunpodSettings.from_env(environ)
    # Cold start: Lyceum's room only when Lyceum is asked for.
    from trainctl.lyceum.settings import load_lyceum_settings

    return load_lyceum_settings(environ)


def run_provider_sweep(
    provider: str,
    chosen: RunpodSettings | LyceumSettings,
    key: str,
    settings: SweepSettings,
    clock: Clock,
    *,
    ledger: ProviderLedger | None,
    notifier: Notifier | None,
    deadline: float | None = None,
) -> ProviderSweepResult:
    """Connect with the key and run that provider's sweep."""
    if provider == "runpod":
        # Cold start: RunPod's client and run only when RunPod is swept.
        from trainctl.runpod.client import connect
        from trainctl.runpod.run import run_runpod_sweep
        from trainctl.runpod.settings import RunpodSettings

        assert isinstance(chosen, RunpodSettings)
        client = connect(chosen, key)
        return run_runpod_sweep(client, chosen, settings, clock, ledger=ledger, notifier=notifier, deadline=deadline)
    # Cold start: Lyceum's client and run only when Lyceum is swept.
    from trainctl.lyceum.client import LyceumClient
    from trainctl.lyceum.run import run_lyceum_sweep
    from trainctl.lyceum.settings import LyceumSettings

    assert isinstance(chosen, LyceumSettings)
    lyceum = LyceumClient.connect(chosen.lyceum_api_url, key)
    return run_lyceum_sweep(lyceum, chosen, settings, clock, ledger=ledger, notifier=notifier, deadline=deadline)
