"""The SCU operations every subcommand and lesson uses: echo, worklist find, study find, store."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dicomkit.dicom.net import (  # noqa: F401 - echo and EchoResult live in net, used from here
    EchoResult,
    Peer,
    association,
    echo,
    status_category,
    status_name,
)
from dicomkit.errors import DicomkitError, DimseFailure, UsageError

if TYPE_CHECKING:
    from pydicom.dataset import Dataset
    from pynetdicom.association import Association

    from dicomkit.dicom.worklist import WorklistQuery

log = logging.getLogger(__name__)

MWL_FIND = "1.2.840.10008.5.1.4.31"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
MAX_CONTEXTS = 128  # PS3.8 9.3.2.2: odd context IDs 1..255
MAX_RECONNECTS = 5
DEFLATED = "1.2.840.10008.1.2.1.99"  # Deflated Explicit VR Little Endian
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"  # DICOMDIR: describes files, is not one


def _c_find(
    peer: Peer, calling_aet: str, sop_class: str, identifier: Dataset, timeout: float, what: str
) -> Iterator[Dataset]:
    from pynetdicom.presentation import build_context

    with association(
        peer, calling_aet, [build_context(sop_class)], timeout=timeout, what=what
    ) as assoc:
        for status, ds in assoc.send_c_find(identifier, sop_class):
            code = int(status.Status) if status is not None and "Status" in status else None
            cat = status_category(code)
            if cat == "pending" and ds is not None:
                yield _assume_utf8(ds)
            elif cat in ("success", "cancel"):
                return
            else:
                hint = "see the PACS log (dicomkit logs pacs)"
                if code is None:
                    hint = "the association was lost or timed out; check the peer is healthy"
                if sop_class == MWL_FIND and (code is None or code in (0x0124, 0xC000, 0xC001)):
                    # Orthanc >= 1.10 aborts the association: no status at all.
                    hint = (
                        f"Orthanc >= 1.10 refuses worklist queries from AEs it does not know "
                        f"(C-ECHO still works): register calling AE {calling_aet} in "
                        f"DicomModalities with AllowFindWorklist, set "
                        f"DicomAlwaysAllowFindWorklist, or query as a known AE (--aet DICOMKIT)"
                    )
                shown = (
                    "no status (association aborted)"
                    if code is None
                    else f"0x{code:04X} {status_name(code, 'find')}"
                )
                raise DimseFailure(f"{what} C-FIND to {peer} failed: {shown}", hint, status=code)


_TEXT_VRS = ("PN", "LO", "SH", "LT", "ST", "UT", "UC")


def _assume_utf8(ds: Dataset) -> Dataset:
    """We always query with ISO_IR 192. Some SCPs (DCMTK wlmscpfs) answer in it without
    declaring it, so pydicom decoded the text as Latin-1. When an answer declares no character
    set and all its non-ASCII text is valid UTF-8, read it as UTF-8 (Latin-1 round-trips bytes)."""
    if ds.get("SpecificCharacterSet"):
        return ds
    from pydicom.valuerep import PersonName

    def raw(value: object) -> bytes | None:
        if isinstance(value, PersonName):
            orig = value.original_string
            return orig if isinstance(orig, bytes) else str(value).encode("latin-1", "ignore")
        if isinstance(value, str):
            try:
                return value.encode("latin-1")
            except UnicodeEncodeError:
                return None
        return None

    fixes: list[tuple[Any, bytes]] = []

    def scan(d: Dataset) -> bool:
        for elem in d:
            if elem.VR == "SQ":
                if not all(scan(item) for item in elem.value):
                    return False
            elif elem.VR in _TEXT_VRS and elem.VM == 1 and elem.value:
                b = raw(elem.value)
                if b is None:
                    return False
                if not b.isascii():
                    try:
                        b.decode("utf-8")
                    except UnicodeDecodeError:
                        return False
                    fixes.append((elem, b))
        return True

    if scan(ds) and fixes:
        for elem, b in fixes:
            text = b.decode("utf-8")
            elem.value = PersonName(text) if elem.VR == "PN" else text
        ds.SpecificCharacterSet = "ISO_IR 192"
    return ds


def find_worklist(
    peer: Peer, calling_aet: str, query: WorklistQuery, timeout: float = 10.0
) -> list[dict[str, str]]:
    """MWL C-FIND (PS3.4 K): one dict per scheduled procedure step that matches."""
    from dicomkit.dicom import wire
    from dicomkit.dicom.worklist import answer_to_dict  # not imported by `store`

    if wire.enabled():  # the lean path; anything unusual is repeated through pynetdicom
        from dicomkit.dicom import leanscu
        from dicomkit.dicom.net import no_association, rejected_error

        try:
            quick = leanscu.find(peer, calling_aet, MWL_FIND, query.identifier(), timeout)
        except wire.Rejected as exc:
            raise rejected_error(peer, calling_aet, exc.result, exc.source, exc.reason) from None
        except wire.TimedOut:
            raise no_association(peer) from None
        except DicomkitError:
            raise
        except Exception as exc:  # decoding included: the full stack decides and explains
            log.debug("lean worklist find to %s gave way to pynetdicom: %s", peer, exc)
        else:
            return [answer_to_dict(_assume_utf8(ds)) for ds in quick]
    answers = _c_find(peer, calling_aet, MWL_FIND, query.identifier(), timeout, "worklist")
    return [answer_to_dict(ds) for ds in answers]


def find_worklist_datasets(
    peer: Peer, calling_aet: str, query: WorklistQuery, timeout: float = 10.0
) -> list[Dataset]:
    return list(_c_find(peer, calling_aet, MWL_FIND, query.identifier(), timeout, "worklist"))


@dataclass
class StudyQuery:
    patient_id: str = ""
    patient_name: str = ""
    accession: str = ""
    date: str = ""
    modality: str = ""
    study_uid: str = ""

    def identifier(self) -> Dataset:
        from pydicom.dataset import Dataset

        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        ds.SpecificCharacterSet = "ISO_IR 192"  # answers in UTF-8 (see WorklistQuery)
        ds.PatientName = self.patient_name
        ds.PatientID = self.patient_id
        ds.AccessionNumber = self.accession
        ds.StudyDate = self.date
        ds.StudyTime = ""
        ds.StudyDescription = ""
        ds.ModalitiesInStudy = self.modality
        ds.StudyInstanceUID = self.study_uid
        ds.NumberOfStudyRelatedSeries = ""
        ds.NumberOfStudyRelatedInstances = ""
        return ds


def find_studies(
    peer: Peer, calling_aet: str, query: StudyQuery, timeout: float = 10.0
) -> list[dict[str, str]]:
    """Study Root C-FIND at STUDY level (PS3.4 C.6.2)."""
    rows = []
    for ds in _c_find(peer, calling_aet, STUDY_ROOT_FIND, query.identifier(), timeout, "study"):
        rows.append(
            {
                "patient_name": str(ds.get("PatientName", "")),
                "patient_id": str(ds.get("PatientID", "")),
                "accession": str(ds.get("AccessionNumber", "")),
                "study_date": str(ds.get("StudyDate", "")),
                "study_description": str(ds.get("StudyDescription", "")),
                "modalities": "\\".join(_multi(ds.get("ModalitiesInStudy", ""))),
                "study_instance_uid": str(ds.get("StudyInstanceUID", "")),
                "series": str(ds.get("NumberOfStudyRelatedSeries", "")),
                "instances": str(ds.get("NumberOfStudyRelatedInstances", "")),
            }
        )
    return rows


def _multi(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


# ---- C-STORE ---------------------------------------------------------------------------


@dataclass
class FileResult:
    path: str
    status: int | None = None
    status_name: str = ""
    sop_instance_uid: str = ""
    error: str = ""
    note: str = ""  # e.g. the file meta and the data set named different UIDs

    @property
    def ok(self) -> bool:
        return self.status is not None and status_category(self.status) in ("success", "warning")


@dataclass
class StoreReport:
    peer: str
    results: list[FileResult] = field(default_factory=list)
    skipped: list[FileResult] = field(default_factory=list)  # not DICOM / unreadable
    seconds: float = 0.0
    bytes_sent: int = 0

    @property
    def sent_ok(self) -> list[FileResult]:
        return [r for r in self.results if r.ok]

    @property
    def failed(self) -> list[FileResult]:
        """Every file that was not acknowledged with Success (or a Warning)."""
        return [r for r in self.results if not r.ok] + self.skipped

    def to_dict(self) -> dict[str, Any]:
        return {
            "peer": self.peer,
            "sent": len(self.sent_ok),
            "failed": len([r for r in self.results if not r.ok]),
            "skipped": len(self.skipped),
            "seconds": round(self.seconds, 3),
            "bytes": self.bytes_sent,
            "files": [asdict(r) | {"ok": r.ok} for r in self.results + self.skipped],
            "not_stored": [r.path for r in self.failed],
        }


def collect_files(paths: Iterable[Path]) -> list[Path]:
    """Files and folders (recursively, sorted) -> files. Missing paths, and folders that cannot
    be listed (whose files would otherwise be left out without a word), are a usage error."""
    out: list[Path] = []
    missing = []
    unlisted: list[str] = []

    def on_error(exc: OSError) -> None:
        unlisted.append(f"{exc.filename}: {exc.strerror or exc}")

    for p in paths:
        if p.is_dir():
            for root, dirs, files in os.walk(p, onerror=on_error):
                dirs.sort()
                out.extend(Path(root) / f for f in sorted(files) if not f.startswith("."))
        elif p.exists():
            out.append(p)
        else:
            missing.append(str(p))
    if missing:
        raise UsageError(
            f"no such file or folder: {', '.join(missing)}", "check the path(s) and try again"
        )
    if unlisted:
        raise UsageError(
            f"cannot list folder(s), nothing sent: {'; '.join(unlisted)}",
            "fix their permissions (the files in them would be left out), or name only the "
            "folders you can read",
        )
    return out


@dataclass
class _Prepared:
    path: Path
    sop_class: str
    sop_instance: str
    transfer_syntax: str
    size: int
    offset: int  # where the data set starts (after the File Meta Information)
    meta_differs: bool = False  # the file meta names other UIDs than the data set


# PS3.4 Annex B storage SOP classes live here (a few newer ones elsewhere under the root).
_STORAGE_PREFIX = "1.2.840.10008.5.1.4.1.1."


def _storage_class_problem(sop_class: str) -> str:
    """Why ``sop_class`` is no storage SOP class to propose, or ""."""
    if sop_class == MEDIA_STORAGE_DIRECTORY:
        return "a DICOMDIR (media index), not an instance to store"
    if sop_class.startswith(_STORAGE_PREFIX) or not sop_class.startswith("1.2.840.10008."):
        return ""  # a storage class, or a private one the peer decides on
    from pydicom.uid import UID
    from pynetdicom.service_class import StorageServiceClass
    from pynetdicom.sop_class import uid_to_service_class

    if uid_to_service_class(sop_class) is StorageServiceClass:
        return ""
    return f"not a storage SOP class: {sop_class} ({UID(sop_class).name})"


def _prepare(path: Path) -> _Prepared | FileResult:
    """Check the file whole (its data set walked to the end, dicom/dataset.py) and take the
    UIDs from the data set: the file is then sent as its own bytes."""
    from dicomkit.dicom import dataset

    if not path.is_file():  # opening a FIFO would block for ever; a device never ends
        return FileResult(str(path), error="not a regular file (a FIFO, socket or device)")
    try:
        buf = dataset.map_file(path)
    except PermissionError:
        return FileResult(str(path), error="permission denied: cannot read the file")
    except OSError as exc:
        return FileResult(str(path), error=f"unreadable file: {exc}")
    try:
        part = dataset.parse_part10(buf)
        sop_class, sop_inst = part.dataset.sop_uids()
    except dataset.Malformed as exc:
        why = str(exc)
        return FileResult(str(path), error=why if why.startswith("not a") else f"not whole: {why}")
    finally:
        if not isinstance(buf, bytes):
            buf.close()
    meta = part.meta
    problem = _storage_class_problem(sop_class or meta.sop_class)
    if problem:
        return FileResult(str(path), error=problem)
    if not sop_class or not sop_inst:
        missing = "SOP Class UID (0008,0016)" if not sop_class else "SOP Instance UID (0008,0018)"
        return FileResult(str(path), error=f"no {missing} in the data set: not a storable instance")
    size = path.stat().st_size
    if meta.offset >= size:
        return FileResult(str(path), error="no data set after the File Meta Information")
    differs = (meta.sop_class, meta.sop_instance) != (sop_class, sop_inst)
    if differs:
        log.warning("%s: the file meta names SOP class %s instance %s, the data set %s %s; "
                    "sent as the data set says", path, meta.sop_class, meta.sop_instance,
                    sop_class, sop_inst)  # fmt: skip
    return _Prepared(path, sop_class, sop_inst, meta.transfer_syntax, size, meta.offset, differs)


ProgressFn = Callable[[FileResult], None]


MAX_AUTO_JOBS = 4


def auto_jobs(n_files: int) -> int:
    """Associations to use by default: one per 4 files, at most 4.

    Measured (bench/run.py's files, fresh Orthanc 1.10 each run, 2 cores, medians of 4):
    500 small files 4.16 s on one association, 2.35 s on 2, 2.23 s on 4 (storescu 4.29 s);
    20 x 512x512 0.47 / 0.41 / 0.36 s (storescu 0.27 s). Orthanc stores in parallel what
    one association must wait for (its fsync per instance). Parallel associations use the
    bare-socket sender only; anything it leaves goes to one pynetdicom association afterwards
    (pynetdicom driven from several threads occasionally never sees a C-STORE response:
    a 30 s stall, pynetdicom issues #842/#850). A peer that takes one association at a time
    (DCMTK storescp without --fork) just serves them one after another."""
    return max(1, min(MAX_AUTO_JOBS, n_files // 4))


def store_files(
    peer: Peer,
    calling_aet: str,
    files: list[Path],
    *,
    timeout: float = 30.0,
    progress: ProgressFn | None = None,
    skip_instances: set[str] | None = None,
    jobs: int = 1,
    planned: Callable[[int], None] | None = None,
) -> StoreReport:
    """C-STORE every file, on as few associations as the 128-context limit allows
    (``jobs`` > 1: that many associations in parallel, each with its share of the files).

    ``progress`` is called once per file that is sent or skipped as unreadable; files whose
    instance is in ``skip_instances`` (``--resume``) get no call. ``planned`` is told, once the
    files are read and before anything is sent, how many ``progress`` calls there will be.

    Each (SOP class, transfer syntax) pair gets its own presentation context proposing the
    file's own transfer syntax, so compressed files are sent as they are (nothing decoded).
    """
    from concurrent.futures import ThreadPoolExecutor, wait

    report = StoreReport(str(peer))
    t0 = time.perf_counter()
    lock = threading.Lock()
    stop = threading.Event()

    def record(r: FileResult, size: int = 0) -> None:
        with lock:
            if r.ok:
                report.bytes_sent += size
            _record(report, r, progress)

    prepared: list[_Prepared] = []
    for f in files:
        p = _prepare(f)
        if isinstance(p, FileResult):
            report.skipped.append(p)
            if progress:
                progress(p)
        elif skip_instances and p.sop_instance in skip_instances:
            continue
        else:
            prepared.append(p)

    if planned:
        planned(len(prepared) + len(report.skipped))

    def anything_sent() -> bool:
        return bool(report.results)

    jobs = max(1, min(jobs, len(prepared)))
    if jobs == 1:
        _store_group(peer, calling_aet, prepared, timeout, record, anything_sent)
    else:
        # The bare-socket sender on `jobs` associations at once; whatever it leaves (deflated
        # files, a refused association, an odd peer) goes to one pynetdicom association after.
        groups = [prepared[i::jobs] for i in range(jobs)]
        leftover: list[_Prepared] = []
        with ThreadPoolExecutor(jobs, thread_name_prefix="c-store") as pool:
            futures = [
                pool.submit(_store_raw, peer, calling_aet, g, timeout, record, stop) for g in groups
            ]
            try:
                wait(futures)
            except KeyboardInterrupt:
                stop.set()  # each association finishes its file in flight and releases
                raise
        for g, fut in zip(groups, futures, strict=True):
            exc = fut.exception()
            if exc is None:
                leftover += fut.result()
            else:  # not expected: send again whatever has no result yet
                log.warning("parallel C-STORE association failed: %s", exc)
                with lock:
                    done = {r.path for r in report.results}
                leftover += [p for p in g if str(p.path) not in done]
        if leftover:
            _store_group(peer, calling_aet, leftover, timeout, record, anything_sent, retry=True)
        order = {str(p.path): i for i, p in enumerate(prepared)}
        report.results.sort(key=lambda r: order.get(r.path, 0))
    report.seconds = time.perf_counter() - t0
    return report


def _store_group(
    peer: Peer,
    calling_aet: str,
    prepared: list[_Prepared],
    timeout: float,
    record: Callable[..., None],
    anything_sent: Callable[[], bool],
    retry: bool = False,
) -> None:
    """``retry``: a transient rejection (the peer's association limit, which our own parallel
    associations may just have reached) is retried for a few seconds before it counts."""
    # The fast path first; pynetdicom takes whatever it leaves (and explains any failure).
    prepared = _store_raw(peer, calling_aet, prepared, timeout, record)
    if not prepared:
        return
    from pynetdicom import _config
    from pynetdicom.presentation import build_context

    # Stream each file's encoded bytes from disk here too: nothing decoded or re-encoded.
    _config.STORE_SEND_CHUNKED_DATASET = True

    for batch in _batches(prepared):
        pairs = sorted({(p.sop_class, p.transfer_syntax) for p in batch})
        contexts = [build_context(sc, [ts]) for sc, ts in pairs]
        queue = list(batch)
        reconnects = 0
        while queue:
            with contextlib.ExitStack() as stack:
                try:
                    assoc = stack.enter_context(
                        _associate_retrying(peer, calling_aet, contexts, timeout, retry)
                    )
                except DicomkitError as exc:
                    if not anything_sent():
                        raise  # nothing sent yet: the connection error says it all
                    for p in queue:
                        msg = f"not sent: {exc.message}"
                        record(FileResult(str(p.path), None, "", p.sop_instance, msg))
                    queue = []
                    break
                accepted = {
                    (str(cx.abstract_syntax), str(cx.transfer_syntax[0]))
                    for cx in assoc.accepted_contexts
                }
                while queue and assoc.is_established:
                    p = queue.pop(0)
                    record(_store_one(assoc, p, accepted), p.size)
            if queue:
                # The peer dropped the association (a file it could not take, a restart):
                # carry on with the rest on a new one, but give up on a peer that keeps dying.
                reconnects += 1
                log.warning(
                    "association lost; reconnecting (%d) for %d file(s)", reconnects, len(queue)
                )
                if reconnects > MAX_RECONNECTS:
                    for p in queue:
                        msg = "not sent: the peer kept dropping the association"
                        record(FileResult(str(p.path), None, "", p.sop_instance, msg))
                    queue = []


@contextlib.contextmanager
def _associate_retrying(
    peer: Peer, calling_aet: str, contexts: list[Any], timeout: float, retry: bool
) -> Iterator[Association]:
    delays = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2] if retry else []
    while True:
        entered = False
        try:
            with association(peer, calling_aet, contexts, timeout=timeout, what="storage") as a:
                entered = True
                yield a
            return
        except DicomkitError as exc:
            if entered or not (delays and exc.details.get("transient")):
                raise
            log.info("transient rejection, retrying in %.1f s: %s", delays[0], exc.message)
            time.sleep(delays.pop(0))


def _batches(prepared: list[_Prepared]) -> list[list[_Prepared]]:
    """Split into runs whose distinct (SOP class, transfer syntax) pairs fit one association."""
    batches: list[list[_Prepared]] = []
    seen: set[tuple[str, str]] = set()
    current: list[_Prepared] = []
    for p in prepared:
        key = (p.sop_class, p.transfer_syntax)
        if key not in seen and len(seen) >= MAX_CONTEXTS:
            batches.append(current)
            current, seen = [], set()
        seen.add(key)
        current.append(p)
    if current:
        batches.append(current)
    return batches


def _no_context(p: _Prepared) -> FileResult:
    return FileResult(
        str(p.path),
        sop_instance_uid=p.sop_instance,
        error=f"the peer accepted no presentation context for SOP class {p.sop_class} "
        f"with transfer syntax {p.transfer_syntax}",
    )


def _store_raw(
    peer: Peer,
    calling_aet: str,
    prepared: list[_Prepared],
    timeout: float,
    record: Callable[..., None],
    stop: threading.Event | None = None,
) -> list[_Prepared]:
    """Send what the lean sender can (dicom/leanscu.py); return the files left over.
    ``stop`` set (Ctrl-C in the main thread): finish the file in flight, release, return."""
    from dicomkit.dicom import wire
    from dicomkit.dicom.leanscu import OutgoingFile, StoreAssociation
    from dicomkit.dicom.net import rejected_error

    if not wire.enabled():
        return prepared
    # pynetdicom keeps deflated files (their wire encoding is re-deflated, not the file's
    # bytes) and files whose meta disagrees with the data set (sent decoded).
    leftover = [p for p in prepared if p.transfer_syntax == DEFLATED or p.meta_differs]
    queue = [p for p in prepared if not (p.transfer_syntax == DEFLATED or p.meta_differs)]
    reconnects = 0
    while queue:
        batch = _batches(queue)[0]
        rest = queue[len(batch) :]
        sa = StoreAssociation(peer, calling_aet, timeout)
        try:
            sa.open((p.sop_class, p.transfer_syntax) for p in batch)
        except wire.Rejected as exc:
            if exc.result == 2:  # transient (e.g. the peer's association limit): pynetdicom retries
                return leftover + queue
            raise rejected_error(peer, calling_aet, exc.result, exc.source, exc.reason) from None
        except wire.WireError as exc:
            log.debug("lean C-STORE to %s gave way to pynetdicom: %s", peer, exc)
            return leftover + queue
        try:
            while batch:
                if stop is not None and stop.is_set():
                    sa.release()
                    return []
                p = batch.pop(0)
                if (p.sop_class, p.transfer_syntax) not in sa.accepted:
                    record(_no_context(p))
                    continue
                out = OutgoingFile(p.path, p.sop_class, p.sop_instance, p.transfer_syntax, p.offset)
                try:
                    code, comment = sa.store(out)
                except wire.Lost as exc:
                    record(
                        FileResult(str(p.path), None, status_name(None), p.sop_instance, str(exc))
                    )
                    reconnects += 1
                    log.warning(
                        "association lost; reconnecting (%d) for %d file(s)",
                        reconnects,
                        len(batch) + len(rest),
                    )
                    if reconnects > MAX_RECONNECTS:
                        for q in batch + rest:
                            msg = "not sent: the peer kept dropping the association"
                            record(FileResult(str(q.path), None, "", q.sop_instance, msg))
                        return leftover
                    break
                r = FileResult(str(p.path), code, status_name(code), p.sop_instance)
                if not r.ok:
                    r.error = f"{r.status_name}: {comment}" if comment else r.status_name
                record(r, p.size)
            else:
                sa.release()
        finally:
            sa.close()
        queue = batch + rest
    return leftover


def _record(report: StoreReport, r: FileResult, progress: ProgressFn | None) -> None:
    report.results.append(r)
    if progress:
        progress(r)


def _store_one(assoc: Association, p: _Prepared, accepted: set[tuple[str, str]]) -> FileResult:
    r = FileResult(str(p.path), sop_instance_uid=p.sop_instance)
    if p.meta_differs:
        r.note = "the file meta names other SOP UIDs than the data set: sent as the data set says"
    if (p.sop_class, p.transfer_syntax) not in accepted:
        r.error = (
            f"the peer accepted no presentation context for SOP class {p.sop_class} "
            f"with transfer syntax {p.transfer_syntax}"
        )
        return r
    if not assoc.is_established:
        r.error = "not sent: the association was lost before this file"
        return r
    try:
        # A path is sent as its encoded bytes: pynetdicom does not decode the pixel data.
        if p.transfer_syntax == DEFLATED or p.meta_differs:
            # pynetdicom's chunked sending mishandles deflated files (the peer aborts), and
            # takes the UIDs from the file meta: decode, and let pynetdicom encode again.
            from pydicom import dcmread

            rsp = assoc.send_c_store(dcmread(p.path))
        else:
            rsp = assoc.send_c_store(p.path)
        code = int(rsp.Status) if "Status" in rsp else None
    except Exception as exc:  # the peer vanished mid-transfer
        code = None
        r.error = f"send failed: {exc}"
    r.status = code
    r.status_name = status_name(code)
    if not r.ok and not r.error:
        r.error = r.status_name
    return r


def find_instances(
    peer: Peer, calling_aet: str, study_uid: str, timeout: float = 10.0
) -> list[tuple[str, str]]:
    """(SOP Class UID, SOP Instance UID) of every instance of a study: Study Root C-FIND at
    SERIES, then IMAGE level (PS3.4 C.4.1.2.2, hierarchical: each level's unique keys)."""
    from pydicom.dataset import Dataset

    def query(level: str, **keys: str) -> Dataset:
        ds = Dataset()
        ds.QueryRetrieveLevel = level
        for k, v in keys.items():
            setattr(ds, k, v)
        return ds

    out: list[tuple[str, str]] = []
    series = query("SERIES", StudyInstanceUID=study_uid, SeriesInstanceUID="")
    for s in list(_c_find(peer, calling_aet, STUDY_ROOT_FIND, series, timeout, "series")):
        image = query("IMAGE", StudyInstanceUID=study_uid,
                      SeriesInstanceUID=str(s.get("SeriesInstanceUID", "")),
                      SOPClassUID="", SOPInstanceUID="")  # fmt: skip
        for ds in _c_find(peer, calling_aet, STUDY_ROOT_FIND, image, timeout, "image"):
            out.append((str(ds.get("SOPClassUID", "")), str(ds.get("SOPInstanceUID", ""))))
    return sorted(set(out))
