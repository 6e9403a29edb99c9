"""``dicomkit --help`` without importing Rich: the exact bytes Rich draws, in pure stdlib.

``cli/fasthelp.py`` draws the root help with Rich (~70-80 ms to import, ~30 ms to render). The
help's layout depends only on the width, and its colours only on a handful of fixed styles, so
this module reimplements just what that fixed layout needs from Rich: Padding, Panel, Table
column widths with ratio/collapse, Columns, word wrapping with folding, and for a terminal the
styled segments (Text spans from markup and Typer's highlighter regexes, divided per line,
combined with the cell, panel and print styles, each written as Rich writes a Segment:
``ESC[<codes>m text ESC[0m``). ``tests/unit/test_plainhelp.py`` compares it with Rich's output for
every supported width, piped and on a terminal in each of Rich's colour systems.
Anything else (colour/terminal env overrides, an unproven width, odd characters or markup, a
non-UTF-8 stdout) returns None and the caller falls back to the Rich renderer.
"""

from __future__ import annotations

import os
import re
import sys
from itertools import pairwise
from math import ceil

from dicomkit.cli.registry import (
    ENTRIES,
    HELP_STYLES,
    NAME,
    OPTION_HIGHLIGHTS,
    ROOT_HELP,
    ROOT_OPTIONS,
    TYPES_HIGHLIGHTS,
)

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
_EMOJI = re.compile(r"(:(\S*?)(?:(?:\-)(emoji|text))?:)")  # rich/_emoji_replace.py


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


# Styles as Rich combines and writes them, for the few Typer uses: (bold, dim, SGR colour code).
Style = tuple[bool, bool, int]
NULL: Style = (False, False, 0)
_COLOURS = {"red": 31, "green": 32, "yellow": 33, "magenta": 35, "cyan": 36}


def _style(spec: str) -> Style:
    """Style.parse for "bold", "dim" and the standard colours (KeyError for anything else)."""
    if spec in HELP_STYLES:
        spec = HELP_STYLES[spec]
    words = spec.split()
    colours = [_COLOURS[w] for w in words if w not in ("bold", "dim")]
    if len(colours) > 1:
        raise KeyError(spec)
    return ("bold" in words, "dim" in words, colours[0] if colours else 0)


def _add(base: Style, over: Style) -> Style:
    """Style.__add__ (these styles only ever switch attributes on)."""
    return (base[0] or over[0], base[1] or over[1], over[2] or base[2])


def _sgr(text: str, style: Style) -> str:
    """Segment -> what Console writes: Style.render for a standard colour in any colour system."""
    codes = [c for c, on in (("1", style[0]), ("2", style[1])) if on]
    if style[2]:
        codes.append(str(style[2]))
    return f"\x1b[{';'.join(codes)}m{text}\x1b[0m" if codes else text


Span = tuple[int, int, Style]
Segments = list[tuple[str, Style]]


class _Text:
    """rich.text.Text reduced to what the help needs: plain text, a base style and spans."""

    def __init__(self, plain: str, style: Style = NULL, spans: list[Span] | None = None):
        self.plain, self.style, self.spans = plain, style, spans or []

    @classmethod
    def markup(cls, text: str, style: Style = NULL) -> _Text:
        """Text.from_markup for [bold]...[/bold] (``_supported`` allows no other markup)."""
        plain, spans, start, pos = "", [], -1, 0
        for m in _MARKUP.finditer(text):
            plain += text[pos : m.start()]
            pos = m.end()
            if m.group() == "[bold]":
                start = len(plain)
            else:
                spans.append((start, len(plain), _style("bold")))
        return cls(plain + text[pos:], style, spans)

    def highlight(self, patterns: tuple[str, ...]) -> _Text:
        """RegexHighlighter: a span per named group of every match, pattern by pattern."""
        spans = list(self.spans)
        for pattern in patterns:
            for m in re.finditer(pattern, self.plain):
                for name in m.groupdict():
                    start, end = m.span(name)
                    if start != -1 and end > start:
                        spans.append((start, end, _style(name)))
        return _Text(self.plain, self.style, spans)

    def divide(self, offsets: list[int]) -> list[_Text]:
        bounds = [0, *offsets, len(self.plain)]
        return [
            _Text(
                self.plain[a:b],
                self.style,
                [
                    (max(0, s - a), min(e - a, b - a), st)
                    for s, e, st in self.spans
                    if min(e - a, b - a) > max(0, s - a)
                ],
            )
            for a, b in pairwise(bounds)
        ]

    def right_crop(self, amount: int) -> None:
        end = len(self.plain) - amount
        self.spans = [(s, min(e, end), st) for s, e, st in self.spans if s < end]
        self.plain = self.plain[:-amount]

    def truncate(self, width: int, overflow: str, pad: bool = False) -> None:
        length = len(self.plain)
        if length > width:
            self.plain = (
                self.plain[: width - 1] + "…" if overflow == "ellipsis" else self.plain[:width]
            )
            self.spans = [(s, min(e, width), st) for s, e, st in self.spans if s < width]
        if pad and length < width:
            self.plain += " " * (width - length)

    def wrap(self, width: int, justify: str = "default", overflow: str = "fold") -> list[_Text]:
        """Text.wrap: split on newlines, word-wrap, crop trailing space, justify, truncate."""
        offsets = [o for m in re.finditer("\n", self.plain) for o in m.span()]
        paras = [t for t in self.divide(offsets) if t.plain != "\n"] if offsets else [self]
        lines: list[_Text] = []
        for para in paras:
            new = para.divide(_divide_line(para.plain, width, fold=overflow == "fold"))
            for line in new:
                if len(line.plain) > width:  # rstrip_end
                    ws = len(line.plain) - len(line.plain.rstrip())
                    if ws:
                        line.right_crop(min(ws, len(line.plain) - width))
            for line in new:
                line.truncate(width, overflow, pad=justify == "left")
            lines += new
        return lines

    def segments(self) -> Segments:
        """Text.render after Text.join: one segment per run between span edges; the base style
        first, then the spans in the order they were added."""
        spans = ([(0, len(self.plain), self.style)] if self.style != NULL else []) + self.spans
        if not spans:
            return [(self.plain, NULL)]
        edges = sorted({0, len(self.plain), *(o for s, e, _ in spans for o in (s, e))})
        out: Segments = []
        for a, b in pairwise(edges):
            if b > a:
                style = NULL
                for s, e, st in spans:
                    if s <= a and b <= e:
                        style = _add(style, st)
                out.append((self.plain[a:b], style))
        return out


