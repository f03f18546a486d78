"""Fixtures shared by the integration tests."""

from tests.integration.workflow_faults import workflow_fault

__all__ = ["workflow_fault"]
