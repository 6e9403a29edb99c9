"""plainhelp (no Rich) must print exactly what fasthelp's Rich renderer prints, at every width
it answers for; everywhere else the Rich renderer must answer."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from dicomkit.cli import fasthelp, plainhelp


def rich_plain(width: int) -> str:
    buf = io.StringIO()
    fasthelp.print_root_help(buf, width)  # a StringIO is not a terminal: plain text
    return buf.getvalue()


def test_every_supported_width_is_byte_identical_to_rich() -> None:
    bad = [
        w
        for w in range(plainhelp.MIN_WIDTH, plainhelp.MAX_WIDTH + 1)
        if plainhelp.render(w) != rich_plain(w)
    ]
    assert not bad
    assert plainhelp.MIN_WIDTH <= 40 and plainhelp.MAX_WIDTH >= 250


def env(**kw: str) -> dict[str, str]:
    drop = ("DICOMKIT_", "FORCE_COLOR", "NO_COLOR", "PY_COLORS", "GITHUB_ACTIONS", "TTY_")
    e = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    for k in ("TERMINAL_WIDTH", "COLUMNS", "_TYPER_FORCE_DISABLE_TERMINAL", "TERM"):
        e.pop(k, None)
    e.update(kw)
    return e


PROBE = """
import sys
sys.argv = ["dicomkit", "--help"]
from dicomkit.cli.main import main
try:
    main()
except SystemExit:
    pass
import json
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def probe(**kw: str) -> tuple[str, set[str]]:
    # stdin/stdout/stderr are pipes here, so Rich finds no terminal size either.
    r = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        env=env(**kw),
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    return r.stdout, set(json.loads(r.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "kw", [{}, {"COLUMNS": "40"}, {"COLUMNS": "250"}, {"TERMINAL_WIDTH": "99"}]
)
def test_piped_help_imports_neither_rich_nor_typer(kw: dict[str, str]) -> None:
    out, mods = probe(**kw)
    assert not {m for m in mods if m.split(".")[0] in ("rich", "typer", "click")}
    width = int(kw.get("COLUMNS") or kw.get("TERMINAL_WIDTH") or 80)
    assert out == rich_plain(width)


@pytest.mark.parametrize(
    "kw",
    [
        {"COLUMNS": "33"},
        {"COLUMNS": "301"},
        {"NO_COLOR": "1"},
        {"FORCE_COLOR": "1"},
        {"PY_COLORS": "1"},
        {"GITHUB_ACTIONS": "true"},
        {"TTY_COMPATIBLE": "1"},
        {"TTY_INTERACTIVE": "0"},
        {"_TYPER_FORCE_DISABLE_TERMINAL": "1"},
        {"TERM": "dumb"},
    ],
)
def test_anything_else_goes_to_rich(kw: dict[str, str]) -> None:
    out, mods = probe(**kw)
    assert "rich.console" in mods
    # The Rich renderer in the same environment, in a separate process, is the reference.
    ref = subprocess.run(
        [
            sys.executable,
            "-c",
            "from dicomkit.cli.fasthelp import print_root_help; print_root_help()",
        ],
        capture_output=True,
        text=True,
        env=env(**kw),
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert out == ref.stdout


def test_plain_width_follows_rich() -> None:
    assert plainhelp.plain_width({"COLUMNS": "100"}) in (100, None)  # None when stdout is a tty
    assert plainhelp.plain_width({"COLUMNS": "10"}) is None
    assert plainhelp.plain_width({"COLUMNS": "100", "NO_COLOR": "1"}) is None
