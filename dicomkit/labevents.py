"""What the lab's services saw: one feed of events, without patient data.

The feed is ``<lab>/events.jsonl`` (``events_path``): one JSON object per line, appended with
a single ``write`` (O_APPEND), so a reader sees whole lines or an unfinished last line it skips.
A JSON-lines file rather than parsed log text: log wording changes between versions and logs
may hold patient data; rather than an HTTP endpoint: it outlives the PACS process, needs no
port, and Orthanc's Lua writes the same lines (compose/events.lua).

Every event has ``t`` (UTC, ISO 8601), ``service``, ``calling`` and ``called`` (AE titles; for
HTTP the client address and the PACS's AE title, or "" on Orthanc); then per service:

=============  =================================================================================
association    ``accepted`` (bool), ``reason`` when rejected
echo           ``status`` (0 = Success)
mwl-find       ``matches`` (int, or None when unknown), ``status``, ``keys``
find           ``level``, ``matches``, ``status``, ``keys`` (Patient/Study Root C-FIND)
store          ``sop_instance_uid``, ``status`` (0 = stored)
http           ``method``, ``path`` (no query string: it may hold patient names), ``status``
=============  =================================================================================

``keys``: the matching keys a query set, by keyword (by tag from Orthanc); only the values of
``RECORDED_KEYS`` are kept (station, dates, modality, accession, level), others map to None.
A field an engine cannot know is absent (Orthanc: ``status`` of finds and HTTP, ``matches``
of study finds).

Writers: the embedded PACS (``EventWriter``, pacs/server.py and pacs/lean.py). Native Orthanc:
compose/events.lua (``LuaScripts``) writes finds, worklist finds, stores and HTTP requests;
the associations and C-ECHOs that Orthanc logs in its ``dicom`` category (--verbose-dicom,
de-identified by Orthanc) are read from its log by ``read_feed`` (Orthanc 1.10 has no Lua
callback for either), and a worklist find's ``matches`` is counted over the worklist folder
(``matches_from``). Docker: the same Lua script, mounted in the container, writes into
``<lab>/feed`` (``<lab>/events.jsonl`` links there), and the container's log is copied to
``<lab>/logs/orthanc.log`` before each read (engines/docker_feed.py).

Readers: ``mark(lab_dir)`` where a watch starts (``str(m)`` / ``Mark.parse`` to keep it),
``read_feed(lab_dir, since, pacs_aet)`` the events after it (``LabEvent``: ``.service``,
``.calling``, ``.called``, ``.t``, ``.get(field)``), in time order. Orthanc's Lua clock has
whole seconds; the events from its log have milliseconds.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

EVENTS_FILE = "events.jsonl"
FEED_ENGINES = frozenset({"embedded", "native", "docker"})  # the engines whose PACS writes the feed
# Sent by the tutor's own REST looks at the lab: the feed leaves them out.
PROBE_HEADER = "x-dicomkit-probe"
ORTHANC_LOG = Path("logs") / "orthanc.log"  # under the lab folder (config.LabConfig.log_dir)
MAX_BYTES = 8 * 1024 * 1024  # the embedded writer starts a new file past this (old one: .1)
RECORDED_KEYS = frozenset({
    "QueryRetrieveLevel", "AccessionNumber", "Modality", "ModalitiesInStudy", "StudyDate",
    "ScheduledStationAETitle", "ScheduledProcedureStepStartDate", "ScheduledStationName",
})  # fmt: skip
# The same keys by tag, as Orthanc's Lua sees them ("0008,0050").
RECORDED_TAGS = {
    "0008,0052": "QueryRetrieveLevel",
    "0008,0050": "AccessionNumber",
    "0008,0060": "Modality",
    "0008,0061": "ModalitiesInStudy",
    "0008,0020": "StudyDate",
    "0040,0001": "ScheduledStationAETitle",
    "0040,0002": "ScheduledProcedureStepStartDate",
    "0040,0010": "ScheduledStationName",
}


def events_path(lab_dir: Path) -> Path:
    return Path(lab_dir) / EVENTS_FILE


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def query_keys(query: Any) -> dict[str, str | None]:
    """The matching keys of a C-FIND identifier (a pydicom Dataset), sequence items flattened:
    recorded keys with their value, the others with None. Empty (return) keys are left out."""
    keys: dict[str, str | None] = {}
    for elem in query:
        if elem.VR == "SQ":
            for item in elem.value or []:
                keys.update(query_keys(item))
            continue
        if elem.tag.group in (0x0000, 0x0002) or elem.keyword == "SpecificCharacterSet":
            continue
        if elem.value in (None, "", b""):
            continue
        text = str(elem.value) if elem.VM <= 1 else "\\".join(str(v) for v in elem.value)
        keys[elem.keyword or str(elem.tag)] = text if elem.keyword in RECORDED_KEYS else None
    return keys


class EventWriter:
    """Appends events to the feed; never raises (a full disk must not fail a C-STORE)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd: int | None = None  # kept open: one write per event, not open+write+close

    def emit(self, service: str, calling: str = "", called: str = "", **fields: Any) -> None:
        if self.path is None:
            return
        event = {"t": now(), "service": service, "calling": calling.strip(),
                 "called": called.strip(), **fields}  # fmt: skip
        line = (json.dumps(event, separators=(",", ":")) + "\n").encode()
        try:
            with self._lock:
                fd = self._open()
                os.write(fd, line)  # one O_APPEND write: readers never see half a line of ours
        except OSError as exc:
            log.warning("cannot write the lab's event feed %s: %s", self.path, exc)
            self.close()

    def _open(self) -> int:
        assert self.path is not None
        if self._fd is not None:
            st = os.fstat(self._fd)
            if st.st_size > MAX_BYTES:
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
                self.close()
            elif st.st_nlink == 0:  # someone removed the file: start a new one
                self.close()
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


