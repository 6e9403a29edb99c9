"""`dicomkit order ...`: drive the RIS API (place, list, show, cancel orders)."""

from __future__ import annotations

import json as jsonlib
import shlex
from pathlib import Path
from typing import Annotated, Any

import typer

from dicomkit.cli.common import CTX, JsonOpt, set_json
from dicomkit.errors import UsageError

app = typer.Typer(
    help="Place and manage orders in the RIS (each order becomes a worklist item).",
    rich_markup_mode=None,
)


def _client() -> Any:
    from dicomkit.ris.client import RisClient

    cfg = CTX.config()
    return cfg, RisClient(f"http://{cfg.host}:{cfg.ris_port}", timeout=cfg.timeout)


def _show(out: dict[str, Any], title: str) -> None:
    from dicomkit import ui

    o = out["order"]
    rows = [
        ["Accession", o["accession"]],
        ["Patient", f"{o['patient_name']} (ID {o['patient_id']})"],
        ["Modality", o["modality"]],
        ["Procedure", o.get("study_desc", "")],
        ["Scheduled", f"{out['scheduled_date']} {out['scheduled_time']} on {out['station_aet']}"],
        ["Study Instance UID", out["study_instance_uid"]],
        ["Requested Procedure ID", out["requested_procedure_id"]],
        ["SPS ID", out["scheduled_procedure_step_id"]],
        ["Worklist item", f"{out['worklist_item_id']}.wl"],
        # The procedure step as the MPPS SCP reported it (dicomkit mpps ...).
        ["Status", out.get("status", "SCHEDULED")],
    ]
    if out.get("mpps_sop_instance_uid"):
        rows.append(["MPPS SOP Instance UID", out["mpps_sop_instance_uid"]])
    ui.console.print(ui.table(title, ["field", "value"], rows))


@app.command("create")
def create(
    patient_id: Annotated[str, typer.Option("--patient-id", help="e.g. P123")] = "",
    patient_name: Annotated[str, typer.Option("--patient-name", help="e.g. DOE^JANE")] = "",
    accession: Annotated[str, typer.Option("--accession", help="e.g. ACC-1001")] = "",
    modality: Annotated[str, typer.Option("--modality", help="e.g. CR")] = "CR",
    study_desc: Annotated[str, typer.Option("--study-desc", help="e.g. 'XR CHEST'")] = "",
    birth_date: Annotated[str | None, typer.Option("--birth-date", help="YYYYMMDD")] = None,
    sex: Annotated[str | None, typer.Option("--sex", help="M, F or O")] = None,
    scheduled_date: Annotated[
        str | None, typer.Option("--date", help="YYYYMMDD (default today)")
    ] = None,
    scheduled_time: Annotated[str | None, typer.Option("--time", help="HHMM (default now)")] = None,
    station_aet: Annotated[
        str | None, typer.Option("--station", help="Scheduled Station AE")
    ] = None,
    referring: Annotated[
        str | None, typer.Option("--referring", help="Referring physician (PN)")
    ] = None,
    procedure_code: Annotated[
        str | None, typer.Option("--code", help="Procedure code (SH)")
    ] = None,
    from_json: Annotated[
        Path | None,
        typer.Option("--from-json", help="Read the order from a JSON file ('-' stdin)."),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Place an order: the RIS validates it and writes a worklist item."""
    from dicomkit import ui

    set_json(json)
    if from_json is not None:
        import sys

        try:
            raw = sys.stdin.read() if str(from_json) == "-" else from_json.read_text()
            body = jsonlib.loads(raw)
        except (OSError, ValueError) as exc:
            raise UsageError(
                f"cannot read an order from {from_json}: {exc}", "give a JSON object"
            ) from None
        if not isinstance(body, dict):
            raise UsageError("the order JSON must be an object", 'e.g. {"patient_id": "P123", ...}')
    else:
        missing = [n for n, v in (("--patient-id", patient_id), ("--patient-name", patient_name),
                                  ("--accession", accession)) if not v]  # fmt: skip
        if missing:
            raise UsageError(f"missing {', '.join(missing)}",
                             "e.g. dicomkit order create --patient-id P123 --patient-name DOE^JANE "
                             "--accession ACC-1001 --modality CR --study-desc 'XR CHEST'")  # fmt: skip
        body = {"patient_id": patient_id, "patient_name": patient_name, "accession": accession,
                "modality": modality, "study_desc": study_desc}  # fmt: skip
        optional = {"birth_date": birth_date, "sex": sex, "scheduled_date": scheduled_date,
                    "scheduled_time": scheduled_time, "station_aet": station_aet,
                    "referring_physician": referring, "procedure_code": procedure_code}  # fmt: skip
        body.update({k: v for k, v in optional.items() if v is not None})
    _, client = _client()
    out = client.create_order(body)
    if json:
        ui.print_json(out)
        return
    _show(out, "Order placed")
    ui.equivalent(
        f"curl -sS -X POST {client.base_url}/orders -H 'Content-Type: application/json' "
        f"-d {shlex.quote(jsonlib.dumps(body, ensure_ascii=False))}"
    )
    ui.console.print(
        f"Next: [cmd]dicomkit worklist find --accession {shlex.quote(body['accession'])}[/cmd]"
    )


@app.command("list")
def list_(json: JsonOpt = False) -> None:
    """List every order in the RIS."""
    from dicomkit import ui

    set_json(json)
    _, client = _client()
    orders = client.list_orders()
    if json:
        ui.print_json(orders)
        return
    rows = [[o["order"]["accession"], o["order"]["patient_name"], o["order"]["patient_id"],
             o["order"]["modality"], o["order"].get("study_desc", ""),
             f"{o['scheduled_date']} {o['scheduled_time']}", o["station_aet"]] for o in orders]  # fmt: skip
    ui.console.print(ui.table(f"{len(orders)} order(s)", ["Accession", "Patient", "ID", "Mod",
                                                         "Procedure", "Scheduled", "Station"], rows))  # fmt: skip
    ui.equivalent(f"curl -sS {client.base_url}/orders")


@app.command("show")
def show(
    accession: Annotated[str, typer.Argument(help="Accession number")], json: JsonOpt = False
) -> None:
    """Show one order and its worklist identifiers."""
    from dicomkit import ui

    set_json(json)
    _, client = _client()
    out = client.get_order(accession)
    if json:
        ui.print_json(out)
        return
    _show(out, f"Order {accession}")


@app.command("cancel")
def cancel(
    accession: Annotated[str, typer.Argument(help="Accession number")], json: JsonOpt = False
) -> None:
    """Cancel an order; its worklist item is removed at once."""
    from dicomkit import ui

    set_json(json)
    _, client = _client()
    out = client.cancel_order(accession)
    if json:
        ui.print_json(out)
        return
    ui.console.print(
        f"{ui.OK} cancelled {accession}; worklist item {out['worklist_item_id']}.wl removed"
    )
    ui.equivalent(f"curl -sS -X DELETE {client.base_url}/orders/{accession}")
