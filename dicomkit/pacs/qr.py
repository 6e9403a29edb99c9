"""Query/Retrieve (PS3.4 Annex C): C-FIND at every level for Patient Root and Study Root,
C-MOVE to AEs this PACS knows, C-GET on the requestor's own association."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from dicomkit.pacs.index import LEVELS, Index, Resource
from dicomkit.pacs.match import Flat, compile_query, matches_all
from dicomkit.pacs.transcode import UNCOMPRESSED, CannotTranscode, choose_syntax, transcode

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from dicomkit.pacs.settings import ServerConfig
    from dicomkit.pacs.storage import Storage

log = logging.getLogger(__name__)

PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
PATIENT_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
PATIENT_ROOT_GET = "1.2.840.10008.5.1.4.1.2.1.3"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"

PENDING = 0xFF00
CANCEL = 0xFE00
IDENTIFIER_DOES_NOT_MATCH = 0xA900  # PS3.4 C.4.1.1.4 Failure: Identifier does not match SOP class
UNABLE_TO_PROCESS = 0xC000
MAX_CONTEXTS = 128  # PS3.8 9.3.2.2: presentation context IDs are odd numbers 1-255


class BadQuery(ValueError):
    pass


@lru_cache(maxsize=512)
def _tag(keyword: str) -> int | None:
    from pydicom.datadict import tag_for_keyword

    return tag_for_keyword(keyword)


def flat_of(res: Resource) -> tuple[Flat, dict[str, Any]]:
    """A resource as a flat record for matching, and its attribute values by keyword."""
    values: dict[str, Any] = {**res.parent_tags, **res.tags}
    for k, v in res.extra.items():
        if _tag(k) is not None:
            values[k] = v
    flat: Flat = {}
    for k, v in values.items():
        tag = _tag(k)
        if tag is None:
            continue
        parts = v if isinstance(v, list) else str(v).split("\\")
        vals = tuple(str(p).strip() for p in parts if str(p).strip())
        if vals:
            flat[tag] = vals
    return flat, values


def query_level(query: Dataset) -> str:
    level = str(query.get("QueryRetrieveLevel", "") or "").strip().upper()
    if level not in LEVELS:
        raise BadQuery(f"QueryRetrieveLevel {level!r} is not one of {', '.join(LEVELS)}")
    return level


def find_resources(index: Index, query: Dataset) -> tuple[str, list[tuple[Resource, dict]]]:
    level = query_level(query)
    constraints = compile_query(query)
    qr_level_tag = 0x00080052
    constraints = tuple(c for c in constraints if c.tag != qr_level_tag)
    out = []
    found = index.lookup(level, constraints)
    for res in index.resources(level) if found is None else found:
        flat, values = flat_of(res)
        if matches_all(flat, constraints):
            out.append((res, values))
    return level, out


def answer(level: str, values: dict[str, Any], query: Dataset) -> Dataset:
    """Return keys only: each requested attribute with the resource's value or zero-length."""
    from pydicom.datadict import keyword_for_tag
    from pydicom.dataset import Dataset

    out = Dataset()
    needs_utf8 = False
    for qelem in query:
        tag = qelem.tag
        if tag.group in (0x0000, 0x0002) or int(tag) == 0x00080005:
            continue
        if int(tag) == 0x00080052:
            out.QueryRetrieveLevel = level
            continue
        if qelem.VR == "SQ":
            out.add_new(tag, "SQ", [])
            continue
        value = values.get(keyword_for_tag(tag))
        if value is None or value == "":
            out.add_new(tag, qelem.VR, None)
            continue
        text = "\\".join(value) if isinstance(value, list) else str(value)
        needs_utf8 = needs_utf8 or not text.isascii()
        out.add_new(tag, qelem.VR, text)
    if needs_utf8:
        out.SpecificCharacterSet = "ISO_IR 192"  # the index keeps Unicode text
    return out


def find_studies(query: Dataset, is_cancelled: Callable[[], bool], index: Index) -> Iterator[Any]:
    """Patient/Study Root C-FIND (PS3.4 C.4.1): (status, answer) pairs."""
    try:
        level, found = find_resources(index, query)
    except BadQuery as exc:
        log.warning("C-FIND refused: %s", exc)
        yield IDENTIFIER_DOES_NOT_MATCH, None
        return
    except Exception:
        log.exception("C-FIND failed")
        yield UNABLE_TO_PROCESS, None
        return
    for _res, values in found:
        if is_cancelled():
            yield CANCEL, None
            return
        yield PENDING, answer(level, values, query)


def _files(index: Index, query: Dataset) -> list[tuple[str, str, str]]:
    level, found = find_resources(index, query)
    return index.files_under(level, [res.id for res, _ in found])


def _read(storage: Storage, path: str) -> Dataset:
    from pydicom import dcmread

    # Read as stored (compressed pixel data stays encapsulated; nothing is decompressed).
    return dcmread(storage.absolute(path))


