"""The one Rich console, the theme, and small helpers for panels, tables and JSON.

Human output goes to stdout through ``console``; errors and progress go to stderr through
``err_console`` so that ``--json`` leaves nothing but JSON on stdout.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # Rich loads on first use: `--json` runs and fast paths never pay for it
    from rich.console import Console
    from rich.table import Table
    from rich.theme import Theme

    THEME: Theme
    console: Console  # human output (stdout)
    err_console: Console  # errors and progress (stderr)

STYLES = {
    "ok": "bold green",
    "fail": "bold red",
    "warn": "yellow",
    "hint": "cyan",
    "muted": "grey50",
    "cmd": "bold magenta",
    "actor": "bold white on blue",
}
_LAZY = ("THEME", "console", "err_console")
_lock = threading.Lock()


def __getattr__(name: str) -> Any:
    """``THEME``, ``console`` and ``err_console`` are made on first access (PEP 562): importing
    rich.console costs ~40 ms, which a ``--json`` run or a script never needs."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _lock:
        g = globals()
        if name not in g:
            from rich.console import Console
            from rich.theme import Theme

            theme = Theme(STYLES)
            g.setdefault("THEME", theme)
            g.setdefault("console", Console(theme=theme, highlight=False))
            g.setdefault("err_console", Console(theme=theme, stderr=True, highlight=False))
        return g[name]


OK = "[ok]✓[/ok]"
FAIL = "[fail]✗[/fail]"


def print_json(data: Any) -> None:
    """Machine output: one JSON document on stdout, nothing else."""
    import json

    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def error_panel(message: str, hint: str = "") -> None:
    body = f"[fail]{escape(message)}[/fail]"
    if hint:
        body += f"\n[hint]Fix:[/hint] {escape(hint)}"
    from rich.panel import Panel

    __getattr__("err_console").print(Panel(body, title="error", border_style="red", expand=False))


def equivalent(command: str, label: str = "Equivalent") -> None:
    """Show the DCMTK / curl command that does the same thing (and whether it would run)."""
    from dicomkit.dicom.tools import shadowing_warning

    # Whole, on one line (the terminal may soft-wrap it): a command broken by hard newlines
    # fails when pasted.
    __getattr__("console").print(
        f"[muted]{label}:[/muted] [cmd]{escape(command)}[/cmd]", soft_wrap=True
    )
    warning = shadowing_warning(command)
    if warning:
        __getattr__("err_console").print(f"[warn]{escape(warning)}[/warn]")


def table(
    title: str, columns: list[str], rows: list[list[Any]], whole: tuple[str, ...] = ()
) -> Table:
    """A table that folds long cells rather than cutting them short; the ``whole`` columns
    (addresses, UIDs to copy) are never broken: the others make room."""
    from rich.table import Table

    t = Table(title=title, title_justify="left", show_lines=False)
    for c in columns:
        t.add_column(c, overflow="fold", no_wrap=c in whole)
    for r in rows:
        t.add_row(*[escape("" if v is None else str(v)) for v in r])
    return t


def escape(text: str) -> str:
    from rich.markup import escape as _escape

    return _escape(text)
