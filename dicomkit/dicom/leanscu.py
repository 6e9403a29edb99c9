"""Echo, worklist find and store on the lean path (dicom/wire.py), in the caller's thread.

pynetdicom hands every PDU between its DUL thread, its reactor and the caller through
queues with 1 ms polling sleeps (~3-7 ms per message, ~20 ms per association), several times
what a one-match worklist query or a small C-STORE costs a fast SCP. These clients are used
on the happy path only: ``wire.Unsupported`` (anything unusual) sends the caller to
pynetdicom, which names the cause and the fix; a rejection is raised at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dicomkit.dicom import wire

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from dicomkit.dicom.net import Peer

log = logging.getLogger(__name__)

EXPLICIT_LE = "1.2.840.10008.1.2.1"
# pynetdicom's DEFAULT_TRANSFER_SYNTAXES, what build_context(sop_class) proposes: the SCP
# picks the same one as it would for pynetdicom, and so gives the same answers.
PROPOSED = (wire.IMPLICIT_LE, EXPLICIT_LE, "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2")
PRIORITY_LOW = 0x0002  # pynetdicom's send_c_find default
PENDING = (0xFF00, 0xFF01)
SUCCESS, CANCEL = 0x0000, 0xFE00
CHUNK = 256 * 1024  # file read size; PDVs are cut to the peer's maximum PDU length


def _open(
    peer: Peer, calling: str, contexts: list[tuple[int, str, list[str]]], timeout: float, what: str
) -> wire.Client:
    try:
        client = wire.Client.open(peer.host, peer.port, peer.aet, calling, contexts,
                                  timeout=timeout, version=what,
                                  on_silence=lambda: refuse_http(peer.host, peer.port))  # fmt: skip
    except wire.NotDicom:
        raise _http_error(peer.host, peer.port) from None
    log.debug("associated with %s on the lean path: proposed %s, accepted %s",
              peer, [(c, ab) for c, ab, _ in contexts], client.accepted)  # fmt: skip
    return client


def refuse_http(host: str, port: int) -> None:
    """For a peer silent after our A-ASSOCIATE-RQ: an HTTP server waits for the end of a
    request's headers (Orthanc's, up to its own timeout), so ask it plainly what it is."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=1.0) as s:
            s.settimeout(1.0)
            s.sendall(b"HEAD / HTTP/1.0\r\n\r\n")
            head = s.recv(5)
    except OSError:
        return
    if head == b"HTTP/":
        raise _http_error(host, port)


def _http_error(host: str, port: int) -> Exception:
    from dicomkit.errors import ConnectionFailed

    return ConnectionFailed(
        f"{host}:{port} is an HTTP server, not a DICOM one",
        "use the PACS's DICOM port: `dicomkit status` lists it (Orthanc's defaults: "
        "DICOM 4242, HTTP 8042)",
        peer=f"{host}:{port}",
    )


def echo(peer: Peer, calling: str, timeout: float) -> int:
    """C-ECHO: the response status."""
    client = _open(
        peer, calling, [(1, wire.VERIFICATION, [wire.IMPLICIT_LE])], timeout, "DICOMKIT_ECHO"
    )
    try:
        command: dict[int, int | str | bytes] = {wire.AFFECTED_SOP_CLASS: wire.VERIFICATION, wire.COMMAND_FIELD: wire.C_ECHO_RQ,
                   wire.MESSAGE_ID: 1, wire.DATA_SET_TYPE: wire.NO_DATA_SET}  # fmt: skip
        client.messages.send(1, wire.encode_command(command))
        rsp = client.messages.read(0).command
        if rsp.field != wire.C_ECHO_RSP or rsp.us(wire.STATUS) is None:
            raise wire.Unsupported(f"unexpected response 0x{rsp.field or 0:04X}")
        client.release()
        return rsp.us(wire.STATUS) or 0
    except BaseException:
        client.abort()
        raise


def _encode(identifier: Dataset, implicit: bool) -> bytes:
    # What pynetdicom's dsutils.encode does for the negotiated (little endian) syntax.
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    fp = DicomBytesIO()
    fp.is_implicit_VR = implicit
    fp.is_little_endian = True
    write_dataset(fp, identifier)
    return bytes(fp.getvalue())


def _decode(raw: bytes, implicit: bool) -> Dataset:
    # What pynetdicom's dsutils.decode does for the negotiated (little endian) syntax.
    from io import BytesIO

    from pydicom.filereader import read_dataset

    return read_dataset(BytesIO(raw), implicit, True)