def _contexts(files: list[tuple[str, str, str]]) -> list[Any]:
    """The C-MOVE sub-association's proposal: for each SOP class, one context offering the
    uncompressed syntaxes (the destination chooses; anything stored is decoded into them if need
    be), then one per stored syntax the PACS can send unchanged (PS3.8 9.3.2.2: at most 128)."""
    from pynetdicom.presentation import build_context

    stored: dict[str, list[str]] = {}
    for _path, sop_class, ts in files:
        tss = stored.setdefault(sop_class, [])
        if ts not in tss and ts not in UNCOMPRESSED:
            tss.append(ts)
    contexts: list[Any] = [build_context(sop, list(UNCOMPRESSED)) for sop in stored][:MAX_CONTEXTS]
    for sop_class, tss in stored.items():
        for ts in tss:
            if len(contexts) < MAX_CONTEXTS:
                contexts.append(build_context(sop_class, [ts]))
    return contexts


def handle_move(event: Any, index: Index, storage: Storage, cfg: ServerConfig) -> Iterator[Any]:
    """C-MOVE (PS3.4 C.4.2): only to AEs in the configuration, like Orthanc."""
    dest_aet = str(event.move_destination).strip()
    dest = cfg.find_modality(dest_aet)
    if dest is None:
        log.warning("C-MOVE to unknown destination AE %r refused", dest_aet)
        yield None, None  # pynetdicom answers 0xA801 Move destination unknown
        return
    try:
        files = _files(index, event.identifier)
    except Exception:
        log.exception("C-MOVE query failed")
        files = []
    # The destination's answer (its accepted contexts) is needed to pick each instance's
    # transfer syntax: pynetdicom hands the sub-association to this handler on acceptance.
    from pynetdicom import evt

    store_assoc: list[Any] = []
    on_accepted = (evt.EVT_ACCEPTED, lambda ev: store_assoc.append(ev.assoc))
    kwargs = {"contexts": _contexts(files) or None, "evt_handlers": [on_accepted]}
    log.info("C-MOVE of %d instance(s) from %s to %s@%s:%d", len(files),
             str(event.assoc.requestor.ae_title).strip(), dest.aet, dest.host, dest.port)  # fmt: skip
    yield dest.host, dest.port, kwargs
    yield len(files)
    yield from _send(event, storage, files, lambda: store_assoc[0] if store_assoc else None)


def handle_get(event: Any, index: Index, storage: Storage) -> Iterator[Any]:
    """C-GET (PS3.4 C.4.3): sub-operations on the requestor's association."""
    try:
        files = _files(index, event.identifier)
    except Exception:
        log.exception("C-GET query failed")
        files = []
    log.info("C-GET of %d instance(s) by %s", len(files),
             str(event.assoc.requestor.ae_title).strip())  # fmt: skip
    yield len(files)
    yield from _send(event, storage, files, lambda: event.assoc)


def _accepted(assoc: Any, sop_class: str) -> list[str]:
    """Transfer syntaxes the peer accepted for storing ``sop_class`` from us (on a C-GET
    association, the contexts whose SCP role it took: PS3.4 C.4.3.1, PS3.7 D.3.3.4)."""
    if assoc is None:
        return []
    return [
        str(cx.transfer_syntax[0])
        for cx in assoc.accepted_contexts
        if str(cx.abstract_syntax) == sop_class and cx.as_scu
    ]


def _send(
    event: Any,
    storage: Storage,
    files: list[tuple[str, str, str]],
    sub_association: Callable[[], Any],
) -> Iterator[Any]:
    for path, sop_class, ts in files:
        if event.is_cancelled:
            yield CANCEL, None
            return
        try:
            ds = _read(storage, path)
        except Exception:
            log.exception("cannot read stored instance %s", path)
            from pydicom.dataset import Dataset

            ds = Dataset()  # an empty data set: counted as a failed sub-operation
            yield PENDING, ds
            continue
        yield (
            PENDING,
            _in_accepted_syntax(ds, sop_class, ts, _accepted(sub_association(), sop_class)),
        )


def _in_accepted_syntax(ds: Dataset, sop_class: str, stored: str, accepted: list[str]) -> Dataset:
    """``ds`` ready to send in a syntax the peer accepted, converted if need be. When no
    conversion can help, ``ds`` as stored: pynetdicom then counts a failed sub-operation."""
    from pydicom.uid import UID

    target = choose_syntax(stored, accepted)
    if target == stored:
        return ds
    name = f"{UID(sop_class).name} {ds.get('SOPInstanceUID', '?')}"
    if target is None:
        offered = ", ".join(UID(t).name for t in accepted) or "no context at all"
        log.warning(
            "not sent: %s stored as %s; the peer accepted %s", name, UID(stored).name, offered
        )
        return ds
    try:
        what = transcode(ds, target)
    except CannotTranscode as exc:
        log.warning("not sent: %s stored as %s: %s", name, UID(stored).name, exc)
        return ds
    except Exception:  # never into pynetdicom: it would end the whole retrieve with 0xC511
        log.exception("not sent: %s stored as %s: conversion failed", name, UID(stored).name)
        return ds
    log.info("converted %s for the peer: %s", name, what)
    return ds
