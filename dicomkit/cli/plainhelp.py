"""``dicomkit --help`` piped, without importing Rich: the exact text Rich draws, in pure stdlib.

``cli/fasthelp.py`` draws the root help with Rich (~70-80 ms to import, ~30 ms to render). When
stdout is not a terminal Rich writes no escape codes, so the output is plain text whose layout
depends only on the width. This module reimplements just what that fixed layout needs from Rich
(Padding, Panel, Table column widths with ratio/collapse, Columns, word wrapping with folding), and
``tests/unit/test_plainhelp.py`` compares it with Rich's output for every supported width.
Anything else (a terminal, colour/terminal env overrides, an unproven width, odd characters)
returns None and the caller falls back to the Rich renderer.
"""

from __future__ import annotations

import os
import re
import sys
from itertools import pairwise
from math import ceil

from dicomkit.cli.registry import ENTRIES, NAME, ROOT_HELP, ROOT_OPTIONS

MIN_WIDTH = 34  # proven equal to Rich's output for every width in this range
MAX_WIDTH = 300

# Any of these changes what Rich (or Typer's console setup in fasthelp) would do: let Rich do it.
_OVERRIDES = (
    "FORCE_COLOR",
    "PY_COLORS",
    "GITHUB_ACTIONS",
    "_TYPER_FORCE_DISABLE_TERMINAL",
    "TTY_COMPATIBLE",
    "TTY_INTERACTIVE",
    "NO_COLOR",
    "JUPYTER_COLUMNS",
    "JUPYTER_LINES",
)
_SAFE = re.compile(r"[ -~✓▶·\n]*")  # characters of cell width 1 (rich/cells.py)
_OTHER_MARKUP = re.compile(r"\[[a-z#/@][^[]*?]")  # rich/markup.py RE_TAGS, minus [bold]
_WORD = re.compile(r"\s*\S+\s*")  # rich/_wrap.py re_word
_MARKUP = re.compile(r"\[/?bold\]")


def _divide_line(text: str, width: int, fold: bool) -> list[int]:
    """rich/_wrap.py divide_line for single-cell characters."""
    breaks: list[int] = []
    offset = 0
    pos = 0
    match = _WORD.match(text, pos)
    while match is not None:
        start, end = match.span()
        word = match.group(0)
        word_length = len(word.rstrip())
        if width - offset >= word_length:
            offset += len(word)
        elif word_length > width and not fold:
            if start:
                breaks.append(start)
            offset = len(word)
        elif word_length > width:
            chunks = [word[i : i + width] for i in range(0, len(word), width)]
            for n, chunk in enumerate(chunks):
                if start:
                    breaks.append(start)
                if n == len(chunks) - 1:
                    offset = len(chunk)
                else:
                    start += len(chunk)
        elif offset and start:
            breaks.append(start)
            offset = len(word)
        match = _WORD.match(text, end)
    return breaks


def _wrap(text: str, width: int, ellipsis: bool = True) -> list[str]:
    """Text.wrap + left justify: lines of exactly ``width`` cells. Table cells overflow with an
    ellipsis (Column.overflow), text printed directly folds (Text's default)."""
    out: list[str] = []
    for para in text.split("\n"):
        offsets = _divide_line(para, width, fold=not ellipsis)
        bounds = [0, *offsets, len(para)]
        for a, b in pairwise(bounds):
            line = para[a:b]
            if len(line) > width:  # rstrip_end
                ws = len(line) - len(line.rstrip())
                line = line[: len(line) - min(ws, len(line) - width)]
            if len(line) > width:
                line = line[: width - 1] + "…" if ellipsis else line[:width]
            out.append(line.ljust(width))
    return out


# Measurements, as (minimum, maximum): rich/measure.py
def _norm(m: tuple[int, int]) -> tuple[int, int]:
    lo = min(max(0, m[0]), m[1])
    return max(0, lo), max(0, max(lo, m[1]))


def _cap(m: tuple[int, int], width: int) -> tuple[int, int]:
    return min(m[0], width), min(m[1], width)


def _get(m: tuple[int, int] | None, max_width: int) -> tuple[int, int]:
    """Measurement.get; ``m`` None for a renderable without __rich_measure__ (Columns)."""
    if max_width < 1:
        return 0, 0
    if m is None:
        return 0, max_width
    r = _cap(_norm(m), max_width)
    return (0, 0) if r[1] < 1 else _norm(r)