@dataclass(frozen=True)
class LabEvent:
    t: str
    service: str
    calling: str = ""
    called: str = ""
    fields: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)

    @classmethod
    def of(cls, d: dict[str, Any]) -> LabEvent:
        rest = {k: v for k, v in d.items() if k not in ("t", "service", "calling", "called")}
        # Orthanc's Lua: unrecorded keys listed by tag, numbers as strings, {} dumped as [].
        others = rest.pop("other_keys", None)
        if "keys" in rest:
            keys = rest["keys"] if isinstance(rest["keys"], dict) else {}
            rest["keys"] = {**keys, **{str(t): None for t in others or []}}
        if isinstance(rest.get("status"), str) and rest["status"].isdigit():
            rest["status"] = int(rest["status"])
        return cls(str(d.get("t", "")), str(d.get("service", "")), str(d.get("calling", "")),
                   str(d.get("called", "")), rest)  # fmt: skip


@dataclass(frozen=True)
class Mark:
    """Where a watch starts: byte offsets into the feed and Orthanc's log."""

    feed: int = 0
    orthanc_log: int = 0

    def __str__(self) -> str:
        return f"{self.feed}:{self.orthanc_log}"

    @classmethod
    def parse(cls, text: str) -> Mark:
        try:
            feed, orthanc = (int(x) for x in text.split(":"))
        except ValueError:
            return cls()
        return cls(feed, orthanc)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def mark(lab_dir: Path) -> Mark:
    """The feed's end now: ``read_feed(lab_dir, mark)`` later gives what happened since."""
    lab_dir = Path(lab_dir)
    _sync_engine_log(lab_dir, watch_starts=True)
    return Mark(_size(events_path(lab_dir)), _size(lab_dir / ORTHANC_LOG))


def _sync_engine_log(lab_dir: Path, watch_starts: bool = False) -> None:
    """Docker: Orthanc logs in its container; its new lines are copied to ORTHANC_LOG first.
    Where a watch starts, its dicom log category is turned back on if a restart reset it."""
    from dicomkit.engines.docker_feed import keep_dicom_log_verbose, sync_orthanc_log

    if watch_starts:
        keep_dicom_log_verbose(lab_dir, {PROBE_HEADER: "watch"})
    sync_orthanc_log(lab_dir, lab_dir / ORTHANC_LOG)


def _lines(path: Path, offset: int) -> list[str]:
    """Whole lines from ``offset`` on (a file that shrank was started anew: from 0)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(offset if offset <= size else 0)
            data = f.read()
    except OSError:
        return []
    end = data.rfind(b"\n")
    return data[: end + 1].decode("utf-8", "replace").splitlines() if end >= 0 else []


def read_feed(lab_dir: Path, since: Mark | None = None, pacs_aet: str = "") -> list[LabEvent]:
    """The events after ``since`` (all of them without), the feed's first, then those read
    from Orthanc's log (native engine; ``pacs_aet``: the called AE of the ones it accepted)."""
    since = since or Mark()
    lab_dir = Path(lab_dir)
    _sync_engine_log(lab_dir)
    out: list[LabEvent] = []
    for line in _lines(events_path(lab_dir), since.feed):
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if isinstance(d, dict) and d.get("service"):
            event = LabEvent.of(d)
            if event.service == "mwl-find" and "matches" not in event.fields:
                event = _counted(event, lab_dir / "worklists")
            out.append(event)
    out += orthanc_log_events(_lines(lab_dir / ORTHANC_LOG, since.orthanc_log), pacs_aet)
    return sorted(out, key=_when)


