"""The embedded PACS server: one pynetdicom AE listening on the DICOM and worklist ports,
plus the HTTP API. Behaves like the lab's Orthanc (compose/orthanc.json): the called AE title
must be ours, worklist queries only from known AEs, echo/store/find/move/get from anyone.

SCP handlers are plain functions bound with arguments; they return a status, log the
exception and never raise into pynetdicom.
"""

from __future__ import annotations

import datetime as _dt
import logging
import sqlite3
import struct
import threading
import time
from io import BytesIO
from typing import Any

from dicomkit.pacs import lean, mwl, qr
from dicomkit.pacs.index import (
    LAST_MAIN_TAG,
    Index,
    InstanceRecord,
    MissingIdentifier,
    quick_record,
)
from dicomkit.pacs.settings import ServerConfig
from dicomkit.pacs.storage import Storage, StorageFull

log = logging.getLogger(__name__)

VERIFICATION = "1.2.840.10008.1.1"

# PS3.4 B.2.3 / PS3.7 C: storage statuses we answer with.
SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700  # Refused: Out of resources
DATA_SET_DOES_NOT_MATCH = 0xA900  # Error: Data Set does not match SOP Class
CANNOT_UNDERSTAND = 0xC000  # Error: Cannot understand
PROCESSING_FAILURE = 0x0110


def transfer_syntaxes() -> list[str]:
    """Accepted for storage and stored as received: uncompressed, deflated, JPEG, JPEG-LS,
    JPEG 2000, HTJ2K and RLE (PS3.5 Annex A)."""
    from pydicom import uid

    names = [
        "ImplicitVRLittleEndian",
        "ExplicitVRLittleEndian",
        "DeflatedExplicitVRLittleEndian",
        "ExplicitVRBigEndian",
        "JPEGBaseline8Bit",
        "JPEGExtended12Bit",
        "JPEGLossless",
        "JPEGLosslessSV1",
        "JPEGLSLossless",
        "JPEGLSNearLossless",
        "JPEG2000Lossless",
        "JPEG2000",
        "HTJ2KLossless",
        "HTJ2KLosslessRPCL",
        "HTJ2K",
        "RLELossless",
    ]
    return [str(getattr(uid, n)) for n in names if hasattr(uid, n)]


# Query/Retrieve, served by pynetdicom (pacs/qr.py); the lean path takes the rest.
QR_CLASSES = (
    qr.PATIENT_ROOT_FIND,
    qr.PATIENT_ROOT_MOVE,
    qr.PATIENT_ROOT_GET,
    qr.STUDY_ROOT_FIND,
    qr.STUDY_ROOT_MOVE,
    qr.STUDY_ROOT_GET,
)

UNCOMPRESSED = [
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.2",
]


def handle_echo(event: Any) -> int:
    return SUCCESS


def _past_main_tags(tag: Any, vr: Any, length: Any) -> bool:
    return bool(tag > LAST_MAIN_TAG)


def read_record(raw: bytes) -> InstanceRecord:
    """The identifiers and main tags of a Part 10 file's bytes (nothing decompressed)."""
    rec = quick_record(raw)
    if rec is not None:
        return rec
    from pydicom.filereader import read_partial

    head = read_partial(BytesIO(raw), stop_when=_past_main_tags)
    ts = str(head.file_meta.get("TransferSyntaxUID", ""))
    return InstanceRecord.from_dataset(head, ts)


def _element(tag: int, vr: bytes, value: bytes) -> bytes:
    """One explicit VR little endian element of the file meta (PS3.10 7.1)."""
    head = struct.pack("<HH2s", tag >> 16, tag & 0xFFFF, vr)
    if vr == b"OB":
        return head + struct.pack("<HI", 0, len(value)) + value
    return head + struct.pack("<H", len(value)) + value


def _padded(text: str, pad: bytes) -> bytes:
    raw = text.encode("ascii")
    return raw + pad if len(raw) % 2 else raw


