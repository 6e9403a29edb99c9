"""`dicomkit anonymize`: a de-identified copy of a study (PS3.15 Annex E Basic Profile)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dicomkit.cli.common import CTX, AetOpt, JsonOpt, TimeoutOpt, ToOpt, peer_for, set_json
from dicomkit.errors import UsageError


def anonymize(
    out: Annotated[Path, typer.Option("--out", help="Folder for the de-identified copies.")],
    accession: Annotated[
        str, typer.Option("--accession", "-a", help="Fetch this study from the PACS (C-GET).")
    ] = "",
    source: Annotated[
        Path | None,
        typer.Option("--from", help="De-identify the DICOM files of this folder instead."),
    ] = None,
    send: Annotated[
        bool, typer.Option("--send", help="C-STORE the de-identified copies to the PACS.")
    ] = False,
    to: ToOpt = None,
    aet: AetOpt = None,
    timeout: TimeoutOpt = None,
    json: JsonOpt = False,
) -> None:
    """De-identify a study with the PS3.15 Annex E Basic Profile.

    New UIDs (consistent across the study), identifying attributes removed, emptied or
    replaced, PatientIdentityRemoved YES; the copies are named IM00001.dcm, ..."""
    import tempfile

    from dicomkit import ui
    from dicomkit.dicom.anonymize import anonymize_files, fetch_study

    set_json(json)
    cfg = CTX.config()
    calling = aet or cfg.aet
    peer = peer_for(cfg, to)
    if bool(accession.strip()) == (source is not None):
        raise UsageError("give --accession ACC or --from FOLDER (one of them)", "")
    with tempfile.TemporaryDirectory(prefix="dicomkit-get-") as tmp:
        if source is not None:
            files = sorted(p for p in source.rglob("*") if p.is_file())
        else:
            files = fetch_study(peer, calling, accession, Path(tmp), timeout or cfg.timeout)
        report = anonymize_files(files, out)
    if send:
        from dicomkit.dicom.scu import store_files

        stored = store_files(peer, calling, [Path(f.output) for f in report.files],
                             timeout=timeout or 30.0)  # fmt: skip
        report.sent = len(stored.sent_ok)
        if stored.failed:
            from dicomkit.errors import DimseFailure

            raise DimseFailure(
                f"{len(stored.failed)} de-identified file(s) not stored to {peer}",
                "see the PACS log (dicomkit logs pacs)",
            )
    if json:
        ui.print_json(report.to_dict())
        return
    ui.console.print(
        f"{ui.OK} {len(report.files)} file(s) de-identified into {ui.escape(str(out))}"
    )
    for old, new in report.studies.items():
        ui.console.print(f"  study {old} -> {new}")
    ui.console.print(f"  removed: {', '.join(report.removed) or '-'}")
    ui.console.print(f"  replaced: {', '.join(report.replaced) or '-'}")
    if report.sent is not None:
        ui.console.print(f"{ui.OK} {report.sent} sent to {peer}")
