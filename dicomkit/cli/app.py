"""The Typer application. Commands are listed in ``cli/registry.py`` and built on first use:
``dicomkit echo`` imports the echo command's module only, not the tutor, the RIS client or
the lab engines (each costs tens of milliseconds on every run)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from dicomkit import __version__
from dicomkit.cli import common
from dicomkit.cli.registry import BY_NAME, ENTRIES, ROOT_HELP, Entry

_click = typer.main._click if hasattr(typer.main, "_click") else __import__("click")


def build(entry: Entry) -> Any:
    """The click command (or group) for one registry entry."""
    obj = getattr(importlib.import_module(f"dicomkit.cli.{entry.module}"), entry.attr)
    if isinstance(obj, typer.Typer):
        command = typer.main.get_group(obj)  # a group even with one command (worklist find)
        command.name = entry.name
        return command
    one = typer.Typer(rich_markup_mode="rich", add_completion=False)
    one.command(entry.name, rich_help_panel=entry.panel)(obj)
    return typer.main.get_command(one)


class LazyCommands(MutableMapping[str, Any]):
    """The group's ``commands`` mapping: every registry name is a key; a command is built when
    it is first looked up. Typo suggestions ("Did you mean 'status'?") still see every name."""

    def __init__(self) -> None:
        self._built: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            if name not in BY_NAME:
                raise KeyError(name)
            self._built[name] = build(BY_NAME[name])
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        del self._built[name]

    def __iter__(self) -> Iterator[str]:
        yield from (e.name for e in ENTRIES)
        yield from (n for n in self._built if n not in BY_NAME)

    def __len__(self) -> int:
        return len(set(BY_NAME) | set(self._built))


class LazyGroup(TyperGroup):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = LazyCommands()

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)


app = typer.Typer(
    name="dicomkit",
    cls=LazyGroup,
    help=ROOT_HELP,
    no_args_is_help=True,
    rich_markup_mode="rich",
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
