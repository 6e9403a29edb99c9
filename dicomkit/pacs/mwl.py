"""Modality Worklist C-FIND (PS3.4 Annex K) over the RIS's folder of ``.wl`` files.

Orthanc's worklist plugin re-reads every file on every query (~300 ms for 10,000 items).
Here an in-memory index follows the folder instead: each query costs one ``stat`` of the
folder, plus a directory listing only when the folder changed (or changed too recently for
its timestamp to be trusted). Files are recognised by (name, inode): the RIS replaces files
atomically, so a rewritten item is a new inode. A background sweep also stats every file
every few seconds to catch in-place edits. Exact keys on accession, patient ID, study UID
and requested procedure ID are looked up in a dict rather than scanned.

A truncated or corrupt file is skipped and logged once; it never fails the query.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dicomkit.pacs.match import Constraint, Flat, build_answer, compile_query, flatten, matches_all

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from dicomkit.pacs.settings import ServerConfig

log = logging.getLogger(__name__)

MWL_FIND = "1.2.840.10008.5.1.4.31"
SUFFIX = ".wl"
# Single-value keys answered from a dict (value -> file names) instead of a scan.
INDEXED_TAGS = (
    0x00080050,  # AccessionNumber
    0x00100020,  # PatientID
    0x0020000D,  # StudyInstanceUID
    0x00401001,  # RequestedProcedureID
)
# A folder whose mtime is this recent may change again within the same timestamp tick.
_TRUST_AFTER_NS = 2_000_000_000

SUCCESS = 0x0000
PENDING = 0xFF00
CANCEL = 0xFE00
UNABLE_TO_PROCESS = 0xC000  # PS3.4 C.4.1.1.4 Failure: Unable to process
OUT_OF_RESOURCES = 0xA700


@dataclass
class _Entry:
    name: str
    inode: int
    mtime_ns: int
    size: int
    ds: Dataset | None  # None: unreadable (logged once, skipped until the file changes)
    flat: Flat | None


class Truncated(ValueError):
    pass


_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)


def _walk(buf: bytes, pos: int, end: int, implicit: bool, until_delimiter: bool) -> int:
    """Walk element headers (PS3.5 7.1, 7.5) and check every length fits in the file."""
    unpack = struct.unpack_from
    while pos < end:
        if pos + 8 > end:
            raise Truncated(f"element header cut at byte {pos}")
        group, elem = unpack("<HH", buf, pos)
        if group == 0xFFFE:  # item / delimiters (PS3.5 7.5)
            length = unpack("<I", buf, pos + 4)[0]
            pos += 8
            if elem in (0xE00D, 0xE0DD):
                if until_delimiter:
                    return pos
                continue
            if length == 0xFFFFFFFF:
                pos = _walk(buf, pos, end, implicit, True)
                continue
        elif implicit:
            length = unpack("<I", buf, pos + 4)[0]
            pos += 8
        else:
            vr = buf[pos + 4 : pos + 6]
            if vr in _LONG_VRS:
                if pos + 12 > end:
                    raise Truncated(f"element header cut at byte {pos}")
                length = unpack("<I", buf, pos + 8)[0]
                pos += 12
            else:
                length = unpack("<H", buf, pos + 6)[0]
                pos += 8
        if length == 0xFFFFFFFF:
            pos = _walk(buf, pos, end, implicit, True)
            continue
        pos += length
        if pos > end:
            raise Truncated(f"a value runs {pos - end} bytes past the end of the file")
    if until_delimiter:
        raise Truncated("a sequence or item has no delimiter: the file is cut short")
    return pos


def check_complete(raw: bytes) -> None:
    """Raise ``Truncated`` unless ``raw`` is a whole Part 10 file (PS3.10 7.1) whose dataset
    (little endian, the encodings worklist files use) ends exactly at the end of the file.
    pydicom alone reads a truncated file without complaint, and Orthanc/DCMTK reject one."""
    try:
        _check_complete(raw)
    except struct.error as exc:  # a header cut inside its own fields
        raise Truncated(f"an element header is cut short ({exc})") from None


def _check_complete(raw: bytes) -> None:
    if len(raw) < 132 or raw[128:132] != b"DICM":
        raise Truncated("no DICOM preamble/prefix (not a Part 10 file)")
    pos, end = 132, len(raw)
    ts = b""
    while pos + 8 <= end and struct.unpack_from("<H", raw, pos)[0] == 0x0002:
        elem = struct.unpack_from("<H", raw, pos + 2)[0]
        vr = raw[pos + 4 : pos + 6]
        if vr in _LONG_VRS:
            length = struct.unpack_from("<I", raw, pos + 8)[0]
            pos += 12
        else:
            length = struct.unpack_from("<H", raw, pos + 6)[0]
            pos += 8
        if pos + length > end:
            raise Truncated("file meta information is cut short")
        if elem == 0x0010:
            ts = raw[pos : pos + length].rstrip(b"\0 ")
        pos += length
    if ts == b"1.2.840.10008.1.2":
        _walk(raw, pos, end, True, False)
    elif ts == b"1.2.840.10008.1.2.1":
        _walk(raw, pos, end, False, False)
    # Other encodings (big endian, deflated) are rare for worklists: pydicom's parse decides.


def parse_item(raw: bytes) -> tuple[Dataset, Flat]:
    from pydicom import dcmread

    check_complete(raw)
    ds = dcmread(BytesIO(raw))
    return ds, flatten(ds)  # flatten decodes every value: bad encodings fail here, not later


class WorklistFolder:
    """The worklist items of one folder, kept in step with it."""

    def __init__(self, folder: Path, max_file_size: int = 1024 * 1024) -> None:
        self.folder = Path(folder)
        self.max_file_size = max_file_size
        self._lock = threading.RLock()
        self._entries: dict[str, _Entry] = {}
        self._by_value: dict[int, dict[str, set[str]]] = {t: {} for t in INDEXED_TAGS}
        self._sig: tuple[int, int] | None = None

    def __len__(self) -> int:
        with self._lock:
            return sum(1 for e in self._entries.values() if e.ds is not None)

    # ---- following the folder -------------------------------------------------------------
    def refresh(self, full: bool = False) -> None:
        """Bring the index in line with the folder. ``full`` also stats every file."""
        try:
            st = os.stat(self.folder)
        except OSError:
            with self._lock:
                for name in list(self._entries):
                    self._drop(name)
                self._sig = None
            return
        sig = (st.st_ino, st.st_mtime_ns)
        recent = time.time_ns() - st.st_mtime_ns < _TRUST_AFTER_NS
        if not full and sig == self._sig and not recent:
            return
        stats: dict[str, os.stat_result] = {}
        listing: dict[str, int] = {}
        try:
            with os.scandir(self.folder) as it:
                for e in it:
                    if not e.name.endswith(SUFFIX) or e.name.startswith("."):
                        continue
                    listing[e.name] = e.inode()
                    if full:
                        try:
                            stats[e.name] = e.stat(follow_symlinks=False)
                        except OSError:
                            listing.pop(e.name)
        except OSError as exc:
            log.warning("cannot list the worklist folder %s: %s", self.folder, exc)
            return
        with self._lock:
            for name in [n for n in self._entries if n not in listing]:
                self._drop(name)
            for name, inode in listing.items():
                old = self._entries.get(name)
                if old is not None and old.inode == inode and not full:
                    continue
                s = stats.get(name)
                if s is None:
                    try:
                        s = os.stat(self.folder / name, follow_symlinks=False)
                    except OSError:
                        continue  # removed meanwhile
                if old is not None and (old.inode, old.mtime_ns, old.size) == (
                    s.st_ino,
                    s.st_mtime_ns,
                    s.st_size,
                ):
                    continue
                self._load(name, s)
            self._sig = sig

    def _load(self, name: str, st: os.stat_result) -> None:
        import stat as _stat

        self._drop(name)
        entry = _Entry(name, st.st_ino, st.st_mtime_ns, st.st_size, None, None)
        self._entries[name] = entry
        if not _stat.S_ISREG(st.st_mode):
            log.warning("skipping worklist entry %s: not a regular file", name)
            return
        if st.st_size > self.max_file_size:
            log.warning("skipping worklist file %s: %d bytes is too big", name, st.st_size)
            return
        try:
            # O_NOFOLLOW: never read through a symlink planted in the folder.
            fd = os.open(self.folder / name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            with os.fdopen(fd, "rb") as fh:
                raw = fh.read(self.max_file_size + 1)
            entry.ds, entry.flat = parse_item(raw)
        except FileNotFoundError:
            self._entries.pop(name, None)
            return
        except Exception as exc:  # any parse error: skip this file, keep serving the others
            entry.ds = entry.flat = None
            log.warning("skipping unreadable worklist file %s: %s", name, exc)
            return
        for tag in INDEXED_TAGS:
            for v in entry.flat.get(tag, ()):
                if isinstance(v, str):
                    self._by_value[tag].setdefault(v, set()).add(name)

    def _drop(self, name: str) -> None:
        old = self._entries.pop(name, None)
        if old is None or old.flat is None:
            return
        for tag in INDEXED_TAGS:
            for v in old.flat.get(tag, ()):
                if isinstance(v, str):
                    names = self._by_value[tag].get(v)
                    if names is not None:
                        names.discard(name)
                        if not names:
                            del self._by_value[tag][v]

    # ---- querying --------------------------------------------------------------------------
    def _candidates(self, constraints: tuple[Constraint, ...]) -> Iterator[_Entry]:
        for c in constraints:
            if c.tag in self._by_value and c.exact is not None:
                names: set[str] = set()
                for v in c.exact:
                    names |= self._by_value[c.tag].get(v, set())
                for n in sorted(names):
                    yield self._entries[n]
                return
        for n in sorted(self._entries):
            yield self._entries[n]

    def find(self, query: Dataset) -> list[Dataset]:
        """Matching items as answers holding the requested return keys (PS3.4 K.6.1.2)."""
        constraints = compile_query(query)
        self.refresh()
        with self._lock:
            hits = [
                e.ds
                for e in self._candidates(constraints)
                if e.ds is not None and e.flat is not None and matches_all(e.flat, constraints)
            ]
        return [build_answer(ds, query) for ds in hits]

    # ---- background sweep ------------------------------------------------------------------
    def start_sweeper(self, interval: float, stop: threading.Event) -> threading.Thread:
        def run() -> None:
            while not stop.wait(interval):
                try:
                    self.refresh(full=True)
                except Exception:
                    log.exception("worklist sweep failed")

        t = threading.Thread(target=run, name="worklist-sweep", daemon=True)
        t.start()
        return t


def handle_mwl_find(event: Any, worklist: WorklistFolder, cfg: ServerConfig) -> Iterator[Any]:
    """EVT_C_FIND for the MWL SOP class: refuse unknown AEs like Orthanc, else match."""
    calling = str(event.assoc.requestor.ae_title).strip()
    if not cfg.may_find_worklist(calling):
        # Orthanc >= 1.10 refuses too (it aborts the association); a status names the cause.
        log.warning(
            "refused worklist C-FIND from AE %r: not a known AE with AllowFindWorklist", calling
        )
        yield UNABLE_TO_PROCESS, None
        return
    try:
        query = event.identifier
        answers = worklist.find(query)
    except Exception:
        log.exception("worklist C-FIND failed")
        yield UNABLE_TO_PROCESS, None
        return
    for ds in answers:
        if event.is_cancelled:
            yield CANCEL, None
            return
        yield PENDING, ds
