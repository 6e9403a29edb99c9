"""C-FIND attribute matching (PS3.4 C.2.2.2), shared by the worklist and Query/Retrieve.

A query dataset compiles once into ``Constraint`` objects; records to match are "flat":
``{tag: (value, ...)}`` for plain elements and ``{tag: [flat, ...]}`` for sequences, with
strings already decoded through the record's own SpecificCharacterSet, so matching compares
Unicode text whatever the query's or the item's character set.

Where PS3.4 leaves a choice, the choice is Orthanc's, so both engines give the same matches:
person names match case-insensitively (Orthanc's default ``CaseSensitivePN: false``), other
values case-sensitively; a key with a value never matches an empty or missing attribute.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

from pydicom.multival import MultiValue

if TYPE_CHECKING:
    from pydicom.dataelem import DataElement
    from pydicom.dataset import Dataset

Values = tuple[str, ...]
Flat = dict[int, Union[Values, list["Flat"]]]
Predicate = Callable[[str], bool]
# One way an index can find the records a query value may match: (form, low, high) asks for
# the records whose value in that form is >= low and < high (high "": no upper bound, a range
# is inclusive), or == low when high is None. Forms: "" the value itself, "casefold" and
# "fold" (person names, as matching compares them), "da" (dates as norm_da makes them).
Lookup = tuple[str, str, Union[str, None], bool]

SPECIFIC_CHARACTER_SET = 0x00080005
# PS3.4 C.2.2.2.4: wildcards apply to these VRs only.
WILDCARD_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
# PS3.4 C.2.2.2.5: range matching applies to dates and times.
RANGE_VRS = frozenset({"DA", "TM", "DT"})
# Values we never match on (binary or numeric encodings with no text form to compare).
_NOT_TEXT = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN", "SQ"})


@dataclass(frozen=True)
class Constraint:
    """One matching key. ``predicates`` are OR-ed over the record's values (PS3.4 C.2.2.2.1-5);
    a sequence key holds ``nested`` constraints that one item must all meet (C.2.2.2.6)."""

    tag: int
    predicates: tuple[Predicate, ...] = ()
    nested: tuple[Constraint, ...] | None = None
    # The wanted values when every predicate is plain equality: lets an index look them up.
    exact: Values | None = None
    # How an index finds a superset of the matches, one Lookup per query value (OR-ed); None:
    # it cannot (a leading wildcard, a time range): the records are scanned.
    lookup: tuple[Lookup, ...] | None = None

    def matches(self, record: Flat) -> bool:
        value = record.get(self.tag)
        if not value:
            return False  # a key with a value never matches an empty or missing attribute
        if self.nested is not None:
            nested = self.nested
            return any(
                isinstance(item, dict) and all(c.matches(item) for c in nested) for item in value
            )
        return any(isinstance(v, str) and p(v) for p in self.predicates for v in value)


def matches_all(record: Flat, constraints: Iterable[Constraint]) -> bool:
    return all(c.matches(record) for c in constraints)


# ---- values ------------------------------------------------------------------------------


def element_values(elem: DataElement) -> Values:
    """The text values of an element, stripped (PS3.5 6.2: padding spaces are insignificant)."""
    if elem.VR in _NOT_TEXT:
        return ()
    value = elem.value
    if value is None or value == "" or isinstance(value, bytes):
        return ()
    items: Sequence[Any] = list(value) if isinstance(value, (MultiValue, list, tuple)) else [value]
    out = tuple(str(v).strip() for v in items)
    return tuple(v for v in out if v)


def flatten(ds: Dataset) -> Flat:
    """Decode a dataset into a flat record (sequences become lists of flat records)."""
    out: Flat = {}
    for elem in ds:
        if elem.VR == "SQ":
            out[int(elem.tag)] = [flatten(item) for item in (elem.value or [])]
        else:
            vals = element_values(elem)
            if vals:
                out[int(elem.tag)] = vals
    return out


def norm_da(value: str) -> str:
    return value.strip().replace(".", "")  # ACR-NEMA "YYYY.MM.DD" dates still seen in the wild


def norm_tm(value: str) -> str:
    """HH[MM[SS[.F{1,6}]]] (and the old HH:MM:SS) -> HHMMSS.ffffff, so text order is time order."""
    value = value.strip().replace(":", "")
    main, _, frac = value.partition(".")
    return (main + "000000")[:6] + "." + (frac + "000000")[:6]


def norm_dt(value: str) -> str:
    value = value.strip()
    m = re.match(r"^(\d{4,14})(\.\d{1,6})?", value)
    if not m:
        return value
    digits = (m.group(1) + "0101000000")[:14] if len(m.group(1)) < 8 else m.group(1)
    digits = (digits + "00000000000000")[:14]
    frac = (m.group(2) or ".")[1:]
    return digits + "." + (frac + "000000")[:6]


_NORM: dict[str, Callable[[str], str]] = {"DA": norm_da, "TM": norm_tm, "DT": norm_dt}


def fold(text: str) -> str:
    """A person name as wildcard matching compares it: lower case per character, so positions
    line up between pattern and value (like re.IGNORECASE)."""
    return "".join(low if len(low := c.lower()) == 1 else c for c in text)


def _glob(pattern: str, text: str) -> bool:
    """``*`` and ``?`` matching in O(len(pattern) * len(text)) at worst. A regex built from the
    pattern backtracks exponentially on ``*A*A*A...*B`` (a C-FIND could pin a CPU for hours)."""
    p = t = 0
    star, mark = -1, 0
    while t < len(text):
        if p < len(pattern) and pattern[p] == "*":
            star, mark = p, t
            p += 1
        elif p < len(pattern) and (pattern[p] == "?" or pattern[p] == text[t]):
            p += 1
            t += 1
        elif star >= 0:
            p, mark = star + 1, mark + 1  # let the last "*" swallow one more character
            t = mark
        else:
            return False
    return all(c == "*" for c in pattern[p:])


def _wildcard(pattern: str, ignore_case: bool) -> Predicate:
    if ignore_case:
        folded = fold(pattern)
        return lambda v: _glob(folded, fold(v))
    return lambda v: _glob(pattern, v)


def _predicate(vr: str, value: str) -> Predicate | None:
    """One query value -> a test on one record value; None means universal matching."""
    if value == "" or (value == "*" and vr in WILDCARD_VRS):
        return None  # PS3.4 C.2.2.2.3 universal matching (a lone "*" too, C.2.2.2.4)
    if vr in RANGE_VRS:
        norm = _NORM[vr]
        if ("-" in value and vr != "DT") or (vr == "DT" and value.count("-") == 1):
            low_s, _, high_s = value.partition("-")
            low = norm(low_s) if low_s.strip() else None
            high = norm(high_s) if high_s.strip() else None
            if low is None and high is None:
                return None
            # PS3.4 C.2.2.2.5: inclusive range; an open end is unbounded.
            return lambda v: (low is None or norm(v) >= low) and (high is None or norm(v) <= high)
        want = norm(value)
        return lambda v: norm(v) == want
    if vr in WILDCARD_VRS and ("*" in value or "?" in value):
        return _wildcard(value, ignore_case=vr == "PN")
    if vr == "PN":
        want = value.casefold()
        return lambda v: v.casefold() == want
    return value.__eq__


def _after(prefix: str) -> str:
    """The first string after every string that starts with ``prefix`` ("" if none is)."""
    while prefix and prefix[-1] == chr(0x10FFFF):
        prefix = prefix[:-1]
    return prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else ""


def _lookup(vr: str, value: str) -> Lookup | None:
    """How an index finds every record value that ``_predicate(vr, value)`` accepts, or None.
    A (form, low, high, inclusive) entry: see ``Lookup``."""
    if vr == "DA":
        if "-" not in value:
            return ("da", norm_da(value), None, True)
        low, _, high = (norm_da(v) if v.strip() else "" for v in value.partition("-"))
        return ("da", low, high, True)
    if vr in RANGE_VRS:
        return None
    wild = vr in WILDCARD_VRS and ("*" in value or "?" in value)
    if not wild:
        return ("casefold", value.casefold(), None, True) if vr == "PN" else ("", value, None, True)
    pattern = fold(value) if vr == "PN" else value
    cut = min(i for i in (pattern.find("*"), pattern.find("?"), len(pattern)) if i >= 0)
    prefix = pattern[:cut]
    if not prefix:
        return None  # a leading wildcard: every value may match
    return ("fold" if vr == "PN" else "", prefix, _after(prefix), False)


def compile_query(ds: Dataset) -> tuple[Constraint, ...]:
    """The non-universal keys of a C-FIND identifier. Return-only keys compile to nothing."""
    out: list[Constraint] = []
    for elem in ds:
        tag = int(elem.tag)
        if tag == SPECIFIC_CHARACTER_SET or elem.tag.group in (0x0000, 0x0002):
            continue
        if elem.tag.is_private:
            continue
        if elem.VR == "SQ":
            items = list(elem.value or [])
            if not items:
                continue  # an empty sequence asks for the whole sequence back
            nested = compile_query(items[0])  # PS3.4 C.2.2.2.6: one item of keys
            if nested:
                out.append(Constraint(tag, nested=nested))
            continue
        if elem.VR in _NOT_TEXT:
            continue
        values: Values
        raw = elem.value
        if raw is None or raw == "":
            continue
        if isinstance(raw, str):
            values = (raw.strip(),)
        elif isinstance(raw, (MultiValue, list, tuple)):
            values = tuple(str(v).strip() for v in raw)  # PS3.4 C.2.2.2.2 list of UIDs (any VR)
        else:
            values = (str(raw).strip(),)
        preds = [_predicate(elem.VR, v) for v in values]
        if any(p is None for p in preds):
            continue  # one universal value makes the whole key universal
        plain = elem.VR not in RANGE_VRS and elem.VR != "PN"
        plain = plain and not any("*" in v or "?" in v for v in values)
        lookups = [_lookup(elem.VR, v) for v in values]
        out.append(
            Constraint(
                tag,
                predicates=tuple(p for p in preds if p is not None),
                exact=values if plain else None,
                lookup=None if None in lookups else tuple(x for x in lookups if x is not None),
            )
        )
    return tuple(out)


# ---- answers -------------------------------------------------------------------------------


def build_answer(item: Dataset, query: Dataset) -> Dataset:
    """Return keys only (PS3.4 C.2.2.1.2): each requested attribute with the item's value, or
    zero-length when the item has none; inside a keyed sequence only the items that match."""
    from pydicom.dataset import Dataset

    out = Dataset()
    if "SpecificCharacterSet" in item:
        # Answer in the item's own character set and say so (PS3.4 C.4.1.1.3.1).
        out.SpecificCharacterSet = item.SpecificCharacterSet
    for qelem in query:
        tag = qelem.tag
        if int(tag) == SPECIFIC_CHARACTER_SET or tag.group in (0x0000, 0x0002):
            continue
        if tag not in item:
            out.add_new(tag, qelem.VR, [] if qelem.VR == "SQ" else None)
            continue
        src = item[tag]
        if qelem.VR == "SQ" and src.VR == "SQ":
            qitems = list(qelem.value or [])
            if not qitems or len(qitems[0]) == 0:
                out.add(copy.deepcopy(src))
                continue
            nested = compile_query(qitems[0])
            kept = [
                build_answer(it, qitems[0])
                for it in (src.value or [])
                if not nested or matches_all(flatten(it), nested)
            ]
            out.add_new(tag, "SQ", kept)
        else:
            out.add(_copy_element(src))
    return out


def _copy_element(elem: DataElement) -> DataElement:
    """A copy of an item's element for an answer. Text, numbers and person names are
    immutable, so a shallow copy is as good as a deep one and ~10x cheaper (a deep copy of
    every element was most of an answer's cost); sequences and multi-values are deep-copied."""
    from pydicom.valuerep import PersonName

    if elem.VR != "SQ" and isinstance(elem.value, (str, bytes, int, float, PersonName)):
        return copy.copy(elem)
    return copy.deepcopy(elem)
