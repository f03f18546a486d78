#!/usr/bin/env python3
"""CDK entry point: the trainctl stack from typed settings in cdk.json context, checked by cdk-nag."""

from __future__ import annotations

import os
import sys

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks, ServerlessChecks

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "layers"))

from infra.config import CONTEXT_KEY, load_config  # noqa: E402
from infra.stack import TrainctlStack  # noqa: E402
from trainctl.errors import SettingsError  # noqa: E402
from trainctl.stack_resources import STACK_NAME  # noqa: E402


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