def _styled(segments: Segments, style: Style) -> Segments:
    """Segment.apply_style: ``style`` under every segment's own."""
    return [(t, _add(style, st)) for t, st in segments] if style != NULL else segments


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


def _columns(items: list[_Text], width: int) -> list[Segments]:
    """rich.columns.Columns of 1-2 single-line Texts in ``width`` cells (lines not padded)."""
    ws = [_get(_text_measure(t.plain), width)[1] for t in items]
    if len(items) == 2 and ws[0] + ws[1] + 1 <= width:
        first, second = (t.wrap(w, "left", "ellipsis")[0] for t, w in zip(items, ws, strict=True))
        return [[*first.segments(), (" ", NULL), *second.segments()]]
    col = max(ws)  # one column: Table.grid, not expanded
    return [line.segments() for t in items for line in t.wrap(col, "left", "ellipsis")]


def _fit(segments: Segments, width: int) -> Segments:
    """Segment.adjust_line_length: pad a short line with an unstyled segment."""
    n = sum(len(t) for t, _ in segments)
    return [*segments, (" " * (width - n), NULL)] if n < width else segments


def _row(
    cells: list[list[Segments]], widths: list[int], pads: list[tuple[int, int]], styles: list[Style]
) -> list[Segments]:
    """One table row: each cell padded (Padding, then the cell's style under it), cells of fewer
    lines filled with blank lines in the cell's style (Segment.set_shape)."""
    height = max(len(c) for c in cells)
    lines = []
    for i in range(height):
        line: Segments = []
        for c, w, (left, right), style in zip(cells, widths, pads, styles, strict=True):
            if i < len(c):
                segs = [(" " * left, NULL)] if left else []
                segs += _fit(c[i], w - left - right)
                segs += [(" " * right, NULL)] if right else []
                line += _styled(segs, style)
            else:
                line.append((" " * w, style))
        lines.append(line)
    return lines


def _panel(title: str, lines: list[Segments], width: int) -> list[Segments]:
    """Panel(expand, ROUNDED, border_style="dim", title left-aligned), padding (0, 1)."""
    dim = _style("dim")
    head = f" {title} "
    fill = width - len(head) - 4
    top = [("╭─", dim), (head, dim), *([("─" * fill, dim)] if fill > 0 else []), ("─╮", dim)]
    body = [[("│", dim), (" ", NULL), *line, (" ", NULL), ("│", dim)] for line in lines]
    return [top, *body, [("╰" + "─" * (width - 2) + "╯", dim)]]


def _padded(texts: list[_Text], width: int, style: Style = NULL) -> list[Segments]:
    """Padding(texts, (0, 1)) at ``width``: Text lines (justify default) padded to the width."""
    inner = width - 2
    return [
        _styled([(" ", NULL), *_fit(line.segments(), inner), (" ", NULL)], style)
        for t in texts
        for line in t.wrap(inner)
    ]


