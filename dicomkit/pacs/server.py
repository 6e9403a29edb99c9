"""The embedded PACS server: one pynetdicom AE listening on the DICOM and worklist ports,
plus the HTTP API. Behaves like the lab's Orthanc (compose/orthanc.json): the called AE title
must be ours, worklist queries only from known AEs, echo/store/find/move/get from anyone.

SCP handlers are plain functions bound with arguments; they return a status, log the
exception and never raise into pynetdicom.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

from dicomkit.dicom import dataset, wire
from dicomkit.errors import DicomkitError
from dicomkit.labevents import EventWriter, query_keys
from dicomkit.pacs import lean, mpps, mwl, qr
from dicomkit.pacs.commitment import STORAGE_COMMITMENT_PUSH, CommitmentScp
from dicomkit.pacs.index import Index, InstanceRecord, MissingIdentifier, record_of
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

# Q/R C-FIND: plain answers to a query, served on the lean path too (pacs/lean.py).
QR_FIND = (qr.PATIENT_ROOT_FIND, qr.STUDY_ROOT_FIND)
# Served by pynetdicom only: C-MOVE and C-GET (sub-operations on other associations or roles),
# storage commitment (pacs/commitment.py), MPPS.
PYNETDICOM_ONLY = (
    *(c for c in QR_CLASSES if c not in QR_FIND),
    STORAGE_COMMITMENT_PUSH,
    mpps.MPPS,
)

UNCOMPRESSED = [
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.2",
]


def handle_echo(event: Any, events: EventWriter) -> int:
    assoc = event.assoc
    events.emit("echo", str(assoc.requestor.ae_title), str(assoc.acceptor.ae_title),
                status=SUCCESS)  # fmt: skip
    return SUCCESS


def read_record(raw: bytes | Any) -> InstanceRecord:
    """The identifiers and main tags of a stored Part 10 file (checked whole)."""
    part = dataset.parse_part10(raw)
    return record_of(part.dataset, part.meta.transfer_syntax)


def _meta(sop_class: str, sop_instance: str, transfer_syntax: str) -> bytes:
    """The File Meta Information pynetdicom's ``Event.encoded_dataset()`` writes (same
    elements, same bytes: tests/unit/test_dataset.py)."""
    from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION

    return dataset.encode_meta(sop_class, sop_instance, transfer_syntax,
                               str(PYNETDICOM_IMPLEMENTATION_UID),
                               PYNETDICOM_IMPLEMENTATION_VERSION)  # fmt: skip


def store_instance(
    sop_class: str, sop_instance: str, transfer_syntax: str, data: bytes,
    storage: Storage, index: Index, parsed: dataset.Parsed | None = None,
) -> tuple[int, str]:  # fmt: skip
    """Store one received data set, as sent, durably, then index it: the C-STORE status
    and an error comment. Shared by the pynetdicom handler and the lean path (pacs/lean.py).

    Nothing corrupt is acknowledged: the data set is walked to its end first (one that ends
    mid-element or has trailing bytes is "Cannot understand", PS3.4 B.2.3), and its SOP Class
    and Instance UIDs must be the command's ("Data Set does not match SOP Class", as Orthanc
    and DCMTK's storescp answer). ``parsed``: the same data set, already walked (STOW-RS)."""
    try:
        if parsed is None:
            parsed = dataset.parse(data, transfer_syntax, vr_of=dictionary_vr)
    except dataset.Malformed as exc:
        log.warning("C-STORE of %s refused: the data set is not whole: %s", sop_instance, exc)
        return CANNOT_UNDERSTAND, str(exc)
    ds_class, ds_instance = parsed.sop_uids()
    if (ds_class, ds_instance) != (sop_class, sop_instance):
        what = "Class" if ds_class != sop_class else "Instance"
        ours, theirs = (ds_class, sop_class) if what == "Class" else (ds_instance, sop_instance)
        log.warning("C-STORE refused: the data set's SOP %s UID %r is not the command's %r",
                    what, ours, theirs)  # fmt: skip
        return DATA_SET_DOES_NOT_MATCH, f"SOP {what} UID differs from the command's"
    try:
        rec = record_of(parsed, transfer_syntax)
    except MissingIdentifier as exc:
        log.warning("C-STORE refused: %s", exc)
        return DATA_SET_DOES_NOT_MATCH, str(exc)
    except Exception:
        log.exception("C-STORE: cannot read the data set's main tags")
        return CANNOT_UNDERSTAND, "cannot read the main tags"
    raw = _meta(sop_class, sop_instance, transfer_syntax) + data
    return _keep(rec, raw, storage, index), ""


