"""The body of ``dicomkit store`` (``cli/dicom.py`` holds its options)."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from dicomkit.cli.common import CTX, peer_for, set_json
from dicomkit.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from pathlib import Path


def run_store(
    *,
    paths: list[Path],
    to: str | None,
    aet: str | None,
    timeout: float | None,
    resume: bool,
    jobs: int,
    json: bool,
) -> None:
    """C-STORE ``paths`` (files and folders) to the lab's PACS or ``to``; exit 1 if any failed."""
    from dicomkit import ui
    from dicomkit.dicom import journal
    from dicomkit.dicom.scu import FileResult, auto_jobs, collect_files, store_files

    set_json(json)
    cfg = CTX.config(aet=aet, timeout=timeout)
    peer = peer_for(cfg, to)
    files = collect_files(paths)
    if not files:
        raise UsageError(
            "no files found under the given path(s)", "point at DICOM files or folders"
        )
    from dataclasses import replace

    from dicomkit.engines.state import archive_port, read_state

    # One journal per archive: the nodes of `up --nodes N` store into the same one.
    port = archive_port(read_state(cfg), peer.host, peer.port, peer.aet)
    jr = journal.StoreJournal(cfg.lab_dir / "journal", replace(peer, port=port))
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
        # --resume: how many files are already stored is known once store_files has read them.
        task = progress_ctx.add_task(f"C-STORE -> {peer}", total=len(files))

    def planned(n: int) -> None:
        if progress_ctx is not None and task is not None:
            progress_ctx.update(task, total=n)

    def on_file(r: FileResult) -> None:
        if r.ok:
            jr.record(r.sop_instance_uid)
        if progress_ctx is not None and task is not None:
            progress_ctx.advance(task)

    try:
        # Files that are not whole DICOM, or not of a storage SOP class, are refused before
        # any association (report.skipped); no association at all when nothing is left.
        report = store_files(
            peer,
            cfg.aet,
            files,
            timeout=cfg.timeout,
            progress=on_file,
            skip_instances=skip,
            jobs=jobs or auto_jobs(len(files)),
            planned=planned,
        )
    finally:
        if progress_ctx is not None:
            progress_ctx.stop()
        jr.close()
    skipped_resume = len(files) - len(report.results) - len(report.skipped)
    # Files that are no instance to store (left out for good), apart from those that can be
    # fixed and sent again with --resume (cut short, unreadable, refused by the peer).
    not_instances = ("not a DICOM file", "not a storage SOP class", "a DICOMDIR")
    refused = [r for r in report.skipped if r.error.startswith(not_instances)]
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
            if refused:
                ui.err_console.print("[hint]Files that are not DICOM, or not of a storage SOP "
                                     "class, are not sent: leave them out.[/hint]")  # fmt: skip
            if len(report.failed) > len(refused):
                ui.err_console.print(
                    "[hint]Fix the cause, then re-run with --resume to send only these.[/hint]"
                )
        first = shlex.quote(str(paths[0]))
        ui.equivalent(
            f"storescu -aet {cfg.aet} -aec {peer.aet} +sd +r {peer.host} {peer.port} {first}"
        )
    if report.failed:
        raise SystemExit(ExitCode.FAILED)