def lines(width: int) -> list[Segments]:
    """The root help as Rich draws it ``width`` cells wide: one list of segments per line."""
    bold, dim = _style("bold"), _style("dim")
    out: list[Segments] = [[(" " * width, bold)]]  # console.print(Padding(usage, 1), style="bold")
    usage = _Text(f"Usage: {NAME} [OPTIONS] COMMAND [ARGS]...").highlight(OPTION_HIGHLIGHTS)
    out += _padded([usage], width, bold)
    out.append([(" " * width, bold)])
    first, *rest = ROOT_HELP.split("\n\n")
    parts = [_Text.markup(first.strip()).highlight(OPTION_HIGHLIGHTS)]
    if rest:
        dimmed = _Text.markup("\n\n".join(rest), dim).highlight(OPTION_HIGHLIGHTS)
        parts += [_Text(""), dimmed]
    out += _padded(parts, width)
    out.append([(" " * width, NULL)])

    body = width - 4
    cells: list[list[str | None]] = [
        [o.long, o.short, "", "", o.metavar, None] for o in ROOT_OPTIONS
    ]
    widths = _options_widths(cells, body)
    rows: list[Segments] = []
    for o in ROOT_OPTIONS:
        texts = [
            _Text(o.long).highlight(OPTION_HIGHLIGHTS),
            _Text(o.short).highlight(OPTION_HIGHLIGHTS),
            _Text(""),
            _Text(""),
        ]
        rendered = [
            [ln.segments() for ln in t.wrap(w - sum(p), "left", "ellipsis")]
            for t, w, p in zip(texts, widths, _PADS, strict=False)
        ]
        metavar = _Text(o.metavar, _style("bold yellow")).highlight(TYPES_HIGHLIGHTS)
        rendered.append([ln.segments() for ln in metavar.wrap(widths[4] - 2, "left", "fold")])
        items = [_Text.markup(o.help).highlight(OPTION_HIGHLIGHTS)]
        if o.extra:
            style = "dim yellow" if o.extra.startswith("[env var") else "dim"
            items.append(_Text(o.extra, _style(style)))
        rendered.append(_columns(items, widths[5] - 1))
        rows += _row(rendered, widths, _PADS, [NULL] * 6)
    out += _panel("Options", rows, width)

    name_width = max(len(e.name) for e in ENTRIES)
    panels: dict[str, list[tuple[str, str]]] = {"Commands": []}
    for e in ENTRIES:
        panels.setdefault(e.panel, []).append((e.name, e.help))
    cmd_widths = [name_width + 1, max(2, body - name_width - 1)]
    cmd_pads = [(0, 1), (1, 0)]
    cmd_styles = [_style("bold cyan"), NULL]
    for title, entries in panels.items():
        if not entries:
            continue
        rows = []
        for name, text in entries:
            desc = _Text.markup(text).highlight(OPTION_HIGHLIGHTS)
            rows += _row(
                [
                    [_Text(name).wrap(name_width, "left", "ellipsis")[0].segments()],
                    [ln.segments() for ln in desc.wrap(cmd_widths[1] - 1, "left", "ellipsis")],
                ],
                cmd_widths,
                cmd_pads,
                cmd_styles,
            )
        out += _panel(title, rows, width)
    return out


def render(width: int, colour: bool = False) -> str:
    """The help as Rich prints it: to a non-terminal (plain), or to a terminal (``colour``;
    the same bytes in Rich's standard, 256 and truecolor systems: Typer uses standard colours)."""
    if colour:
        text = "\n".join("".join(_sgr(t, st) for t, st in line) for line in lines(width))
    else:
        text = "\n".join("".join(t for t, _ in line) for line in lines(width))
    return text + "\n\n"


def _texts() -> list[str]:
    return [ROOT_HELP, *(e.help for e in ENTRIES), *(e.name for e in ENTRIES)] + [
        f for o in ROOT_OPTIONS for f in o
    ]


def _supported() -> bool:
    """Only [bold] markup, single-cell characters, one-line option texts and no emoji codes;
    anything else goes to Rich."""
    markup = [ROOT_HELP, *(e.help for e in ENTRIES), *(o.help for o in ROOT_OPTIONS)]
    return (
        all(_SAFE.fullmatch(t) and not _EMOJI.search(t) for t in _texts())
        and not any(_OTHER_MARKUP.search(_MARKUP.sub("", t)) or "\\[" in t for t in markup)
        and not any("\n" in f for o in ROOT_OPTIONS for f in o)
        and all(_balanced(t) for t in markup)
    )


def _balanced(text: str) -> bool:
    """[bold] and [/bold] alternate, starting with [bold] and ending closed (no nesting)."""
    tags = _MARKUP.findall(text)
    return tags == ["[bold]", "[/bold]"] * (len(tags) // 2)


def target(environ: dict[str, str] | os._Environ[str] = os.environ) -> tuple[int, bool] | None:
    """(width, terminal) as Rich would see them for stdout, or None when this module must not
    answer (Rich or Typer's console setup would do something it does not reproduce)."""
    if sys.platform == "win32" or any(k in environ for k in _OVERRIDES):
        return None
    if environ.get("TERM", "").lower() in ("dumb", "unknown"):
        return None
    try:
        terminal = sys.stdout.isatty()
        encoding = (getattr(sys.stdout, "encoding", None) or "utf-8").lower()
    except (AttributeError, ValueError):
        return None
    if not encoding.startswith("utf"):  # Rich would draw ASCII boxes
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
    return width, terminal


def print_root_help() -> bool:
    """Print the help and return True, or return False to let the Rich renderer do it."""
    try:
        found = target()
        if found is None or not _supported():
            return False
        text = render(*found)
    except Exception:
        return False
    sys.stdout.write(text)  # outside the try: a failed write must not print the help twice
    return True