def file_meta(sop_class: str, sop_instance: str, transfer_syntax: str) -> bytes:
    """The encoded File Meta Information pynetdicom's ``Event.encoded_dataset()`` writes
    (same elements, same bytes: tests/unit/test_pacs_quick_record.py), without building and
    encoding a pydicom FileMetaDataset for each instance (~0.6 ms)."""
    from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION

    body = b"".join(
        (
            _element(0x00020001, b"OB", b"\x00\x01"),
            _element(0x00020002, b"UI", _padded(sop_class, b"\0")),
            _element(0x00020003, b"UI", _padded(sop_instance, b"\0")),
            _element(0x00020010, b"UI", _padded(transfer_syntax, b"\0")),
            _element(0x00020012, b"UI", _padded(str(PYNETDICOM_IMPLEMENTATION_UID), b"\0")),
            _element(0x00020013, b"SH", _padded(PYNETDICOM_IMPLEMENTATION_VERSION, b" ")),
        )
    )
    return _element(0x00020000, b"UL", struct.pack("<I", len(body))) + body


def part10_bytes(sop_class: str, sop_instance: str, transfer_syntax: str, data: bytes) -> bytes:
    """A C-STORE's data set as a Part 10 file, with the meta pynetdicom's
    ``Event.encoded_dataset()`` writes (pydicom encodes, or refuses, odd UIDs)."""
    try:
        if not (sop_class and sop_instance):
            raise ValueError("no SOP Class or Instance UID")
        meta = file_meta(sop_class, sop_instance, transfer_syntax)
    except (ValueError, struct.error, UnicodeEncodeError):
        from pydicom.dataset import FileMetaDataset
        from pydicom.uid import UID
        from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION
        from pynetdicom.dsutils import encode_file_meta

        fm = FileMetaDataset()
        fm.MediaStorageSOPClassUID = UID(sop_class)
        fm.MediaStorageSOPInstanceUID = UID(sop_instance)
        fm.TransferSyntaxUID = UID(transfer_syntax)
        fm.ImplementationClassUID = PYNETDICOM_IMPLEMENTATION_UID
        fm.ImplementationVersionName = PYNETDICOM_IMPLEMENTATION_VERSION
        meta = encode_file_meta(fm)
    return b"".join((b"\0" * 128, b"DICM", meta, data))


def part10(event: Any) -> bytes:
    """A C-STORE's data set as a Part 10 file: what ``event.encoded_dataset()`` returns."""
    request = event.request
    uids = (request.AffectedSOPClassUID, request.AffectedSOPInstanceUID)
    try:
        if not all(isinstance(u, str) and u for u in uids):
            raise ValueError("no SOP Class or Instance UID")
        meta = file_meta(uids[0], uids[1], str(event.context.transfer_syntax))
    except (ValueError, struct.error):  # odd UIDs: pydicom encodes (or refuses) them
        return bytes(event.encoded_dataset())
    return b"".join((b"\0" * 128, b"DICM", meta, request.DataSet.getvalue()))


def handle_store(event: Any, storage: Storage, index: Index) -> int:
    """C-STORE: keep the bytes exactly as received, durably, then index them."""
    try:
        raw = part10(event)  # file meta + the data set as sent: nothing decoded
    except Exception:
        log.exception("C-STORE: cannot parse the data set")
        return CANNOT_UNDERSTAND
    return store_raw(raw, storage, index)