def find(
    peer: Peer, calling: str, sop_class: str, identifier: Dataset, timeout: float
) -> list[Dataset]:
    """Associate, C-FIND, release: the Pending identifiers, in order. A status other than
    Pending/Success/Cancel, or an encoding left to pydicom, is ``Unsupported``."""
    client = _open(peer, calling, [(1, sop_class, list(PROPOSED))], timeout, "DICOMKIT_FIND")
    try:
        ts = client.accepted.get(1)
        if ts not in (wire.IMPLICIT_LE, EXPLICIT_LE):
            raise wire.Unsupported(f"transfer syntax {ts!r}")
        implicit = ts == wire.IMPLICIT_LE
        command: dict[int, int | str | bytes] = {wire.AFFECTED_SOP_CLASS: sop_class, wire.COMMAND_FIELD: wire.C_FIND_RQ,
                   wire.MESSAGE_ID: 1, wire.PRIORITY: PRIORITY_LOW, wire.DATA_SET_TYPE: 0}  # fmt: skip
        client.messages.send(1, wire.encode_command(command), _encode(identifier, implicit))
        answers = []
        while True:
            msg = client.messages.read(16 * 1024 * 1024)
            rsp = msg.command
            if rsp.field != wire.C_FIND_RSP or rsp.us(wire.RESPONDED_TO) != 1:
                raise wire.Unsupported(f"unexpected message 0x{rsp.field or 0:04X}")
            status = rsp.us(wire.STATUS)
            if status in PENDING and msg.data is not None:
                answers.append(_decode(msg.data, implicit))
            elif status in (SUCCESS, CANCEL):
                break
            else:
                raise wire.Unsupported(f"status 0x{status or 0:04X}")
        client.release()
        return answers
    except (wire.Released, wire.TimedOut) as exc:
        client.abort()  # a slow or odd SCP: pynetdicom repeats the query and explains
        raise wire.Unsupported(f"mid-query: {exc}") from None
    except BaseException:
        client.abort()  # leaving mid-query: abort (PS3.8 7.3), the fallback starts afresh
        raise


@dataclass
class OutgoingFile:
    path: Path
    sop_class: str
    sop_instance: str
    transfer_syntax: str
    offset: int  # where the data set starts, after the File Meta Information


class StoreAssociation:
    """One association: ``open``, ``store`` each file, ``release``. Not thread-safe."""

    def __init__(self, peer: Peer, calling: str, timeout: float) -> None:
        self.peer, self.calling, self.timeout = peer, calling, timeout
        self.client: wire.Client | None = None
        self.context_ids: dict[tuple[str, str], int] = {}
        self.accepted: set[tuple[str, str]] = set()
        self.message_id = 0

    def open(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Raises ``wire.Unsupported`` (too many pairs, nothing accepted, an odd peer),
        ``wire.Rejected`` or ``wire.Lost``."""
        contexts = []
        for i, (sop_class, ts) in enumerate(sorted(set(pairs))):
            cid = 2 * i + 1  # odd IDs 1..255 (PS3.8 9.3.2.2)
            if cid > 255:
                raise wire.Unsupported("more than 128 presentation contexts")
            self.context_ids[(sop_class, ts)] = cid
            contexts.append((cid, sop_class, [ts]))
        self.client = _open(self.peer, self.calling, contexts, self.timeout, "DICOMKIT_STORE")
        self.accepted = {k for k, cid in self.context_ids.items() if cid in self.client.accepted}

    def store(self, f: OutgoingFile) -> tuple[int, str]:
        """Send one file: its status and error comment. Raises ``wire.Lost`` if the
        association breaks on the way (the file then has no status)."""
        assert self.client is not None
        cid = self.context_ids[(f.sop_class, f.transfer_syntax)]
        self.message_id = self.message_id % 0xFFFF + 1
        command = wire.encode_command({
            wire.AFFECTED_SOP_CLASS: f.sop_class, wire.COMMAND_FIELD: wire.C_STORE_RQ,
            wire.MESSAGE_ID: self.message_id, wire.PRIORITY: 0, wire.DATA_SET_TYPE: 0,
            wire.AFFECTED_SOP_INSTANCE: f.sop_instance,
        })  # fmt: skip
        try:
            self.client.messages.send_file(cid, command, f.path, f.offset, CHUNK)
            rsp = self.client.messages.read(0).command
        except (wire.Released, OSError) as exc:
            self.close()
            raise wire.Lost(f"no response ({exc or type(exc).__name__})") from None
        except wire.Lost:
            self.close()
            raise
        status = rsp.us(wire.STATUS)
        if (
            rsp.field != wire.C_STORE_RSP
            or rsp.us(wire.RESPONDED_TO) != self.message_id
            or status is None
        ):
            self.abort()
            raise wire.Lost(f"unexpected response (command 0x{rsp.field or 0:04X})")
        return status, rsp.text(wire.ERROR_COMMENT)

    def release(self) -> None:
        if self.client is not None:
            self.client.release()
            self.client = None

    def abort(self) -> None:
        if self.client is not None:
            self.client.abort()
            self.client = None

    def close(self) -> None:
        if self.client is not None:
            self.client.link.close()
            self.client = None
