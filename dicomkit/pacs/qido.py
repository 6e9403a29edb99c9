"""QIDO-RS (PS3.18 10.6 Search Transaction) over the embedded PACS's index.

Query parameters (PS3.18 8.3.4): ``{attributeID}={value}`` matching as in C-FIND (PS3.4
C.2.2.2, the same code as Query/Retrieve), ``includefield``, ``fuzzymatching``, ``limit`` and
``offset``. A parameter that is neither a known attribute nor one of those is refused with
400 naming it; a value of the wrong form for its VR too.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dicomkit.pacs import dicomjson
from dicomkit.pacs.index import ALL_KEYWORDS, Index, Resource
from dicomkit.pacs.match import Constraint, Flat, compile_query, matches_all
from dicomkit.pacs.qr import flat_of

if TYPE_CHECKING:
    from dicomkit.pacs.storage import Storage

# PS3.18 Table 10.6.3-3/-4/-5: what each level returns by default.
STUDY_DEFAULT = (
    "StudyDate", "StudyTime", "AccessionNumber", "InstanceAvailability", "ModalitiesInStudy",
    "ReferringPhysicianName", "RetrieveURL", "PatientName", "PatientID", "PatientBirthDate",
    "PatientSex", "StudyInstanceUID", "StudyID", "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)  # fmt: skip
SERIES_DEFAULT = (
    "Modality", "SeriesDescription", "RetrieveURL", "SeriesInstanceUID", "SeriesNumber",
    "NumberOfSeriesRelatedInstances", "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
)  # fmt: skip
INSTANCE_DEFAULT = (
    "SOPClassUID", "SOPInstanceUID", "InstanceAvailability", "RetrieveURL", "InstanceNumber",
    "Rows", "Columns", "BitsAllocated", "NumberOfFrames",
)  # fmt: skip
DEFAULTS = {"STUDY": STUDY_DEFAULT, "SERIES": SERIES_DEFAULT, "IMAGE": INSTANCE_DEFAULT}
# Values the index derives (counts, modalities) and may match on besides its main tags.
DERIVED = (
    "ModalitiesInStudy", "SOPClassesInStudy", "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances", "NumberOfSeriesRelatedInstances",
)  # fmt: skip
INDEXED = frozenset(ALL_KEYWORDS + DERIVED)
# Computed for every answer, never read from a file.
COMPUTED = frozenset({"RetrieveURL", "InstanceAvailability"})
# Attributes read from a stored file when asked for (not in the index).
_READ_FROM_FILE_LIMIT = 64

_DA = re.compile(r"^\d{8}$")
_TM = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")
_DT = re.compile(r"^\d{4,14}(\.\d{1,6})?([+-]\d{4})?$")
_UI = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_INT = re.compile(r"^[+-]?\d+$")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class QidoError(ValueError):
    """A query the server refuses (400), with the parameters it names."""


@dataclass
class Query:
    level: str
    constraints: tuple[Constraint, ...]
    matching: list[int]
    include: list[int] = field(default_factory=list)
    include_all: bool = False
    limit: int | None = None
    offset: int = 0
    warnings: list[str] = field(default_factory=list)


def _check_value(name: str, vr: str, value: str) -> str | None:
    """Why ``value`` is not a valid query value for ``vr``, or None."""
    if _CONTROL.search(value) or len(value) > 1024:
        return "control characters or over 1024 characters"
    if value == "":
        return None
    if vr in ("DA", "TM", "DT"):
        pattern = {"DA": _DA, "TM": _TM, "DT": _DT}[vr]
        ends = value.split("-", 1) if vr != "DT" else [value]
        if vr == "DA" or vr == "TM":
            if len(ends) == 2 and not any(ends):
                return "a range needs at least one end"
            if any(e and not pattern.match(e.replace(":", "")) for e in ends):
                return f"not a {vr} value or range (PS3.4 C.2.2.2.5)"
        elif not all(pattern.match(v) for v in value.split("-") if v):
            return "not a DT value or range"
        return None
    if vr == "UI":
        if any(not _UI.match(u) or len(u) > 64 for u in re.split(r"[,\\]", value)):
            return "not a UID or a list of UIDs (PS3.5 9.1)"
        return None
    if vr in ("IS", "US", "UL", "SS", "SL") and not all(_INT.match(v) for v in value.split("\\")):
        return "not an integer"
    return None


def parse(level: str, params: list[tuple[str, str]], scope: dict[str, str]) -> Query:
    """The search for ``level`` ('STUDY', 'SERIES', 'IMAGE') from the URL's parameters;
    ``scope`` holds the UIDs of the path (``/studies/{uid}/series``)."""
    from pydicom.dataset import Dataset

    bad: list[str] = []
    query = Query(level, (), [])
    ds = Dataset()
    keys: list[tuple[int, str, str]] = [
        (t, "UI", v) for k, v in scope.items() if (t := dicomjson.tag_of(k)) is not None
    ]
    for name, value in params:
        lname = name.lower()
        if lname == "includefield":
            for item in (v.strip() for v in value.split(",")):
                if item == "all":
                    query.include_all = True
                elif (tag := dicomjson.tag_of(item)) is not None:
                    query.include.append(tag)
                else:
                    bad.append(f"includefield={item!r}: not a DICOM keyword or tag")
        elif lname in ("limit", "offset"):
            if not value.isdigit():
                bad.append(f"{name}={value!r}: not a non-negative integer")
            elif lname == "limit":
                query.limit = int(value)
            else:
                query.offset = int(value)
        elif lname == "fuzzymatching":
            if value not in ("true", "false"):
                bad.append(f"fuzzymatching={value!r}: must be true or false")
            elif value == "true":
                # PS3.18 8.3.4.4: a server without fuzzy matching says so and matches literally.
                query.warnings.append("fuzzymatching is not supported; literal matching used")
        elif "." in name:
            bad.append(f"{name}: sequence matching is not supported by this server")
        elif (tag := dicomjson.tag_of(name)) is None:
            bad.append(f"{name}: not a DICOM keyword, a tag or a QIDO-RS parameter")
        else:
            vr = dicomjson.vr_of(tag)
            why = _check_value(name, vr, value)
            if why:
                bad.append(f"{name}={value[:64]!r}: {why}")
            elif dicomjson.keyword_of(tag) not in INDEXED:
                query.warnings.append(f"{name} is not supported for matching and was ignored")
            else:
                keys.append((tag, vr, value))
    if bad:
        raise QidoError("; ".join(bad))
    for tag, vr, value in keys:
        if vr == "SQ" or vr in ("OB", "OW", "UN"):
            continue
        text = value.replace(",", "\\") if vr == "UI" else value  # PS3.18 8.3.4.1: UID lists
        ds.add_new(tag, vr, text)
        if tag not in query.matching:
            query.matching.append(tag)
    query.constraints = compile_query(ds)
    return query


Entry = tuple[Resource, Flat, dict[str, Any]]


@dataclass
class _Generation:
    """What the cache knows for one state of the index (its counts)."""

    key: tuple[int, ...]
    levels: dict[str, list[Resource]] = field(default_factory=dict)
    flats: dict[str, list[tuple[Flat, dict[str, Any]] | None]] = field(default_factory=dict)
    by_value: dict[tuple[str, int], dict[str, list[int]]] = field(default_factory=dict)


class Cache:
    """Searches: a key the index can look up (``Index.lookup``: UIDs, accession, patient ID
    and name, study date) goes to the index; any other search scans each level's resources,
    read from the index once and again only when its counts change (the embedded PACS only
    ever adds instances); each one's flat record for matching is made when first needed, and
    per-attribute value maps let an exact key find its candidates without a scan. A search
    works on one generation from start to end."""

    def __init__(self, index: Index) -> None:
        self.index = index
        self._lock = threading.Lock()
        self._gen = _Generation(())

    def _current(self, level: str) -> _Generation:
        key = tuple(self.index.counts().values())
        with self._lock:
            if key != self._gen.key:
                self._gen = _Generation(key)
            gen = self._gen
            if level not in gen.levels:
                found = self.index.resources(level)
                gen.levels[level] = found
                gen.flats[level] = [None] * len(found)
            return gen

    def resources(self, level: str) -> list[Resource]:
        return self._current(level).levels[level]

    def find(self, level: str, keys: dict[str, str]) -> list[Entry]:
        """The resources whose attributes equal ``keys`` (keyword -> value)."""
        return self.search(level, _exact(keys))

    def search(self, level: str, constraints: tuple[Constraint, ...]) -> list[Entry]:
        looked_up = self.index.lookup(level, constraints)
        if looked_up is not None:  # a key the index looks up: no scan, no cache to build
            return [
                (res, flat, values)
                for res in looked_up
                for flat, values in (flat_of(res),)
                if matches_all(flat, constraints)
            ]
        gen = self._current(level)
        found, flats = gen.levels[level], gen.flats[level]
        exact = [c for c in constraints if c.exact is not None]
        candidates: Any = range(len(found))
        if exact and exact[0].exact is not None:
            by_value = self._by_value(gen, level, exact[0].tag)
            candidates = sorted({n for v in exact[0].exact for n in by_value.get(v, [])})
        out = []
        for n in candidates:
            made = flats[n]
            if made is None:
                made = flats[n] = flat_of(found[n])  # the same value if two threads race
            if matches_all(made[0], constraints):
                out.append((found[n], made[0], made[1]))
        return out

    def _by_value(self, gen: _Generation, level: str, tag: int) -> dict[str, list[int]]:
        with self._lock:
            by_value = gen.by_value.get((level, tag))
            if by_value is None:
                keyword = dicomjson.keyword_of(tag)
                by_value = {}
                for n, res in enumerate(gen.levels[level]):
                    for v in _texts(res, keyword):
                        by_value.setdefault(v, []).append(n)
                gen.by_value[(level, tag)] = by_value
            return by_value


def _texts(res: Resource, keyword: str) -> tuple[str, ...]:
    """The values of one attribute of a resource, as ``flat_of`` makes them."""
    value = res.extra.get(keyword, res.tags.get(keyword, res.parent_tags.get(keyword)))
    if value is None:
        return ()
    parts = value if isinstance(value, list) else str(value).split("\\")
    return tuple(t for p in parts if (t := str(p).strip()))


def _exact(keys: dict[str, str]) -> tuple[Constraint, ...]:
    from pydicom.dataset import Dataset

    ds = Dataset()
    for keyword, value in keys.items():
        tag = dicomjson.tag_of(keyword)
        if tag is not None:
            ds.add_new(tag, dicomjson.vr_of(tag), value)
    return compile_query(ds)


def search(cache: Cache, query: Query) -> list[tuple[Resource, dict]]:
    """The matching resources of the query's level, in the index's order, paged. The path's
    UIDs are among the query's constraints (``parse`` adds them)."""
    found = [(res, values) for res, _flat, values in cache.search(query.level, query.constraints)]
    found = found[query.offset :]
    return found[: query.limit] if query.limit else found


