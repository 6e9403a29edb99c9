"""Typer option types shared by several commands; the per-run context lives in ``cli/context.py``
(no Typer there) and is re-exported here."""

from __future__ import annotations

from typing import Annotated

import typer

from dicomkit.cli.context import CTX, Context, home_option, peer_for, set_json, setup_logging

__all__ = [
    "CTX",
    "AetOpt",
    "Context",
    "JsonOpt",
    "TimeoutOpt",
    "ToOpt",
    "home_option",
    "peer_for",
    "set_json",
    "setup_logging",
]


JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON on stdout and nothing else.")
]
AetOpt = Annotated[
    str | None,
    typer.Option(
        "--aet", "-aet", help="Calling AE title (ours, the modality's). [default: DICOMKIT]"
    ),
]
ToOpt = Annotated[
    str | None,
    typer.Option(
        "--to",
        help="Any DICOM peer as HOST:PORT:AET instead of the lab's PACS (e.g. 127.0.0.1:11112:STORESCP).",
    ),
]
TimeoutOpt = Annotated[
    float | None, typer.Option("--timeout", help="Seconds to wait for the peer. [default: 10]")
]
