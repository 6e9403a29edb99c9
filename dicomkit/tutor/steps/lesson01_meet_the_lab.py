"""Lesson 1, meet the lab: the actors, AE titles, C-ECHO; the learner echoes the tutor's own AE."""

from __future__ import annotations

import socket
import threading
from typing import Any

from dicomkit import ui
from dicomkit.tutor.context import LabContext
from dicomkit.tutor.registry import Seen, Values, action, task
from dicomkit.tutor.show import facts, ok_mark

TUTOR_AET = "TUTOR"  # the AE the tutor runs for lesson 1's task; the learner echoes it


@action("show_lab")
def show_lab(ctx: LabContext) -> None:
    ep = ctx.endpoints
    rows = [
        ["RIS", "takes orders (HTTP here; HL7 v2 in hospitals), writes worklist items",
         ep.ris_url, "-"],
        ["Worklist (MWL SCP)", "answers C-FIND for scheduled steps",
         f"{ep.host}:{ep.mwl_port}", ep.pacs_aet],
        ["Modality (you)", "queries the worklist, makes and sends images", "this terminal",
         ctx.aet],
        ["PACS (Storage + Q/R SCP)", "stores images, answers C-FIND and REST",
         f"{ep.host}:{ep.dicom_port}, {ep.pacs_url}", ep.pacs_aet],
    ]  # fmt: skip
    ctx.out.show(ui.table(f"The lab ({ctx.engine} engine)", ["actor", "role", "address",
                                                            "AE title"], rows))  # fmt: skip


def _echo(ctx: LabContext, peer: Any, what: str) -> None:
    from dicomkit.dicom.scu import echo

    result = echo(peer, ctx.aet, ctx.cfg.timeout)
    rows = [
        ["calling AE (us)", ctx.aet],
        ["called AE (them)", peer.aet],
        ["address", f"{peer.host}:{peer.port}"],
        ["status", f"0x{result.status:04X} {result.status_name}"],
        ["round trip", f"{result.ms:.1f} ms (associate + C-ECHO + release)"],
    ]
    ctx.out.show(facts(f"{ok_mark(result.ok)} C-ECHO to the {what}", rows))
    ctx.out.equivalent(f"echoscu -v -aet {ctx.aet} -aec {peer.aet} {peer.host} {peer.port}")


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


class EchoListener:
    """A Verification SCP the tutor runs itself, so it sees the learner's echo arrive."""

    def __init__(self, host: str) -> None:
        from pynetdicom import AE, evt
        from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

        self.seen: list[tuple[str, str]] = []  # (calling AE, called AE) of each C-ECHO
        self._lock = threading.Lock()
        ae = AE(ae_title=TUTOR_AET)
        ae.require_called_aet = True  # like the PACS: a wrong called AE title is rejected
        ae.add_supported_context(Verification)
        with socket.socket() as probe:  # a free port, bound on the lab's host only
            probe.bind((host, 0))
            self.port = int(probe.getsockname()[1])
        self.server = ae.start_server(
            (host, self.port), block=False, evt_handlers=[(evt.EVT_C_ECHO, self._on_echo)]
        )

    def _on_echo(self, event: Any) -> int:
        req = event.assoc.requestor
        with self._lock:
            self.seen.append((str(req.ae_title).strip(), TUTOR_AET))
        return 0x0000  # Success

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()


def _listener(ctx: LabContext) -> EchoListener:
    found = ctx.scratch.get("echo_listener")
    if found is None:
        found = EchoListener(ctx.endpoints.host)
        ctx.scratch["echo_listener"] = found
        ctx.cleanups.append(found.close)
    return found


def _prepare_echo(ctx: LabContext) -> Values:
    listener = _listener(ctx)
    return {"tutor_aet": TUTOR_AET, "tutor_port": str(listener.port)}


def _show_me_echo(ctx: LabContext, values: Values) -> None:
    from dicomkit.dicom.net import Peer

    _echo(ctx, Peer(ctx.endpoints.host, int(values["tutor_port"]), TUTOR_AET), "tutor's AE")


@task("echo-tutor", _prepare_echo, _show_me_echo)
def echo_tutor(ctx: LabContext, values: Values) -> Seen | None:
    listener = _listener(ctx)
    if not listener.seen:
        return None
    calling, called = listener.seen[-1]
    text = f"a C-ECHO from calling AE {calling} to called AE {called}: answered 0x0000 Success"
    return Seen(True, text, {"echo_calling_aet": calling})