def _retrieve_url(base: str, values: dict[str, Any], level: str) -> str:
    url = f"{base}/studies/{values.get('StudyInstanceUID', '')}"
    if level in ("SERIES", "IMAGE"):
        url += f"/series/{values.get('SeriesInstanceUID', '')}"
    if level == "IMAGE":
        url += f"/instances/{values.get('SOPInstanceUID', '')}"
    return url


def _file_values(index: Index, storage: Storage, res: Resource, tags: list[int]) -> dict[int, Any]:
    """Attributes the index lacks, read from the resource's (first) stored file."""
    from pydicom import dcmread

    if res.level == "IMAGE":
        path = str(res.extra.get("path", ""))
    else:
        files = index.files_under(res.level, [res.id])
        path = files[0][0] if files else ""
    if not path:
        return {}
    try:
        ds = dcmread(storage.absolute(path), stop_before_pixels=True, specific_tags=tags)
    except Exception:
        return {}
    out: dict[int, Any] = {}
    for tag in tags:
        if tag in ds and ds[tag].VR not in ("SQ", "OB", "OW", "UN"):
            value = ds[tag].value
            multi = not isinstance(value, (str, int, float)) and value is not None
            out[tag] = [str(v) for v in value] if multi else value
    return out


def answer(index: Index, storage: Storage, query: Query, found: list[tuple[Resource, dict]],
           base: str, scope: dict[str, str]) -> list[dict[str, Any]]:  # fmt: skip
    """DICOM JSON for each match (PS3.18 Annex F): the level's defaults, the matching keys,
    the included fields; higher levels' defaults too when the search is not scoped to them."""
    level = query.level
    names = list(DEFAULTS[level])
    if level == "SERIES" and "StudyInstanceUID" not in scope:
        names += STUDY_DEFAULT
    if level == "IMAGE":
        if "SeriesInstanceUID" not in scope:
            names += SERIES_DEFAULT
        if "StudyInstanceUID" not in scope:
            names += STUDY_DEFAULT
    wanted = [t for n in names if (t := dicomjson.tag_of(n)) is not None]
    wanted += query.matching + query.include
    out = []
    for res, values in found:
        tags = list(wanted)
        if query.include_all:
            tags += [t for k in values if (t := dicomjson.tag_of(k)) is not None]
        tags = sorted(set(tags))
        missing = [t for t in tags if dicomjson.keyword_of(t) not in INDEXED | COMPUTED]
        extra = (
            _file_values(index, storage, res, missing[:_READ_FROM_FILE_LIMIT]) if missing else {}
        )
        item: dict[str, Any] = {}
        for tag in tags:
            keyword = dicomjson.keyword_of(tag)
            if keyword == "RetrieveURL":
                value: Any = _retrieve_url(base, values, level)
            elif keyword == "InstanceAvailability":
                value = "ONLINE"
            elif keyword in INDEXED:
                value = values.get(keyword)
            elif tag in extra:
                value = extra[tag]
            else:
                continue  # not in the index and not in the file: left out
            item[dicomjson.hex_tag(tag)] = dicomjson.element(tag, value)
        out.append(item)
    return out
