"""Lesson 1, meet the lab: the actors, AE titles, C-ECHO; the learner echoes the lab's PACS and the
tutor sees the association arrive there (the lab's event feed)."""

from __future__ import annotations

from typing import Any

from dicomkit import ui
from dicomkit.tutor.context import LabContext
from dicomkit.tutor.registry import Seen, Values, action, task
from dicomkit.tutor.show import facts, ok_mark
from dicomkit.tutor.watch_lab import lab_saw, rejected_association, status_text, watch_from_now


@action("show_lab")
def show_lab(ctx: LabContext) -> None:
    ep = ctx.endpoints
    rows = [
        ["RIS", "takes orders (HTTP, and HL7 v2 over MLLP), writes worklist items",
         f"{ep.ris_url}, MLLP {ep.host}:{ep.hl7_port}", "-"],
        ["Worklist (MWL SCP)", "answers C-FIND for scheduled steps",
         f"{ep.host}:{ep.mwl_port}", ep.pacs_aet],
        ["Modality (you)", "queries the worklist, makes and sends images", "this terminal",
         ctx.aet],
        ["PACS (Storage + Q/R SCP)", "stores images, answers C-FIND and REST",
         f"{ep.host}:{ep.dicom_port}, {ep.pacs_url}", ep.pacs_aet],
    ]  # fmt: skip
    ctx.out.show(ui.table(f"The lab ({ctx.engine} engine)", ["actor", "role", "address",
                                                            "AE title"], rows))  # fmt: skip


def _echo(ctx: LabContext, peer: Any, what: str, calling: str = "") -> None:
    from dicomkit.dicom.scu import echo

    calling = calling or ctx.aet
    result = echo(peer, calling, ctx.cfg.timeout)
    rows = [
        ["calling AE (us)", calling],
        ["called AE (them)", peer.aet],
        ["address", f"{peer.host}:{peer.port}"],
        ["status", f"0x{result.status:04X} {result.status_name}"],
        ["round trip", f"{result.ms:.1f} ms (associate + C-ECHO + release)"],
    ]
    ctx.out.show(facts(f"{ok_mark(result.ok)} C-ECHO to the {what}", rows))
    ctx.out.equivalent(f"echoscu -v -aet {calling} -aec {peer.aet} {peer.host} {peer.port}")


@action("echo_pacs")
def echo_pacs(ctx: LabContext) -> None:
    _echo(ctx, ctx.pacs, "PACS")


@action("echo_mwl")
def echo_mwl(ctx: LabContext) -> None:
    if ctx.endpoints.mwl_port == ctx.endpoints.dicom_port:
        ctx.out.show(
            "[muted]This engine serves the worklist on the PACS's own DICOM port "
            f"({ctx.endpoints.dicom_port}): one AE, two services.[/muted]"
        )
    _echo(ctx, ctx.mwl, "worklist")


def _prepare_echo(ctx: LabContext) -> Values:
    return watch_from_now(ctx)


def _show_me_echo(ctx: LabContext, values: Values) -> None:
    _echo(ctx, ctx.pacs, "PACS", calling="ECHOSCU")


@task("echo-pacs", _prepare_echo, _show_me_echo, needs="events")
def echo_pacs_yourself(ctx: LabContext, values: Values) -> Seen | None:
    """The C-ECHO the PACS saw arrive, with the calling and called AE titles it carried."""
    events = lab_saw(ctx, values, "association", "echo")
    echoes = [e for e in events if e.service == "echo"]
    if echoes:
        e = echoes[-1]
        return Seen(True, f"a C-ECHO arrive at the PACS from calling AE {e.calling} to called "
                    f"AE {e.called}; it answered {status_text(e.get('status'))}",
                    {"echo_calling_aet": e.calling})  # fmt: skip
    return rejected_association(ctx, events)
