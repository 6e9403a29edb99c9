"""The embedded PACS's lean DIMSE path: echo, store and worklist find on a bare socket.

pynetdicom's SCP machinery costs ~3 ms per message (a DUL thread and a reactor thread that
hand every PDU over through queues with 1 ms polling sleeps), 4-7 ms to accept an association,
7-9 ms per C-FIND: most of an ingest and nearly all of a one-match worklist query. This module
speaks PS3.8 (A-ASSOCIATE, P-DATA, A-RELEASE, A-ABORT) and the few DIMSE messages of those
services itself, one thread per association, and hands each request to the same code the
pynetdicom handlers call (``server.store_raw``, ``server.handle_find``).

Each accepted connection's A-ASSOCIATE-RQ is peeked (not consumed): an association proposing
only Verification, Storage and Modality Worklist FIND, with nothing unusual in it (no role
selection, extended negotiation, user identity, asynchronous operations window), is served
here; anything else (Q/R, an odd or unparseable request) goes, still unread, to pynetdicom,
which behaves exactly as before. ``DICOMKIT_PACS_LEAN=0`` sends everything to pynetdicom.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import time
from collections import deque
from dataclasses import dataclass, field
from io import BytesIO
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from dicomkit.pacs.server import PacsServer

log = logging.getLogger(__name__)

LEAN_ENV = "DICOMKIT_PACS_LEAN"
APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
# An A-ASSOCIATE-RQ is not bound by Maximum Length (PS3.8 D.1): the room handle_conn_open allows.
MIN_RQ_LIMIT = 256 * 1024
# A longer A-ASSOCIATE-RQ goes to pynetdicom: MSG_PEEK sees no more than the socket's receive
# buffer holds, so a ~200 KB request could never be seen whole (the peer waits on the window).
PEEK_LIMIT = 32 * 1024
# User information sub-items we handle: maximum length, implementation class UID and version.
PLAIN_USER_ITEMS = frozenset({0x51, 0x52, 0x55})

C_STORE_RQ, C_FIND_RQ, C_ECHO_RQ, C_CANCEL_RQ = 0x0001, 0x0020, 0x0030, 0x0FFF
NO_DATA_SET = 0x0101
# Messages are reassembled from fragments that may never say "last": a command set is a few
# hundred bytes, a C-FIND/C-ECHO identifier a few KB. (C-STORE data sets are not capped: an
# instance may be gigabytes, and pynetdicom buffers it whole too.)
MAX_COMMAND = 64 * 1024
MAX_IDENTIFIER = 1024 * 1024
HAS_DATA_SET = 0x0001  # what pynetdicom puts in responses that carry one


def enabled() -> bool:
    return os.environ.get(LEAN_ENV, "1").strip() != "0"


class _Abort(Exception):
    """The peer broke the protocol (or vanished): abort and close."""


class _Closed(Exception):
    """The association ended (released or aborted by the peer)."""


@dataclass
class AssociateRQ:
    called_raw: bytes
    calling_raw: bytes
    called: str
    calling: str
    # (context ID, abstract syntax, proposed transfer syntaxes), in the order proposed
    contexts: list[tuple[int, str, list[str]]] = field(default_factory=list)
    max_pdu: int = 0
    # Why the request is invalid where pynetdicom would fail on it (we abort), else "".
    malformed: str = ""


def _uid(raw: bytes) -> str:
    return raw.decode("ascii").rstrip("\0 ")


def parse_associate_rq(body: bytes) -> AssociateRQ | None:
    """The parts of an A-ASSOCIATE-RQ body (PS3.8 9.3.2) we serve, or None when anything is
    unusual (pynetdicom then handles the association and explains)."""
    try:
        version = struct.unpack_from(">H", body, 0)[0]
        if version != 1 or len(body) < 68:
            return None
        rq = AssociateRQ(
            called_raw=body[4:20],
            calling_raw=body[20:36],
            called=body[4:20].decode("ascii").strip(" \0"),
            calling=body[20:36].decode("ascii").strip(" \0"),
        )
        pos, app_context, user_seen = 68, None, False
        while pos < len(body):
            item_type, _, length = struct.unpack_from(">BBH", body, pos)
            value = body[pos + 4 : pos + 4 + length]
            if len(value) != length:
                return None
            if item_type == 0x10:
                app_context = _uid(value)
            elif item_type == 0x20:
                if length < 4:
                    return None
                cid, abstract, syntaxes, sub = value[0], None, [], 4
                while sub < len(value):
                    st, _, sl = struct.unpack_from(">BBH", value, sub)
                    sv = value[sub + 4 : sub + 4 + sl]
                    if len(sv) != sl:
                        return None
                    if st == 0x30 and abstract is None:
                        abstract = _uid(sv)
                    elif st == 0x40:
                        syntaxes.append(_uid(sv))
                    else:
                        return None
                    sub += 4 + sl
                if abstract is None:
                    rq.malformed = f"presentation context {cid} without an abstract syntax"
                elif cid % 2 == 0:
                    rq.malformed = f"presentation context ID {cid} is even"
                elif not syntaxes:
                    return None
                rq.contexts.append((cid, abstract or "", syntaxes))
            elif item_type == 0x50:
                user_seen, sub = True, 0
                while sub < len(value):
                    st, _, sl = struct.unpack_from(">BBH", value, sub)
                    if sub + 4 + sl > len(value) or st not in PLAIN_USER_ITEMS:
                        return None
                    if st == 0x51:
                        if sl != 4:
                            return None
                        rq.max_pdu = struct.unpack_from(">I", value, sub + 4)[0]
                    sub += 4 + sl
            else:
                return None
            pos += 4 + length
        if app_context != APPLICATION_CONTEXT or not user_seen or not rq.contexts:
            return None
        if len({c[0] for c in rq.contexts}) != len(rq.contexts):
            return None
        return rq
    except (struct.error, UnicodeDecodeError, IndexError):
        return None


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
        if data[0] != 0x01:
            return None
        if len(data) >= 6 and want == 6:
            length = struct.unpack_from(">I", data, 2)[0]
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


def _item(item_type: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", item_type, 0, len(payload)) + payload


def _even_uid(uid: str) -> bytes:
    b = uid.encode("ascii")
    return b + b"\0" if len(b) % 2 else b


def _repad(raw: bytes) -> bytes:
    """A peer's UID value as pynetdicom re-encodes it in a response: even length, NUL-padded."""
    raw = raw.rstrip(b"\0 ")
    return raw + b"\0" if len(raw) % 2 else raw


