"""The DICOM upper layer and DIMSE messages on a bare socket (PS3.8 9, PS3.7 6 and E).

The one module in dicomkit that packs or unpacks PDUs and command sets; the lean clients
(echo, worklist find, store: dicom/lean.py) and the embedded PACS's lean server
(pacs/lean.py) both speak through it. pynetdicom does everything else, and is the oracle
its tests encode and decode against (tests/unit/test_wire.py). Stdlib only.

One exception family: ``Unsupported`` (the fast path meets something only pynetdicom should
handle: fall back), ``Rejected`` (A-ASSOCIATE-RJ: raised at once, never retried elsewhere),
``Lost`` (closed or aborted; ``TimedOut`` silent past the timeout; ``ProtocolError`` the peer
broke PS3.8 and is aborted), ``Released`` (the peer asked to release).
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# PDU types (PS3.8 9.3.1)
ASSOCIATE_RQ, ASSOCIATE_AC, ASSOCIATE_RJ = 0x01, 0x02, 0x03
P_DATA_TF, RELEASE_RQ, RELEASE_RP, ABORT = 0x04, 0x05, 0x06, 0x07
APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"  # PS3.7 A.2.1
IMPLICIT_LE = "1.2.840.10008.1.2"
VERIFICATION = "1.2.840.10008.1.1"
# Our implementation identity (PS3.7 D.3.3.2): a UUID-derived UID (PS3.5 B.2), fixed once.
IMPLEMENTATION_CLASS_UID = "2.25.212412416477860226399456929725017484453"
MAX_PDU = 1024 * 1024  # the largest P-DATA-TF we accept; 0 ("unlimited") invites abuse
# An A-ASSOCIATE-RQ is not bound by Maximum Length (PS3.8 D.1): the room we allow it.
MAX_ASSOCIATE = 256 * 1024
# User information sub-items we handle: Maximum Length, Implementation Class UID, Version.
PLAIN_USER_ITEMS = frozenset({0x51, 0x52, 0x55})

# DIMSE command fields (PS3.7 E.1-1)
C_STORE_RQ, C_STORE_RSP = 0x0001, 0x8001
C_FIND_RQ, C_FIND_RSP = 0x0020, 0x8020
C_ECHO_RQ, C_ECHO_RSP = 0x0030, 0x8030
C_CANCEL_RQ = 0x0FFF
NO_DATA_SET = 0x0101  # Command Data Set Type: no data set follows
HAS_DATA_SET = 0x0001  # any other value means one follows; pynetdicom writes 0x0001
# Command set elements (group 0000, PS3.7 E.1-1) by element number, and their VRs.
AFFECTED_SOP_CLASS, COMMAND_FIELD, MESSAGE_ID, RESPONDED_TO = 0x0002, 0x0100, 0x0110, 0x0120
PRIORITY, DATA_SET_TYPE, STATUS, ERROR_COMMENT = 0x0700, 0x0800, 0x0900, 0x0902
AFFECTED_SOP_INSTANCE = 0x1000
COMMAND_VRS = {
    0x0002: "UI", 0x0003: "UI", 0x0100: "US", 0x0110: "US", 0x0120: "US", 0x0600: "AE",
    0x0700: "US", 0x0800: "US", 0x0900: "US", 0x0901: "AT", 0x0902: "LO", 0x0903: "US",
    0x1000: "UI", 0x1001: "UI", 0x1002: "US", 0x1005: "AT", 0x1008: "US", 0x1020: "US",
    0x1021: "US", 0x1022: "US", 0x1023: "US", 0x1030: "AE", 0x1031: "US",
}  # fmt: skip
MAX_COMMAND = 64 * 1024  # a command set is a few hundred bytes


def enabled() -> bool:
    """The lean paths, client and server; ``DICOMKIT_LEAN=0`` sends everything to pynetdicom
    (``DICOMKIT_PACS_LEAN``, its former name, is still read)."""
    value = os.environ.get("DICOMKIT_LEAN", os.environ.get("DICOMKIT_PACS_LEAN", "1"))
    return value.strip() != "0"


class WireError(Exception):
    """Something the fast path cannot carry on with."""


class Unsupported(WireError):
    """Only pynetdicom should handle (and explain) this: fall back to it."""


class NotDicom(Unsupported):
    """The peer answered in HTTP: a DICOM client pointed at a web port."""


class Rejected(WireError):
    """A-ASSOCIATE-RJ (PS3.8 9.3.4): result 1 permanent / 2 transient, source, reason."""

    def __init__(self, result: int, source: int, reason: int) -> None:
        super().__init__(
            f"association rejected (result {result}, source {source}, reason {reason})"
        )
        self.result, self.source, self.reason = result, source, reason


class Lost(WireError):
    """The association ended under us: closed, aborted or silent past the timeout."""


class TimedOut(Lost):
    """The peer stayed silent (or took nothing) past the timeout."""


class ProtocolError(Lost):
    """The peer broke PS3.8 or PS3.7: the association is aborted."""


class Released(WireError):
    """The peer asked to release the association (A-RELEASE-RQ)."""


# ---- PDUs ----------------------------------------------------------------------------------


def pdu(pdu_type: int, body: bytes) -> bytes:
    return struct.pack(">BBI", pdu_type, 0, len(body)) + body


def pdu_header(head: bytes) -> tuple[int, int]:
    """(PDU type, body length) of the first six bytes."""
    pdu_type, _, length = struct.unpack_from(">BBI", head)
    return pdu_type, length


RELEASE_RQ_PDU = pdu(RELEASE_RQ, bytes(4))
RELEASE_RP_PDU = pdu(RELEASE_RP, bytes(4))


def abort_pdu(source: int = 0, reason: int = 0) -> bytes:
    """A-ABORT (PS3.8 9.3.8): source 0 service user, 2 service provider."""
    return pdu(ABORT, struct.pack(">BBBB", 0, 0, source, reason))


def reject_pdu(result: int, source: int, reason: int) -> bytes:
    return pdu(ASSOCIATE_RJ, struct.pack(">BBBB", 0, result, source, reason))


def decode_reject(body: bytes) -> tuple[int, int, int]:
    """(result, source, reason) of an A-ASSOCIATE-RJ or (0, source, reason) of an A-ABORT."""
    if len(body) < 4:
        raise ProtocolError("a short A-ASSOCIATE-RJ or A-ABORT")
    return body[1], body[2], body[3]


def _item(item_type: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", item_type, 0, len(payload)) + payload


def _sub_items(value: bytes) -> Iterable[tuple[int, bytes]]:
    pos = 0
    while pos < len(value):
        if pos + 4 > len(value):
            raise ProtocolError("a sub-item header is cut short")
        item_type, _, length = struct.unpack_from(">BBH", value, pos)
        if pos + 4 + length > len(value):
            raise ProtocolError(f"sub-item 0x{item_type:02X} runs past its item")
        yield item_type, value[pos + 4 : pos + 4 + length]
        pos += 4 + length


def _uid(raw: bytes) -> str:
    return raw.decode("ascii").rstrip("\0 ")


@dataclass
class Associate:
    """An A-ASSOCIATE-RQ or -AC (PS3.8 9.3.2, 9.3.3). For an RQ, ``contexts`` maps each
    context ID to (abstract syntax, proposed transfer syntaxes); for an AC, to ("", [the
    accepted syntax]) with ``results`` holding each context's result (0 acceptance)."""

    called: str
    calling: str
    called_raw: bytes = b""
    calling_raw: bytes = b""
    application_context: str = ""
    contexts: dict[int, tuple[str, list[str]]] = field(default_factory=dict)
    results: dict[int, int] = field(default_factory=dict)
    max_pdu: int = 0
    implementation_uid: str = ""
    implementation_version: str = ""
    # Why this request is beyond the fast path (role selection, user identity, ...), or "".
    unusual: str = ""

    @property
    def accepted(self) -> dict[int, str]:
        """AC: {context ID: transfer syntax} of the accepted contexts."""
        return {c: ts[0] if ts else "" for c, (_, ts) in self.contexts.items()
                if self.results.get(c) == 0}  # fmt: skip