def dictionary_vr(tag: int) -> str:
    from pydicom.datadict import dictionary_VR

    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


def handle_store(event: Any, storage: Storage, index: Index, events: EventWriter) -> Any:
    """EVT_C_STORE: the store service on the data set's bytes as received (nothing decoded)."""
    from pydicom.dataset import Dataset

    request = event.request
    sop_instance = str(request.AffectedSOPInstanceUID or "")
    status, comment = store_instance(
        str(request.AffectedSOPClassUID or ""),
        sop_instance,
        str(event.context.transfer_syntax),
        request.DataSet.getvalue(),
        storage,
        index,
    )
    assoc = event.assoc
    events.emit("store", str(assoc.requestor.ae_title), str(assoc.acceptor.ae_title),
                sop_instance_uid=sop_instance, status=status)  # fmt: skip
    rsp = Dataset()
    rsp.Status = status
    if comment:
        rsp.ErrorComment = comment[:64]
    return rsp


def _keep(rec: InstanceRecord, raw: bytes, storage: Storage, index: Index) -> int:
    """Write the file durably, then index it: the status to answer with."""
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


UNABLE_TO_PROCESS = 0xC000  # C-FIND: Unable to process (PS3.4 C.4.1.1.4)


def answer_find(
    sop_class: str, calling_aet: str, query: Any, is_cancelled: Any,
    worklist: mwl.WorklistFolder, index: Index, cfg: ServerConfig,
    events: EventWriter | None = None, called_aet: str = "",
) -> Any:  # fmt: skip
    """C-FIND, on either path: (status, answer) pairs for the worklist or the index; the
    event feed hears how many answers went out and the final status."""
    from dicomkit.dicom.net import status_category

    is_mwl = sop_class == mwl.MWL_FIND
    if is_mwl:
        answers = mwl.find_items(calling_aet, query, is_cancelled, worklist, cfg)
    else:
        answers = qr.find_studies(query, is_cancelled, index)
    matches, final = 0, SUCCESS
    try:
        for status, ds in answers:
            if status_category(status) == "pending":
                matches += 1
            else:
                final = status
            yield status, ds
    finally:
        if events is not None:
            level = {} if is_mwl else {"level": str(query.get("QueryRetrieveLevel", ""))}
            events.emit("mwl-find" if is_mwl else "find", calling_aet, called_aet or cfg.aet,
                        matches=matches, status=final, keys=query_keys(query), **level)  # fmt: skip


def handle_find(
    event: Any, worklist: mwl.WorklistFolder, index: Index, cfg: ServerConfig, events: EventWriter
) -> Any:
    """EVT_C_FIND: the find service on the decoded identifier."""
    try:
        query = event.identifier
    except Exception:
        log.exception("C-FIND: cannot decode the identifier")
        yield UNABLE_TO_PROCESS, None
        return
    calling = str(event.assoc.requestor.ae_title)
    sop_class = str(event.request.AffectedSOPClassUID)
    yield from answer_find(sop_class, calling, query, lambda: event.is_cancelled, worklist,
                           index, cfg, events, str(event.assoc.acceptor.ae_title))  # fmt: skip


def handle_accepted(event: Any, events: EventWriter) -> None:
    """One log line per association naming the path that serves it (pacs/lean.py logs its own)."""
    assoc = event.assoc
    contexts = ", ".join(
        f"{cx.abstract_syntax} ({cx.transfer_syntax[0]})" for cx in assoc.accepted_contexts
    )
    calling = str(assoc.requestor.ae_title).strip()
    log.info("association from %s served by pynetdicom: %s", calling, contexts or "no context")
    events.emit("association", calling, str(assoc.acceptor.ae_title), accepted=True)


def handle_rejected(event: Any, events: EventWriter) -> None:
    """EVT_REJECTED: pynetdicom turned an association away (a wrong called AE title, a limit)."""
    assoc = event.assoc
    calling = str(assoc.requestor.ae_title).strip()
    called = str(assoc.acceptor.ae_title).strip()
    log.info("association from %s rejected (called AE %r)", calling, called)
    events.emit("association", calling, called, accepted=False, reason="rejected")


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


