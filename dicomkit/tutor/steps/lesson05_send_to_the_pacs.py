"""Lesson 5, send to the PACS: presentation contexts, then the learner's own C-STORE (storescu);
the tutor asks the PACS's REST API whether it stored that SOP instance (PS3.4 B.2.3)."""

from __future__ import annotations

import time
from pathlib import Path

from dicomkit import ui
from dicomkit.errors import DicomkitError
from dicomkit.tutor.context import LabContext
from dicomkit.tutor.registry import Seen, Values, action, task
from dicomkit.tutor.watch_lab import sop_in_pacs


@action("negotiate")
def negotiate(ctx: LabContext) -> None:
    from pydicom import dcmread
    from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
    from pynetdicom.presentation import build_context

    from dicomkit.dicom.net import association

    path = Path(ctx.need("image_file", 4))
    meta = dcmread(path, stop_before_pixels=True).file_meta
    sop_class = UID(str(meta.MediaStorageSOPClassUID))
    proposed = [
        build_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian]),
        build_context("1.2.840.10008.1.1"),  # Verification, so a C-ECHO could ride along
    ]
    t0 = time.perf_counter()
    with association(ctx.pacs, ctx.aet, proposed, timeout=ctx.cfg.timeout) as assoc:
        accepted = list(assoc.accepted_contexts)
        rejected = list(assoc.rejected_contexts)
        max_pdu = assoc.acceptor.maximum_length
    ms = (time.perf_counter() - t0) * 1000
    rows = []
    for cx in accepted:
        rows.append([str(cx.context_id), UID(str(cx.abstract_syntax)).name,
                     "accepted", UID(cx.transfer_syntax[0]).name])  # fmt: skip
    for cx in rejected:
        rows.append([str(cx.context_id), UID(str(cx.abstract_syntax)).name, "rejected", "-"])
    ctx.out.show(
        ui.table(
            f"Association negotiated in {ms:.0f} ms (the PACS accepts PDUs up to {max_pdu} bytes)",
            ["id", "abstract syntax (SOP class)", "result", "transfer syntax"],
            rows,
        )
    )
    ctx.out.show(
        f"[muted]Proposed for {sop_class.name}: Explicit VR Little Endian, Implicit VR Little "
        f"Endian. Your file is encoded as {UID(str(meta.TransferSyntaxUID)).name}.[/muted]"
    )


def _prepare(ctx: LabContext) -> Values:
    return {"image": str(ctx.need("image_file", 4))}


def _show_me(ctx: LabContext, values: Values) -> None:
    from dicomkit.dicom.scu import store_files

    path = Path(values["image"])
    if not path.is_file():
        raise DicomkitError(f"the image {path} is gone", "rerun `dicomkit lesson 4`")
    report = store_files(ctx.pacs, ctx.aet, [path], timeout=ctx.cfg.timeout)
    rows = [
        [r.sop_instance_uid, f"0x{r.status:04X}" if r.status is not None else "-",
         r.status_name or r.error]
        for r in report.results + report.skipped
    ]  # fmt: skip
    ctx.out.show(ui.table(f"C-STORE to {ctx.pacs}: {report.bytes_sent} bytes",
                          ["SOP Instance UID", "status (PS3.4 B.2.3)", "meaning"], rows))  # fmt: skip
    if report.failed:
        first = report.failed[0]
        raise DicomkitError(
            f"the PACS did not store the image: {first.error or first.status_name}",
            "see `dicomkit logs pacs`, then rerun `dicomkit lesson 5`",
        )


@task("store-image", _prepare, _show_me)
def store_image(ctx: LabContext, values: Values) -> Seen | None:
    sop = str(ctx.need("sop_instance_uid", 4))
    if not sop_in_pacs(ctx, sop):
        return None
    return Seen(True, f"the PACS stored SOP Instance {sop} (asked its REST API)", {
        "stored_sop_instance_uid": sop,
        "study_instance_uid": ctx.need("study_instance_uid", 4),
        "accession": ctx.need("accession", 4)})  # fmt: skip
