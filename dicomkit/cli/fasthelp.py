"""``dicomkit --help`` without importing Typer or any command: the same panels Typer draws
(typer/rich_utils.py, same Rich primitives and styles), drawn from ``cli/registry.py``.

Typer and the command modules cost ~0.25 s to import on a 2-core machine; a user typing
``dicomkit`` or ``dicomkit --help`` should not wait for them. A unit test renders the help both
ways at several widths and requires identical text.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import IO

from rich.columns import Columns
from rich.console import Console
from rich.highlighter import RegexHighlighter
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.theme import Theme

from dicomkit.cli.registry import (
    ENTRIES,
    HELP_STYLES,
    NAME,
    OPTION_HIGHLIGHTS,
    ROOT_HELP,
    ROOT_OPTIONS,
    TYPES_HIGHLIGHTS,
)


class _OptionHighlighter(RegexHighlighter):
    highlights = list(OPTION_HIGHLIGHTS)  # noqa: RUF012 - Typer's OptionHighlighter


class _TypesHighlighter(RegexHighlighter):
    highlights = list(TYPES_HIGHLIGHTS)  # noqa: RUF012


def _console(file: IO[str] | None = None, width: int | None = None) -> Console:
    # Typer's console: TERMINAL_WIDTH caps the width; FORCE_COLOR / PY_COLORS / GITHUB_ACTIONS
    # force a terminal, _TYPER_FORCE_DISABLE_TERMINAL disables it.
    env_width = os.environ.get("TERMINAL_WIDTH")
    force: bool | None = (
        True
        if os.environ.get("GITHUB_ACTIONS")
        or os.environ.get("FORCE_COLOR")
        or os.environ.get("PY_COLORS")
        else None
    )
    if os.environ.get("_TYPER_FORCE_DISABLE_TERMINAL"):
        force = False
    return Console(
        theme=Theme(HELP_STYLES),
        highlighter=_OptionHighlighter(),
        color_system="auto",
        force_terminal=force,
        width=width or (int(env_width) if env_width and env_width.isdigit() else None),
        file=file,
    )


def _panel(table: Table, title: str) -> Panel:
    return Panel(table, border_style="dim", title=title, title_align="left")


def _table(highlight: bool = True) -> Table:
    return Table(
        highlight=highlight,
        show_header=False,
        expand=True,
        box=None,
        show_lines=False,
        leading=0,
        border_style=None,
        row_styles=None,
        pad_edge=False,
        padding=(0, 1),
    )


def render(console: Console) -> None:
    hl = _OptionHighlighter()
    console.print(Padding(hl(f"Usage: {NAME} [OPTIONS] COMMAND [ARGS]..."), 1), style="bold")
    first, *rest = ROOT_HELP.split("\n\n")
    parts: list[Text] = [hl(Text.from_markup(first.strip()))]
    if rest:
        parts += [Text(""), hl(Text.from_markup("\n\n".join(rest), style="dim"))]
    from rich.console import Group

    console.print(Padding(Group(*parts), (0, 1, 1, 1)))

    options = _table()
    types = _TypesHighlighter()
    neg = _OptionHighlighter()  # only ever given "" here (no negative options at the root)
    for opt in ROOT_OPTIONS:
        help_items: list[Text] = [hl(Text.from_markup(opt.help))]
        if opt.extra:
            style = "dim yellow" if opt.extra.startswith("[env var") else "dim"
            help_items.append(Text(opt.extra, style=style))
        options.add_row(
            hl(opt.long),
            hl(opt.short),
            neg(""),
            neg(""),
            types(Text(opt.metavar, style="bold yellow", overflow="fold")),
            Columns(help_items),
        )
    console.print(_panel(options, "Options"))

    width = max(len(e.name) for e in ENTRIES)
    panels: dict[str, list[tuple[str, str]]] = {"Commands": []}
    for e in ENTRIES:
        panels.setdefault(e.panel, []).append((e.name, e.help))
    for title, rows in panels.items():
        if not rows:
            continue
        table = _table(highlight=False)
        table.add_column(style="bold cyan", no_wrap=True, width=width)
        table.add_column("Description", justify="left", no_wrap=False, ratio=10)
        for name, text in rows:
            table.add_row(Text(name), hl(Text.from_markup(text)))
        console.print(_panel(table, title))


def print_root_help(file: IO[str] | None = None, width: int | None = None) -> None:
    out = file or sys.stdout
    if not (getattr(out, "encoding", None) or "utf-8").lower().startswith("utf"):
        # e.g. a latin-1 terminal: Rich draws ASCII boxes, and ✓ ▶ · become "?" rather than
        # a UnicodeEncodeError traceback.
        with contextlib.suppress(AttributeError, ValueError):
            out.reconfigure(errors="replace")  # type: ignore[union-attr]
    render(_console(out, width))
    out.write("\n")  # click echoes Typer's (empty) help string after the panels: a last newline
