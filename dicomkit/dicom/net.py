"""Associations: the echoscu shape (make the AE, add contexts, associate, check, use, release)
in one context manager, with TCP_NODELAY and errors that name the fix."""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dicomkit.errors import AssociationRejected, ConnectionFailed, DimseFailure, UsageError

if TYPE_CHECKING:
    from pynetdicom.association import Association
    from pynetdicom.presentation import PresentationContext

log = logging.getLogger(__name__)

# Largest PDU we offer to receive. 0 would mean "unlimited", which a hostile peer could abuse.
MAX_PDU = 1024 * 1024

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
    0xA900: "Failure: identifier does not match SOP class",
    0xC000: "Failure: cannot understand",
    0xC001: "Failure: processing failure (Orthanc)",
}


def status_name(code: int | None) -> str:
    if code is None:
        return "no response (association lost)"
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
    (1, 2): "the peer does not know your calling AE title: register it on the peer, or use --aet",
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
    what: str = "DICOM",
) -> Iterator[Association]:
    """Open an association, yield it established, always release (or abort) on the way out."""
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

    handlers: list[Any] = [nodelay_handler(), (evt.EVT_REJECTED, _on_rejected)]
    assoc = ae.associate(
        peer.host, peer.port, ae_title=peer.aet, ext_neg=ext_neg, evt_handlers=handlers
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


def _raise_for_failed(
    assoc: Association, peer: Peer, calling_aet: str, rejection: dict[str, int], what: str
) -> None:
    if assoc.is_rejected:
        source, reason = rejection.get("source", 0), rejection.get("reason", 0)
        hint = _REJECT_HINTS.get(
            (source, reason),
            f"check the called AE title ({peer.aet}) and that the peer accepts calling AE "
            f"{calling_aet}",
        )
        raise AssociationRejected(
            f"{peer} rejected the association (source {source}, reason {reason})",
            hint,
            peer=str(peer),
            transient=rejection.get("result") == 2,  # PS3.8 9.3.4: rejected-transient
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


# ---- C-ECHO without pynetdicom ---------------------------------------------------------
# `dicomkit echo` is the DICOM "ping": importing pydicom + pynetdicom (and numpy through them)
# costs several times the echo itself. The happy path below speaks the few PDUs of PS3.8 9.3
# directly; anything unusual (rejection, abort, a context refused, an unexpected PDU) returns
# None and the caller repeats the echo through pynetdicom, which names the cause and the fix.

IMPLICIT_VR_LE = "1.2.840.10008.1.2"
VERIFICATION = "1.2.840.10008.1.1"
APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"  # PS3.7 A.2.1 DICOM Application Context Name
# Our implementation identity in the A-ASSOCIATE-RQ (PS3.7 D.3.3.2): a UUID-derived UID
# (PS3.5 B.2), fixed once; the fallback path sends pynetdicom's own.
IMPLEMENTATION_CLASS_UID = "2.25.212412416477860226399456929725017484453"
IMPLEMENTATION_VERSION = "DICOMKIT_ECHO"


class _Unusual(Exception):
    """The fast path met something only the full stack should explain."""


def _item(item_type: int, payload: bytes) -> bytes:
    import struct

    return struct.pack(">BBH", item_type, 0, len(payload)) + payload


def uid_bytes(value: str) -> bytes:
    b = value.encode("ascii")
    return b + b"\0" if len(b) % 2 else b  # PS3.5 6.2: UI padded with NUL to even length


def associate_rq(
    called: str,
    calling: str,
    contexts: Sequence[tuple[int, str, Sequence[str]]],
    version: str = IMPLEMENTATION_VERSION,
) -> bytes:
    """A-ASSOCIATE-RQ (PS3.8 9.3.2) proposing each (context ID, abstract syntax, transfer
    syntaxes); shared by the bare-socket echo, store and find clients."""
    import struct

    items = _item(0x10, APPLICATION_CONTEXT.encode())
    for cid, abstract, syntaxes in contexts:
        pc = struct.pack(">BBBB", cid, 0, 0, 0) + _item(0x30, abstract.encode())
        for ts in syntaxes:
            pc += _item(0x40, ts.encode())
        items += _item(0x20, pc)
    user = _item(0x51, struct.pack(">I", MAX_PDU))  # PS3.8 D.1 Maximum Length
    user += _item(0x52, IMPLEMENTATION_CLASS_UID.encode())
    user += _item(0x55, version.encode())
    items += _item(0x50, user)
    body = struct.pack(">HH", 1, 0)  # protocol version 1, reserved
    body += called.encode("ascii").ljust(16) + calling.encode("ascii").ljust(16) + bytes(32)
    body += items
    return struct.pack(">BBI", 0x01, 0, len(body)) + body


def parse_associate_ac(body: bytes) -> tuple[dict[int, str], int]:
    """The accepted presentation contexts of an A-ASSOCIATE-AC body (PS3.8 9.3.3) as
    {context ID: transfer syntax ("" if the peer named none)}, and the peer's maximum PDU
    length (0: no limit)."""
    import struct

    accepted: dict[int, str] = {}
    max_pdu = 0
    pos = 68  # protocol version, reserved, echoed AE titles, 32 reserved bytes
    while pos + 4 <= len(body):
        item_type, _, length = struct.unpack_from(">BBH", body, pos)
        value = body[pos + 4 : pos + 4 + length]
        if item_type == 0x21 and len(value) >= 4 and value[2] == 0:  # result 0: acceptance
            ts, sub = "", 4  # context ID, reserved, result, reserved, then sub-items
            while sub + 4 <= len(value):
                st, _, sl = struct.unpack_from(">BBH", value, sub)
                if st == 0x40:
                    ts = value[sub + 4 : sub + 4 + sl].rstrip(b"\0 ").decode("ascii", "replace")
                sub += 4 + sl
            accepted[value[0]] = ts
        elif item_type == 0x50:
            sub = 0
            while sub + 4 <= len(value):
                st, _, sl = struct.unpack_from(">BBH", value, sub)
                if st == 0x51 and sl == 4:
                    max_pdu = struct.unpack_from(">I", value, sub + 4)[0]
                sub += 4 + sl
        pos += 4 + length
    return accepted, max_pdu


def recv_exact(sock: socket.socket, n: int, error: type[Exception] = _Unusual) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise error("the peer closed the connection")
        buf += chunk
    return bytes(buf)


def recv_pdu(sock: socket.socket, error: type[Exception] = _Unusual) -> tuple[int, bytes]:
    """One whole PDU: (type, body). ``error`` for a closed connection or an oversized PDU."""
    import struct

    pdu_type, _, length = struct.unpack(">BBI", recv_exact(sock, 6, error))
    if length > MAX_PDU + 1024:
        raise error(f"PDU of {length} bytes exceeds our maximum")
    return pdu_type, recv_exact(sock, length, error)


def _element(tag: int, value: bytes) -> bytes:
    import struct

    # PS3.5 7.1.3 Implicit VR Little Endian: tag, 32-bit length, value (even length)
    return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, len(value)) + value


def _c_echo_rq(message_id: int) -> bytes:
    import struct

    elems = _element(0x00000002, uid_bytes(VERIFICATION))  # Affected SOP Class UID
    elems += _element(0x00000100, struct.pack("<H", 0x0030))  # Command Field: C-ECHO-RQ
    elems += _element(0x00000110, struct.pack("<H", message_id))  # Message ID
    elems += _element(0x00000800, struct.pack("<H", 0x0101))  # Command Data Set Type: none
    return _element(0x00000000, struct.pack("<I", len(elems))) + elems  # Group Length


def read_command(recv_pdu: Callable[[], tuple[int, bytes]]) -> bytes | None:
    """Reassemble a DIMSE command from P-DATA-TF PDUs (PS3.8 9.3.5, E.2); None when another
    PDU type arrives (an abort, a release request) for the caller to handle."""
    import struct

    received = b""
    while True:
        pdu_type, body = recv_pdu()
        if pdu_type != 0x04:
            return None
        pos, last = 0, False
        while pos + 6 <= len(body):
            length, _, control = struct.unpack_from(">IBB", body, pos)
            if not control & 0x01:
                raise _Unusual("a data set where only a command was expected")
            received += body[pos + 6 : pos + 4 + length]
            last = bool(control & 0x02)
            pos += 4 + length
        if last:
            return received


def _status(command: bytes) -> int | None:
    import struct

    pos, status, field_ = 0, None, None
    while pos + 8 <= len(command):
        group, elem, length = struct.unpack_from("<HHI", command, pos)
        value = command[pos + 8 : pos + 8 + length]
        if (group, elem) == (0x0000, 0x0900) and length == 2:
            status = struct.unpack("<H", value)[0]
        elif (group, elem) == (0x0000, 0x0100) and length == 2:
            field_ = struct.unpack("<H", value)[0]
        pos += 8 + length
    if field_ != 0x8030:  # C-ECHO-RSP
        raise _Unusual(f"unexpected command 0x{field_ or 0:04X}")
    return status


def quick_echo(peer: Peer, calling_aet: str, timeout: float = 10.0) -> int | None:
    """C-ECHO on a bare socket: the response status, or None when the full stack should
    repeat it (and explain what went wrong). Raises ``ConnectionFailed`` when nothing answers
    or the peer stays silent, as the full stack would after the same wait."""
    import struct

    try:
        sock = socket.create_connection((peer.host, peer.port), timeout=timeout)
    except OSError:
        return None  # refused / unreachable: the full stack names it (fails fast too)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rq = associate_rq(peer.aet, calling_aet, [(1, VERIFICATION, [IMPLICIT_VR_LE])])
        sock.sendall(rq)
        pdu_type, body = recv_pdu(sock)
        if pdu_type != 0x02 or 1 not in parse_associate_ac(body)[0]:  # no AC, or refused
            return None
        command = _c_echo_rq(1)
        # P-DATA-TF with one PDV: context 1, control header 0x03 = command, last fragment
        pdv = struct.pack(">IBB", len(command) + 2, 1, 0x03) + command
        sock.sendall(struct.pack(">BBI", 0x04, 0, len(pdv)) + pdv)
        received = read_command(lambda: recv_pdu(sock))
        if received is None:
            return None
        status = _status(received)
        sock.sendall(struct.pack(">BBI", 0x05, 0, 4) + bytes(4))  # A-RELEASE-RQ
        with contextlib.suppress(OSError, _Unusual):
            recv_pdu(sock)  # A-RELEASE-RP (the answer is already ours either way)
        return status
    except TimeoutError:
        raise no_association(peer) from None
    except (OSError, _Unusual, struct.error, UnicodeEncodeError) as exc:
        log.debug("quick echo to %s fell back to pynetdicom: %s", peer, exc)
        return None
    finally:
        sock.close()


@dataclass
class EchoResult:
    peer: str
    status: int
    status_name: str
    ms: float
    ok: bool


def echo(peer: Peer, calling_aet: str, timeout: float = 10.0) -> EchoResult:
    """C-ECHO: over a bare socket when all goes well (no pynetdicom import: ~0.4 s of a
    `dicomkit echo`), else through pynetdicom, whose errors name the cause."""
    t0 = time.perf_counter()
    code = quick_echo(peer, calling_aet, timeout)  # no pynetdicom import when all goes well
    if code is not None:
        ms = (time.perf_counter() - t0) * 1000
        return EchoResult(str(peer), code, status_name(code), round(ms, 1), code == 0)
    from pynetdicom.presentation import build_context

    t0 = time.perf_counter()
    with association(peer, calling_aet, [build_context(VERIFICATION)], timeout=timeout) as assoc:
        rsp = assoc.send_c_echo()
    ms = (time.perf_counter() - t0) * 1000
    code = int(rsp.Status) if "Status" in rsp else None
    if code is None:
        raise DimseFailure(f"{peer} did not answer the C-ECHO", "see the peer's log")
    return EchoResult(str(peer), code, status_name(code), round(ms, 1), code == 0)
