"""Our short-lived SCP: the C-MOVE destination of ``dicomkit retrieve``, the C-STORE sub-operation
handler of its C-GET, and where a storage commitment report arrives on a new association.

Nothing corrupt is accepted: each received data set is walked to its end (dicom/dataset.py) and
its SOP Class/Instance UIDs compared with the C-STORE request before Success is answered. Files
are named by a hash of the SOP Instance UID (never by a value used as a path) and written
atomically (tmp in the same folder, fsync, os.replace).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dicomkit.dicom import dataset
from dicomkit.dicom.net import status_name
from dicomkit.errors import ConfigError
from dicomkit.fsutil import atomic_write_bytes

log = logging.getLogger(__name__)

# PS3.4 B.2.3 C-STORE statuses we answer with.
SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700  # Refused: Out of resources
DATA_SET_DOES_NOT_MATCH = 0xA900  # Error: Data Set does not match SOP Class
CANNOT_UNDERSTAND = 0xC000  # Error: Cannot understand

STORAGE_COMMITMENT_PUSH = "1.2.840.10008.1.20.1"  # PS3.4 J.3

# Stored as received: uncompressed, deflated, JPEG, JPEG-LS, JPEG 2000, RLE (PS3.5 Annex A).
TRANSFER_SYNTAXES = (
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian (retired, still sent by old archives)
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51",  # JPEG Extended
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.5",  # RLE Lossless
)


@dataclass
class Received:
    """One C-STORE sub-operation we answered."""

    sop_class_uid: str
    sop_instance_uid: str
    status: int
    status_name: str
    path: str = ""  # where it was written; empty when refused
    error: str = ""
    transfer_syntax: str = ""
    calling_aet: str = ""

    @property
    def ok(self) -> bool:
        return self.status == SUCCESS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ok": self.ok, "status_hex": f"0x{self.status:04X}"}


def file_name(sop_instance_uid: str) -> str:
    """A file name that is not built from the peer's value (a path, a '..', a NUL cannot
    reach the file system): a hash of the SOP Instance UID, stable across retrieves."""
    return hashlib.sha256(sop_instance_uid.encode("ascii", "replace")).hexdigest()[:32] + ".dcm"


@dataclass
class InstanceWriter:
    """Checks received data sets and writes the whole ones into ``out_dir``."""

    out_dir: Path
    received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def receive(
        self, sop_class: str, sop_instance: str, transfer_syntax: str, data: bytes, calling: str
    ) -> tuple[int, str]:
        """The C-STORE status for one data set, and an error comment."""
        code, comment, path = self._check_and_write(sop_class, sop_instance, transfer_syntax, data)
        rec = Received(sop_class, sop_instance, code, status_name(code), path, comment,
                       transfer_syntax, calling)  # fmt: skip
        with self._lock:
            self.received.append(rec)
        return code, comment

    def _check_and_write(
        self, sop_class: str, sop_instance: str, transfer_syntax: str, data: bytes
    ) -> tuple[int, str, str]:
        try:
            parsed = dataset.parse(data, transfer_syntax)
        except dataset.Malformed as exc:
            # PS3.4 B.2.3: Error, Cannot understand
            log.warning("C-STORE of %s refused: the data set is not whole: %s", sop_instance, exc)
            return CANNOT_UNDERSTAND, f"data set not whole: {exc}", ""
        ds_class, ds_instance = parsed.sop_uids()
        if not sop_instance or (ds_class, ds_instance) != (sop_class, sop_instance):
            # PS3.4 B.2.3: Error, Data Set does not match SOP Class
            what = "Class" if ds_class != sop_class else "Instance"
            log.warning("C-STORE refused: the data set's SOP %s UID differs from the command's "
                        "(%s %s vs %s %s)", what, ds_class, ds_instance, sop_class,
                        sop_instance)  # fmt: skip
            return DATA_SET_DOES_NOT_MATCH, f"SOP {what} UID differs from the command's", ""
        from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION

        meta = dataset.encode_meta(sop_class, sop_instance, transfer_syntax,
                                   str(PYNETDICOM_IMPLEMENTATION_UID),
                                   PYNETDICOM_IMPLEMENTATION_VERSION)  # fmt: skip
        path = self.out_dir / file_name(sop_instance)
        try:
            atomic_write_bytes(path, meta + data)  # tmp in this folder, fsync, os.replace
        except OSError as exc:
            log.error("C-STORE of %s: cannot write %s: %s", sop_instance, path, exc)
            return OUT_OF_RESOURCES, f"cannot write the file: {exc.strerror or exc}", ""
        return SUCCESS, "", str(path)


def handle_store(event: Any, writer: InstanceWriter) -> Any:
    """EVT_C_STORE: check the data set's bytes as received (nothing decoded), write them."""
    from pydicom.dataset import Dataset

    req = event.request
    rsp = Dataset()
    try:
        code, comment = writer.receive(
            str(req.AffectedSOPClassUID or ""),
            str(req.AffectedSOPInstanceUID or ""),
            str(event.context.transfer_syntax),
            req.DataSet.getvalue(),
            str(event.assoc.requestor.ae_title).strip(),
        )
    except Exception as exc:  # never raise into pynetdicom
        log.exception("C-STORE handler failed")
        code, comment = CANNOT_UNDERSTAND, f"internal error: {type(exc).__name__}"
    rsp.Status = code
    if comment:
        rsp.ErrorComment = comment[:64]
    return rsp


