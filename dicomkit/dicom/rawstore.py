"""C-STORE on a bare socket: stream each file's encoded data set straight from disk.

pynetdicom spends ~7 ms of thread hand-offs per C-STORE (its DUL thread, reactor and caller
pass every PDU through queues with 1 ms polling sleeps), which halves the rate a PACS can
ingest from us. This sender speaks the few PDUs of PS3.8 9.3 itself, one thread, one
outstanding operation (the default asynchronous window, PS3.7 D.3.3.3), and is used on the
happy path only: anything unusual (rejection, abort, refused contexts, an unexpected PDU)
raises ``Unusual`` and the caller continues on pynetdicom, which names the cause and the fix.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dicomkit.dicom import net
from dicomkit.dicom.net import (
    MAX_PDU,
    Peer,
    _element,
    _Unusual,
    parse_associate_ac,
    read_command,
    recv_pdu,
    uid_bytes,
)

IMPLEMENTATION_VERSION = "DICOMKIT_STORE"
CHUNK = 256 * 1024  # file read size; PDVs are cut to the peer's maximum PDU length


class Unusual(Exception):
    """Something only the full stack should handle and explain."""


class Lost(Unusual):
    """The association broke while a file was in flight: that file has no status."""


def associate_rq(called: str, calling: str, contexts: list[tuple[int, str, str]]) -> bytes:
    """A-ASSOCIATE-RQ proposing each (id, abstract syntax, its one transfer syntax)."""
    return net.associate_rq(
        called, calling, [(cid, ab, [ts]) for cid, ab, ts in contexts], IMPLEMENTATION_VERSION
    )


def c_store_rq(message_id: int, sop_class: str, sop_instance: str) -> bytes:
    """The C-STORE-RQ command set (PS3.7 9.3.1.1), Implicit VR Little Endian."""
    elems = _element(0x00000002, uid_bytes(sop_class))  # Affected SOP Class UID
    elems += _element(0x00000100, struct.pack("<H", 0x0001))  # Command Field: C-STORE-RQ
    elems += _element(0x00000110, struct.pack("<H", message_id))  # Message ID
    elems += _element(0x00000700, struct.pack("<H", 0x0000))  # Priority: medium
    elems += _element(0x00000800, struct.pack("<H", 0x0000))  # a data set follows
    elems += _element(0x00001000, uid_bytes(sop_instance))  # Affected SOP Instance UID
    return _element(0x00000000, struct.pack("<I", len(elems))) + elems


def parse_response(command: bytes) -> tuple[int, int, int, str]:
    """(command field, message ID being responded to, status, error comment)."""
    pos, field_, msg_id, status, comment = 0, 0, 0, -1, ""
    while pos + 8 <= len(command):
        group, elem, length = struct.unpack_from("<HHI", command, pos)
        value = command[pos + 8 : pos + 8 + length]
        if group == 0:
            if elem == 0x0100 and length == 2:
                field_ = struct.unpack("<H", value)[0]
            elif elem == 0x0120 and length == 2:
                msg_id = struct.unpack("<H", value)[0]
            elif elem == 0x0900 and length == 2:
                status = struct.unpack("<H", value)[0]
            elif elem == 0x0902:
                comment = value.rstrip(b"\0 ").decode("ascii", "replace")
        pos += 8 + length
    return field_, msg_id, status, comment


@dataclass
class RawFile:
    path: Path
    sop_class: str
    sop_instance: str
    transfer_syntax: str
    offset: int  # where the data set starts, after the File Meta Information


class RawStoreAssociation:
    """One association: ``open``, ``store`` each file, ``release``. Not thread-safe."""

    def __init__(self, peer: Peer, calling_aet: str, timeout: float) -> None:
        self.peer = peer
        self.calling_aet = calling_aet
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.context_ids: dict[tuple[str, str], int] = {}
        self.accepted: set[tuple[str, str]] = set()
        self.fragment = 16 * 1024 - 6
        self.message_id = 0

    def open(self, pairs: Iterable[tuple[str, str]]) -> None:
        contexts = []
        for i, (sop_class, ts) in enumerate(sorted(set(pairs))):
            cid = 2 * i + 1  # odd IDs 1..255 (PS3.8 9.3.2.2)
            if cid > 255:
                raise Unusual("more than 128 presentation contexts")
            self.context_ids[(sop_class, ts)] = cid
            contexts.append((cid, sop_class, ts))
        try:
            self.sock = socket.create_connection((self.peer.host, self.peer.port), self.timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock.sendall(associate_rq(self.peer.aet, self.calling_aet, contexts))
            pdu_type, body = self._recv_pdu()
        except (OSError, UnicodeEncodeError) as exc:
            self.close()
            raise Unusual(str(exc)) from None
        if pdu_type != 0x02:  # not A-ASSOCIATE-AC: rejected or aborted
            self.close()
            raise Unusual(f"PDU type 0x{pdu_type:02X} instead of A-ASSOCIATE-AC")
        accepted, max_pdu = parse_associate_ac(body)
        self.accepted = {k for k, cid in self.context_ids.items() if cid in accepted}
        if not self.accepted:
            self.abort()
            raise Unusual("no presentation context accepted")
        if max_pdu:
            self.fragment = max(max_pdu - 6, 1024)  # PDV header: length (4), context, control
        else:
            self.fragment = MAX_PDU - 6

    def store(self, f: RawFile) -> tuple[int, str]:
        """Send one file; its status and error comment. Raises ``Lost`` if the association
        breaks on the way (the file then has no status)."""
        assert self.sock is not None
        cid = self.context_ids[(f.sop_class, f.transfer_syntax)]
        self.message_id = self.message_id % 0xFFFF + 1
        command = c_store_rq(self.message_id, f.sop_class, f.sop_instance)
        try:
            self._send_pdv(cid, 0x03, command)  # command, last fragment
            with open(f.path, "rb") as fh:
                fh.seek(f.offset)
                pending = fh.read(min(CHUNK, self.fragment))
                while pending:
                    nxt = fh.read(min(CHUNK, self.fragment))
                    self._send_pdv(cid, 0x00 if nxt else 0x02, pending)
                    pending = nxt
            field_, msg_id, status, comment = self._recv_command()
        except OSError as exc:  # includes timeouts: no response within the DIMSE timeout
            self.close()
            raise Lost(f"no response ({exc or type(exc).__name__})") from None
        if field_ != 0x8001 or msg_id != self.message_id or status < 0:
            self.abort()
            raise Lost(f"unexpected response (command 0x{field_:04X}, message {msg_id})")
        return status, comment

    def _send_pdv(self, cid: int, control: int, data: bytes) -> None:
        assert self.sock is not None
        header = struct.pack(">BBIIBB", 0x04, 0, len(data) + 6, len(data) + 2, cid, control)
        self.sock.sendall(header + data)

    def _recv_command(self) -> tuple[int, int, int, str]:
        try:
            received = read_command(self._recv_pdu)
        except _Unusual as exc:
            raise Lost(str(exc)) from None
        if received is None:
            raise Lost("the peer aborted or released the association instead of answering")
        return parse_response(received)

    def _recv_pdu(self) -> tuple[int, bytes]:
        assert self.sock is not None
        return recv_pdu(self.sock, Lost)

    def release(self) -> None:
        if self.sock is None:
            return
        try:
            self.sock.sendall(struct.pack(">BBI", 0x05, 0, 4) + bytes(4))  # A-RELEASE-RQ
            self._recv_pdu()  # A-RELEASE-RP
        except (OSError, Unusual):
            pass
        self.close()

    def abort(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.sendall(struct.pack(">BBI", 0x07, 0, 4) + bytes(4))  # A-ABORT
        self.close()

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None
