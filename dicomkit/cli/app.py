"""The Typer application: a group that loads each command from ``cli/registry.py`` when it is
asked for, as click documents it ("Lazily Loading Subcommands": ``list_commands`` and
``get_command``). ``dicomkit echo`` imports the echo command's module only, not the tutor, the
RIS client or the lab engines. Help is click's plain text: no Rich import for ``--help``."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from dicomkit import __version__
from dicomkit.cli import common
from dicomkit.cli.registry import COMMANDS


def target(name: str) -> Any:
    """The function or ``typer.Typer`` that a registry entry names."""
    module, attr = COMMANDS[name][1].split(":")
    return getattr(importlib.import_module(module), attr)


def short_help(name: str) -> str:
    """The first line of a command's docstring (a group's Typer ``help``)."""
    obj = target(name)
    text = obj.info.help if isinstance(obj, typer.Typer) else inspect.getdoc(obj)
    return str(text or "").strip().split("\n")[0]


class LazyGroup(TyperGroup):
    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        if cmd_name not in self.commands:
            obj = target(cmd_name)
            command: Any
            if isinstance(obj, typer.Typer):
                command = typer.main.get_group(obj)
            else:
                one = typer.Typer(rich_markup_mode=None, add_completion=False)
                one.command(cmd_name)(obj)
                command = typer.main.get_command(one)
            command.name = cmd_name
            self.commands[cmd_name] = command
        return self.commands[cmd_name]

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in COMMANDS and not args[0].startswith("-"):
            from difflib import get_close_matches

            near = get_close_matches(args[0], list(COMMANDS))
            hint = f" Did you mean {', '.join(repr(m) for m in near)}?" if near else ""
            ctx.fail(f"No such command {args[0]!r}.{hint}")
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """The commands by panel, each with its docstring's first line (no command is built)."""
        panels: dict[str, list[tuple[str, str]]] = {}
        for name, (panel, _) in COMMANDS.items():
            panels.setdefault(panel, []).append((name, short_help(name)))
        for panel, rows in panels.items():
            with formatter.section(panel):
                formatter.write_dl(rows)


app = typer.Typer(
    name="dicomkit",
    cls=LazyGroup,
    help="A hands-on lab and tutor for the radiology imaging workflow: "
    "RIS -> Modality Worklist -> Modality -> PACS.\n\n"
    "Start with `dicomkit up`, then `dicomkit lesson 1`.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dicomkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    home: Annotated[
        Path | None,
        typer.Option("--home", envvar="DICOMKIT_HOME", help="Folder for the lab's state and data."),
    ] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logging.")] = 0,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    common.setup_logging(verbose)
    common.home_option(home)