def _text_measure(text: str) -> tuple[int, int]:
    lines = text.splitlines()
    mx = max(len(line) for line in lines) if lines else 0
    words = text.split()
    return (max(len(w) for w in words) if words else mx), mx


def _cell_measure(text: str | None, left: int, right: int, max_width: int) -> tuple[int, int]:
    """Measurement.get(Padding(cell, (0, right, 0, left))) in a table column."""
    if max_width < 1:
        return 0, 0
    extra = left + right
    if max_width - extra < 1:
        return _get((max_width, max_width), max_width)
    lo, hi = _get(None if text is None else _text_measure(text), max_width)
    return _get(_cap((lo + extra, hi + extra), max_width), max_width)


def _ratio_reduce(
    total: int, ratios: list[int], maximums: list[int], values: list[int]
) -> list[int]:
    ratios = [r if m else 0 for r, m in zip(ratios, maximums, strict=True)]
    total_ratio = sum(ratios)
    if not total_ratio:
        return values[:]
    remaining = total
    result = []
    for ratio, maximum, value in zip(ratios, maximums, values, strict=True):
        if ratio and total_ratio > 0:
            d = min(maximum, round(ratio * remaining / total_ratio))
            result.append(value - d)
            remaining -= d
            total_ratio -= ratio
        else:
            result.append(value)
    return result


def _ratio_distribute(total: int, ratios: list[int]) -> list[int]:
    total_ratio = sum(ratios)
    remaining = total
    out = []
    for ratio in ratios:
        d = ceil(ratio * remaining / total_ratio) if total_ratio > 0 else remaining
        out.append(d)
        total_ratio -= ratio
        remaining -= d
    return out


def _collapse(widths: list[int], max_width: int) -> list[int]:
    """Table._collapse_widths with every column wrapable."""
    total = sum(widths)
    excess = total - max_width
    while total and excess > 0:
        top = max(widths)
        second = max((w if w != top else 0) for w in widths)
        diff = top - second
        ratios = [1 if w == top else 0 for w in widths]
        if not diff:
            break
        widths = _ratio_reduce(excess, ratios, [min(excess, diff)] * len(widths), widths)
        total = sum(widths)
        excess = total - max_width
    return widths


_PADS = [(0, 1), (1, 1), (1, 1), (1, 1), (1, 1), (1, 0)]  # options table (left, right)


def _options_widths(cells: list[list[str | None]], max_width: int) -> list[int]:
    """Table._calculate_column_widths for the options table (6 auto columns, expand)."""

    def measure(col: int, mw: int) -> tuple[int, int]:
        if mw < 1:
            return 0, 0
        left, right = _PADS[col]
        ms = [_cell_measure(row[col], left, right, mw) for row in cells]
        return _cap((max(m[0] for m in ms), max(m[1] for m in ms)), mw)

    widths = [measure(c, max_width)[1] or 1 for c in range(6)]
    if sum(widths) > max_width:
        widths = _collapse(widths, max_width)
        if sum(widths) > max_width:
            widths = _ratio_reduce(sum(widths) - max_width, [1] * 6, widths, widths)
        widths = [measure(c, w)[1] or 0 for c, w in enumerate(widths)]
    table_width = sum(widths)
    if table_width < max_width:
        pads = _ratio_distribute(max_width - table_width, widths)
        widths = [w + p for w, p in zip(widths, pads, strict=True)]
    return widths


def _columns(items: list[str], width: int) -> list[str]:
    """rich.columns.Columns of 1-2 Text items in ``width`` cells (lines not padded)."""
    ws = [_get(_text_measure(t), width)[1] for t in items]
    if len(items) == 2 and ws[0] + ws[1] + 1 <= width:
        return [items[0].ljust(ws[0]) + " " + items[1].ljust(ws[1])]
    col = max(ws)  # one column: Table.grid, not expanded
    return [line for t in items for line in _wrap(t, col)]


def _row(cells: list[list[str]], widths: list[int], pads: list[tuple[int, int]]) -> list[str]:
    height = max(len(c) for c in cells)
    lines = []
    for i in range(height):
        parts = []
        for c, w, (left, right) in zip(cells, widths, pads, strict=True):
            inner = w - left - right
            text = c[i].ljust(inner) if i < len(c) else " " * inner
            parts.append(" " * left + text + " " * right)
        lines.append("".join(parts))
    return lines