def store_raw(raw: bytes, storage: Storage, index: Index) -> int:
    """Store one received instance (Part 10 bytes): the status to answer the C-STORE with.
    Shared by the pynetdicom handler and the lean path (pacs/lean.py)."""
    try:
        rec = read_record(raw)
    except MissingIdentifier as exc:
        log.warning("C-STORE refused: %s", exc)
        return DATA_SET_DOES_NOT_MATCH
    except Exception:
        log.exception("C-STORE: cannot parse the data set")
        return CANNOT_UNDERSTAND
    try:
        if index.instance_path(rec.sop_uid) is not None:
            # Orthanc's default (OverwriteInstances false): keep the first copy, answer Success.
            log.warning("duplicate SOP Instance UID %s: kept the first copy", rec.sop_uid)
            return SUCCESS
        path = storage.write(raw)
    except StorageFull as exc:
        log.error("C-STORE of %s refused: %s (free some disk space)", rec.sop_uid, exc)
        return OUT_OF_RESOURCES
    except Exception:
        log.exception("C-STORE of %s: cannot write the file", rec.sop_uid)
        return PROCESSING_FAILURE
    rec.path = storage.relative(path)
    rec.size = len(raw)
    try:
        received = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")
        added = index.add(rec, received)
    except sqlite3.Error as exc:
        storage.remove(path)
        log.error("C-STORE of %s: the index refused it (%s)", rec.sop_uid, exc)
        full = "full" in str(exc).lower()
        return OUT_OF_RESOURCES if full else PROCESSING_FAILURE
    except Exception:
        storage.remove(path)
        log.exception("C-STORE of %s: indexing failed", rec.sop_uid)
        return PROCESSING_FAILURE
    if not added:
        # Another association stored the same SOP Instance UID meanwhile: the first one wins.
        if index.instance_path(rec.sop_uid) != rec.path:
            storage.remove(path)
        log.warning("duplicate SOP Instance UID %s: kept the first copy", rec.sop_uid)
    return SUCCESS


def reconcile(storage: Storage, index: Index) -> int:
    """Index stored files the index lacks. Files are fsynced before Success, the index commit
    is not (WAL, synchronous=NORMAL), so after a power cut the files are the truth."""
    known = index.paths()
    added = 0
    for path in storage.files.glob("*/*.dcm"):
        rel = storage.relative(path)
        if rel in known:
            continue
        try:
            raw = path.read_bytes()
            rec = read_record(raw)
        except Exception as exc:
            log.warning("stored file %s is unreadable, left alone: %s", rel, exc)
            continue
        rec.path, rec.size = rel, len(raw)
        mtime = _dt.datetime.fromtimestamp(path.stat().st_mtime, _dt.timezone.utc)
        if index.add(rec, mtime.isoformat(timespec="milliseconds")):
            added += 1
        elif index.instance_path(rec.sop_uid) != rel:
            storage.remove(path)  # a later duplicate: the first copy stays
    if added:
        log.warning("re-indexed %d stored instance(s) missing from the index", added)
    return added


def handle_find(event: Any, worklist: mwl.WorklistFolder, index: Index, cfg: ServerConfig) -> Any:
    if str(event.request.AffectedSOPClassUID) == mwl.MWL_FIND:
        yield from mwl.handle_mwl_find(event, worklist, cfg)
    else:
        yield from qr.handle_qr_find(event, index)


def handle_conn_open(event: Any, max_pdu: int, timeout: float) -> None:
    """Refuse PDUs larger than we announced: pynetdicom would buffer any length a peer
    claims (up to 4 GiB), so a hostile header could exhaust memory. And give each PDU a
    deadline: pynetdicom reads the rest of a started PDU with a blocking recv, so a peer that
    sends half a PDU and stops would hold its association slot forever."""
    sock = event.assoc.dul.socket
    if sock is None or sock.socket is None:
        return
    # A-ASSOCIATE-RQ is not bound by Maximum Length (PS3.8 D.1); allow it some room.
    limit = max(max_pdu, 256 * 1024) + 16
    raw = sock.socket

    def recv(nbytes: int) -> bytes:
        if nbytes > limit:
            log.warning("peer announced a %d-byte PDU (limit %d): dropping it", nbytes, limit)
            raise OSError(f"PDU of {nbytes} bytes exceeds the limit of {limit}")
        buf = bytearray()
        deadline = time.monotonic() + timeout
        try:
            while len(buf) < nbytes:
                left = deadline - time.monotonic()
                raw.settimeout(max(left, 0.001))
                try:
                    chunk = raw.recv(min(nbytes - len(buf), 65536))
                except TimeoutError:
                    log.warning("peer sent %d of %d bytes in %.0f s: dropping it", len(buf),
                                nbytes, timeout)  # fmt: skip
                    raise
                if not chunk:
                    break  # the peer closed: pynetdicom sees a short read
                buf.extend(chunk)
        finally:
            raw.settimeout(timeout)  # sends to a peer that stops reading time out too
        return bytes(buf)

    setattr(sock, "recv", recv)  # noqa: B010 - per-socket guard, pynetdicom has no hook