def encode_associate(
    pdu_type: int,
    a: Associate,
    *,
    max_pdu: int = MAX_PDU,
    implementation_version: str = "DICOMKIT",
    implementation_uid: str = IMPLEMENTATION_CLASS_UID,
) -> bytes:
    """An A-ASSOCIATE-RQ (contexts: abstract and proposed syntaxes) or -AC (results and the
    accepted syntax; a refused context echoes a syntax as PS3.8 9.3.3.2 allows)."""
    called = a.called_raw or a.called.encode("ascii").ljust(16)
    calling = a.calling_raw or a.calling.encode("ascii").ljust(16)
    body = struct.pack(">HH", 1, 0) + called[:16].ljust(16) + calling[:16].ljust(16) + bytes(32)
    body += _item(0x10, APPLICATION_CONTEXT.encode())
    for cid, (abstract, syntaxes) in a.contexts.items():
        if pdu_type == ASSOCIATE_RQ:
            sub = _item(0x30, abstract.encode()) + b"".join(
                _item(0x40, ts.encode()) for ts in syntaxes
            )
            body += _item(0x20, struct.pack(">BBBB", cid, 0, 0, 0) + sub)
        else:
            result = a.results.get(cid, 0)
            sub = _item(0x40, syntaxes[0].encode()) if syntaxes else b""
            body += _item(0x21, struct.pack(">BBBB", cid, 0, result, 0) + sub)
    user = _item(0x51, struct.pack(">I", max_pdu))
    user += _item(0x52, implementation_uid.encode()) + _item(0x55, implementation_version.encode())
    return pdu(pdu_type, body + _item(0x50, user))