def _panel(title: str, lines: list[str], width: int) -> list[str]:
    head = f" {title} "
    top = "╭─" + head + "─" * (width - len(head) - 4) + "─╮"
    return [top, *(f"│ {line} │" for line in lines), "╰" + "─" * (width - 2) + "╯"]


def render(width: int) -> str:
    """The root help as Rich prints it to a non-terminal ``width`` cells wide."""
    inner = width - 2
    out = [" " * width]
    out += [
        f" {line} " for line in _wrap(f"Usage: {NAME} [OPTIONS] COMMAND [ARGS]...", inner, False)
    ]
    out.append(" " * width)
    first, *rest = ROOT_HELP.split("\n\n")
    paras = [_MARKUP.sub("", first.strip())]
    if rest:
        paras += ["", _MARKUP.sub("", "\n\n".join(rest))]
    out += [f" {line} " for p in paras for line in _wrap(p, inner, False)]
    out.append(" " * width)

    body = width - 4
    rows = [
        [o.long, o.short, "", "", o.metavar, [o.help, o.extra] if o.extra else [o.help]]
        for o in ROOT_OPTIONS
    ]
    cells: list[list[str | None]] = [[*r[:5], None] for r in rows]  # type: ignore[list-item]
    widths = _options_widths(cells, body)
    lines: list[str] = []
    for r in rows:
        rendered = [_wrap(str(r[c]), widths[c] - sum(_PADS[c])) for c in range(5)]
        rendered.append(_columns(list(r[5]), widths[5] - 1))
        lines += _row(rendered, widths, _PADS)
    out += _panel("Options", lines, width)

    name_width = max(len(e.name) for e in ENTRIES)
    panels: dict[str, list[tuple[str, str]]] = {"Commands": []}
    for e in ENTRIES:
        panels.setdefault(e.panel, []).append((e.name, e.help))
    cmd_widths = [name_width + 1, max(2, body - name_width - 1)]
    cmd_pads = [(0, 1), (1, 0)]
    for title, entries in panels.items():
        if not entries:
            continue
        lines = []
        for name, text in entries:
            desc = _wrap(_MARKUP.sub("", text), cmd_widths[1] - 1)
            lines += _row([[name], desc], cmd_widths, cmd_pads)
        out += _panel(title, lines, width)
    return "\n".join(out) + "\n\n"


def _texts() -> list[str]:
    return [ROOT_HELP, *(e.help for e in ENTRIES), *(e.name for e in ENTRIES)] + [
        f for o in ROOT_OPTIONS for f in o
    ]


def _supported() -> bool:
    """Only [bold] markup (dropped here) and single-cell characters; anything else goes to Rich."""
    markup = [ROOT_HELP, *(e.help for e in ENTRIES), *(o.help for o in ROOT_OPTIONS)]
    return all(_SAFE.fullmatch(t) for t in _texts()) and not any(
        _OTHER_MARKUP.search(_MARKUP.sub("", t)) or "\\[" in t for t in markup
    )


def plain_width(environ: dict[str, str] | os._Environ[str] = os.environ) -> int | None:
    """The width Rich would use for a piped stdout, or None when this module must not answer."""
    if sys.platform == "win32" or any(k in environ for k in _OVERRIDES):
        return None
    if environ.get("TERM", "").lower() in ("dumb", "unknown"):
        return None
    try:
        if sys.stdout.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    tw = environ.get("TERMINAL_WIDTH")  # fasthelp passes it to Console(width=...)
    if tw is not None:
        width = int(tw) if tw.isdigit() else -1
    else:
        columns = environ.get("COLUMNS")
        if columns is not None and columns.isdigit():
            width = int(columns)  # Console.__init__ (legacy_windows is False off Windows)
        else:
            width = 0  # Console.size: the first of stdin/stdout/stderr that has a size
            for fd in (0, 1, 2):
                try:
                    width = os.get_terminal_size(fd)[0]
                except (AttributeError, ValueError, OSError):
                    continue
                break
            width = width or 80
    if not MIN_WIDTH <= width <= MAX_WIDTH:
        return None
    return width


def print_root_help() -> bool:
    """Print the help and return True, or return False to let the Rich renderer do it."""
    try:
        width = plain_width()
        if width is None or not _supported():
            return False
        text = render(width)
    except Exception:
        return False
    sys.stdout.write(text)  # outside the try: a failed write must not print the help twice
    return True
