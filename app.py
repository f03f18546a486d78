#!/usr/bin/env python3
"""CDK entry point: the trainctl stack from typed settings in cdk.json context, checked by cdk-nag."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks, ServerlessChecks

# The domain package lives in layers/; an editable install finds it too, this keeps a bare checkout working.
sys.path.insert(0, str(Path(__file__).resolve().parent / "layers"))

from infra.config import CONTEXT_KEY, load_config
from infra.stack import TrainctlStack
from trainctl.core.errors import SettingsError
from trainctl.core.names import STACK_NAME


def build_app(context: dict[str, object] | None = None, outdir: str | None = None) -> cdk.App:
    app = cdk.App(context=context, outdir=outdir)
    # cdk-nag 3 runs as a validation plugin: synth fails on any finding not acknowledged with a reason.
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(), ServerlessChecks())
    region = os.environ.get("CDK_DEFAULT_REGION")
    config = load_config(app.node.try_get_context(CONTEXT_KEY), default_region=region)
    TrainctlStack(
        app,
        STACK_NAME,
        config=config,
        env=cdk.Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=region),
        description="trainctl: a guardrail for ML training on AWS",
    )
    return app


if __name__ == "__main__":
    try:
        build_app().synth()
    except SettingsError as exc:
        sys.exit(f"trainctl: {exc}")
