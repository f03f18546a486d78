from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from infra.node_banner import silence_node_end_of_life

silence_node_end_of_life(os.environ)  # before any test starts the CDK's Node process

ACCOUNT = "123456789012"
REGION = "us-east-1"


def synth(outdir: Path, context: dict[str, Any]) -> dict[str, Any]:
    import aws_cdk as cdk

    import app as cdk_app

    os.environ["CDK_DEFAULT_ACCOUNT"] = ACCOUNT
    os.environ["CDK_DEFAULT_REGION"] = REGION
    application = cdk_app.build_app(context, outdir=str(outdir))
    assembly = application.synth()
    stack = assembly.get_stack_by_name("Trainctl")
    assert isinstance(application, cdk.App)
    template: dict[str, Any] = json.loads(Path(assembly.directory, stack.template_file).read_text())
    return template


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    outdir = tmp_path_factory.mktemp("cdk.out")
    context = {
        "trainctl": {"dry_run": True, "regions": ["us-east-1", "eu-west-1"], "notification_email": "ml@example.com"}
    }
    return synth(outdir, context), outdir