def decode_associate(body: bytes) -> Associate:
    """The body of an A-ASSOCIATE-RQ or -AC. Raises ``ProtocolError`` when it is not one."""
    try:
        if len(body) < 68 or struct.unpack_from(">H", body)[0] & 0x0001 == 0:
            raise ProtocolError("an A-ASSOCIATE of an unknown protocol version or cut short")
        a = Associate(
            called=body[4:20].decode("ascii").strip(" \0"),
            calling=body[20:36].decode("ascii").strip(" \0"),
            called_raw=body[4:20],
            calling_raw=body[20:36],
        )
        user_seen = False
        for item_type, value in _sub_items(body[68:]):
            if item_type == 0x10:
                a.application_context = _uid(value)
            elif item_type in (0x20, 0x21):
                if len(value) < 4:
                    raise ProtocolError("a presentation context item is cut short")
                cid, abstract, syntaxes = value[0], "", []
                for st, sv in _sub_items(value[4:]):
                    if st == 0x30 and not abstract:
                        abstract = _uid(sv)
                    elif st == 0x40:
                        syntaxes.append(_uid(sv))
                    else:
                        a.unusual = f"sub-item 0x{st:02X} in presentation context {cid}"
                if cid in a.contexts:
                    a.unusual = f"presentation context ID {cid} proposed twice"
                a.contexts[cid] = (abstract, syntaxes)
                if item_type == 0x21:
                    a.results[cid] = value[2]
            elif item_type == 0x50:
                user_seen = True
                for st, sv in _sub_items(value):
                    if st == 0x51 and len(sv) == 4:
                        a.max_pdu = struct.unpack(">I", sv)[0]
                    elif st == 0x52:
                        a.implementation_uid = _uid(sv)
                    elif st == 0x55:
                        a.implementation_version = sv.decode("ascii", "replace").strip(" \0")
                    if st not in PLAIN_USER_ITEMS or (st == 0x51 and len(sv) != 4):
                        a.unusual = f"user information sub-item 0x{st:02X}"
            else:
                a.unusual = f"item 0x{item_type:02X}"
        if not user_seen:
            a.unusual = "no user information item"
        return a
    except (struct.error, UnicodeDecodeError) as exc:
        raise ProtocolError(f"an A-ASSOCIATE that cannot be decoded ({exc})") from None


# ---- P-DATA-TF and DIMSE command sets ------------------------------------------------------


def split_pdvs(body: bytes) -> list[tuple[int, int, bytes]]:
    """(context ID, message control header, fragment) of each PDV (PS3.8 9.3.5, E.2)."""
    out, pos = [], 0
    if not body:
        raise ProtocolError("an empty P-DATA-TF")
    while pos < len(body):
        if pos + 6 > len(body):
            raise ProtocolError("a PDV header is cut short")
        length, cid, control = struct.unpack_from(">IBB", body, pos)
        if length < 2 or pos + 4 + length > len(body):
            raise ProtocolError("a PDV longer than its PDU")
        out.append((cid, control, body[pos + 6 : pos + 4 + length]))
        pos += 4 + length
    return out


