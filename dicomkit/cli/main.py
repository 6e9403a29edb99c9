"""Entry point: ``dicomkit`` (console script) and ``python -m dicomkit``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from dicomkit import __version__
from dicomkit.cli import common, dicom, lab, orders

app = typer.Typer(
    name="dicomkit",
    help=(
        "A hands-on lab and tutor for the radiology imaging workflow: "
        "RIS -> Modality Worklist -> Modality -> PACS.\n\n"
        "Start with [bold]dicomkit up[/bold], then [bold]dicomkit lesson 1[/bold]."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dicomkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    home: Annotated[
        Path | None,
        typer.Option("--home", envvar="DICOMKIT_HOME", help="Folder for the lab's state and data."),
    ] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logging.")] = 0,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    common.setup_logging(verbose)
    common.home_option(home)


lab.register(app)
dicom.register(app)
app.add_typer(orders.app, name="order")
app.add_typer(dicom.worklist_app, name="worklist")

try:  # the tutor mounts itself when present
    from dicomkit.cli import tutor  # type: ignore[attr-defined,unused-ignore]

    tutor.register(app)
except ImportError:  # pragma: no cover - during bootstrap only
    pass


def main() -> None:
    from dicomkit.errors import DicomkitError

    try:
        app()
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
