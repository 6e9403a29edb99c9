"""Entry point: ``dicomkit`` (console script) and ``python -m dicomkit``.

Runs the Typer app (``cli/app.py``) and is the one place that turns errors into a message
(or, with ``--json``, a JSON document) and an exit code.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    import typer

    from dicomkit import ui
    from dicomkit.cli.app import app
    from dicomkit.cli.common import CTX
    from dicomkit.errors import DicomkitError, ExitCode

    args = sys.argv[1:]
    try:
        code = app(args=args, prog_name="dicomkit", standalone_mode=False)
    except DicomkitError as exc:
        if CTX.json or "--json" in args:
            ui.print_json(exc.to_dict())
        else:
            ui.error_panel(exc.message, exc.hint)
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        ui.err_console.print("[warn]interrupted[/warn]")
        sys.exit(130)
    except Exception as exc:
        show, message = getattr(exc, "show", None), getattr(exc, "format_message", None)
        if show is None or message is None:
            raise
        # click's usage errors (an unknown option, a bad value): Typer ships its own click.
        if "--json" in args:
            ui.print_json({"error": "UsageError", "message": message(), "hint": "see --help"})
        else:
            show()
        sys.exit(getattr(exc, "exit_code", ExitCode.USAGE))
    if code == 130:  # Typer turns Ctrl-C inside a command into exit 130
        ui.err_console.print("[warn]interrupted[/warn]")
    sys.exit(code if isinstance(code, int) else 0)


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