def pdata(cid: int, control: int, data: bytes, fragment: int, last: bool = True) -> bytes:
    """``data`` as P-DATA-TF PDUs of one PDV each, none longer than ``fragment`` bytes of
    value; control 1 for a command, 0 for a data set; "last" set on the final fragment."""
    out, pos, n = [], 0, len(data)
    while True:
        chunk = data[pos : pos + fragment]
        pos += len(chunk)
        ctl = control | (0x02 if last and pos >= n else 0)
        out.append(struct.pack(">BBIIBB", P_DATA_TF, 0, len(chunk) + 6, len(chunk) + 2, cid, ctl))
        out.append(chunk)
        if pos >= n:
            return b"".join(out)


class Command(dict[int, bytes]):
    """A decoded command set: element number -> value bytes."""

    def us(self, elem: int) -> int | None:
        v = self.get(elem)
        return struct.unpack("<H", v)[0] if v is not None and len(v) == 2 else None

    def text(self, elem: int) -> str:
        return self.get(elem, b"").decode("ascii", "replace").rstrip("\0 ").strip()

    @property
    def field(self) -> int | None:
        return self.us(COMMAND_FIELD)

    @property
    def has_data_set(self) -> bool:
        return self.us(DATA_SET_TYPE) != NO_DATA_SET


def encode_command(values: dict[int, int | str | bytes]) -> bytes:
    """A command set in Implicit VR Little Endian (PS3.7 6.3.1), group length first.
    Text values are padded to even length (UI with NUL, others with a space); a UID given
    as bytes is re-padded, as pynetdicom re-encodes a peer's UID in its responses."""
    body = b""
    for elem in sorted(values):
        v, vr = values[elem], COMMAND_VRS.get(elem, "UI")
        if vr == "US":
            raw = struct.pack("<H", int(v))
        elif isinstance(v, bytes):
            raw = v.rstrip(b"\0 ")
            raw += (b"\0" if vr == "UI" else b" ") * (len(raw) % 2)
        else:
            raw = str(v).encode("ascii")
            raw += (b"\0" if vr == "UI" else b" ") * (len(raw) % 2)
        body += struct.pack("<HHI", 0, elem, len(raw)) + raw
    return struct.pack("<HHII", 0, 0, 4, len(body)) + body


def decode_command(raw: bytes) -> Command:
    cmd, pos = Command(), 0
    while pos < len(raw):
        if pos + 8 > len(raw):
            raise ProtocolError("a command element header is cut short")
        group, elem, length = struct.unpack_from("<HHI", raw, pos)
        if group != 0 or pos + 8 + length > len(raw):
            raise ProtocolError("a malformed command set")
        cmd[elem] = raw[pos + 8 : pos + 8 + length]
        pos += 8 + length
    return cmd


# ---- a socket carrying PDUs ----------------------------------------------------------------