def _elem(tag: int, value: bytes) -> bytes:
    return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, len(value)) + value


def _us(value: int) -> bytes:
    return struct.pack("<H", value)


def command_set(*elements: bytes) -> bytes:
    body = b"".join(elements)
    return _elem(0x00000000, struct.pack("<I", len(body))) + body


def parse_command(raw: bytes) -> dict[int, bytes]:
    """The elements of a command set (Implicit VR Little Endian, group 0000)."""
    out: dict[int, bytes] = {}
    pos = 0
    while pos < len(raw):
        if pos + 8 > len(raw):
            raise _Abort("truncated command element")
        group, elem, length = struct.unpack_from("<HHI", raw, pos)
        if group != 0 or pos + 8 + length > len(raw):
            raise _Abort("malformed command set")
        out[elem] = raw[pos + 8 : pos + 8 + length]
        pos += 8 + length
    return out


def _us_of(cmd: dict[int, bytes], elem: int) -> int | None:
    v = cmd.get(elem)
    return struct.unpack("<H", v)[0] if v is not None and len(v) == 2 else None


class _Requestor:
    def __init__(self, ae_title: str) -> None:
        self.ae_title = ae_title


class _Assoc:
    def __init__(self, ae_title: str) -> None:
        self.requestor = _Requestor(ae_title)


class _Request:
    def __init__(self, sop_class: str) -> None:
        self.AffectedSOPClassUID = sop_class


