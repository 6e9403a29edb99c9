"""The embedded PACS's lean path: echo, store, worklist and Q/R find over dicom/wire.py.

pynetdicom's SCP machinery costs ~3 ms per message (a DUL thread and a reactor thread that
hand every PDU over through queues with 1 ms polling sleeps), 4-7 ms to accept an association,
7-9 ms per C-FIND: most of an ingest and nearly all of a one-match worklist query. Here each
association is served in its connection's thread, and each request goes to the same plain
services the pynetdicom handlers call (``server.store_instance``, ``server.answer_find``).

Each accepted connection's A-ASSOCIATE-RQ is peeked (not consumed): an association proposing
only Verification, Storage, Modality Worklist FIND and Patient/Study Root FIND, with nothing
unusual in it (no role selection, extended negotiation, user identity, asynchronous operations
window), is served here; anything else (C-MOVE, C-GET, an odd or unparseable request) goes,
still unread, to pynetdicom, which behaves exactly as before. ``DICOMKIT_LEAN=0`` sends everything to pynetdicom. Either
way one log line per association names the path that serves it.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from typing import TYPE_CHECKING, Any

from dicomkit.dicom import wire

if TYPE_CHECKING:
    from collections.abc import Callable

    from dicomkit.pacs.server import PacsServer

log = logging.getLogger(__name__)

# A longer A-ASSOCIATE-RQ goes to pynetdicom: MSG_PEEK sees no more than the socket's receive
# buffer holds, so a ~200 KB request could never be seen whole (the peer waits on the window).
PEEK_LIMIT = 32 * 1024
# A C-FIND identifier is a few KB (C-STORE data sets are not capped: an instance may be
# gigabytes, and pynetdicom buffers it whole too).
MAX_IDENTIFIER = 1024 * 1024


def _data_cap(command: wire.Command) -> int | None:
    return None if command.field == wire.C_STORE_RQ else MAX_IDENTIFIER


def parse_associate_rq(body: bytes) -> wire.Associate | None:
    """The A-ASSOCIATE-RQ if the lean path can serve it (see ``malformed`` for one it must
    abort), None when anything is unusual: pynetdicom then handles it and explains."""
    try:
        rq = wire.decode_associate(body)
    except wire.ProtocolError:
        return None
    if rq.unusual or rq.application_context != wire.APPLICATION_CONTEXT or not rq.contexts:
        return None
    if any(not ts for ab, ts in rq.contexts.values() if ab):
        return None
    return rq


def malformed(rq: wire.Associate) -> str:
    """Why a request is invalid where pynetdicom's acceptor thread would die on it (leaving
    the connection open, unanswered): the lean path aborts instead."""
    for cid, (abstract, _) in rq.contexts.items():
        if not abstract:
            return f"presentation context {cid} without an abstract syntax"
        if cid % 2 == 0:
            return f"presentation context ID {cid} is even"
    return ""


def peek_associate_rq(
    sock: socket.socket, limit: int, timeout: float, closing: Callable[[], bool] = bool
) -> bytes | None:
    """The whole first PDU, peeked (left unread), if it is an A-ASSOCIATE-RQ of at most
    ``limit`` bytes; b"" when the peer sent nothing (or too little) in ``timeout`` seconds, or
    ``closing()`` became true; None when it is something else."""
    deadline = time.monotonic() + timeout
    want, seen, pause = 6, 0, 0.0005
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or closing():
            # (shutdown(SHUT_RD) does not end this loop: a peek still sees the queued bytes)
            return b""
        sock.settimeout(left)
        try:
            data = sock.recv(want, socket.MSG_PEEK)
        except TimeoutError:
            return b""
        if not data:
            return b""  # closed before a whole request
        if data[0] != wire.ASSOCIATE_RQ:
            return None
        if len(data) >= 6 and want == 6:
            length = wire.pdu_header(data)[1]
            if length > limit:
                return None
            want = 6 + length
        if len(data) >= want and want > 6:
            return data[:want]
        # The rest is on its way: MSG_PEEK cannot wait for a count. Poll soon while it flows,
        # back off while it does not (a peer that stops halfway must not cost a CPU).
        pause = 0.0005 if len(data) > seen else min(pause * 2, 0.05)
        seen = len(data)
        time.sleep(min(pause, max(deadline - time.monotonic(), 0)))


class LeanAssociation:
    """One association served in the calling thread; ``abort()`` may come from another."""

    is_acceptor = True

    def __init__(self, server: PacsServer, sock: socket.socket, rq: wire.Associate) -> None:
        self.server = server
        self.sock = sock
        self.rq = rq
        cfg = server.cfg
        self.link = wire.Link(sock, cfg.network_timeout, cfg.max_pdu + 16)
        self.accepted: dict[int, tuple[str, str]] = {}  # context ID -> (abstract, syntax)
        self.messages: wire.Messages | None = None

    def abort(self) -> None:  # also what AE.shutdown calls on each active association
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def negotiate(self) -> bytes:
        """The A-ASSOCIATE-AC; fills ``accepted`` as pynetdicom's negotiate_as_acceptor would
        (the first of our transfer syntaxes the requestor proposed)."""
        from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION

        supported = self.server.lean_contexts
        ac = wire.Associate(
            self.rq.called, self.rq.calling, self.rq.called_raw, self.rq.calling_raw
        )
        for cid, (abstract, proposed) in self.rq.contexts.items():
            chosen = next((ts for ts in supported[abstract] if ts in proposed), None)
            if chosen is None:  # PS3.8 9.3.3.2: 4 = transfer syntaxes not supported
                ac.contexts[cid], ac.results[cid] = ("", [proposed[0]]), 4
            else:
                ac.contexts[cid], ac.results[cid] = ("", [chosen]), 0
                self.accepted[cid] = (abstract, chosen)
        return wire.encode_associate(
            wire.ASSOCIATE_AC,
            ac,
            max_pdu=self.server.cfg.max_pdu,
            implementation_uid=str(PYNETDICOM_IMPLEMENTATION_UID),
            implementation_version=PYNETDICOM_IMPLEMENTATION_VERSION,
        )

    def run(self) -> None:
        """Consume the peeked A-ASSOCIATE-RQ, answer it, then serve until release/abort."""
        cfg, server, calling = self.server.cfg, self.server, self.rq.calling
        try:
            self.link.recv()  # the A-ASSOCIATE-RQ we already parsed from the peek
            if cfg.check_called_aet and self.rq.called != cfg.aet.strip():
                # as pynetdicom: rejected-permanent, service user, called AE title not recognised
                self.link.send(wire.reject_pdu(0x01, 0x01, 0x07))
                log.info("association from %s rejected: called AE %r is not ours", calling,
                         self.rq.called)  # fmt: skip
                server.events.emit("association", calling, self.rq.called, accepted=False,
                                   reason="called AE title not recognised")  # fmt: skip
                return
            with server.lean_lock:
                # pynetdicom counts the association being decided (acse.py: >); this one is
                # not counted yet, and counting peers that are themselves still undecided
                # would turn a burst away below the limit.
                admitted = not server.lean_closing
                full = server.acceptor_count() >= cfg.max_associations
                if admitted and not full:
                    server.lean_active.add(self)
            if not admitted:
                return
            if full:  # transient, service provider (presentation), local limit exceeded
                self.link.send(wire.reject_pdu(0x02, 0x03, 0x02))
                return
            self.link.send(self.negotiate())
            log.info("association from %s served by the lean path: %s", calling,
                     ", ".join(f"{ab} ({ts})" for ab, ts in self.accepted.values()) or "no context")  # fmt: skip
            server.events.emit("association", calling, self.rq.called, accepted=True)
            self.messages = wire.Messages(
                self.link, wire.Messages.fragment_for(self.rq.max_pdu), self.accepted
            )
            self.serve()
        except wire.Released:
            with contextlib.suppress(wire.WireError):
                self.link.send(wire.RELEASE_RP_PDU)
        except wire.TimedOut:
            log.warning("association from %s idle or silent for %.0f s: aborting", calling,
                        cfg.network_timeout)  # fmt: skip
            self.link.abort(2, 0)
        except wire.ProtocolError as exc:
            log.warning("association from %s aborted: %s", calling, exc)
            self.link.abort(2, 0)
        except wire.Lost as exc:
            log.info("association from %s ended: %s", calling, exc)
        except Exception:
            log.exception("association from %s: unexpected failure, aborting", calling)
            self.link.abort(2, 0)

    def serve(self) -> None:
        assert self.messages is not None
        server = self.server
        while True:
            msg = self.messages.read(_data_cap)
            field, abstract = msg.command.field, self.accepted[msg.cid][0]
            if field == wire.C_ECHO_RQ and abstract == server.verification:
                self.c_echo(msg)
            elif field == wire.C_STORE_RQ and abstract in server.storage_classes:
                if msg.data is None:
                    raise wire.ProtocolError("C-STORE-RQ without a data set")
                self.c_store(msg)
            elif field == wire.C_FIND_RQ and abstract in server.find_classes:
                if msg.data is None:
                    raise wire.ProtocolError("C-FIND-RQ without an identifier")
                self.c_find(msg)
            elif field == wire.C_CANCEL_RQ:
                continue  # nothing pending to cancel
            else:
                raise wire.ProtocolError(
                    f"DIMSE command 0x{field or 0:04X} on context {msg.cid} ({abstract})"
                )

    @staticmethod
    def _msg_id(msg: wire.Message) -> int:
        msg_id = msg.command.us(wire.MESSAGE_ID)
        if msg_id is None:
            raise wire.ProtocolError("a command without a Message ID")
        return msg_id

    def _respond(self, msg: wire.Message, field: int, values: dict[int, int | str | bytes],
                 data: bytes | None = None) -> None:  # fmt: skip
        assert self.messages is not None
        command = {
            wire.AFFECTED_SOP_CLASS: msg.command.get(wire.AFFECTED_SOP_CLASS)
            or self.accepted[msg.cid][0],
            wire.COMMAND_FIELD: field,
            wire.RESPONDED_TO: self._msg_id(msg),
            wire.DATA_SET_TYPE: wire.NO_DATA_SET if data is None else wire.HAS_DATA_SET,
            **values,
        }
        self.messages.send(msg.cid, wire.encode_command(command), data)

    def c_echo(self, msg: wire.Message) -> None:
        self._respond(msg, wire.C_ECHO_RSP, {wire.STATUS: 0x0000})
        self.server.events.emit("echo", self.rq.calling, self.rq.called, status=0x0000)

    def c_store(self, msg: wire.Message) -> None:
        from dicomkit.pacs.server import store_instance

        cmd = msg.command
        sop_class, sop_instance = (
            cmd.text(wire.AFFECTED_SOP_CLASS),
            cmd.text(wire.AFFECTED_SOP_INSTANCE),
        )
        self._msg_id(msg)
        if not (sop_class and sop_instance):
            # Mandatory (PS3.7 9.3.1.1): pynetdicom cannot decode the request and aborts.
            raise wire.ProtocolError("C-STORE-RQ without an Affected SOP Class or Instance UID")
        assert msg.data is not None
        server = self.server
        ts = self.accepted[msg.cid][1]
        status, comment = store_instance(sop_class, sop_instance, ts, msg.data, server.storage,
                                         server.index)  # fmt: skip
        values: dict[int, int | str | bytes] = {
            wire.STATUS: status,
            wire.AFFECTED_SOP_INSTANCE: cmd.get(wire.AFFECTED_SOP_INSTANCE, b""),
        }
        if comment:
            values[wire.ERROR_COMMENT] = comment[:64]  # LO (PS3.7 C.4)
        self._respond(msg, wire.C_STORE_RSP, values)
        server.events.emit("store", self.rq.calling, self.rq.called, sop_instance_uid=sop_instance,
                           status=status)  # fmt: skip

    def c_find(self, msg: wire.Message) -> None:
        from pynetdicom.dsutils import decode, encode

        from dicomkit.dicom.net import status_category
        from dicomkit.pacs.server import UNABLE_TO_PROCESS, answer_find

        assert self.messages is not None and msg.data is not None
        msg_id = self._msg_id(msg)
        abstract, ts_uid = self.accepted[msg.cid]
        from pydicom.uid import UID

        ts = UID(ts_uid)
        server = self.server
        messages = self.messages

        def respond(status: int, identifier: bytes | None = None) -> None:
            self._respond(msg, wire.C_FIND_RSP, {wire.STATUS: status}, identifier)

        try:
            from io import BytesIO

            query = decode(
                BytesIO(msg.data), ts.is_implicit_VR, ts.is_little_endian, ts.is_deflated
            )
        except Exception:
            log.exception("C-FIND: cannot decode the identifier")
            respond(UNABLE_TO_PROCESS)
            return
        try:
            answers = answer_find(abstract, self.rq.calling, query, lambda: messages.cancelled(msg_id),
                                  server.worklist, server.index, server.cfg, server.events,
                                  self.rq.called)  # fmt: skip
            for status, ds in answers:
                kind = status_category(status)
                if kind == "pending":
                    enc = encode(ds, ts.is_implicit_VR, ts.is_little_endian, ts.is_deflated)
                    if not enc:
                        log.error("C-FIND: cannot encode an answer")
                        respond(0xC312)
                        return
                    respond(status, enc)
                elif kind == "warning":
                    respond(status)
                else:  # cancel, failure, success: the last response
                    respond(status)
                    return
        except wire.WireError:
            raise
        except Exception:
            log.exception("C-FIND failed")
            respond(0xC311)
            return
        respond(0x0000)


def serve_connection(server: PacsServer, sock: socket.socket, addr: Any) -> bool:
    """Serve ``sock`` here if its association is ours to serve; False hands it, unread and
    blocking as accepted, to pynetdicom."""
    cfg = server.cfg
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with server.lean_lock:
        if server.lean_closing:
            with contextlib.suppress(OSError):
                sock.close()
            return True
        server.lean_pending.add(sock)
    try:
        data = peek_associate_rq(sock, PEEK_LIMIT, cfg.network_timeout, lambda: server.lean_closing)
    except OSError:
        data = b""
    finally:
        with server.lean_lock:
            server.lean_pending.discard(sock)
    if data == b"":
        # Silent, half-sent or gone within the timeout: what pynetdicom's ARTIM would do.
        with contextlib.suppress(OSError):
            sock.close()
        return True
    rq = parse_associate_rq(data[6:]) if data is not None else None
    if rq is not None and malformed(rq):
        log.warning("A-ASSOCIATE-RQ from %s: %s: aborting", rq.calling, malformed(rq))
        link = wire.Link(sock, cfg.network_timeout)
        with contextlib.suppress(wire.WireError):
            link.recv()  # consume it so that the close is not a reset
        link.abort(2, 6)  # service provider, invalid PDU parameter value
        return True
    if rq is None or not all(ab in server.lean_contexts for ab, _ in rq.contexts.values()):
        sock.settimeout(None)  # as accepted: pynetdicom sets its own timeouts
        return False
    assoc = LeanAssociation(server, sock, rq)  # run() adds it to lean_active if admitted
    try:
        assoc.run()
    finally:
        server.lean_active.discard(assoc)
        with contextlib.suppress(OSError):
            sock.close()
    return True


def dispatch_server_class() -> Any:
    """pynetdicom's threaded server, deciding per connection (in its own thread) who serves.
    Relies on socketserver's ``process_request_thread`` (pynetdicom 3.0's
    ThreadedAssociationServer is a socketserver.ThreadingMixIn; pinned in pyproject.toml)."""
    from pynetdicom.transport import ThreadedAssociationServer

    class DispatchServer(ThreadedAssociationServer):
        pacs: PacsServer | None = None
        # socketserver listens with a backlog of 5: a burst of connections overflows it, the
        # kernel drops the handshake's last ACK and the peer's first data, and the A-ASSOCIATE-RQ
        # arrives by retransmission seconds later (past a short network timeout).
        request_queue_size = 128

        def process_request_thread(self, request: Any, client_address: Any) -> None:
            pacs = self.pacs
            if pacs is not None:
                try:
                    if serve_connection(pacs, request, client_address):
                        return
                except Exception:
                    log.exception("lean DICOM path failed on a connection")
                    with contextlib.suppress(OSError):
                        request.close()
                    return
            super().process_request_thread(request, client_address)

    return DispatchServer
