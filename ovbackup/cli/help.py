"""``--help`` and usage lines that say what goes where: ``VM``, ``[POINT]``, ``N (1 to 16)``.

typer's stock help writes a required argument as ``{VM}``, an optional one whose metavar carries its own
brackets as ``[[POINT]]``, adds the Python type to every argument (``VM <str>``) and writes bounds as
``[x>=0.001]``. The app's command and group classes (typer's documented ``cls=`` hook) write usage lines
and the Arguments/Options sections from the parameters' public attributes instead; tests/test_help.py
reads every command's help.
"""

import re
from typing import Any

from typer.core import TyperCommand, TyperGroup

# The bounds typer appends inside the trailing [...] of an option's help ("1<=x<=16", "x>=0", "x<=9").
_BOUNDS = re.compile(r"(?P<low>-?[\d.]+)<=x<=(?P<high>-?[\d.]+)|x>=(?P<min>-?[\d.]+)|x<=(?P<max>-?[\d.]+)")


def _bounds_in_words(match: "re.Match[str]") -> str:
    if match["low"] is not None:
        return f"{match['low']} to {match['high']}"
    if match["min"] is not None:
        return f"at least {match['min']}"
    return f"at most {match['max']}"


def _plain_help(text: str) -> str:
    """Help text with typer's bounds in words (only inside the trailing [...] it appends)."""
    head, bracket, tail = text.rpartition("[")
    if not bracket or not tail.endswith("]"):
        return text
    return head + bracket + _BOUNDS.sub(_bounds_in_words, tail)


def _argument_name(param: Any) -> str:
    name = str(param.metavar or param.name.upper())
    return name + ("..." if param.nargs != 1 else "")


def _usage_piece(param: Any) -> str:
    """``VM`` (required), ``[POINT]`` (optional), ``[VM]...`` (any number)."""
    name = str(param.metavar or param.name.upper())
    piece = name if param.required else f"[{name}]"
    return piece + ("..." if param.nargs != 1 else "")


class _PlainHelp:
    """Usage pieces and the Arguments/Options sections (a mixin for typer's command and group)."""

    options_metavar: str | None

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):  # type: ignore[attr-defined]
            if param.param_type_name == "argument":
                pieces.append(_usage_piece(param))
        return pieces

    def format_parameters(self, ctx: Any, formatter: Any) -> None:
        arguments: list[tuple[str, str]] = []
        options: list[tuple[str, str]] = []
        for param in self.get_params(ctx):  # type: ignore[attr-defined]
            record = param.get_help_record(ctx)
            if record is None:
                continue
            name, text = record
            if param.param_type_name == "argument":
                arguments.append((_argument_name(param), _plain_help(text)))
            else:
                options.append((name, _plain_help(text)))
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


class Command(_PlainHelp, TyperCommand):
    """Every ovbackup command (``app.command(name, cls=Command)``)."""

    def format_options(self, ctx: Any, formatter: Any) -> None:
        self.format_parameters(ctx, formatter)


class Group(_PlainHelp, TyperGroup):
    """ovbackup and its command groups (``typer.Typer(cls=Group)``)."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [*super().collect_usage_pieces(ctx), self.subcommand_metavar]

    def format_options(self, ctx: Any, formatter: Any) -> None:
        self.format_parameters(ctx, formatter)
        self.format_commands(ctx, formatter)
