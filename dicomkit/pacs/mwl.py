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

import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dicomkit.dicom import dataset
from dicomkit.pacs.match import Constraint, Flat, build_answer, compile_query, flatten, matches_all

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from dicomkit.pacs.settings import ServerConfig

log = logging.getLogger(__name__)

MWL_FIND = "1.2.840.10008.5.1.4.31"
SUFFIX = ".wl"
# Top-level keys answered from a dict (value -> file names) instead of a scan: an exact key
# is one lookup, a wildcard is tested once per distinct value rather than once per item.
INDEXED_TAGS = (
    0x00080050,  # AccessionNumber
    0x00100010,  # PatientName
    0x00100020,  # PatientID
    0x0020000D,  # StudyInstanceUID
    0x00401001,  # RequestedProcedureID
)
# A folder whose mtime is this recent may change again within the same timestamp tick.
_TRUST_AFTER_NS = 2_000_000_000

SUCCESS = 0x0000
PENDING = 0xFF00
CANCEL = 0xFE00
UNABLE_TO_PROCESS = 0xC000  # PS3.4 K.4.1.1.4 Failure: Unable to process
OUT_OF_RESOURCES = 0xA700


@dataclass
class _Entry:
    name: str
    inode: int
    mtime_ns: int
    size: int
    raw: bytes | None  # None: unreadable (logged once, skipped until the file changes)
    flat: Flat | None
    _ds: Dataset | None = None

    @property
    def ds(self) -> Dataset:
        """The full data set, parsed on first use (only items that match need it)."""
        if self._ds is None:
            from pydicom import dcmread

            assert self.raw is not None
            self._ds = dcmread(BytesIO(self.raw))
        return self._ds


class _NotFast(Exception):
    """This item needs pydicom's reader (code extensions, unusual encodings)."""


# ---- a fast reader for worklist items ------------------------------------------------------
# pydicom builds a full Dataset (~1-2 ms per item); loading 10,000 items that way takes
# 10-30 s. Matching needs only the text values, so little endian items are walked
# (dicom/dataset.py) straight into a flat record (~0.1 ms); the Dataset is parsed only for
# items that match.

# PS3.5 6.1.2.5.3: VRs affected by Specific Character Set; the others are ASCII.
_CHARSET_VRS = frozenset({"PN", "LO", "SH", "LT", "ST", "UT", "UC"})
_SINGLE_VALUED = frozenset({"LT", "ST", "UT", "UR"})
_SKIP_VRS = frozenset(
    {"OB", "OD", "OF", "OL", "OV", "OW", "UN", "US", "UL", "SS", "SL", "FL", "FD", "AT", "SV", "UV"}
)
_SIMPLE_CHARSETS = {
    "": "ascii",
    "ISO_IR 6": "ascii",
    "ISO_IR 192": "utf-8",
    "ISO_IR 100": "latin-1",
}


def _implicit_vr(tag: int) -> str:
    from pydicom.datadict import dictionary_VR

    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


def _flat(part: dataset.Part10) -> Flat:
    parsed = part.dataset
    if not parsed.enc.little or part.meta.transfer_syntax == dataset.DEFLATED_LE:
        raise _NotFast("transfer syntax")
    state = {"codec": "ascii"}
    return _read_items(parsed, parsed.elements, state)


def _read_items(
    parsed: dataset.Parsed, elements: list[dataset.Element], state: dict[str, str]
) -> Flat:
    out: Flat = {}
    for e in elements:
        vr = e.vr or _implicit_vr(e.tag)
        if e.items is not None and vr in ("SQ", "UN"):
            out[e.tag] = [
                _read_items(
                    parsed, dataset.walk(parsed.buf, parsed.enc, a, b, vr_of=_implicit_vr)[0], state
                )
                for a, b in e.items
            ]
            continue
        group = e.tag >> 16
        if vr in _SKIP_VRS or group == 0x0002 or group % 2 == 1:
            continue
        value = parsed.value(e)
        if e.tag == 0x00080005:  # Specific Character Set (PS3.3 C.12.1.1.2)
            names = [v.strip() for v in value.decode("ascii", "replace").split("\\")]
            if len(names) > 1 or names[0] not in _SIMPLE_CHARSETS:
                raise _NotFast("character set with code extensions")
            state["codec"] = _SIMPLE_CHARSETS[names[0]]
        codec = state["codec"] if vr in _CHARSET_VRS else "ascii"
        text = value.decode(codec if codec != "ascii" else "latin-1")
        parts = [text] if vr in _SINGLE_VALUED else text.split("\\")
        vals = tuple(v for v in (p.strip(" \0") for p in parts) if v)
        if vals:
            out[e.tag] = vals
    return out


