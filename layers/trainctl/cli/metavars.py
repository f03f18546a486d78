"""Conventional metavars in every command's help: `--region REGION`, `--size N`, `VOLUME_ID`, never a Python type."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.core import TyperArgument, TyperOption

# Where an option's name says less than its value's form does.
NAMED = {
    "at": "ISO8601",
    "since": "WHEN",
    "noticed_after": "DURATION",
    "timeout": "DURATION",
    "pre_warm": "S3_URI",
    "mount_point": "PATH",
    "volume_type": "TYPE",
    "graph_format": "FORMAT",
    "description": "TEXT",
    "owner": "NAME",
}


class ConventionalArgument(TyperArgument):
    """An argument shown by its name in capitals, in the usage line and the arguments panel, without a type."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def _usage_display_name(self) -> str:
        name = self.display_name_raw
        return name if self.required else f"[{name}]"


def metavar_of(option: TyperOption) -> str:
    """Flags take no value; a number is N, a file FILE, anything else is named for what it is."""
    if option.is_flag:
        return ""
    annotation = option.type_descriptor.annotation
    if annotation is int:
        return "N"
    if annotation is Path:
        return "FILE"
    return NAMED.get(option.name or "", (option.name or "value").upper())


class _HelpNames:
    """All that making the help option reads of its context: the names it answers to."""

    def __init__(self, names: list[str]) -> None:
        self.help_option_names = names


def conventional_metavars(command: Any, help_option_names: list[str]) -> None:
    """Give every parameter of the command tree its conventional metavar, once; explicit ones are kept."""
    if getattr(command, "_conventional_metavars", False):
        return
    command._conventional_metavars = True
    # The help option is made on first use; made now, with the root's names, it gets its metavar too.
    command.get_help_option(_HelpNames(help_option_names))
    for param in [*command.params, command._help_option]:
        if isinstance(param, TyperArgument) and not isinstance(param, ConventionalArgument):
            param.__class__ = ConventionalArgument
            param.metavar = param.metavar or (param.name or "value").upper()
        elif isinstance(param, TyperOption) and param.metavar is None:
            param.metavar = metavar_of(param)
    for sub in getattr(command, "commands", {}).values():
        conventional_metavars(sub, help_option_names)
