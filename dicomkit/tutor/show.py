"""Screen helpers every lesson module shares: marks, fact tables, panels, tags, expected failures."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from dicomkit import ui
from dicomkit.errors import DicomkitError


def ok_mark(flag: bool) -> str:
    return ui.OK if flag else ui.FAIL


def mark(flag: bool) -> str:
    """For table cells, which are shown as plain text."""
    return "✓" if flag else "✗"


def facts(title: str, rows: list[list[str]]) -> Any:
    """A two-column table of facts: no header row (there is nothing to name)."""
    table = ui.table(title, ["", ""], rows)
    table.show_header = False
    return table


def panel(body: str, title: str, style: str = "blue") -> Any:
    from rich.panel import Panel

    return Panel(body, title=title, border_style=style, expand=False)


def tag(keyword: str) -> str:
    from pydicom.datadict import tag_for_keyword

    number = tag_for_keyword(keyword) or 0
    return f"({number >> 16:04X},{number & 0xFFFF:04X})"


@contextlib.contextmanager
def expected_failures() -> Iterator[None]:
    """pynetdicom logs rejections at ERROR; here they are the lesson, shown in its own table."""
    logger = logging.getLogger("pynetdicom")
    before = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(before)


def attempt(fn: Callable[[], Any]) -> tuple[bool, str, float]:
    """Run a step that may fail on purpose: (ok, what happened, ms)."""
    t0 = time.perf_counter()
    try:
        with expected_failures():
            value = fn()
    except DicomkitError as exc:
        return False, exc.message, (time.perf_counter() - t0) * 1000
    return True, str(value), (time.perf_counter() - t0) * 1000


def preview(png: bytes, width: int = 48) -> Any:
    """A terminal thumbnail: two pixels per character cell with the upper-half block."""
    from io import BytesIO

    from PIL import Image
    from rich.text import Text

    img = Image.open(BytesIO(png)).convert("L")
    height = max(2, int(img.height * width / img.width / 2) * 2)
    small = img.resize((width, height))
    px = small.load()
    assert px is not None
    text = Text()
    for y in range(0, height, 2):
        for x in range(width):
            top, bottom = int(px[x, y]), int(px[x, y + 1])  # type: ignore[arg-type]
            text.append("▀", style=f"rgb({top},{top},{top}) on rgb({bottom},{bottom},{bottom})")
        text.append("\n")
    return text