def read_flat(raw: bytes) -> Flat:
    """The flat record of a worklist file's bytes, checked whole first (PS3.10 7.1): pydicom
    alone reads a truncated file without complaint, and Orthanc/DCMTK reject one."""
    part = dataset.parse_part10(raw, vr_of=_implicit_vr)
    try:
        return _flat(part)
    except (_NotFast, UnicodeDecodeError, LookupError):
        from pydicom import dcmread

        return flatten(dcmread(BytesIO(raw)))


class WorklistFolder:
    """The worklist items of one folder, kept in step with it."""

    def __init__(self, folder: Path, max_file_size: int = 1024 * 1024) -> None:
        self.folder = Path(folder)
        self.max_file_size = max_file_size
        self._lock = threading.RLock()
        self._entries: dict[str, _Entry] = {}
        self._by_value: dict[int, dict[str, set[str]]] = {t: {} for t in INDEXED_TAGS}
        self._sig: tuple[int, int] | None = None
        # Listings are taken outside the lock: one taken earlier (the background sweep's)
        # must not be applied after a later one (a query's), or it would drop newer items.
        self._listings = itertools.count(1)
        self._applied = 0

    def __len__(self) -> int:
        # No lock: /status must answer while a big folder is still loading.
        return sum(1 for e in list(self._entries.values()) if e.flat is not None)

    # ---- following the folder -------------------------------------------------------------
    def refresh(self, full: bool = False) -> None:
        """Bring the index in line with the folder. ``full`` also stats every file."""
        listing_no = next(self._listings)
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
            if listing_no < self._applied:
                return  # a later listing is already applied: this one is stale
            self._applied = listing_no
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
            entry.flat = read_flat(raw)
            entry.raw = raw
        except FileNotFoundError:
            self._entries.pop(name, None)
            return
        except Exception as exc:  # any parse error: skip this file, keep serving the others
            entry.raw = entry.flat = None
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
        keyed = [c for c in constraints if c.tag in self._by_value and c.nested is None]
        keyed.sort(key=lambda c: c.exact is None)  # an exact lookup narrows best
        if not keyed:
            yield from self._entries.values()
            return
        c = keyed[0]
        by_value = self._by_value[c.tag]
        names: set[str] = set()
        if c.exact is not None:
            for v in c.exact:
                names |= by_value.get(v, set())
        else:
            for v, ns in by_value.items():
                if any(p(v) for p in c.predicates):
                    names |= ns
        for n in names:
            yield self._entries[n]

    def find(self, query: Dataset) -> list[Dataset]:
        """Matching items as answers holding the requested return keys (PS3.4 K.6.1.2)."""
        constraints = compile_query(query)
        self.refresh()
        with self._lock:
            hits = sorted(
                (
                    e
                    for e in self._candidates(constraints)
                    if e.flat is not None and matches_all(e.flat, constraints)
                ),
                key=lambda e: e.name,
            )
            # Parsed under the lock: the entry's lazy Dataset is shared between threads.
            datasets = []
            for e in hits:
                try:
                    datasets.append(e.ds)
                except Exception as exc:
                    log.warning("skipping unreadable worklist file %s: %s", e.name, exc)
                    e.raw = e.flat = None
        return [build_answer(ds, query) for ds in datasets]

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


def find_items(
    calling_aet: str, query: Dataset, is_cancelled: Callable[[], bool],
    worklist: WorklistFolder, cfg: ServerConfig,
) -> Iterator[Any]:  # fmt: skip
    """MWL C-FIND (PS3.4 K.4.1.3): refuse unknown AEs like Orthanc, else match."""
    calling = calling_aet.strip()
    if not cfg.may_find_worklist(calling):
        # Orthanc >= 1.10 refuses too (it aborts the association); a status names the cause.
        log.warning(
            "refused worklist C-FIND from AE %r: not a known AE with AllowFindWorklist", calling
        )
        yield UNABLE_TO_PROCESS, None
        return
    try:
        answers = worklist.find(query)
    except Exception:
        log.exception("worklist C-FIND failed")
        yield UNABLE_TO_PROCESS, None
        return
    log.info("worklist C-FIND from %s: %d match(es)", calling, len(answers))
    for ds in answers:
        if is_cancelled():
            yield CANCEL, None
            return
        yield PENDING, ds
