"""`dicomkit timeline`: every message the lab saw for one accession, in order."""

from __future__ import annotations

from typing import Annotated

import typer

from dicomkit.cli.common import CTX, JsonOpt, TimeoutOpt, set_json


def timeline(
    accession: Annotated[str, typer.Option("--accession", "-a", help="Accession number.")],
    timeout: TimeoutOpt = None,
    json: JsonOpt = False,
) -> None:
    """Every message the lab saw for one accession, in order: time, sender -> receiver, IHE
    transaction (RAD-n), the DICOM/HL7 message and its result, and what the lab cannot see."""
    from dicomkit import ui
    from dicomkit.engines.state import read_state
    from dicomkit.errors import LabNotRunning
    from dicomkit.timeline.rows import COLUMNS, legend, table_rows, title
    from dicomkit.timeline.sources import collect

    set_json(json)
    cfg = CTX.config(timeout=timeout)
    state = read_state(cfg)
    if state is None:
        raise LabNotRunning("no lab is running: there is no record to read",
                            "start it with `dicomkit up`")  # fmt: skip
    tl = collect(cfg, state.endpoints, state.engine, accession)
    if json:
        ui.print_json(tl.to_dict())
        return
    ui.console.print(ui.table(title(tl), COLUMNS, table_rows(tl)))
    ui.console.print(f"[muted]{ui.escape(legend(tl))}[/muted]")
    for line in tl.unseen:
        ui.console.print(f"[muted]Not seen: {ui.escape(line)}[/muted]")
