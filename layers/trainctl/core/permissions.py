"""IAM actions declared beside the code that calls them, in the manner of Cloud Custodian's actions.

Every module that calls AWS says which actions it needs in a module-level `PERMISSIONS`. A function's policy
is built from the declarations of the modules its handler runs; a test records every call the integration
tests make and fails on one its module did not declare, and another fails on a policy action no code declares.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

_ACTION = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9]+$")


@dataclass(frozen=True, slots=True)
class Permissions:
    """The IAM actions a piece of code calls, declared beside it."""

    actions: frozenset[str] = frozenset()

    def __or__(self, other: Permissions) -> Permissions:
        return Permissions(self.actions | other.actions)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.actions))

    def __contains__(self, action: object) -> bool:
        return action in self.actions

    def of_service(self, service: str) -> list[str]:
        return sorted(a for a in self.actions if a.startswith(f"{service}:"))


def needs(*actions: str) -> Permissions:
    for action in actions:
        if not _ACTION.match(action):
            raise ValueError(f"{action!r} is not an IAM action such as ec2:DescribeInstances")
    return Permissions(frozenset(actions))


def union(declarations: Iterable[Permissions]) -> Permissions:
    merged: frozenset[str] = frozenset()
    for declaration in declarations:
        merged |= declaration.actions
    return Permissions(merged)
