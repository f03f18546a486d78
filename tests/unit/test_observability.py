"""Handlers import the X-Ray SDK only where the deployment traces AWS calls: it costs 150-250 ms of cold start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainctl.aws.observability import TRACE_AWS_CALLS, Untraced, handler_tracer

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/handler.py"))


def test_untraced_leaves_the_handler_as_it_is() -> None:
    def handler(event: dict[str, object], context: object) -> str:
        return "ran"

    decorated = handler_tracer({}).capture_lambda_handler(capture_response=False)(handler)
    assert decorated is handler


def test_the_deployment_switch_builds_powertools_tracer() -> None:
    from aws_lambda_powertools import Tracer

    assert isinstance(handler_tracer({TRACE_AWS_CALLS: "true"}), Tracer)
    assert isinstance(handler_tracer({TRACE_AWS_CALLS: "false"}), Untraced)


@pytest.mark.parametrize("function", HANDLERS)
def test_a_cold_handler_imports_the_xray_sdk_only_when_asked(function: str) -> None:
    probe = "import sys, handler; print('aws_xray_sdk' in sys.modules)"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "functions" / function), str(ROOT / "layers")]),
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    env.pop(TRACE_AWS_CALLS, None)
    untraced = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    traced = subprocess.run(
        [sys.executable, "-c", probe], env={**env, TRACE_AWS_CALLS: "true"}, capture_output=True, text=True, check=True
    )
    assert untraced.stdout.split()[-1] == "False"
    assert traced.stdout.split()[-1] == "True"
