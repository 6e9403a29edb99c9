"""The command registry behind the lazily loading group (cli/registry.py, cli/app.py).

Checked on the real entry point in subprocesses: every registry entry is a real command whose
help is its docstring, and a command's module is imported only when it runs. No timing here:
speed is measured in bench/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dicomkit.cli.registry import COMMANDS


def run(*args: str, columns: int = 100, **env: str) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("DICOMKIT_", "FORCE_COLOR"))}
    e.update(COLUMNS=str(columns), NO_COLOR="1", **env)
    e.pop("TERMINAL_WIDTH", None)
    return subprocess.run(
        [sys.executable, "-m", "dicomkit", *args],
        capture_output=True,
        text=True,
        env=e,
        timeout=60,
    )


def test_help_lists_every_command_with_its_docstring() -> None:
    from dicomkit.cli.app import short_help

    r = run("--help")
    assert r.returncode == 0, r.stderr
    flat = " ".join(r.stdout.split())
    for name, (panel, _) in COMMANDS.items():
        assert f"\n{panel}:\n" in r.stdout
        assert f" {name} {short_help(name)}" in flat, name


def test_no_arguments_prints_help_and_exits_2_like_click() -> None:
    r = run()
    assert r.returncode == 2
    assert r.stderr == run("--help").stdout  # a usage error: on stderr


def test_shell_completion_is_not_taken_for_a_help_request() -> None:
    # Typer's bash completion runs `dicomkit` with no arguments and the words in the environment.
    r = run(_DICOMKIT_COMPLETE="complete_bash", COMP_WORDS="dicomkit st", COMP_CWORD="1")
    assert r.returncode == 0
    assert r.stdout.split() == ["status", "store", "studies"]


def test_version() -> None:
    from dicomkit import __version__

    assert run("--version").stdout == f"dicomkit {__version__}\n"
    assert run("-v", "--version").stdout == f"dicomkit {__version__}\n"


def test_typo_suggestion_sees_every_command() -> None:
    r = run("stats")
    assert r.returncode == 2
    assert "Did you mean 'status'?" in r.stderr


def test_registry_points_at_real_commands_whose_help_is_the_docstring() -> None:
    import typer

    from dicomkit.cli.app import app, short_help

    group = typer.main.get_command(app)
    for name in COMMANDS:
        cmd = group.get_command(None, name)  # type: ignore[attr-defined, arg-type]
        assert cmd is not None and cmd.name == name
        assert short_help(name) and short_help(name) in " ".join((cmd.help or "").split())


PROBE = """
import json, sys
sys.argv = ["dicomkit", *json.loads(sys.argv[1])]
from dicomkit.cli.main import main
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def modules_after(*args: str) -> set[str]:
    r = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(args))],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("DICOMKIT_")},
        timeout=60,
    )
    return set(json.loads(r.stderr.strip().splitlines()[-1]))


def test_help_imports_no_command_body_and_no_rich() -> None:
    mods = modules_after("--help")
    assert "dicomkit.cli.app" in mods  # the probe works: the help was rendered
    assert not {m for m in mods if m == "rich" or m.startswith("rich.")}
    for heavy in ("pynetdicom", "pydicom", "dicomkit.tutor", "dicomkit.engines", "httpx"):
        assert heavy not in mods, heavy


@pytest.fixture()
def echo_peer() -> str:
    """A bare C-ECHO SCP on a free port: accepts the association, answers Success, releases."""
    from pynetdicom import AE

    ae = AE(ae_title="PEER")
    ae.add_supported_context("1.2.840.10008.1.1")
    server = ae.start_server(("127.0.0.1", 0), block=False)
    port = server.socket.getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"127.0.0.1:{port}:PEER"
    finally:
        server.shutdown()


def test_echo_builds_only_its_own_command(echo_peer: str) -> None:
    mods = modules_after("echo", "--to", echo_peer)
    assert "dicomkit.cli.dicom" in mods  # the probe works: echo ran
    # Nothing of the other commands, and the bare-socket echo needs neither pynetdicom nor
    # pydicom on the happy path.
    for heavy in ("dicomkit.cli.tutor", "dicomkit.cli.orders", "dicomkit.cli.lab"):
        assert heavy not in mods
    for heavy in (
        "pynetdicom",
        "pydicom",
        "dicomkit.tutor",
        "dicomkit.engines",
        "httpx",
        "rich.table",
    ):
        assert heavy not in mods, heavy


def test_json_runs_never_import_rich(echo_peer: str) -> None:
    """`--json` output is json.dumps: the Rich console is made on first use (ui.__getattr__),
    so a script's `echo --json` / `store --json` does not pay ~40 ms for importing Rich."""
    mods = modules_after("echo", "--to", echo_peer, "--json")
    assert "dicomkit.ui" in mods
    assert not {m for m in mods if m == "rich" or m.startswith("rich.")}
    # store: the echo peer accepts no Storage context, so this also covers the error path
    # (the JSON error document) and the report of the file that did not make it.
    from pydicom.data import get_testdata_file

    ct = str(get_testdata_file("CT_small.dcm"))
    mods = modules_after("store", "--to", echo_peer, "--json", ct)
    assert "dicomkit.dicom.scu" in mods
    assert not {m for m in mods if m == "rich" or m.startswith("rich.")}


def test_ui_console_is_made_once_on_first_use() -> None:
    from dicomkit import ui

    first = ui.console
    assert ui.console is first
    assert ui.err_console.stderr and not first.stderr
    assert ui.THEME.styles["ok"] == ui.err_console.get_style("ok")
    with pytest.raises(AttributeError):
        ui.no_such_thing  # noqa: B018


def test_garbage_terminal_width_is_ignored_not_a_traceback() -> None:
    r = run("--help", TERMINAL_WIDTH="abc")
    assert r.returncode == 0, r.stderr
    assert r.stdout == run("--help").stdout