class _SharedContexts(list):
    """The acceptor's supported presentation contexts, shared by all associations.

    pynetdicom deep-copies them for every association it accepts
    (transport.RequestHandler._create_association): 170 SOP classes x 16 transfer syntaxes
    took ~25 ms per association, most of a one-match worklist query. Negotiation only reads
    them (presentation.negotiate_as_acceptor builds new contexts for the answer)."""

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        return list(self)


class PacsServer:
    def __init__(self, cfg: ServerConfig) -> None:
        self.cfg = cfg
        self.storage = Storage(cfg.storage_dir)
        self.index = Index(cfg.index_path)
        self.worklist = mwl.WorklistFolder(cfg.worklist_dir, cfg.max_worklist_file)
        self._servers: list[Any] = []
        self._http: Any = None
        self._stop = threading.Event()
        # Associations the lean path serves (pacs/lean.py), counted with pynetdicom's.
        self.lean_active: set[Any] = set()
        # Connections whose A-ASSOCIATE-RQ the lean path is still peeking at; shutdown closes
        # them. Admission (limit, shutdown) is decided under the lock, one connection at a time.
        self.lean_pending: set[Any] = set()
        self.lean_lock = threading.Lock()
        self.lean_closing = False
        self.ae = self._make_ae()
        # What the lean path serves: the AE's own contexts (same transfer syntaxes, same
        # order) minus Query/Retrieve.
        self.lean_contexts: dict[str, list[str]] = {
            str(cx.abstract_syntax): [str(ts) for ts in cx.transfer_syntax]
            for cx in self.ae.supported_contexts
            if str(cx.abstract_syntax) not in QR_CLASSES
        }
        self.verification = VERIFICATION
        self.mwl_find = mwl.MWL_FIND
        self.storage_classes = set(self.lean_contexts) - {VERIFICATION, mwl.MWL_FIND}

    def acceptor_count(self) -> int:
        """Associations this PACS accepted and still serves, lean ones included."""
        return sum(1 for a in self.ae.active_associations if a.is_acceptor)

    def close_lean(self) -> None:
        """Admit no more lean associations and drop the connections being peeked at."""
        import contextlib
        import socket

        with self.lean_lock:
            self.lean_closing = True
            pending = list(self.lean_pending)
        for sock in pending:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _make_ae(self) -> Any:
        from pynetdicom import AE, AllStoragePresentationContexts

        lean_active = self.lean_active
        close_lean = self.close_lean

        class PacsAE(AE):
            @property
            def active_associations(self) -> list[Any]:
                # pynetdicom's limit (acse.py) and shutdown (aborts each) see the lean ones too
                return [*super().active_associations, *list(lean_active)]

            def shutdown(self) -> None:
                # Close connections still being peeked first: socketserver's server_close
                # joins their threads, and one that finished its A-ASSOCIATE-RQ after the
                # abort loop would be served on (stop() then waits for it to end).
                close_lean()
                super().shutdown()

        cfg = self.cfg
        ae = PacsAE(ae_title=cfg.aet)
        ae.require_called_aet = cfg.check_called_aet  # reject with source 1, reason 7
        ae.maximum_associations = cfg.max_associations
        ae.maximum_pdu_size = cfg.max_pdu
        ae.network_timeout = cfg.network_timeout
        ae.acse_timeout = cfg.network_timeout
        ae.dimse_timeout = cfg.network_timeout
        ae.connection_timeout = cfg.network_timeout
        storage_ts = transfer_syntaxes()
        for cx in AllStoragePresentationContexts:
            if cx.abstract_syntax is None:
                continue
            # Both roles: a C-GET requestor proposes to be the Storage SCP (PS3.4 C.4.3).
            ae.add_supported_context(cx.abstract_syntax, storage_ts, scu_role=True, scp_role=True)
        for sop in (VERIFICATION, mwl.MWL_FIND, *QR_CLASSES):
            ae.add_supported_context(sop, UNCOMPRESSED)
        return ae

    def handlers(self) -> list[Any]:
        from pynetdicom import evt

        from dicomkit.dicom.net import nodelay_handler

        return [
            nodelay_handler(),
            (evt.EVT_CONN_OPEN, handle_conn_open, [self.cfg.max_pdu, self.cfg.network_timeout]),
            (evt.EVT_C_ECHO, handle_echo),
            (evt.EVT_C_STORE, handle_store, [self.storage, self.index]),
            (evt.EVT_C_FIND, handle_find, [self.worklist, self.index, self.cfg]),
            (evt.EVT_C_MOVE, qr.handle_move, [self.index, self.storage, self.cfg]),
            (evt.EVT_C_GET, qr.handle_get, [self.index, self.storage]),
        ]

    def start(self) -> None:
        from dicomkit.pacs.http import start_http

        cfg = self.cfg
        self.storage.sweep_tmp()
        reconcile(self.storage, self.index)
        # Parse the worklist folder now, off the startup path: readiness must not wait for it.
        threading.Thread(target=self.worklist.refresh, name="worklist-load", daemon=True).start()
        self.worklist.start_sweeper(2.0, self._stop)
        ports = [cfg.dicom_port] + ([cfg.mwl_port] if cfg.mwl_port != cfg.dicom_port else [])
        handlers = self.handlers()
        use_lean = lean.enabled()
        for port in ports:
            contexts = _SharedContexts(self.ae.supported_contexts)
            if use_lean:
                server = self._start_dispatch((cfg.host, port), handlers, contexts)
            else:
                server = self.ae.start_server(
                    (cfg.host, port), block=False, evt_handlers=handlers, contexts=contexts
                )
            self._servers.append(server)
            log.info("DICOM listening on %s:%d as %s%s", cfg.host, port, cfg.aet,
                     "" if use_lean else f" ({lean.LEAN_ENV}=0: pynetdicom only)")  # fmt: skip
        self._http = start_http(self)
        log.info("HTTP listening on %s:%d", cfg.host, cfg.http_port)

    def _start_dispatch(self, address: tuple[str, int], handlers: list[Any], contexts: Any) -> Any:
        """pynetdicom's threaded server (what ``start_server(block=False)`` builds) whose
        connection threads first offer each connection to the lean path."""
        server_class = lean.dispatch_server_class()
        server = self.ae.make_server(
            address, ae_title=self.cfg.aet, contexts=contexts, evt_handlers=handlers,
            server_class=server_class,
        )  # fmt: skip
        server.pacs = self
        thread = threading.Thread(
            target=server.serve_forever, name=f"AcceptorServer@{address[1]}", daemon=True
        )
        thread.start()
        self.ae._servers.append(server)  # AE.shutdown stops it as one of its own
        return server

    def stop(self) -> None:
        self._stop.set()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        self.ae.shutdown()
        self.index.close()

    def status(self) -> dict[str, Any]:
        from dicomkit.pacs import VERSION

        counts = self.index.counts()
        return {
            "name": self.cfg.name,
            "engine": "embedded",
            "version": VERSION,
            "aet": self.cfg.aet,
            "ports": {
                "dicom": self.cfg.dicom_port,
                "mwl": self.cfg.mwl_port,
                "http": self.cfg.http_port,
            },
            "counts": {**counts, "worklist_items": len(self.worklist)},
        }
