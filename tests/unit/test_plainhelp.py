"""plainhelp (no Rich) must print exactly what fasthelp's Rich renderer prints, at every width
it answers for, piped and on a terminal in each of Rich's colour systems; everywhere else the
Rich renderer must answer."""

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


def rich_terminal(width: int, color_system: str) -> str:
    """fasthelp's Console as it is made on a terminal, in one of Rich's colour systems."""
    from rich.console import Console
    from rich.theme import Theme

    from dicomkit.cli.registry import HELP_STYLES

    buf = io.StringIO()
    console = Console(
        theme=Theme(HELP_STYLES),
        highlighter=fasthelp._OptionHighlighter(),
        color_system=color_system,  # type: ignore[arg-type]
        force_terminal=True,
        width=width,
        file=buf,
    )
    fasthelp.render(console)
    return buf.getvalue() + "\n"


def test_every_supported_width_is_byte_identical_to_rich() -> None:
    bad = [
        w
        for w in range(plainhelp.MIN_WIDTH, plainhelp.MAX_WIDTH + 1)
        if plainhelp.render(w) != rich_plain(w)
    ]
    assert not bad
    assert plainhelp.MIN_WIDTH <= 40 and plainhelp.MAX_WIDTH >= 250


@pytest.mark.parametrize("color_system", ["standard", "256", "truecolor"])
def test_every_supported_width_is_byte_identical_to_rich_on_a_terminal(color_system: str) -> None:
    ref = rich_terminal(100, color_system)
    assert "\x1b[1;36m" in ref and "\x1b[1;2;33m<" in ref  # the reference is in colour
    bad = [
        w
        for w in range(plainhelp.MIN_WIDTH, plainhelp.MAX_WIDTH + 1)
        if plainhelp.render(w, colour=True) != rich_terminal(w, color_system)
    ]
    assert not bad


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


def test_target_follows_rich() -> None:
    assert plainhelp.target({"COLUMNS": "100"}) == (100, sys.stdout.isatty())
    assert plainhelp.target({"COLUMNS": "10"}) is None
    assert plainhelp.target({"COLUMNS": "100", "NO_COLOR": "1"}) is None


def test_a_non_utf8_stdout_goes_to_rich() -> None:
    """Rich draws ASCII boxes for an encoding that is not UTF-8 (and ✓ ▶ would not encode)."""
    r = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        env=env(PYTHONIOENCODING="latin-1"),
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    out = r.stdout.decode("latin-1")
    mods = json.loads(r.stderr.decode().strip().splitlines()[-1])  # no traceback before it
    assert "rich.console" in mods
    assert "╭" not in out and "+--" in out
    assert "List the course: ? done, ? current, · to do." in out


def test_unsupported_markup_goes_to_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    from dicomkit.cli import registry

    assert plainhelp._supported()
    for text in ("[bold]open", "[bold]a[bold]b[/bold][/bold]", "[italic]x[/italic]", ":smile:"):
        monkeypatch.setattr(plainhelp, "ROOT_HELP", text)
        assert not plainhelp._supported(), text
    monkeypatch.setattr(plainhelp, "ROOT_HELP", registry.ROOT_HELP)
    assert plainhelp._supported()


PTY_PROBE = "import sys\nOUT = sys.argv[1]\n" + PROBE.replace(
    "file=sys.stderr", "file=open(OUT, 'w')"
)


def on_a_terminal(tmp: str, columns: int, **kw: str) -> tuple[str, set[str]]:
    """`dicomkit --help` with stdin/stdout/stderr on a pty of ``columns`` x 40."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.ONLCR  # no \n -> \r\n: compare the bytes Rich wrote
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    mods = os.path.join(tmp, "modules.json")
    p = subprocess.Popen(
        [sys.executable, "-c", PTY_PROBE, mods],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env(**kw),
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    p.wait(60)
    os.close(master)
    with open(mods) as fh:
        return b"".join(chunks).decode(), set(json.loads(fh.read()))


@pytest.mark.parametrize(
    ("kw", "color_system"),
    [({"TERM": "xterm-256color"}, "256"), ({"TERM": "xterm"}, "standard"),
     ({"TERM": "xterm-256color", "COLORTERM": "truecolor"}, "truecolor")],
)  # fmt: skip
def test_terminal_help_is_richs_without_rich(
    tmp_path: os.PathLike[str], kw: dict[str, str], color_system: str
) -> None:
    out, mods = on_a_terminal(str(tmp_path), 97, **kw)
    assert not {m for m in mods if m.split(".")[0] in ("rich", "typer", "click")}
    assert out == rich_terminal(97, color_system)


def test_terminal_with_no_color_goes_to_rich(tmp_path: os.PathLike[str]) -> None:
    out, mods = on_a_terminal(str(tmp_path), 97, TERM="xterm", NO_COLOR="1")
    assert "rich.console" in mods
    assert "\x1b[1m" in out and "\x1b[36m" not in out and "\x1b[1;36m" not in out