def _when(event: LabEvent) -> str:
    """Sort key: Orthanc's Lua clock has whole seconds; such an event (a C-FIND, a store)
    comes after the association the log timed in the same second."""
    t = event.t
    return t[:19] + ".999" + t[19:] if len(t) > 19 and t[19] != "." else t


def _counted(event: LabEvent, worklist_dir: Path) -> LabEvent:
    """A worklist C-FIND Orthanc's Lua saw, with its match count: Orthanc 1.10 logs the count
    only beside the query itself (patient data), so it is counted here over the same folder
    with the embedded PACS's matcher (``matches_from``) when every key's value was recorded;
    otherwise ``matches`` is None."""
    from pydicom.dataset import Dataset

    from dicomkit.pacs.mwl import WorklistFolder

    keys = dict(event.get("keys") or {})
    matches: int | None = None
    if all(isinstance(v, str) for v in keys.values()):
        query, sps = Dataset(), Dataset()
        for name, value in keys.items():
            setattr(query if name == "AccessionNumber" else sps, name, value)
        query.ScheduledProcedureStepSequence = [sps]
        try:
            matches = len(WorklistFolder(worklist_dir).find(query))
        except Exception as exc:  # an odd key or a folder being rewritten: unknown, not wrong
            log.info("cannot count worklist matches: %s", exc)
    fields = {**event.fields, "matches": matches, "matches_from": "worklist folder"}
    return LabEvent(event.t, event.service, event.calling, event.called, fields)


# ---- native Orthanc: its dicom log category -------------------------------------------------

# glog's prefix: level, MMDD, local time (Orthanc 1.10 logs in the machine's local time).
_GLOG = re.compile(r"^[IWE](\d{2})(\d{2}) (\d{2}:\d{2}:\d{2}\.\d+) ")
_RECEIVED = re.compile(r"\(dicom\) Association Received from AET (\S*) on IP")
_REJECTED = re.compile(r"Rejected association, because of a bad called AET in the request \((.*)\)")
_ECHO = re.compile(r"\(dicom\) Received Echo Request")


def _glog_time(line: str) -> str:
    m = _GLOG.match(line)
    if not m:
        return ""
    month, day, clock = m.groups()
    local = _dt.datetime.now().astimezone()
    try:
        t = _dt.datetime.strptime(f"{local.year}{month}{day} {clock}", "%Y%m%d %H:%M:%S.%f")
    except ValueError:
        return ""
    return (
        t.replace(tzinfo=local.tzinfo)
        .astimezone(_dt.timezone.utc)
        .isoformat(timespec="milliseconds")
    )


def orthanc_log_events(lines: list[str], pacs_aet: str = "") -> list[LabEvent]:
    """Associations and C-ECHOs from Orthanc's ``dicom`` log category (--verbose-dicom).
    Orthanc accepts an association only when its called AE title is Orthanc's own
    (DicomCheckCalledAet), so an accepted one was called ``ORTHANC``'s title: the log says
    ``called`` only for a rejected one: the others were called ``pacs_aet``."""
    out: list[LabEvent] = []
    calling = ""
    for line in lines:
        m = _RECEIVED.search(line)
        if m and not m.group(1):
            continue  # a port check connecting and closing, not a DICOM peer
        if m:
            calling = m.group(1)
            out.append(
                LabEvent(_glog_time(line), "association", calling, pacs_aet, {"accepted": True})
            )
            continue
        m = _REJECTED.search(line)
        if m and out and out[-1].service == "association" and out[-1].calling == calling:
            out[-1] = LabEvent(out[-1].t, "association", calling, m.group(1),
                               {"accepted": False, "reason": "called AE title not recognised"})  # fmt: skip
            continue
        if _ECHO.search(line):
            out.append(LabEvent(_glog_time(line), "echo", calling, pacs_aet, {"status": 0}))
    return out


__all__ = [
    "EVENTS_FILE",
    "FEED_ENGINES",
    "PROBE_HEADER",
    "EventWriter",
    "LabEvent",
    "Mark",
    "events_path",
    "mark",
    "query_keys",
    "read_feed",
]
