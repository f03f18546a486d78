#!/usr/bin/env python3
"""CDK entry point: the trainctl stack from typed settings in cdk.json context, checked by cdk-nag.

The same settings are read and validated however synth runs: the CDK CLI hands cdk.json's context to the app
(CDK_CONTEXT_JSON); `python app.py` (make synth) reads cdk.json itself.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

# The domain package lives in layers/; an editable install finds it too, this keeps a bare checkout working.
sys.path.insert(0, str(Path(__file__).resolve().parent / "layers"))

from infra.config import CONTEXT_KEY, load_config
from infra.node_banner import silence_node_end_of_life
from trainctl.core.errors import SettingsError
from trainctl.core.names import STACK_NAME

if TYPE_CHECKING:
    import aws_cdk as cdk

# Set by the CDK CLI when it runs the app: the context it merged from cdk.json, cdk.context.json and -c.
CLI_CONTEXT = ("CDK_CONTEXT_JSON", "CONTEXT_OVERFLOW_LOCATION_ENV")


def cdk_json_context(environ: Mapping[str, str], directory: Path) -> dict[str, Any] | None:
    """cdk.json's context when no CDK CLI gave one; None when the CLI did or there is no cdk.json."""
    if any(name in environ for name in CLI_CONTEXT):
        return None
    path = directory / "cdk.json"
    if not path.is_file():
        return None
    try:
        context = json.loads(path.read_text(encoding="utf-8")).get("context", {})
    except (json.JSONDecodeError, AttributeError) as exc:
        raise SettingsError(f"{path.name} is not a JSON object with a context: {exc}") from exc
    if not isinstance(context, dict):
        raise SettingsError(f"{path.name}: context must be a JSON object")
    return context


def build_app(context: dict[str, object] | None = None, outdir: str | None = None) -> cdk.App:
    # The CDK starts its Node process when first imported: jsii reads the banner's switch then.
    silence_node_end_of_life(os.environ)
    import aws_cdk as cdk
    from cdk_nag import AwsSolutionsChecks, ServerlessChecks

    from infra.stack import TrainctlStack

    app = cdk.App(context=context, outdir=outdir)
    # cdk-nag 3 runs as a validation plugin: synth fails on any finding not acknowledged with a reason.
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(), ServerlessChecks())
    region = os.environ.get("CDK_DEFAULT_REGION")
    config = load_config(app.node.try_get_context(CONTEXT_KEY), default_region=region)
    TrainctlStack(
        app,
        STACK_NAME,
        config=config,
        # No account (no credentials, or ones the CLI could not verify): the template uses AWS::AccountId.
        env=cdk.Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT") or None, region=region),
        description="trainctl: a guardrail for ML training on AWS",
    )
    return app


if __name__ == "__main__":
    try:
        build_app(cdk_json_context(os.environ, Path.cwd())).synth()
    except SettingsError as exc:
        sys.exit(f"trainctl: {exc}")
