"""DICOM subcommands: echo, worklist find, make-image, store, studies."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dicomkit.cli.common import CTX, AetOpt, JsonOpt, TimeoutOpt, ToOpt, set_json
from dicomkit.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from dicomkit.config import LabConfig
    from dicomkit.dicom.net import Peer

worklist_app = typer.Typer(help="Query the Modality Worklist as a modality would (MWL C-FIND).")


def _peer(cfg: LabConfig, to: str | None, mwl: bool = False) -> Peer:
    from dicomkit.dicom.net import Peer

    if to:
        return Peer.parse(to)
    return Peer(cfg.host, cfg.mwl_port if mwl else cfg.dicom_port, cfg.pacs_aet)


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
    peer = _peer(cfg, to, mwl)
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
    peer = _peer(cfg, to, mwl=True)
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
    peer = _peer(cfg, to, mwl=True)
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
    ui.console.print(ui.table("Identifiers copied from the worklist item", ["tag", "value"],
                              [[k, v] for k, v in info.items() if k != "file"]))  # fmt: skip
    ui.equivalent(f"dcmdump {shlex.quote(str(path))}", "Inspect it")


def store(
    paths: Annotated[list[Path], typer.Argument(help="DICOM files and/or folders (recursive).")],
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
    from dicomkit import ui
    from dicomkit.dicom import journal
    from dicomkit.dicom.scu import FileResult, auto_jobs, collect_files, store_files

    set_json(json)
    cfg = CTX.config(aet=aet, timeout=timeout)
    peer = _peer(cfg, to)
    files = collect_files(paths)
    if not files:
        raise UsageError(
            "no files found under the given path(s)", "point at DICOM files or folders"
        )
    jr = journal.StoreJournal(cfg.lab_dir / "journal", peer)
    skip = jr.acknowledged() if resume else set()

    progress_ctx = None
    task = None
    if not json:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        progress_ctx = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=ui.err_console,
            transient=True,
        )
        progress_ctx.start()
        task = progress_ctx.add_task(f"C-STORE -> {peer}", total=len(files) - len(skip))

    def on_file(r: FileResult) -> None:
        if r.ok:
            jr.record(r.sop_instance_uid)
        if progress_ctx is not None and task is not None:
            progress_ctx.advance(task)

    try:
        report = store_files(peer, cfg.aet, files, timeout=cfg.timeout, progress=on_file,
                             skip_instances=skip, jobs=jobs or auto_jobs(len(files)))  # fmt: skip
    finally:
        if progress_ctx is not None:
            progress_ctx.stop()
        jr.close()
    skipped_resume = len(files) - len(report.results) - len(report.skipped)
    if json:
        ui.print_json({**report.to_dict(), "already_stored": skipped_resume})
    else:
        rows = [
            [r.path, r.sop_instance_uid, f"0x{r.status:04X}" if r.status is not None else "-",
             r.status_name or r.error]
            for r in report.results + report.skipped
        ]  # fmt: skip
        if len(rows) <= 50:
            ui.console.print(
                ui.table("C-STORE results", ["file", "SOP Instance UID", "status", "meaning"], rows)
            )
        rate = len(report.sent_ok) / report.seconds if report.seconds else 0
        ui.console.print(
            f"{ui.OK if not report.failed else ui.FAIL} {len(report.sent_ok)} stored, "
            f"{len(report.failed)} not stored"
            + (f", {skipped_resume} already stored earlier (--resume)" if skipped_resume else "")
            + f" in {report.seconds:.2f} s ({rate:.0f} files/s, "
            f"{report.bytes_sent / 1e6 / max(report.seconds, 1e-9):.1f} MB/s)"
        )
        if report.failed:
            ui.err_console.print("[fail]Not stored:[/fail]")
            for r in report.failed:
                ui.err_console.print(
                    f"  {ui.escape(r.path)}: {ui.escape(r.error or r.status_name)}"
                )
            ui.err_console.print(
                "[hint]Fix the cause, then re-run with --resume to send only these.[/hint]"
            )
        first = shlex.quote(str(paths[0]))
        ui.equivalent(
            f"storescu -aet {cfg.aet} -aec {peer.aet} +sd +r {peer.host} {peer.port} {first}"
        )
    if report.failed:
        raise typer.Exit(ExitCode.FAILED)


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
    peer = _peer(cfg, to)
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
