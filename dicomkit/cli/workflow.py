"""After the image is in the PACS: retrieve (C-MOVE / C-GET) and storage commitment."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dicomkit.cli.common import CTX, AetOpt, JsonOpt, TimeoutOpt, ToOpt, peer_for, set_json
from dicomkit.errors import ExitCode

AccessionOpt = Annotated[str, typer.Option("--accession", "-a", help="Accession number.")]


def retrieve(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the instances to.")],
    accession: AccessionOpt = "",
    study_uid: Annotated[str, typer.Option("--study-uid", help="Study Instance UID.")] = "",
    get: Annotated[
        bool, typer.Option("--get", help="C-GET on our own association instead of C-MOVE.")
    ] = False,
    to: ToOpt = None,
    aet: AetOpt = None,
    timeout: TimeoutOpt = None,
    json: JsonOpt = False,
) -> None:
    """Retrieve a study from the PACS into a folder (C-MOVE to us, or --get), each instance checked."""
    from dicomkit import ui
    from dicomkit.dicom.retrieve import retrieve as do_retrieve

    set_json(json)
    cfg = CTX.config(aet=aet, timeout=timeout)
    peer = peer_for(cfg, to)
    report = do_retrieve(
        peer, cfg.aet, out, accession=accession, study_uid=study_uid, use_get=get,
        listen_host=cfg.listen_address, listen_port=cfg.retrieve_port, timeout=cfg.timeout,
    )  # fmt: skip
    if json:
        ui.print_json(report.to_dict())
    else:
        via = f" to {report.destination}" if report.destination else ""
        ui.console.print(
            f"{report.method} {peer}{via}: {report.status_name}; "
            f"{report.completed} completed, {report.failed} failed, {report.warning} warning"
        )
        rows = [
            [r.sop_instance_uid, f"0x{r.status:04X} {r.status_name}", r.path or r.error]
            for r in report.instances
        ]
        ui.console.print(
            ui.table(
                f"{len(rows)} instance(s) received",
                ["SOP Instance UID", "status", "written to / why refused"],
                rows,
            )
        )
        for uid in report.failed_uids:
            ui.console.print(f"{ui.FAIL} the PACS could not send {uid}")
        key = f"-k StudyInstanceUID={report.studies[0]}" if report.studies else ""
        if get:
            ui.equivalent(f"getscu -S -aet {cfg.aet} -aec {peer.aet} -k QueryRetrieveLevel=STUDY "
                          f"{key} -od {out} {peer.host} {peer.port}")  # fmt: skip
        else:
            ui.equivalent(f"movescu -S -aet {cfg.aet} -aec {peer.aet} -aem {cfg.aet} "
                          f"+P {cfg.retrieve_port} -k QueryRetrieveLevel=STUDY {key} -od {out} "
                          f"{peer.host} {peer.port}")  # fmt: skip
    if not report.ok:
        raise typer.Exit(ExitCode.FAILED)


def commit(
    files: Annotated[
        list[Path] | None, typer.Argument(help="Instances to commit (DICOM files you stored).")
    ] = None,
    accession: AccessionOpt = "",
    to: ToOpt = None,
    aet: AetOpt = None,
    timeout: TimeoutOpt = None,
    json: JsonOpt = False,
) -> None:
    """Ask the PACS to take custody of stored instances (storage commitment, N-ACTION / N-EVENT-REPORT)."""
    from dicomkit import ui
    from dicomkit.dicom.commit import accession_instances, instances_of_files, remember
    from dicomkit.dicom.commit import commit as do_commit
    from dicomkit.errors import UsageError

    set_json(json)
    cfg = CTX.config(aet=aet, timeout=timeout)
    peer = peer_for(cfg, to)
    if bool(files) == bool(accession):
        raise UsageError("name FILE... or --accession (one of them)",
                         "e.g. dicomkit commit --accession ACC-1001")  # fmt: skip
    if files:
        instances = instances_of_files(files)
    else:
        instances = accession_instances(peer, cfg.aet, accession, cfg.timeout)
    report = do_commit(peer, cfg.aet, instances, listen_host=cfg.listen_address,
                       listen_port=cfg.retrieve_port, timeout=cfg.timeout)  # fmt: skip
    remember(cfg.commitments_file, report)
    if json:
        ui.print_json(report.to_dict())
    else:
        ui.console.print(
            f"storage commitment {report.transaction_uid} with {peer}: report on the "
            f"{report.association} association from {report.report_from}"
        )
        rows = [
            [r.sop_instance_uid, "committed" if r.committed else "FAILED",
             "" if r.committed else f"0x{r.failure_reason or 0:04X} {r.reason}", r.file]
            for r in report.results
        ]  # fmt: skip
        ui.console.print(ui.table("Storage commitment", ["SOP Instance UID", "result", "reason",
                                                         "file"], rows))  # fmt: skip
    if not report.ok:
        raise typer.Exit(ExitCode.FAILED)
