"""Entry point: ``dicomkit`` (console script) and ``python -m dicomkit``.

Nothing heavy is imported here: ``dicomkit``, ``dicomkit --help`` and ``dicomkit --version``
answer without Typer (``cli/plainhelp.py`` when piped: no Rich either; ``cli/fasthelp.py`` in a
terminal: Rich, Typer's panels); everything else goes to the Typer app (``cli/app.py``), which
builds only the command that was asked for.
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
    _run()


def _run() -> None:
    from dicomkit.cli import common
    from dicomkit.cli.app import app
    from dicomkit.errors import DicomkitError

    try:
        app(prog_name="dicomkit")
    except DicomkitError as exc:
        from dicomkit import ui

        if common.CTX.json:
            ui.print_json(exc.to_dict())
        else:
            ui.error_panel(exc.message, exc.hint)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        from dicomkit import ui

        ui.err_console.print("[warn]interrupted[/warn]")
        sys.exit(130)


if __name__ == "__main__":
    main()
