"""`dicomkit mpps start|complete|discontinue`: report a procedure step as a modality does
(MPPS N-CREATE, then the final N-SET; PS3.4 Annex F, IHE RAD-6/RAD-7)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from dicomkit.cli.common import CTX, AetOpt, JsonOpt, TimeoutOpt, set_json

app = typer.Typer(
    help="Report a procedure step as a modality (MPPS N-CREATE / N-SET): start, complete, "
    "discontinue."
)

AccessionOpt = Annotated[str, typer.Option("--accession", "-a", help="Accession number.")]


def _peers(cfg: Any) -> tuple[Any, Any, Any]:
    from dicomkit.dicom.net import Peer

    return (
        Peer(cfg.host, cfg.mpps_port, cfg.mpps_aet),
        Peer(cfg.host, cfg.mwl_port, cfg.pacs_aet),
        Peer(cfg.host, cfg.dicom_port, cfg.pacs_aet),
    )


def _book(cfg: Any) -> Any:
    from dicomkit.dicom.mpps import StepBook

    return StepBook(cfg.mpps_steps_file)


def _print(rec: Any, extra: dict[str, Any], json: bool) -> None:
    from dataclasses import asdict

    from dicomkit import ui

    if json:
        ui.print_json({**asdict(rec), **extra})
        return
    verb = {"IN PROGRESS": "started", "COMPLETED": "completed", "DISCONTINUED": "discontinued"}
    ui.console.print(
        f"{ui.OK} MPPS {verb[rec.state]} for {ui.escape(rec.accession)} at {rec.peer}: "
        f"step {rec.sop_instance_uid} is [bold]{rec.state}[/bold]"
        + (f" ({extra['series']} series)" if "series" in extra else "")
    )
    ui.console.print(f"The RIS follows: [cmd]dicomkit order show {ui.escape(rec.accession)}[/cmd]")


@app.command("start")
def start(
    accession: AccessionOpt, aet: AetOpt = None, timeout: TimeoutOpt = None, json: JsonOpt = False
) -> None:
    """Find the accession's worklist item and N-CREATE its step IN PROGRESS (RAD-6)."""
    from dicomkit.dicom.mpps import start_step

    set_json(json)
    cfg = CTX.config(aet=aet, timeout=timeout)
    mpps_peer, mwl_peer, _ = _peers(cfg)
    rec = start_step(mpps_peer, mwl_peer, cfg.aet, accession, _book(cfg), cfg.timeout)
    _print(rec, {}, json)


def _end(accession: str, state: str, aet: str | None, timeout: float | None, json: bool) -> None:
    from dicomkit.dicom.mpps import end_step

    set_json(json)
    cfg = CTX.config(aet=aet, timeout=timeout)
    mpps_peer, _, pacs = _peers(cfg)
    rec, n = end_step(mpps_peer, pacs, cfg.aet, accession, state, _book(cfg), cfg.timeout)
    _print(rec, {"series": n}, json)


@app.command("complete")
def complete(
    accession: AccessionOpt, aet: AetOpt = None, timeout: TimeoutOpt = None, json: JsonOpt = False
) -> None:
    """N-SET the step COMPLETED with the series the PACS holds of its study (RAD-7)."""
    _end(accession, "COMPLETED", aet, timeout, json)


@app.command("discontinue")
def discontinue(
    accession: AccessionOpt, aet: AetOpt = None, timeout: TimeoutOpt = None, json: JsonOpt = False
) -> None:
    """N-SET the step DISCONTINUED: the exam stopped (RAD-7)."""
    _end(accession, "DISCONTINUED", aet, timeout, json)