class Link:
    """One TCP connection: whole PDUs in (each within ``timeout`` and ``limit``), bytes out."""

    def __init__(self, sock: socket.socket, timeout: float, limit: int = MAX_PDU + 16) -> None:
        self.sock = sock
        self.timeout = timeout
        self.limit = limit
        self.buf = bytearray()
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _fill(self, need: int, deadline: float) -> None:
        while len(self.buf) < need:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimedOut(f"the peer sent nothing for {self.timeout:.0f} s")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(max(need - len(self.buf), 65536))
            except TimeoutError:
                raise TimedOut(f"the peer sent nothing for {self.timeout:.0f} s") from None
            except OSError as exc:
                raise Lost(f"the connection failed ({exc})") from None
            if not chunk:
                raise Lost("the peer closed the connection")
            self.buf += chunk

    def take(self) -> tuple[int, bytes] | None:
        """A whole PDU already received, if any."""
        if len(self.buf) < 6:
            return None
        pdu_type, length = pdu_header(bytes(self.buf[:6]))
        limit = MAX_ASSOCIATE if pdu_type == ASSOCIATE_RQ else self.limit
        if length > max(limit, self.limit):
            raise ProtocolError(f"a {length}-byte PDU, over our limit of {max(limit, self.limit)}")
        if len(self.buf) < 6 + length:
            return None
        body = bytes(self.buf[6 : 6 + length])
        del self.buf[: 6 + length]
        return pdu_type, body

    def recv(self) -> tuple[int, bytes]:
        """The next PDU: idle up to the timeout for its header, as long again for the rest."""
        got = self.take()
        if got is not None:
            return got
        self._fill(6, time.monotonic() + self.timeout)
        got = self.take()
        if got is None:
            length = pdu_header(bytes(self.buf[:6]))[1]
            self._fill(6 + length, time.monotonic() + self.timeout)
            got = self.take()
        assert got is not None
        return got

    def poll(self) -> list[tuple[int, bytes]]:
        """Whole PDUs that have arrived, without waiting."""
        try:
            self.sock.setblocking(False)
            try:
                while chunk := self.sock.recv(65536):
                    self.buf += chunk
            except (BlockingIOError, InterruptedError):
                pass
            finally:
                self.sock.settimeout(self.timeout)
        except OSError:
            return []
        out = []
        while (got := self.take()) is not None:
            out.append(got)
        return out

    def send(self, data: bytes) -> None:
        self.sock.settimeout(self.timeout)
        try:
            self.sock.sendall(data)
        except TimeoutError:
            raise TimedOut(f"the peer took nothing for {self.timeout:.0f} s") from None
        except OSError as exc:
            raise Lost(f"the connection failed ({exc})") from None

    def abort(self, source: int = 0, reason: int = 0) -> None:
        with contextlib.suppress(OSError, Lost):
            self.send(abort_pdu(source, reason))
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


@dataclass
class Message:
    cid: int
    command: Command
    data: bytes | None


class Messages:
    """DIMSE messages over a ``Link`` on an established association."""

    def __init__(self, link: Link, fragment: int, contexts: Iterable[int]) -> None:
        self.link = link
        self.fragment = fragment  # the peer's maximum PDU length minus the PDV header
        self.contexts = set(contexts)
        self.pdvs: list[tuple[int, int, bytes]] = []
        self.held: list[tuple[int, bytes]] = []  # PDUs polled early (see ``cancelled``)

    @staticmethod
    def fragment_for(peer_max_pdu: int) -> int:
        return max(peer_max_pdu - 6, 1024) if peer_max_pdu else MAX_PDU - 6

    def _next_pdv(self) -> tuple[int, int, bytes]:
        while not self.pdvs:
            pdu_type, body = self.held.pop(0) if self.held else self.link.recv()
            if pdu_type == P_DATA_TF:
                self.pdvs = split_pdvs(body)
                for cid, _, _ in self.pdvs:
                    if cid not in self.contexts:
                        raise ProtocolError(f"a PDV on presentation context {cid}, not accepted")
            elif pdu_type == RELEASE_RQ:
                raise Released("the peer released the association")
            elif pdu_type == ABORT:
                source, reason = decode_reject(body)[1:]
                raise Lost(f"the peer aborted the association (source {source}, reason {reason})")
            else:
                raise ProtocolError(f"PDU type 0x{pdu_type:02X} on an established association")
        return self.pdvs.pop(0)

    def _part(self, command: bool, cid: int, cap: int | None) -> tuple[int, bytes]:
        parts, size = [], 0
        while True:
            c, control, frag = self._next_pdv()
            if bool(control & 0x01) != command or (cid >= 0 and c != cid):
                what = "command" if command else "data set"
                raise ProtocolError(f"expected a {what} fragment on context {cid}")
            cid = c
            parts.append(frag)
            size += len(frag)
            if cap is not None and size > cap:
                raise ProtocolError(
                    f"a {'command set' if command else 'data set'} over {cap} bytes"
                )
            if control & 0x02:
                return cid, b"".join(parts)

    def read(self, data_cap: int | Callable[[Command], int | None] | None = None) -> Message:
        """The next message, reassembled (PS3.8 E.2); its data set at most ``data_cap``
        bytes (or what ``data_cap(command)`` allows; None: no cap)."""
        cid, raw = self._part(True, -1, MAX_COMMAND)
        command = decode_command(raw)
        cap = data_cap(command) if callable(data_cap) else data_cap
        data = self._part(False, cid, cap)[1] if command.has_data_set else None
        return Message(cid, command, data)

    def send(self, cid: int, command: bytes, data: bytes | None = None) -> None:
        out = pdata(cid, 0x01, command, self.fragment)
        if data is not None:
            out += pdata(cid, 0x00, data, self.fragment)
        self.link.send(out)

    def send_file(self, cid: int, command: bytes, path: Path, offset: int, chunk: int) -> None:
        """A command, then the data set streamed from ``path`` after ``offset``."""
        self.link.send(pdata(cid, 0x01, command, self.fragment))
        step = min(chunk, self.fragment)
        with open(path, "rb") as fh:
            fh.seek(offset)
            pending = fh.read(step)
            while pending:
                nxt = fh.read(step)
                self.link.send(pdata(cid, 0x00, pending, self.fragment, last=not nxt))
                pending = nxt

    def cancelled(self, message_id: int) -> bool:
        """Whether a C-CANCEL-RQ for ``message_id`` has arrived (without waiting); other
        PDUs wait for ``read``."""
        keep = []
        found = False
        for pdu_type, body in [*self.held, *self.link.poll()]:
            if pdu_type == P_DATA_TF:
                with contextlib.suppress(ProtocolError):
                    pdvs = split_pdvs(body)
                    if len(pdvs) == 1 and pdvs[0][1] & 0x03 == 0x03:
                        cmd = decode_command(pdvs[0][2])
                        if cmd.field == C_CANCEL_RQ:
                            found = found or cmd.us(RESPONDED_TO) == message_id
                            continue
            keep.append((pdu_type, body))
        self.held = keep
        return found


