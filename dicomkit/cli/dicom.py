"""DICOM subcommands: echo, worklist find, make-image, store, studies."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.models import TyperPath

from dicomkit.cli.common import CTX, AetOpt, JsonOpt, TimeoutOpt, ToOpt, peer_for, set_json
from dicomkit.errors import ExitCode, UsageError

worklist_app = typer.Typer(help="Query the Modality Worklist as a modality would (MWL C-FIND).")


def echo(
    to: ToOpt = None,
    mwl: Annotated[bool, typer.Option("--mwl", help="Echo the worklist port instead.")] = False,
    aet: AetOpt = None,
    timeout: TimeoutOpt = None,
    json: JsonOpt = False,
) -> None:
    """C-ECHO the PACS (or --mwl, or any --to peer): the DICOM "ping"."""
    from dicomkit import ui
    from dicomkit.dicom.net import echo as do_echo

    set_json(json)
    cfg = CTX.config(aet=aet, timeout=timeout)
    peer = peer_for(cfg, to, mwl)
    result = do_echo(peer, cfg.aet, cfg.timeout)
    if json:
        ui.print_json(result.__dict__)
    else:
        mark = ui.OK if result.ok else ui.FAIL
        ui.console.print(
            f"{mark} C-ECHO {cfg.aet} -> {peer}: 0x{result.status:04X} {result.status_name} "
            f"in {result.ms:.1f} ms"
        )
        ui.equivalent(f"echoscu -aet {cfg.aet} -aec {peer.aet} {peer.host} {peer.port}")
    if not result.ok:
        raise typer.Exit(ExitCode.FAILED)


@worklist_app.command("find")
def worklist_find(
    accession: Annotated[str, typer.Option("--accession", "-a", help="Accession number.")] = "",
    patient_id: Annotated[
        str, typer.Option("--patient-id", help="Patient ID (wildcards * ?).")
    ] = "",
    patient_name: Annotated[
        str, typer.Option("--patient-name", "-n", help="Patient name, e.g. 'DOE*' (wildcards * ?).")
    ] = "",
    modality: Annotated[str, typer.Option("--modality", "-m", help="e.g. CR")] = "",
    date: Annotated[
        str,
        typer.Option("--date", "-d", help="YYYYMMDD, a range 20260101-20261231, or 'today'."),
    ] = "",
    station: Annotated[
        str, typer.Option("--station", help="Scheduled Station AE Title to match.")
    ] = "",
    to: ToOpt = None,
    aet: AetOpt = None,
    timeout: TimeoutOpt = None,
    json: JsonOpt = False,
) -> None:
    """Find scheduled procedure steps (MWL C-FIND); empty keys are return keys only."""
    from dicomkit import ui
    from dicomkit.dicom import vr
    from dicomkit.dicom.scu import find_worklist
    from dicomkit.dicom.worklist import WorklistQuery

    set_json(json)
    cfg = CTX.config(aet=aet, timeout=timeout)
    if date:
        try:
            date = vr.check_date_range(date)
        except ValueError as exc:
            raise UsageError(
                f"--date {exc}", "e.g. --date today or --date 20260101-20261231"
            ) from None
    query = WorklistQuery(accession, patient_id, patient_name, modality.upper(), date, station)
    peer = peer_for(cfg, to, mwl=True)
    rows = find_worklist(peer, cfg.aet, query, cfg.timeout)
    if json:
        ui.print_json({"peer": str(peer), "query": query.matching_keys(), "matches": rows})
        return
    cols = ["accession", "patient_name", "patient_id", "modality", "station_aet",
            "scheduled_date", "scheduled_time", "requested_procedure_description"]  # fmt: skip
    ui.console.print(
        ui.table(
            f"{len(rows)} worklist item(s) from {peer}",
            ["Accession", "Patient", "ID", "Mod", "Station AE", "Date", "Time", "Procedure"],
            [[r[c] for c in cols] for r in rows],
        )
    )
    args = " ".join(shlex.quote(a) for a in query.findscu_args())
    ui.equivalent(f"findscu -W -aet {cfg.aet} -aec {peer.aet} {args} {peer.host} {peer.port}")


def make_image(
    accession: Annotated[
        str, typer.Option("--accession", "-a", help="The order's accession number.")
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Output file. [default: the lab's images/ folder]"),
    ] = None,
    to: ToOpt = None,
    aet: AetOpt = None,
    timeout: TimeoutOpt = None,
    json: JsonOpt = False,
) -> None:
    """Acquire an image like a modality: query the worklist for the accession, copy its identifiers."""
    from dicomkit import ui
    from dicomkit.dicom.image import make_image as build
    from dicomkit.dicom.image import save_image
    from dicomkit.dicom.scu import find_worklist_datasets
    from dicomkit.dicom.worklist import WorklistQuery
    from dicomkit.errors import DicomkitError

    set_json(json)
    cfg = CTX.config(aet=aet, timeout=timeout)
    if not accession.strip():
        raise UsageError(
            "--accession is empty", "give the accession of an order (dicomkit order list)"
        )
    peer = peer_for(cfg, to, mwl=True)
    items = find_worklist_datasets(peer, cfg.aet, WorklistQuery(accession=accession), cfg.timeout)
    if not items:
        raise DicomkitError(
            f"no worklist item with accession {accession} at {peer}",
            "place the order first (dicomkit order create ...) and check it with "
            "`dicomkit worklist find`",
        )
    ds = build(items[0], station_aet=cfg.aet)
    if out is None:
        import hashlib

        # Named from our own new UID's hash: never from a value the worklist sent.
        name = hashlib.sha256(str(ds.SOPInstanceUID).encode()).hexdigest()[:16]
        out = cfg.lab_dir / "images" / f"IMG-{name}.dcm"
    path = save_image(ds, out)
    info = {
        "file": str(path),
        "sop_class_uid": str(ds.SOPClassUID),
        "sop_instance_uid": str(ds.SOPInstanceUID),
        "study_instance_uid": str(ds.StudyInstanceUID),
        "series_instance_uid": str(ds.SeriesInstanceUID),
        "accession": str(ds.AccessionNumber),
        "patient_id": str(ds.PatientID),
        "patient_name": str(ds.PatientName),
        "modality": str(ds.Modality),
        "worklist_matches": len(items),
    }
    if json:
        ui.print_json(info)
        return
    ui.console.print(f"{ui.OK} made {path}")
    copied = ("accession", "patient_id", "patient_name", "study_instance_uid")
    new = ("series_instance_uid", "sop_instance_uid", "sop_class_uid", "modality")
    ui.console.print(ui.table("Identifiers copied from the worklist item", ["tag", "value"],
                              [[k, info[k]] for k in copied]))  # fmt: skip
    ui.console.print(ui.table("Made new by the modality (never copied)", ["tag", "value"],
                              [[k, info[k]] for k in new]))  # fmt: skip
    ui.equivalent(f"dcmdump {shlex.quote(str(path))}", "Inspect it")


class _StorePath(TyperPath):
    """Typer's path type (a path that exists must be readable) that also refuses an empty
    path: Path("") is the current folder, so an unset shell variable (`dicomkit store "$IMG"`)
    would send everything below it."""

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if value == "":
            self.fail(
                "an empty path (an unset shell variable?): give a file or folder, "
                "or '.' for the current folder",
                param,
                ctx,
            )
        return super().convert(value, param, ctx)


def store(
    paths: Annotated[
        list[Path],
        typer.Argument(help="DICOM files and/or folders (recursive).", click_type=_StorePath()),
    ],
    to: ToOpt = None,
    aet: AetOpt = None,
    timeout: TimeoutOpt = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Skip files this lab's PACS already acknowledged earlier."),
    ] = False,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs", "-j", help="Associations in parallel (0: one per 4 files, at most 4)."
        ),
    ] = 0,
    json: JsonOpt = False,
) -> None:
    """C-STORE files to the PACS, each in its own transfer syntax (batches on parallel associations)."""
    from dicomkit.cli.storecmd import run_store

    run_store(paths=paths, to=to, aet=aet, timeout=timeout, resume=resume, jobs=jobs, json=json)


def studies(
    patient_id: Annotated[
        str, typer.Option("--patient-id", help="Patient ID (wildcards * ?).")
    ] = "",
    patient_name: Annotated[str, typer.Option("--patient-name", "-n", help="e.g. 'DOE*'.")] = "",
    accession: Annotated[str, typer.Option("--accession", "-a")] = "",
    date: Annotated[str, typer.Option("--date", "-d", help="YYYYMMDD, range, or 'today'.")] = "",
    modality: Annotated[str, typer.Option("--modality", "-m")] = "",
    to: ToOpt = None,
    aet: AetOpt = None,
    timeout: TimeoutOpt = None,
    json: JsonOpt = False,
) -> None:
    """Find studies in the PACS (Study Root C-FIND at STUDY level)."""
    from dicomkit import ui
    from dicomkit.dicom import vr
    from dicomkit.dicom.scu import StudyQuery, find_studies

    set_json(json)
    cfg = CTX.config(aet=aet, timeout=timeout)
    if date:
        try:
            date = vr.check_date_range(date)
        except ValueError as exc:
            raise UsageError(f"--date {exc}", "e.g. --date today") from None
    peer = peer_for(cfg, to)
    q = StudyQuery(patient_id, patient_name, accession, date, modality.upper())
    rows = find_studies(peer, cfg.aet, q, cfg.timeout)
    if json:
        ui.print_json({"peer": str(peer), "studies": rows})
        return
    cols = ["accession", "patient_name", "patient_id", "study_date", "modalities",
            "study_description", "instances", "study_instance_uid"]  # fmt: skip
    ui.console.print(
        ui.table(
            f"{len(rows)} study(ies) in {peer}",
            ["Accession", "Patient", "ID", "Date", "Mod", "Description", "Images", "Study UID"],
            [[r[c] for c in cols] for r in rows],
        )
    )
    keys = f"-k PatientName={shlex.quote(patient_name)} -k AccessionNumber={shlex.quote(accession)}"
    ui.equivalent(
        f"findscu -S -aet {cfg.aet} -aec {peer.aet} -k QueryRetrieveLevel=STUDY {keys} "
        f"-k StudyInstanceUID= {peer.host} {peer.port}"
    )
