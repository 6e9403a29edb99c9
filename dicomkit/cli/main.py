"""Entry point: ``dicomkit`` (console script) and ``python -m dicomkit``.

Nothing heavy is imported here: ``dicomkit``, ``dicomkit --help`` and ``dicomkit --version``
answer without Typer (``cli/plainhelp.py``: no Rich either, piped or on a terminal;
``cli/fasthelp.py`` with Rich for anything plainhelp does not reproduce); everything else goes
to the Typer app (``cli/app.py``), which builds only the command that was asked for, except a
plain ``dicomkit store`` line, which ``cli/faststore.py`` parses and runs without Typer.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    args = sys.argv[1:]
    # Shell completion calls `dicomkit` with no arguments and the words in the environment.
    completing = "_DICOMKIT_COMPLETE" in os.environ or "_TYPER_COMPLETE_ARGS" in os.environ
    if args in ([], ["--help"], ["-h"]) and not completing:
        from dicomkit.cli import plainhelp

        if not plainhelp.print_root_help():  # piped: plain text without importing Rich
            from dicomkit.cli.fasthelp import print_root_help

            print_root_help()
        # Typer's no_args_is_help exits 2 (a usage error, like click); --help exits 0.
        sys.exit(2 if not args else 0)
    if args == ["--version"]:
        from dicomkit import __version__

        print(f"dicomkit {__version__}")
        return
    _run(args)


def _run(args: list[str]) -> None:
    from dicomkit.cli.context import CTX
    from dicomkit.errors import DicomkitError

    try:
        if "store" in args:  # scripts' batch command: no Typer when the line is plain
            from dicomkit.cli import faststore

            if faststore.run(args, os.environ):
                return
        from dicomkit.cli.app import app

        app(prog_name="dicomkit")
    except DicomkitError as exc:
        from dicomkit import ui

        if CTX.json:
            ui.print_json(exc.to_dict())
        else:
            ui.error_panel(exc.message, exc.hint)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        from dicomkit import ui

        ui.err_console.print("[warn]interrupted[/warn]")
        sys.exit(130)


def run() -> None:
    """The console script and ``python -m dicomkit``: :func:`main`, then a quick exit.

    After a command has finished, the interpreter's own shutdown (tearing down the ~200
    modules of Typer, the stdlib and ours, freeing every object) takes ~20 ms on a 2-core
    machine, a sixth of a short command's whole run. The parts of shutdown that matter are
    done here (threads, atexit handlers such as logging's, flushing stdout/stderr), then the
    process leaves with ``os._exit`` as mypy does. Anything unusual (a thread still running, an exit message, a failed flush)
    takes the normal exit instead. Tests call :func:`main`, which raises SystemExit as usual.
    """
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    _quick_exit(code)


def _quick_exit(code: str | int | None) -> None:
    import atexit
    import threading

    main_thread = threading.main_thread()
    busy = any(t is not main_thread and not t.daemon for t in threading.enumerate())
    if busy or not (code is None or isinstance(code, int)):
        sys.exit(code)  # join the threads / print the message, as Python would
    atexit._run_exitfuncs()  # logging.shutdown (flushes handlers), weakref finalizers...
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # e.g. a closed pipe: let Python report it (exit 120)
        sys.exit(code)
    os._exit(code or 0)


if __name__ == "__main__":
    run()
