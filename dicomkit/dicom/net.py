"""Associations: the echoscu shape (make the AE, add contexts, associate, check, use, release)
in one context manager, with TCP_NODELAY and errors that name the fix."""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dicomkit.errors import AssociationRejected, ConnectionFailed, DimseFailure, UsageError

if TYPE_CHECKING:
    from pynetdicom.association import Association
    from pynetdicom.presentation import PresentationContext

log = logging.getLogger(__name__)

# Largest PDU we offer to receive. 0 would mean "unlimited", which a hostile peer could abuse.
MAX_PDU = 1024 * 1024
VERIFICATION = "1.2.840.10008.1.1"

# PS3.7 Annex C status codes we name (never print a bare number).
STATUS_NAMES: dict[int, str] = {
    0x0000: "Success",
    0xFF00: "Pending",
    0xFF01: "Pending (optional keys not supported)",
    0xFE00: "Cancel",
    0x0107: "Warning: attribute list error",
    0x0116: "Warning: attribute value out of range",
    0xB000: "Warning: coercion of data elements",
    0xB007: "Warning: data set does not match SOP class",
    0xB006: "Warning: elements discarded",
    0x0110: "Failure: processing failure",
    0x0111: "Failure: duplicate SOP instance",
    0x0112: "Failure: no such SOP instance",
    0x0117: "Failure: invalid object instance",
    0x0118: "Failure: no such SOP class",
    0x0119: "Failure: class-instance conflict",
    0x0122: "Failure: SOP class not supported",
    0x0124: "Failure: refused, not authorised",
    0x0211: "Failure: unrecognised operation",
    0xA700: "Failure: out of resources",
    0xA701: "Failure: out of resources (number of matches)",
    0xA702: "Failure: out of resources (sub-operations)",
    0xA801: "Failure: move destination unknown",
    0xA900: "Failure: data set does not match SOP class",
    0xC000: "Failure: cannot understand",
    0xC001: "Failure: processing failure (Orthanc)",
}


def status_name(code: int | None, service: str = "") -> str:
    """``service`` "find": Cxxx is "Unable to process" for C-FIND (PS3.4 C.4.1.1.4), where
    for C-STORE it is "Cannot understand" (PS3.4 B.2.3); "retrieve" (C-MOVE/C-GET) reads them
    as "find" does, and B000 as sub-operations complete with failures (PS3.4 C.4.2.1.5)."""
    if code is None:
        return "no response (association lost)"
    if service == "retrieve" and code == 0xB000:  # PS3.4 Table C.4-2 / C.4-3
        return "Warning: sub-operations complete, one or more failures"
    if service == "retrieve":
        service = "find"  # Cxxx and A9xx mean what they mean for C-FIND
    if service == "find" and 0xC000 <= code <= 0xCFFF:
        return "Failure: unable to process"
    if service == "find" and 0xA900 <= code <= 0xA9FF:
        return "Failure: identifier does not match SOP class"
    if code in STATUS_NAMES:
        return STATUS_NAMES[code]
    if 0xA700 <= code <= 0xA7FF:
        return "Failure: out of resources"
    if 0xA900 <= code <= 0xA9FF:
        return "Failure: data set does not match SOP class"
    if 0xC000 <= code <= 0xCFFF:
        return "Failure: cannot understand"
    if 0xB000 <= code <= 0xBFFF:
        return "Warning"
    return "Failure"


def status_category(code: int | None) -> str:
    if code is None:
        return "failure"
    if code == 0x0000:
        return "success"
    if code in (0xFF00, 0xFF01):
        return "pending"
    if code == 0xFE00:
        return "cancel"
    if code in (0x0001, 0x0107, 0x0116) or 0xB000 <= code <= 0xBFFF:
        return "warning"
    return "failure"


@dataclass(frozen=True)
class Peer:
    """A DICOM application entity on the network: where it listens and what it is called."""

    host: str
    port: int
    aet: str

    @classmethod
    def parse(cls, spec: str) -> Peer:
        """``HOST:PORT:AET`` (the order of echoscu's arguments, plus the called AE)."""
        parts = spec.rsplit(":", 2)
        if len(parts) != 3:
            raise UsageError(
                f"peer {spec!r} is not HOST:PORT:AET", "e.g. --to 127.0.0.1:11112:STORESCP"
            )
        host, port_s, aet = parts
        try:
            port = int(port_s)
        except ValueError:
            raise UsageError(f"port {port_s!r} in {spec!r} is not a number", "e.g. 4242") from None
        if not 1 <= port <= 65535 or not host or not 1 <= len(aet) <= 16:
            raise UsageError(
                f"peer {spec!r} is not valid",
                "HOST non-empty, PORT 1-65535, AET 1-16 characters",
            )
        return cls(host.strip("[]"), port, aet)

    def __str__(self) -> str:
        return f"{self.aet}@{self.host}:{self.port}"


def _set_nodelay(event: Any) -> None:
    # Nagle + delayed ACK on loopback stall each small DIMSE message ~40 ms.
    sock = event.assoc.dul.socket.socket
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def nodelay_handler() -> tuple[Any, Any]:
    from pynetdicom import evt

    return (evt.EVT_CONN_OPEN, _set_nodelay)


def _port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


_REJECT_HINTS = {
    # (source, reason) -> hint; PS3.8 9.3.4 A-ASSOCIATE-RJ
    (
        1,
        2,
    ): "the peer does not support the proposed application context name (PS3.8 Table 9-21, reason 2): is it a DICOM peer?",
    (1, 3): "the peer does not know your calling AE title: register it on the peer, or use --aet",
    (
        1,
        7,
    ): "the called AE title is wrong for this peer: check the peer's AE title (--to HOST:PORT:AET)",
}


