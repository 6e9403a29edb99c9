"""The index of stored instances: SQLite (stdlib, WAL) with one table per DICOM level.

Resources carry Orthanc's identifiers (SHA-1 of "PatientID|StudyInstanceUID|...", in five
groups of eight hex digits), so a study has the same id on both engines and REST calls that
name ids work unchanged. Each level keeps the "main DICOM tags" Orthanc keeps, as JSON.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dicomkit.pacs.match import fold, norm_da

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from dicomkit.dicom.dataset import Parsed
    from dicomkit.pacs.match import Constraint

log = logging.getLogger(__name__)

LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")

# Orthanc 1.10's main DICOM tags per level (OrthancFramework/Sources/DicomFormat/DicomTag.cpp).
PATIENT_TAGS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "OtherPatientIDs")
STUDY_TAGS = (
    "StudyDate",
    "StudyTime",
    "StudyID",
    "StudyDescription",
    "AccessionNumber",
    "StudyInstanceUID",
    "RequestedProcedureDescription",
    "InstitutionName",
    "RequestingPhysician",
    "ReferringPhysicianName",
)
SERIES_TAGS = (
    "SeriesDate",
    "SeriesTime",
    "Modality",
    "Manufacturer",
    "StationName",
    "SeriesDescription",
    "BodyPartExamined",
    "SequenceName",
    "ProtocolName",
    "SeriesNumber",
    "OperatorsName",
    "PerformedProcedureStepDescription",
    "SeriesInstanceUID",
)
INSTANCE_TAGS = (
    "InstanceCreationDate",
    "InstanceCreationTime",
    "AcquisitionNumber",
    "InstanceNumber",
    "NumberOfFrames",
    "SOPInstanceUID",
    "ImageComments",
)
# Also indexed at the instance level for Q/R (Orthanc keeps it as metadata).
EXTRA_INSTANCE_TAGS = ("SOPClassUID",)

ALL_KEYWORDS = tuple(
    dict.fromkeys(
        PATIENT_TAGS
        + STUDY_TAGS
        + SERIES_TAGS
        + INSTANCE_TAGS
        + EXTRA_INSTANCE_TAGS
        + ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
    )
)
# The index needs nothing after (0040,0254) PerformedProcedureStepDescription: reading stops
# there, before pixel data, big SR content trees (0040,A730) and private groups.
LAST_MAIN_TAG = 0x00400254

_SCHEMA = """
CREATE TABLE IF NOT EXISTS patients (
    id TEXT PRIMARY KEY, patient_id TEXT NOT NULL, tags TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS studies (
    id TEXT PRIMARY KEY, patient TEXT NOT NULL REFERENCES patients(id),
    study_uid TEXT NOT NULL, tags TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS series (
    id TEXT PRIMARY KEY, study TEXT NOT NULL REFERENCES studies(id),
    series_uid TEXT NOT NULL, modality TEXT NOT NULL, tags TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS instances (
    id TEXT PRIMARY KEY, series TEXT NOT NULL REFERENCES series(id),
    sop_uid TEXT NOT NULL UNIQUE, sop_class TEXT NOT NULL, transfer_syntax TEXT NOT NULL,
    path TEXT NOT NULL, size INTEGER NOT NULL, received TEXT NOT NULL, tags TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS studies_patient ON studies(patient);
CREATE INDEX IF NOT EXISTS series_study ON series(study);
CREATE INDEX IF NOT EXISTS instances_series ON instances(series);
CREATE TABLE IF NOT EXISTS match_keys (
    keyword TEXT NOT NULL, value TEXT NOT NULL, id TEXT NOT NULL,
    PRIMARY KEY (keyword, value, id)
) WITHOUT ROWID;
"""
# PRAGMA user_version of an index whose match_keys are filled (older ones are filled at open).
_KEYS_VERSION = 1

# The attributes a query finds through match_keys instead of a scan, by the level that holds
# them, and the forms each is kept in (as match.Lookup names them).
LOOKUP_KEYS: dict[str, tuple[str, tuple[str, ...]]] = {
    "PatientID": ("PATIENT", ("",)),
    "PatientName": ("PATIENT", ("casefold", "fold")),
    "StudyInstanceUID": ("STUDY", ("",)),
    "AccessionNumber": ("STUDY", ("",)),
    "StudyDate": ("STUDY", ("da",)),
    "SeriesInstanceUID": ("SERIES", ("",)),
    "SOPInstanceUID": ("IMAGE", ("",)),
}
_LOOKUP_BY_LEVEL = {
    level: [(k, forms) for k, (home, forms) in LOOKUP_KEYS.items() if home == level]
    for level in LEVELS
}
_ALIAS = {"PATIENT": "p", "STUDY": "s", "SERIES": "se", "IMAGE": "i"}
_FORMS: dict[str, Callable[[str], str]] = {
    "": str,
    "casefold": str.casefold,
    "fold": fold,
    "da": norm_da,
}


def match_keys(level: str, tags: dict[str, str]) -> list[tuple[str, str]]:
    """(keyword[:form], value) rows of match_keys for a resource's own tags: each value as
    ``qr.flat_of`` splits it, in each form a lookup compares."""
    rows = []
    for keyword, forms in _LOOKUP_BY_LEVEL[level]:
        parts = {t for p in str(tags.get(keyword, "")).split("\\") if (t := p.strip())}
        for form in forms:
            name = f"{keyword}:{form}" if form else keyword
            rows += [(name, _FORMS[form](v)) for v in parts]
    return rows


@functools.lru_cache(maxsize=512)
def _keyword(tag: int) -> str:
    from pydicom.datadict import keyword_for_tag

    return str(keyword_for_tag(tag))


def orthanc_id(*parts: str) -> str:
    """Orthanc's resource id: SHA-1 of the identifiers joined by '|', as 8-8-8-8-8 hex."""
    h = hashlib.sha1("|".join(parts).encode("utf-8")).hexdigest()
    return "-".join(h[i : i + 8] for i in range(0, 40, 8))


def _text(ds: Dataset, keyword: str) -> str | None:
    if keyword not in ds:
        return None
    return _text_of(ds[keyword].value)


def _text_of(value: Any) -> str | None:
    """A decoded element value as the index keeps it (None: not text, left out)."""
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


class MissingIdentifier(ValueError):
    """The dataset lacks a UID the index needs (the instance cannot be stored)."""


@dataclass
class InstanceRecord:
    patient_key: str
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class: str
    transfer_syntax: str
    patient_tags: dict[str, str] = field(default_factory=dict)
    study_tags: dict[str, str] = field(default_factory=dict)
    series_tags: dict[str, str] = field(default_factory=dict)
    instance_tags: dict[str, str] = field(default_factory=dict)
    path: str = ""
    size: int = 0

    @classmethod
    def from_dataset(cls, ds: Dataset, transfer_syntax: str) -> InstanceRecord:
        return cls.from_values({k: _text(ds, k) for k in ALL_KEYWORDS}, transfer_syntax)

    @classmethod
    def from_values(cls, values: dict[str, str | None], transfer_syntax: str) -> InstanceRecord:
        """From each keyword's text (None or missing: the element is absent)."""
        ids = {}
        for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"):
            v = values.get(k)
            if not v:
                raise MissingIdentifier(f"the data set has no {k}")
            ids[k] = v

        def tags(keywords: tuple[str, ...]) -> dict[str, str]:
            return {k: v for k in keywords if (v := values.get(k)) is not None}

        return cls(
            patient_key=values.get("PatientID") or "",
            study_uid=ids["StudyInstanceUID"],
            series_uid=ids["SeriesInstanceUID"],
            sop_uid=ids["SOPInstanceUID"],
            sop_class=ids["SOPClassUID"],
            transfer_syntax=transfer_syntax,
            patient_tags=tags(PATIENT_TAGS),
            study_tags=tags(STUDY_TAGS),
            series_tags=tags(SERIES_TAGS),
            instance_tags=tags(INSTANCE_TAGS + EXTRA_INSTANCE_TAGS),
        )

    @property
    def ids(self) -> tuple[str, str, str, str]:
        p = self.patient_key
        return (
            orthanc_id(p),
            orthanc_id(p, self.study_uid),
            orthanc_id(p, self.study_uid, self.series_uid),
            orthanc_id(p, self.study_uid, self.series_uid, self.sop_uid),
        )


@dataclass
class Resource:
    """One row of a level with its own tags, its parents' tags and derived counts."""

    level: str
    id: str
    parent: str
    tags: dict[str, str]
    parent_tags: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


class Index:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection shared by the association threads, one statement at a time.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # No fsync per commit: the stored files are fsynced before Success and the index
            # is rebuilt from them at start if a power cut lost its last commits (reconcile).
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
        self._fill_match_keys()

    def _fill_match_keys(self) -> None:
        """Fill match_keys of an index written before it existed (once, at open)."""
        if self._query("PRAGMA user_version")[0][0] >= _KEYS_VERSION:
            return
        with self._tx() as db:
            db.execute("DELETE FROM match_keys")
            for level, table in (("PATIENT", "patients"), ("STUDY", "studies"),
                                 ("SERIES", "series"), ("IMAGE", "instances")):  # fmt: skip
                for rid, tags in db.execute(f"SELECT id, tags FROM {table}").fetchall():
                    db.executemany(
                        "INSERT OR IGNORE INTO match_keys (keyword, value, id) VALUES (?,?,?)",
                        [(k, v, rid) for k, v in match_keys(level, json.loads(tags))],
                    )
            db.execute(f"PRAGMA user_version = {_KEYS_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # ---- writing ---------------------------------------------------------------------------
    def paths(self) -> set[str]:
        return {str(r[0]) for r in self._query("SELECT path FROM instances")}

    def instance_path(self, sop_uid: str) -> str | None:
        rows = self._query("SELECT path FROM instances WHERE sop_uid = ?", (sop_uid,))
        return str(rows[0][0]) if rows else None

    def instance_received(self, instance_id: str) -> str | None:
        """When the instance (by its resource ID) was stored: ISO 8601, UTC."""
        rows = self._query("SELECT received FROM instances WHERE id = ?", (instance_id,))
        return str(rows[0][0]) if rows else None

    def add(self, rec: InstanceRecord, received: str) -> bool:
        """Index an instance. False (nothing changed) when its SOP Instance UID is known."""
        pid, stid, seid, iid = rec.ids
        keys = "INSERT OR IGNORE INTO match_keys (keyword, value, id) VALUES (?,?,?)"
        try:
            with self._tx() as db:
                new = db.execute(
                    "INSERT OR IGNORE INTO patients (id, patient_id, tags) VALUES (?,?,?)",
                    (pid, rec.patient_key, json.dumps(rec.patient_tags)),
                ).rowcount
                if new:
                    db.executemany(
                        keys, [(*k, pid) for k in match_keys("PATIENT", rec.patient_tags)]
                    )
                new = db.execute(
                    "INSERT OR IGNORE INTO studies (id, patient, study_uid, tags) VALUES (?,?,?,?)",
                    (stid, pid, rec.study_uid, json.dumps(rec.study_tags)),
                ).rowcount
                if new:
                    db.executemany(keys, [(*k, stid) for k in match_keys("STUDY", rec.study_tags)])
                new = db.execute(
                    "INSERT OR IGNORE INTO series (id, study, series_uid, modality, tags) "
                    "VALUES (?,?,?,?,?)",
                    (
                        seid,
                        stid,
                        rec.series_uid,
                        rec.series_tags.get("Modality", ""),
                        json.dumps(rec.series_tags),
                    ),
                ).rowcount
                if new:
                    db.executemany(
                        keys, [(*k, seid) for k in match_keys("SERIES", rec.series_tags)]
                    )
                db.executemany(keys, [(*k, iid) for k in match_keys("IMAGE", rec.instance_tags)])
                db.execute(
                    "INSERT INTO instances (id, series, sop_uid, sop_class, transfer_syntax, "
                    "path, size, received, tags) VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        iid,
                        seid,
                        rec.sop_uid,
                        rec.sop_class,
                        rec.transfer_syntax,
                        rec.path,
                        rec.size,
                        received,
                        json.dumps(rec.instance_tags),
                    ),
                )
        except sqlite3.IntegrityError:
            return False
        return True

    # ---- reading ---------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        with self._lock:
            return {
                name: int(self._db.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0])
                for name in ("patients", "studies", "series", "instances")
            }

    def total_size(self) -> int:
        return int(self._query("SELECT COALESCE(SUM(size), 0) FROM instances")[0][0])

    def ids(self, level: str) -> list[str]:
        table = {"PATIENT": "patients", "STUDY": "studies", "SERIES": "series"}.get(
            level, "instances"
        )
        return [str(r[0]) for r in self._query(f"SELECT id FROM {table} ORDER BY rowid")]

    def resource(self, level: str, rid: str) -> Resource | None:
        found = self._resources(level, f"WHERE {_ALIAS[level]}.id = ?", (rid,))
        return found[0] if found else None

    def newest(self, level: str, n: int) -> list[Resource]:
        """The ``n`` resources of a level added last, newest first."""
        table = {"PATIENT": "patients", "STUDY": "studies", "SERIES": "series"}.get(
            level, "instances"
        )
        where = f"WHERE {_ALIAS[level]}.id IN (SELECT id FROM {table} ORDER BY rowid DESC LIMIT ?)"
        return self._resources(level, where, (n,))[::-1]

    def under(self, level: str, parent_level: str, ids: list[str]) -> list[Resource]:
        """The resources of ``level`` under the given resources of a higher level."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        return self._resources(level, f"WHERE {_ALIAS[parent_level]}.id IN ({marks})", tuple(ids))

    def resources(self, level: str) -> list[Resource]:
        """Every resource of a level, with parent tags and the counts C-FIND can return
        (PS3.4 C.3.4 Number of ... Related ..., ModalitiesInStudy, SOPClassesInStudy)."""
        return self._resources(level)

    def lookup(self, level: str, constraints: tuple[Constraint, ...]) -> list[Resource] | None:
        """The resources of ``level`` that may match ``constraints``, found through match_keys
        by the most selective key that has a ``Constraint.lookup`` (a superset of the matches,
        in index order: the caller still matches each); None when no key can be looked up
        and only a scan of ``resources(level)`` will do."""
        depth = LEVELS.index(level)
        best: tuple[tuple[int, int, int], str, tuple[Any, ...]] | None = None
        for c in constraints:
            keyword = _keyword(c.tag)
            home = LOOKUP_KEYS.get(keyword, ("", ()))[0]
            if c.lookup is None or not home or LEVELS.index(home) > depth:
                continue
            terms, args = [], []
            for form, low, high, inclusive in c.lookup:
                args.append(f"{keyword}:{form}" if form else keyword)
                if high is None:
                    terms.append("(keyword = ? AND value = ?)")
                    args.append(low)
                    continue
                term = "keyword = ?"
                if low:
                    term += " AND value >= ?"
                    args.append(low)
                if high:
                    term += " AND value <= ?" if inclusive else " AND value < ?"
                    args.append(high)
                terms.append(f"({term})")
            # Equality first, then the deepest level, then the longest prefix or range end.
            exact = all(high is None for _f, _l, high, _i in c.lookup)
            score = (int(exact), LEVELS.index(home), min(len(lk[1]) for lk in c.lookup))
            if best is None or score > best[0]:
                where = (
                    f"WHERE {_ALIAS[home]}.id IN "
                    f"(SELECT id FROM match_keys WHERE {' OR '.join(terms)})"
                )
                best = (score, where, tuple(args))
        if best is None:
            return None
        return self._resources(level, best[1], best[2])

    def _resources(self, level: str, where: str = "", args: tuple[Any, ...] = ()) -> list[Resource]:
        if level == "PATIENT":
            rows = self._query(
                "SELECT p.id, p.tags, "
                " (SELECT COUNT(*) FROM studies s WHERE s.patient = p.id), "
                " (SELECT COUNT(*) FROM series se JOIN studies s ON se.study = s.id "
                "   WHERE s.patient = p.id), "
                " (SELECT COUNT(*) FROM instances i JOIN series se ON i.series = se.id "
                "   JOIN studies s ON se.study = s.id WHERE s.patient = p.id) "
                f"FROM patients p {where} ORDER BY p.rowid",
                args,
            )
            return [
                Resource(
                    "PATIENT",
                    r[0],
                    "",
                    json.loads(r[1]),
                    extra={
                        "NumberOfPatientRelatedStudies": r[2],
                        "NumberOfPatientRelatedSeries": r[3],
                        "NumberOfPatientRelatedInstances": r[4],
                    },
                )
                for r in rows
            ]
        if level == "STUDY":
            rows = self._query(
                "SELECT s.id, s.patient, s.tags, p.tags, "
                " (SELECT COUNT(*) FROM series se WHERE se.study = s.id), "
                " (SELECT COUNT(*) FROM instances i JOIN series se ON i.series = se.id "
                "   WHERE se.study = s.id), "
                " (SELECT GROUP_CONCAT(DISTINCT se.modality) FROM series se WHERE se.study = s.id),"
                " (SELECT GROUP_CONCAT(DISTINCT i.sop_class) FROM instances i "
                "   JOIN series se ON i.series = se.id WHERE se.study = s.id) "
                f"FROM studies s JOIN patients p ON s.patient = p.id {where} ORDER BY s.rowid",
                args,
            )
            return [
                Resource(
                    "STUDY",
                    r[0],
                    r[1],
                    json.loads(r[2]),
                    json.loads(r[3]),
                    extra={
                        "NumberOfStudyRelatedSeries": r[4],
                        "NumberOfStudyRelatedInstances": r[5],
                        "ModalitiesInStudy": sorted(m for m in (r[6] or "").split(",") if m),
                        "SOPClassesInStudy": sorted(m for m in (r[7] or "").split(",") if m),
                    },
                )
                for r in rows
            ]
        if level == "SERIES":
            rows = self._query(
                "SELECT se.id, se.study, se.tags, s.tags, p.tags, "
                " (SELECT COUNT(*) FROM instances i WHERE i.series = se.id) "
                "FROM series se JOIN studies s ON se.study = s.id "
                f"JOIN patients p ON s.patient = p.id {where} ORDER BY se.rowid",
                args,
            )
            return [
                Resource(
                    "SERIES",
                    r[0],
                    r[1],
                    json.loads(r[2]),
                    {**json.loads(r[4]), **json.loads(r[3])},
                    extra={"NumberOfSeriesRelatedInstances": r[5]},
                )
                for r in rows
            ]
        if level == "IMAGE":
            rows = self._query(
                "SELECT i.id, i.series, i.tags, se.tags, s.tags, p.tags, i.path, "
                " i.transfer_syntax, i.sop_class, i.size "
                "FROM instances i JOIN series se ON i.series = se.id "
                "JOIN studies s ON se.study = s.id JOIN patients p ON s.patient = p.id "
                f"{where} ORDER BY i.rowid",
                args,
            )
            return [
                Resource(
                    "IMAGE",
                    r[0],
                    r[1],
                    json.loads(r[2]),
                    {**json.loads(r[5]), **json.loads(r[4]), **json.loads(r[3])},
                    extra={"path": r[6], "transfer_syntax": r[7], "sop_class": r[8], "size": r[9]},
                )
                for r in rows
            ]
        raise ValueError(f"unknown level {level!r}")

    def files_under(self, level: str, ids: list[str]) -> list[tuple[str, str, str]]:
        """(path, SOP class, transfer syntax) of every instance under the given resources."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        where = {
            "PATIENT": f"s.patient IN ({marks})",
            "STUDY": f"s.id IN ({marks})",
            "SERIES": f"se.id IN ({marks})",
            "IMAGE": f"i.id IN ({marks})",
        }[level]
        rows = self._query(
            "SELECT i.path, i.sop_class, i.transfer_syntax FROM instances i "
            "JOIN series se ON i.series = se.id JOIN studies s ON se.study = s.id "
            f"WHERE {where} ORDER BY i.rowid",
            tuple(ids),
        )
        return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]

    def children(self, level: str, parent_id: str) -> list[str]:
        table, col = {"STUDY": ("series", "study"), "PATIENT": ("studies", "patient")}.get(
            level, ("instances", "series")
        )
        rows = self._query(f"SELECT id FROM {table} WHERE {col} = ? ORDER BY rowid", (parent_id,))
        return [str(r[0]) for r in rows]


# ---- the main tags of a data set already walked (dicom/dataset.py) --------------------------

_CHARSET = 0x00080005
_WANTED: dict[int, tuple[str, str]] = {}  # tag -> (keyword, dictionary VR), filled on first use


class _NotSimple(Exception):
    """Values the quick reader leaves to pydicom (it reads them, or explains why not)."""


def _wanted() -> dict[int, tuple[str, str]]:
    if not _WANTED:
        from pydicom.datadict import dictionary_VR, tag_for_keyword

        for kw in ALL_KEYWORDS:
            tag = tag_for_keyword(kw)
            assert tag is not None and tag <= LAST_MAIN_TAG, kw
            _WANTED[tag] = (kw, dictionary_VR(tag))
    return _WANTED


def record_of(parsed: Parsed, transfer_syntax: str) -> InstanceRecord:
    """The record of a walked data set: only the indexed elements are decoded, by pydicom's
    own value converters, so values are the same as ``from_dataset``'s. Anything but plain
    (a VR other than the dictionary's, a wanted element that is a sequence) is read by
    pydicom from the same bytes."""
    try:
        return _record_of(parsed, transfer_syntax)
    except (_NotSimple, UnicodeDecodeError, LookupError):
        from io import BytesIO

        from pydicom.filereader import read_dataset

        data = bytes(parsed.buf)
        enc = parsed.enc
        stop = _past_main_tags
        ds = read_dataset(BytesIO(data), not enc.explicit, enc.little, stop_when=stop)
        return InstanceRecord.from_dataset(ds, transfer_syntax)


def _past_main_tags(tag: Any, vr: Any, length: Any) -> bool:
    return bool(tag > LAST_MAIN_TAG)


def _record_of(parsed: Parsed, transfer_syntax: str) -> InstanceRecord:
    from pydicom.charset import convert_encodings
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import BaseTag
    from pydicom.values import convert_value

    wanted = _wanted()
    enc = parsed.enc
    encodings: list[str] | None = None
    found = []
    by_tag = {e.tag: e for e in parsed.elements}  # the ~30 wanted of a few hundred
    for tag in (_CHARSET, *wanted):
        e = by_tag.get(tag)
        if e is not None:
            vr = "CS" if e.tag == _CHARSET else wanted[e.tag][1]
            if (enc.explicit and e.vr != vr) or e.items is not None:
                raise _NotSimple(f"{e.vr or 'implicit'} for {vr}")
            raw = RawDataElement(BaseTag(e.tag), vr, e.length, parsed.value(e), e.offset,
                                 not enc.explicit, enc.little, True, False)  # fmt: skip
            if e.tag == _CHARSET:
                charset = convert_value("CS", raw)
                encodings = convert_encodings(charset) if charset else None
            else:
                found.append(raw)
    values: dict[str, str | None] = {}
    for raw in found:
        vr = wanted[raw.tag][1]
        values[wanted[raw.tag][0]] = _text_of(convert_value(vr, raw, encodings))
    return InstanceRecord.from_values(values, transfer_syntax)