class _FindEvent:
    """What server.handle_find reads of a pynetdicom C-FIND event."""

    def __init__(self, conn: LeanAssociation, sop_class: str, raw: bytes, ts: Any, msg_id: int):
        self.assoc = _Assoc(conn.rq.calling)
        self.request = _Request(sop_class)
        self._conn, self._raw, self._ts, self._msg_id = conn, raw, ts, msg_id

    @property
    def identifier(self) -> Any:
        from pynetdicom.dsutils import decode

        ts = self._ts
        return decode(BytesIO(self._raw), ts.is_implicit_VR, ts.is_little_endian, ts.is_deflated)

    @property
    def is_cancelled(self) -> bool:
        return self._conn.cancel_received(self._msg_id)


class LeanAssociation:
    """One association served in the calling thread; ``abort()`` may come from another."""

    is_acceptor = True

    def __init__(self, server: PacsServer, sock: socket.socket, rq: AssociateRQ) -> None:
        self.server = server
        self.sock = sock
        self.rq = rq
        self.buf = bytearray()
        self.pdus: deque[tuple[int, bytes]] = deque()
        self.pdvs: deque[tuple[int, int, bytes]] = deque()
        self.cancelled: set[int] = set()
        self.accepted: dict[int, tuple[str, Any]] = {}  # context ID -> (abstract, UID(ts))
        cfg = server.cfg
        self.timeout = cfg.network_timeout
        self.limit = max(cfg.max_pdu, MIN_RQ_LIMIT) + 16
        peer_max = rq.max_pdu
        self.fragment = max(peer_max - 6, 1) if peer_max else 1 << 30

    # -- socket --------------------------------------------------------------------------
    def abort(self) -> None:  # also what AE.shutdown calls on each active association
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def _fill(self, need: int, deadline: float) -> None:
        while len(self.buf) < need:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(left)
            chunk = self.sock.recv(max(need - len(self.buf), 65536))
            if not chunk:
                raise _Closed("the peer closed the connection")
            self.buf += chunk

    def _take_pdu(self) -> tuple[int, bytes] | None:
        if len(self.buf) < 6:
            return None
        pdu_type, _, length = struct.unpack_from(">BBI", self.buf, 0)
        if length > self.limit:
            log.warning("peer announced a %d-byte PDU (limit %d): aborting", length, self.limit)
            raise _Abort("PDU too long")
        if len(self.buf) < 6 + length:
            return None
        body = bytes(self.buf[6 : 6 + length])
        del self.buf[: 6 + length]
        return pdu_type, body

    def recv_pdu(self) -> tuple[int, bytes]:
        if self.pdus:
            return self.pdus.popleft()
        pdu = self._take_pdu()
        if pdu is not None:
            return pdu
        # Idle up to the network timeout for a header, then the same again for the rest.
        self._fill(6, time.monotonic() + self.timeout)
        pdu = self._take_pdu()
        if pdu is not None:
            return pdu
        length = struct.unpack_from(">I", self.buf, 2)[0]
        self._fill(6 + length, time.monotonic() + self.timeout)
        pdu = self._take_pdu()
        assert pdu is not None
        return pdu

    def send(self, data: bytes) -> None:
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    def send_abort(self, source: int = 2, reason: int = 0) -> None:
        with contextlib.suppress(OSError):
            self.send(struct.pack(">BBIBBBB", 0x07, 0, 4, 0, 0, source, reason))

    # -- association ---------------------------------------------------------------------
    def negotiate(self) -> bytes:
        """A-ASSOCIATE-AC body; fills ``accepted`` as pynetdicom's negotiate_as_acceptor would
        (the first of our transfer syntaxes the requestor proposed)."""
        from pydicom.uid import UID
        from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION

        supported = self.server.lean_contexts
        rq = self.rq
        body = struct.pack(">HH", 1, 0) + rq.called_raw + rq.calling_raw + bytes(32)
        body += _item(0x10, APPLICATION_CONTEXT.encode())
        for cid, abstract, proposed in rq.contexts:
            chosen = next((ts for ts in supported[abstract] if ts in proposed), None)
            if chosen is None:
                result, ts = 0x04, proposed[0]
            else:
                result, ts = 0x00, chosen
                self.accepted[cid] = (abstract, UID(chosen))
            body += _item(0x21, struct.pack(">BBBB", cid, 0, result, 0) + _item(0x40, ts.encode()))
        user = _item(0x51, struct.pack(">I", self.server.cfg.max_pdu))
        user += _item(0x52, str(PYNETDICOM_IMPLEMENTATION_UID).encode())
        user += _item(0x55, PYNETDICOM_IMPLEMENTATION_VERSION.encode())
        body += _item(0x50, user)
        return body

    def run(self) -> None:
        """Consume the peeked A-ASSOCIATE-RQ, answer it, then serve until release/abort."""
        cfg = self.server.cfg
        try:
            self.recv_pdu()  # the A-ASSOCIATE-RQ we already parsed from the peek
            if cfg.check_called_aet and self.rq.called != cfg.aet.strip():
                self._reject(0x01, 0x01, 0x07)  # pynetdicom: rejected-permanent, user, called AE
                return
            server = self.server
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
            if full:
                self._reject(0x02, 0x03, 0x02)  # transient, provider (presentation), local limit
                return
            ac = self.negotiate()
            self.send(struct.pack(">BBI", 0x02, 0, len(ac)) + ac)
            self.serve()
        except _Closed:
            pass
        except TimeoutError:
            log.warning("association from %s idle or silent for %.0f s: aborting",
                        self.rq.calling, self.timeout)  # fmt: skip
            self.send_abort()
        except _Abort as exc:
            log.warning("association from %s aborted: %s", self.rq.calling, exc)
            self.send_abort()
        except OSError as exc:
            log.info("association from %s lost: %s", self.rq.calling, exc)
        except Exception:
            log.exception("association from %s: unexpected failure, aborting", self.rq.calling)
            self.send_abort()

    def _reject(self, result: int, source: int, reason: int) -> None:
        self.send(struct.pack(">BBIBBBB", 0x03, 0, 4, 0, result, source, reason))

    def _next_pdv(self) -> tuple[int, int, bytes] | tuple[int, bytes]:
        """(context ID, control header, fragment), or a non-P-DATA PDU (type, body)."""
        while not self.pdvs:
            pdu_type, body = self.recv_pdu()
            if pdu_type != 0x04:
                return pdu_type, body
            self._split(body)
        return self.pdvs.popleft()

    def _split(self, body: bytes) -> None:
        pos = 0
        if not body:
            raise _Abort("empty P-DATA-TF")
        while pos < len(body):
            if pos + 6 > len(body):
                raise _Abort("truncated PDV")
            length, cid, control = struct.unpack_from(">IBB", body, pos)
            if length < 2 or pos + 4 + length > len(body):
                raise _Abort("PDV longer than its PDU")
            if cid not in self.accepted:
                raise _Abort(f"PDV on presentation context {cid}, not accepted")
            self.pdvs.append((cid, control, body[pos + 6 : pos + 4 + length]))
            pos += 4 + length

    def _other_pdu(self, pdu_type: int) -> None:
        if pdu_type == 0x05:  # A-RELEASE-RQ
            self.send(struct.pack(">BBI", 0x06, 0, 4) + bytes(4))
            raise _Closed("released")
        if pdu_type == 0x07:  # A-ABORT
            raise _Closed("aborted by the peer")
        raise _Abort(f"unexpected PDU type 0x{pdu_type:02X}")

    def next_message(self) -> tuple[int, dict[int, bytes], bytes | None]:
        """(context ID, command elements, data set bytes or None), reassembled (PS3.8 E.2)."""
        parts: list[bytes] = []
        cid, size = -1, 0
        while True:
            pdv = self._next_pdv()
            if len(pdv) == 2:
                self._other_pdu(pdv[0])
            c, control, frag = pdv  # type: ignore[misc]
            if not control & 0x01 or (cid != -1 and c != cid):
                raise _Abort("expected a command fragment")
            cid = c
            parts.append(frag)
            size += len(frag)
            if size > MAX_COMMAND:
                raise _Abort(f"command set over {MAX_COMMAND} bytes")
            if control & 0x02:
                break
        cmd = parse_command(b"".join(parts))
        if _us_of(cmd, 0x0800) == NO_DATA_SET:
            return cid, cmd, None
        # A C-STORE data set is as large as the instance; anything else we serve is a query.
        cap = None if _us_of(cmd, 0x0100) == C_STORE_RQ else MAX_IDENTIFIER
        parts, size = [], 0
        while True:
            pdv = self._next_pdv()
            if len(pdv) == 2:
                self._other_pdu(pdv[0])
            c, control, frag = pdv  # type: ignore[misc]
            if control & 0x01 or c != cid:
                raise _Abort("expected a data set fragment")
            parts.append(frag)
            size += len(frag)
            if cap is not None and size > cap:
                raise _Abort(f"identifier over {cap} bytes")
            if control & 0x02:
                return cid, cmd, b"".join(parts)

    def pdata(self, cid: int, command: bytes, data: bytes | None = None) -> bytes:
        """A message as P-DATA-TF PDUs, none longer than the peer's Maximum Length."""
        out = []
        for control, payload in ((0x03, command), (0x02, data)):
            if payload is None:
                continue
            pos, n = 0, len(payload)
            while True:
                chunk = payload[pos : pos + self.fragment]
                pos += len(chunk)
                last = pos >= n
                ctl = control if last else control & 0x01
                out.append(
                    struct.pack(">BBIIBB", 0x04, 0, len(chunk) + 6, len(chunk) + 2, cid, ctl)
                )
                out.append(chunk)
                if last:
                    break
        return b"".join(out)

    # -- DIMSE ---------------------------------------------------------------------------
    def serve(self) -> None:
        while True:
            cid, cmd, data = self.next_message()
            field_ = _us_of(cmd, 0x0100)
            abstract = self.accepted[cid][0]
            if field_ == C_ECHO_RQ and abstract == self.server.verification:
                self.c_echo(cid, cmd)
            elif field_ == C_STORE_RQ and abstract in self.server.storage_classes:
                if data is None:
                    raise _Abort("C-STORE-RQ without a data set")
                self.c_store(cid, cmd, data)
            elif field_ == C_FIND_RQ and abstract == self.server.mwl_find:
                if data is None:
                    raise _Abort("C-FIND-RQ without an identifier")
                self.c_find(cid, cmd, data)
            elif field_ == C_CANCEL_RQ:
                continue  # nothing pending to cancel
            else:
                raise _Abort(f"DIMSE command 0x{field_ or 0:04X} on context {cid} ({abstract})")

    def _msg_id(self, cmd: dict[int, bytes]) -> int:
        msg_id = _us_of(cmd, 0x0110)
        if msg_id is None:
            raise _Abort("command without a Message ID")
        return msg_id

    def c_echo(self, cid: int, cmd: dict[int, bytes]) -> None:
        rsp = command_set(
            _elem(0x00000002, _repad(cmd.get(0x0002, b"")) or _even_uid(self.server.verification)),
            _elem(0x00000100, _us(0x8030)),
            _elem(0x00000120, _us(self._msg_id(cmd))),
            _elem(0x00000800, _us(NO_DATA_SET)),
            _elem(0x00000900, _us(0x0000)),
        )
        self.send(self.pdata(cid, rsp))

    def c_store(self, cid: int, cmd: dict[int, bytes], data: bytes) -> None:
        from dicomkit.pacs import server as srv

        msg_id = self._msg_id(cmd)
        sop_class_raw = cmd.get(0x0002, b"")
        sop_inst_raw = cmd.get(0x1000, b"")
        if not (sop_class_raw.strip(b"\0 ") and sop_inst_raw.strip(b"\0 ")):
            # Mandatory (PS3.7 9.3.1.1): pynetdicom cannot decode the request and aborts.
            raise _Abort("C-STORE-RQ without an Affected SOP Class or Instance UID")
        ts = str(self.accepted[cid][1])
        try:
            raw = srv.part10_bytes(_uid(sop_class_raw), _uid(sop_inst_raw), ts, data)
        except Exception:
            log.exception("C-STORE: cannot build the file meta")
            status = srv.CANNOT_UNDERSTAND
        else:
            status = srv.store_raw(raw, self.server.storage, self.server.index)
        rsp = command_set(
            _elem(0x00000002, _repad(sop_class_raw)),
            _elem(0x00000100, _us(0x8001)),
            _elem(0x00000120, _us(msg_id)),
            _elem(0x00000800, _us(NO_DATA_SET)),
            _elem(0x00000900, _us(status)),
            _elem(0x00001000, _repad(sop_inst_raw)),
        )
        self.send(self.pdata(cid, rsp))

    def cancel_received(self, msg_id: int) -> bool:
        """Poll (without waiting) for a C-CANCEL-RQ; other PDUs wait for the main loop."""
        if msg_id in self.cancelled:
            return True
        try:
            self.sock.setblocking(False)
            try:
                while True:
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        break
                    self.buf += chunk
            except (BlockingIOError, InterruptedError):
                pass
            finally:
                self.sock.settimeout(self.timeout)
        except OSError:
            return False
        while True:
            pdu = self._take_pdu()
            if pdu is None:
                break
            self.pdus.append(pdu)
        keep: deque[tuple[int, bytes]] = deque()
        for pdu_type, body in self.pdus:
            if pdu_type == 0x04 and len(body) >= 6 and body[5] & 0x03 == 0x03:
                with contextlib.suppress(_Abort, struct.error):
                    c = parse_command(body[6 : 4 + struct.unpack_from(">I", body, 0)[0]])
                    if _us_of(c, 0x0100) == C_CANCEL_RQ:
                        being = _us_of(c, 0x0120)
                        if being is not None:
                            self.cancelled.add(being)
                        continue
            keep.append((pdu_type, body))
        self.pdus = keep
        return msg_id in self.cancelled

    def c_find(self, cid: int, cmd: dict[int, bytes], data: bytes) -> None:
        from pynetdicom.dsutils import encode

        from dicomkit.dicom.net import status_category
        from dicomkit.pacs import server as srv

        msg_id = self._msg_id(cmd)
        self.cancelled.discard(msg_id)  # a cancel of an earlier request with this ID
        abstract, ts = self.accepted[cid]
        sop_raw = _repad(cmd.get(0x0002, b"")) or _even_uid(abstract)
        event = _FindEvent(self, abstract, data, ts, msg_id)
        server = self.server

        def rsp(status: int, identifier: bytes | None = None) -> bytes:
            return self.pdata(
                cid,
                command_set(
                    _elem(0x00000002, sop_raw),
                    _elem(0x00000100, _us(0x8020)),
                    _elem(0x00000120, _us(msg_id)),
                    _elem(0x00000800, _us(NO_DATA_SET if identifier is None else HAS_DATA_SET)),
                    _elem(0x00000900, _us(status)),
                ),
                identifier,
            )

        try:
            gen = srv.handle_find(event, server.worklist, server.index, server.cfg)
            for status, ds in gen:
                kind = status_category(status)
                if kind == "pending":
                    enc = encode(ds, ts.is_implicit_VR, ts.is_little_endian, ts.is_deflated)
                    if not enc:
                        log.error("Failed encoding the response 'Identifier' dataset")
                        self.send(rsp(0xC312))
                        return
                    self.send(rsp(status, enc))
                elif kind == "warning":
                    self.send(rsp(status))
                else:  # cancel, failure, success: the last response
                    self.send(rsp(status))
                    return
        except OSError:
            raise
        except Exception:
            log.exception("Exception in handler bound to 'evt.EVT_C_FIND'")
            self.send(rsp(0xC311))
            return
        self.send(rsp(0x0000))


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
    if rq is not None and rq.malformed:
        # pynetdicom's acceptor thread dies on it and leaves the connection open, unanswered.
        log.warning("A-ASSOCIATE-RQ from %s: %s: aborting", rq.calling, rq.malformed)
        with contextlib.suppress(OSError):
            sock.settimeout(cfg.network_timeout)
            sock.recv(len(data or b""))  # consume it so that the close is not a reset
            sock.sendall(struct.pack(">BBIBBBB", 0x07, 0, 4, 0, 0, 2, 6))
        with contextlib.suppress(OSError):
            sock.close()
        return True
    if rq is None or not all(ab in server.lean_contexts for _, ab, _ in rq.contexts):
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
    """pynetdicom's threaded server, deciding per connection (in its own thread) who serves."""
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