def storage_contexts(limit: int = 126) -> list[Any]:
    """Presentation contexts for the common storage SOP classes, every syntax we keep."""
    from pynetdicom.presentation import StoragePresentationContexts, build_context

    return [
        build_context(str(cx.abstract_syntax), list(TRANSFER_SYNTAXES))
        for cx in StoragePresentationContexts[:limit]
        if cx.abstract_syntax is not None
    ]


@contextlib.contextmanager
def listening(
    aet: str,
    host: str,
    port: int,
    *,
    writer: InstanceWriter | None = None,
    on_event_report: Callable[[Any], Any] | None = None,
    accept_from: str | None = None,
    timeout: float = 30.0,
) -> Iterator[Any]:
    """Run our SCP as ``aet`` on host:port while the block runs: C-STORE into ``writer``,
    N-EVENT-REPORT (storage commitment, PS3.4 J.3.3) to ``on_event_report``. Only associations
    called ``aet`` (and, with ``accept_from``, from that calling AE) are accepted."""
    from pynetdicom import AE, AllStoragePresentationContexts, evt

    from dicomkit.dicom.net import nodelay_handler

    ae = AE(ae_title=aet)
    ae.require_called_aet = True
    if accept_from:
        ae.require_calling_aet = [accept_from]
    ae.network_timeout = ae.acse_timeout = ae.dimse_timeout = timeout
    handlers: list[Any] = [nodelay_handler()]
    if writer is not None:
        for cx in AllStoragePresentationContexts:
            if cx.abstract_syntax is not None:
                ae.add_supported_context(cx.abstract_syntax, list(TRANSFER_SYNTAXES))
        handlers.append((evt.EVT_C_STORE, handle_store, [writer]))
    if on_event_report is not None:
        # PS3.4 J.3.3: on a new association the SCP proposes with role selection (it is the
        # SCP, we the SCU of Storage Commitment); accept either way it comes.
        ae.add_supported_context(STORAGE_COMMITMENT_PUSH, scu_role=True, scp_role=True)
        handlers.append((evt.EVT_N_EVENT_REPORT, on_event_report))
    try:
        server = ae.start_server((host, port), block=False, evt_handlers=handlers)
        assert server is not None  # block=False returns the running server
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port} as {aet} ({exc.strerror or exc})",
            "another `dicomkit retrieve|commit` or program holds the port: stop it, or choose "
            "another port with DICOMKIT_RETRIEVE_PORT (then `dicomkit down && dicomkit up`, "
            "so the PACS learns it)",
        ) from None
    log.info("listening as %s on %s:%d", aet, host, port)
    try:
        yield server
    finally:
        server.shutdown()
        ae.shutdown()
