"""What the commands share: the per-run context (config flags, JSON mode), the root options'
effects, and the Typer option types used by several commands."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from dicomkit.config import LabConfig
    from dicomkit.dicom.net import Peer


@dataclass
class Context:
    json: bool = False
    flags: dict[str, Any] = field(default_factory=dict)

    def config(self, **flags: Any) -> LabConfig:
        from dicomkit.config import load_config

        return load_config(**{**self.flags, **{k: v for k, v in flags.items() if v is not None}})


CTX = Context()


def set_json(value: bool) -> None:
    CTX.json = value


def setup_logging(verbose: int) -> None:
    import logging

    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if verbose < 2:
        # pynetdicom logs every association at INFO, and a hostile peer's bytes as ERROR with
        # a traceback; our own error panel says what happened. Keep them for -v / -vv.
        level = logging.CRITICAL if verbose == 0 else logging.WARNING
        logging.getLogger("pynetdicom").setLevel(level)


def home_option(value: Path | None) -> None:
    if value is not None:
        CTX.flags["home"] = value


def peer_for(cfg: LabConfig, to: str | None, mwl: bool = False) -> Peer:
    """``--to HOST:PORT:AET`` if given, else the lab's PACS (or its worklist port)."""
    from dicomkit.dicom.net import Peer

    if to:
        return Peer.parse(to)
    return Peer(cfg.host, cfg.mwl_port if mwl else cfg.dicom_port, cfg.pacs_aet)


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
