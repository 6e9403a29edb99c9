"""The DICOM JSON model (PS3.18 Annex F) for values the index keeps as text."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

# PS3.18 F.2.3: these VRs are JSON numbers, PN an object, the rest strings.
_INT_VRS = frozenset({"IS", "SL", "SS", "UL", "US", "SV", "UV"})
_FLOAT_VRS = frozenset({"DS", "FL", "FD"})


@lru_cache(maxsize=1024)
def tag_of(name: str) -> int | None:
    """A keyword (``StudyDate``) or eight hex digits (``00080020``) as a tag; None if neither
    names a public dictionary attribute."""
    from pydicom.datadict import dictionary_has_tag, tag_for_keyword

    if len(name) == 8:
        try:
            tag = int(name, 16)
        except ValueError:
            tag = None
        if tag is not None:
            return tag if dictionary_has_tag(tag) or (tag >> 16) % 2 else None
    return tag_for_keyword(name)


@lru_cache(maxsize=1024)
def vr_of(tag: int) -> str:
    from pydicom.datadict import dictionary_VR

    try:
        return str(dictionary_VR(tag)).split(" or ")[0]  # "US or SS": the first
    except KeyError:
        return "UN"


@lru_cache(maxsize=1024)
def keyword_of(tag: int) -> str:
    from pydicom.datadict import keyword_for_tag

    return str(keyword_for_tag(tag) or "")


def _number(vr: str, text: str) -> Any:
    try:
        if vr in _INT_VRS:
            return int(text)
        value = float(text)
        return int(value) if vr == "DS" and value.is_integer() and "." not in text else value
    except ValueError:
        return text


def element(tag: int, value: Any) -> dict[str, Any]:
    """One attribute as DICOM JSON: ``{"vr": ..., "Value": [...]}`` (no Value when empty)."""
    vr = vr_of(tag)
    out: dict[str, Any] = {"vr": vr}
    if value is None or value == "" or value == []:
        return out
    items = [str(v) for v in value] if isinstance(value, (list, tuple)) else str(value).split("\\")
    if vr == "PN":
        out["Value"] = [{"Alphabetic": v} if v else {} for v in items]
    elif vr in _INT_VRS or vr in _FLOAT_VRS:
        out["Value"] = [_number(vr, v.strip()) for v in items]
    else:
        out["Value"] = items
    return out


def hex_tag(tag: int) -> str:
    return f"{tag:08X}"