# ---- the requestor's side ------------------------------------------------------------------


class Client:
    """An association we requested: ``open``, exchange ``messages``, ``release``."""

    def __init__(self, link: Link, ac: Associate) -> None:
        self.link = link
        self.ac = ac
        self.accepted = ac.accepted
        self.messages = Messages(link, Messages.fragment_for(ac.max_pdu), self.accepted)

    @classmethod
    def open(
        cls,
        host: str,
        port: int,
        called: str,
        calling: str,
        contexts: Sequence[tuple[int, str, Sequence[str]]],
        *,
        timeout: float,
        version: str = "DICOMKIT",
        on_silence: Callable[[], None] | None = None,
        silence: float = 1.5,
    ) -> Client:
        """Connect and associate. Raises ``Rejected``, ``Unsupported`` (refused connection,
        no A-ASSOCIATE-AC, nothing accepted) or ``Lost`` (a silent peer: timed out).
        ``on_silence`` is called once if no answer came within ``silence`` seconds (it may
        raise, e.g. on finding that the port serves HTTP); the wait then goes on."""
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise Unsupported(f"cannot connect ({exc})") from None
        link = Link(sock, timeout)
        try:
            rq = Associate(called, calling, contexts={c: (ab, list(ts)) for c, ab, ts in contexts})
            link.send(encode_associate(ASSOCIATE_RQ, rq, implementation_version=version))
            if on_silence is not None and timeout > silence:
                link.timeout = silence
                try:
                    pdu_type, body = link.recv()
                except TimedOut:
                    on_silence()
                    link.timeout = timeout - silence
                    pdu_type, body = link.recv()
                finally:
                    link.timeout = timeout
            else:
                pdu_type, body = link.recv()
            if pdu_type == ASSOCIATE_RJ:
                raise Rejected(*decode_reject(body))
            if pdu_type != ASSOCIATE_AC:
                raise ProtocolError(f"PDU type 0x{pdu_type:02X} instead of A-ASSOCIATE-AC")
            ac = decode_associate(body)
            if not ac.accepted:
                link.abort()
                raise Unsupported("no presentation context accepted")
            return cls(link, ac)
        except (UnicodeEncodeError, ProtocolError) as exc:
            link.abort()
            if bytes(link.buf[:5]) == b"HTTP/":
                raise NotDicom("the peer answered in HTTP") from None
            raise Unsupported(str(exc)) from None
        except BaseException:
            link.close()
            raise

    def release(self) -> None:
        """A-RELEASE-RQ, wait for the RP (what the peer answers no longer matters)."""
        with contextlib.suppress(WireError, OSError):
            self.link.send(RELEASE_RQ_PDU)
            self.link.recv()
        self.link.close()

    def abort(self) -> None:
        self.link.abort()