@contextlib.contextmanager
def association(
    peer: Peer,
    calling_aet: str,
    contexts: Sequence[PresentationContext],
    *,
    timeout: float = 10.0,
    ext_neg: list[Any] | None = None,
    handlers: list[Any] | None = None,
    what: str = "DICOM",
) -> Iterator[Association]:
    """Open an association, yield it established, always release (or abort) on the way out.
    ``handlers``: more event handlers bound to it (e.g. EVT_C_STORE for C-GET)."""
    from pynetdicom import AE

    ae = AE(ae_title=calling_aet)
    ae.requested_contexts = list(contexts)
    ae.acse_timeout = timeout
    ae.dimse_timeout = timeout
    ae.network_timeout = timeout
    ae.connection_timeout = timeout
    ae.maximum_pdu_size = MAX_PDU
    rejection: dict[str, int] = {}

    def _on_rejected(event: Any) -> None:
        prim = event.assoc.acceptor.primitive
        if prim is not None:
            rejection.update(
                result=prim.result or 0, source=prim.result_source or 0, reason=prim.diagnostic or 0
            )

    from pynetdicom import evt

    bound: list[Any] = [nodelay_handler(), (evt.EVT_REJECTED, _on_rejected), *(handlers or [])]
    assoc = ae.associate(
        peer.host, peer.port, ae_title=peer.aet, ext_neg=ext_neg, evt_handlers=bound
    )
    if not assoc.is_established:
        _raise_for_failed(assoc, peer, calling_aet, rejection, what)
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()


def no_association(peer: Peer) -> ConnectionFailed:
    """The error for a peer that accepts TCP but never completes an association."""
    return ConnectionFailed(
        f"no DICOM association with {peer}: the peer closed the connection or did not "
        f"answer an A-ASSOCIATE request",
        "is it a DICOM server? check the port (HTTP is usually 8042, DICOM 4242)",
        peer=str(peer),
    )


def rejected_error(
    peer: Peer, calling_aet: str, result: int, source: int, reason: int
) -> AssociationRejected:
    """The error for an A-ASSOCIATE-RJ, on either path (PS3.8 9.3.4)."""
    hint = _REJECT_HINTS.get(
        (source, reason),
        f"check the called AE title ({peer.aet}) and that the peer accepts calling AE "
        f"{calling_aet}",
    )
    return AssociationRejected(
        f"{peer} rejected the association (source {source}, reason {reason})",
        hint,
        peer=str(peer),
        transient=result == 2,  # PS3.8 9.3.4: rejected-transient
    )


def _raise_for_failed(
    assoc: Association, peer: Peer, calling_aet: str, rejection: dict[str, int], what: str
) -> None:
    if assoc.is_rejected:
        raise rejected_error(
            peer,
            calling_aet,
            rejection.get("result", 1),
            rejection.get("source", 0),
            rejection.get("reason", 0),
        )
    if not _port_open(peer.host, peer.port):
        raise ConnectionFailed(
            f"nothing answers on {peer.host}:{peer.port} ({what})",
            "start the lab with `dicomkit up` (see `dicomkit status`), or check the host and port",
            peer=str(peer),
        )
    # An A-ASSOCIATE-AC came back with no context we can use (a non-DICOM peer, e.g. HTTP,
    # also ends "aborted", but without any A-ASSOCIATE-AC).
    if assoc.is_aborted and assoc.acceptor.primitive is not None and not assoc.accepted_contexts:
        raise ConnectionFailed(
            f"{peer} accepted the connection but none of the proposed presentation contexts "
            f"(or aborted the association)",
            "the peer does not support this SOP class / transfer syntax; check its configuration",
            peer=str(peer),
        )
    raise no_association(peer)


@dataclass
class EchoResult:
    peer: str
    status: int
    status_name: str
    ms: float
    ok: bool


def echo(peer: Peer, calling_aet: str, timeout: float = 10.0) -> EchoResult:
    """C-ECHO: on the lean path when all goes well (no pynetdicom import: ~0.4 s of a
    `dicomkit echo`), else through pynetdicom, whose errors name the cause."""
    from dicomkit.dicom import wire

    t0 = time.perf_counter()
    if wire.enabled():
        from dicomkit.dicom import leanscu

        try:
            code = leanscu.echo(peer, calling_aet, timeout)
        except wire.Rejected as exc:
            raise rejected_error(peer, calling_aet, exc.result, exc.source, exc.reason) from None
        except wire.TimedOut:
            raise no_association(peer) from None
        except wire.WireError as exc:
            log.debug("lean echo to %s gave way to pynetdicom: %s", peer, exc)
        else:
            ms = (time.perf_counter() - t0) * 1000
            return EchoResult(str(peer), code, status_name(code), round(ms, 1), code == 0)
    from pynetdicom.presentation import build_context

    t0 = time.perf_counter()
    with association(peer, calling_aet, [build_context(VERIFICATION)], timeout=timeout) as assoc:
        rsp = assoc.send_c_echo()
    ms = (time.perf_counter() - t0) * 1000
    if "Status" not in rsp:
        raise DimseFailure(f"{peer} did not answer the C-ECHO", "see the peer's log")
    status = int(rsp.Status)
    return EchoResult(str(peer), status, status_name(status), round(ms, 1), status == 0)