@contextlib.contextmanager
def _naming_port(what: str, host: str, port: int) -> Iterator[None]:
    """A listener that cannot bind says which port, and what to do (the OS error alone does not)."""
    try:
        yield
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise DicomkitError(
            f"the {what} port {host}:{port} is already in use",
            f"stop what listens there (ss -ltnp 'sport = :{port}') or give the lab another port",
        ) from None


class PacsServer:
    def __init__(self, cfg: ServerConfig) -> None:
        self.cfg = cfg
        self.storage = Storage(cfg.storage_dir)
        self.index = Index(cfg.index_path)
        self.worklist = mwl.WorklistFolder(cfg.worklist_dir, cfg.max_worklist_file)
        self.commitment = CommitmentScp(cfg, self.index, self.storage)
        self.mpps = mpps.MppsService(mpps.StepStore(cfg.mpps_db), cfg.ris_url)
        self.events = EventWriter(cfg.events_path)
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
        # order) minus C-MOVE/C-GET, storage commitment and MPPS.
        self.lean_contexts: dict[str, list[str]] = {
            str(cx.abstract_syntax): [str(ts) for ts in cx.transfer_syntax]
            for cx in self.ae.supported_contexts
            if str(cx.abstract_syntax) not in PYNETDICOM_ONLY
        }
        self.verification = VERIFICATION
        self.find_classes = {mwl.MWL_FIND, *QR_FIND}
        self.storage_classes = set(self.lean_contexts) - {VERIFICATION, *self.find_classes}

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
        for sop in (VERIFICATION, mwl.MWL_FIND, *QR_FIND, *PYNETDICOM_ONLY):
            ae.add_supported_context(sop, UNCOMPRESSED)
        return ae

    def handlers(self) -> list[Any]:
        from pynetdicom import evt

        from dicomkit.dicom.net import nodelay_handler

        return [
            nodelay_handler(),
            (evt.EVT_CONN_OPEN, handle_conn_open, [self.cfg.max_pdu, self.cfg.network_timeout]),
            (evt.EVT_ACCEPTED, handle_accepted, [self.events]),
            (evt.EVT_REJECTED, handle_rejected, [self.events]),
            (evt.EVT_C_ECHO, handle_echo, [self.events]),
            (evt.EVT_C_STORE, handle_store, [self.storage, self.index, self.events]),
            (evt.EVT_C_FIND, handle_find, [self.worklist, self.index, self.cfg, self.events]),
            (evt.EVT_C_MOVE, qr.handle_move, [self.index, self.storage, self.cfg]),
            (evt.EVT_C_GET, qr.handle_get, [self.index, self.storage]),
            (evt.EVT_N_ACTION, self.commitment.handle_action),
            (evt.EVT_DIMSE_SENT, self.commitment.handle_sent),
            *mpps.handlers(self.mpps),
        ]

    def start(self) -> None:
        from dicomkit.pacs.http import start_http

        cfg = self.cfg
        self.storage.sweep_tmp()
        reconcile(self.storage, self.index)
        # Parse the worklist folder now, off the startup path: readiness must not wait for it.
        threading.Thread(target=self.worklist.refresh, name="worklist-load", daemon=True).start()
        self.worklist.start_sweeper(2.0, self._stop)
        # Steps the RIS missed while it or we were down (pacs/mpps.py).
        threading.Thread(target=self.mpps.tell_ris, name="mpps-ris", daemon=True).start()
        ports = [cfg.dicom_port] + ([cfg.mwl_port] if cfg.mwl_port != cfg.dicom_port else [])
        handlers = self.handlers()
        use_lean = wire.enabled()
        for port in ports:
            contexts = _SharedContexts(self.ae.supported_contexts)
            with _naming_port("DICOM", cfg.host, port):
                if use_lean:
                    server = self._start_dispatch((cfg.host, port), handlers, contexts)
                else:
                    server = self.ae.start_server(
                        (cfg.host, port), block=False, evt_handlers=handlers, contexts=contexts
                    )
            self._servers.append(server)
            log.info("DICOM listening on %s:%d as %s%s", cfg.host, port, cfg.aet,
                     "" if use_lean else " (DICOMKIT_LEAN=0: pynetdicom only)")  # fmt: skip
        try:
            with _naming_port("HTTP", cfg.host, cfg.http_port):
                self._http = start_http(self)
        except DicomkitError:
            self.ae.shutdown()  # no half-started PACS: its DICOM ports close again
            raise
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
        self.events.close()

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
