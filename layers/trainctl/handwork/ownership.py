"""Whose a resource is, for work by hand: a resource outside the scope, or someone else's, needs the waiver that
names it (`--allow-out-of-scope`, `--allow-other-owner`), and a waived problem is still shown before anyone says
yes. Pure: tags and names in, problems out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from trainctl.core import tags
from trainctl.core.protections import in_scope
from trainctl.core.resources import Resource
from trainctl.core.text import one_line

ALLOW_OUT_OF_SCOPE = "--allow-out-of-scope"
ALLOW_OTHER_OWNER = "--allow-other-owner"


@dataclass(frozen=True)
class Problem:
    """Why a hand operation would hurt; `waiver` is the flag that allows it anyway, None when nothing does."""

    text: str
    waiver: str | None = None

    def __str__(self) -> str:
        return f"{self.text}: {self.waiver} to go ahead" if self.waiver else self.text


@dataclass(frozen=True)
class Waivers:
    """The waivers a person gave, by flag name."""

    given: frozenset[str] = frozenset()

    @classmethod
    def of(cls, *, allow_out_of_scope: bool = False, allow_other_owner: bool = False) -> Waivers:
        return cls(
            frozenset(
                flag
                for flag, given in ((ALLOW_OUT_OF_SCOPE, allow_out_of_scope), (ALLOW_OTHER_OWNER, allow_other_owner))
                if given
            )
        )

    def covers(self, problem: Problem) -> bool:
        return problem.waiver is not None and problem.waiver in self.given

    def unwaived(self, problems: Iterable[Problem]) -> list[Problem]:
        return [p for p in problems if not self.covers(p)]

    def waived(self, problems: Iterable[Problem]) -> list[Problem]:
        return [p for p in problems if self.covers(p)]


def out_of_scope(resource: Resource, scope_tag: str, subject: str = "it") -> list[Problem]:
    if in_scope(resource, scope_tag):
        return []
    return [Problem(f"{subject} is outside trainctl's scope (no {scope_tag}=true)", ALLOW_OUT_OF_SCOPE)]


def other_owner(resource: Resource, me: str | None, subject: str = "its owner") -> list[Problem]:
    """Another owner's tag names the resource (no tag: nobody's, no problem)."""
    holder = resource.tags.get(tags.OWNER)
    if not holder or holder == me:
        return []
    return [Problem(f"{subject} is {one_line(holder, 64)}, not {one_line(me, 64) if me else 'you'}", ALLOW_OTHER_OWNER)]


def ownership(resource: Resource, *, me: str | None, scope_tag: str) -> list[Problem]:
    """What a destructive hand command needs a waiver for: a resource outside the scope, or another's."""
    return [*out_of_scope(resource, scope_tag), *other_owner(resource, me)]
