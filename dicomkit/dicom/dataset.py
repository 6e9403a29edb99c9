"""Data-set bytes without pydicom: Part 10 File Meta Information and an element walker.

The one place in dicomkit that reads encoded data sets by hand (PS3.5 7, PS3.10 7.1). The
walker goes to the end, every VR, undefined lengths, sequences, items and encapsulated pixel
data: what pydicom reads lazily and leniently (a value cut short is read short), the walker
refuses with a reason that names the element and the byte. Everything that must not trust a
received or stored data set (the PACS before it answers Success, ``dicomkit store`` before it
sends, the worklist before it serves a file, the index reading main tags) walks it here.
Stdlib only; callers that need a value's meaning hand the bytes to pydicom's converters.
"""

from __future__ import annotations

import mmap
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_BE = "1.2.840.10008.1.2.2"

UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD  # PS3.5 7.5
PIXEL_DATA = 0x7FE00010
SOP_CLASS_UID, SOP_INSTANCE_UID = 0x00080016, 0x00080018
# PS3.5 Table 7.1-1: explicit VRs with a reserved field and a 32-bit length.
LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
MAX_DEPTH = 64  # sequences nested deeper are refused (no real IOD comes close)

META_END = 0x0002FFFF  # as ``stop``: the end of group 0002, whatever follows


# PS3.5 Table 6.2-1: the VRs, and whether each has the long explicit header (Table 7.1-1).
_VRS = {
    v.encode(): (v, v in LONG_VRS)
    for v in [
        "AE",
        "AS",
        "AT",
        "CS",
        "DA",
        "DS",
        "DT",
        "FL",
        "FD",
        "IS",
        "LO",
        "LT",
        "OB",
        "OD",
        "OF",
        "OL",
        "OV",
        "OW",
        "PN",
        "SH",
        "SL",
        "SQ",
        "SS",
        "ST",
        "SV",
        "TM",
        "UC",
        "UI",
        "UL",
        "UN",
        "UR",
        "US",
        "UT",
        "UV",
    ]
}


def _other_vr(raw: bytes, tag: int, pos: int) -> tuple[str, bool]:
    """A VR not in the table: two capital letters (a newer VR, short header), else refused."""
    vr = raw.decode("latin-1")
    if len(vr) == 2 and vr.isalpha() and vr.isupper():
        return vr, False
    raise Malformed(f"{tag_name(tag)} at byte {pos} has no valid VR ({vr!r})")


class Malformed(ValueError):
    """The bytes are not a whole, well-formed data set; the message says where and why."""


class Element(NamedTuple):
    """One element as encoded: ``vr`` is "" in implicit VR (the dictionary knows it)."""

    tag: int
    vr: str
    offset: int  # where the value starts
    length: int  # value bytes (undefined lengths: up to the delimiter)
    # Sequences and encapsulated pixel data: (start, end) of each item's value.
    items: list[tuple[int, int]] | None = None


# The walker makes one per element: tuple.__new__ skips NamedTuple's Python-level __new__.
new_element = tuple.__new__


@dataclass(frozen=True)
class Encoding:
    explicit: bool
    little: bool
    deflated: bool = False

    @classmethod
    def of(cls, transfer_syntax: str) -> Encoding:
        """PS3.5 Annex A: every syntax but these three is explicit VR little endian."""
        ts = transfer_syntax.rstrip("\0 ")
        if ts == IMPLICIT_LE:
            return cls(False, True)
        if ts == EXPLICIT_BE:
            return cls(True, False)
        return cls(True, True, ts == DEFLATED_LE)


def tag_name(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


class _Walker:
    def __init__(self, buf: bytes | mmap.mmap | memoryview, enc: Encoding, vr_of: VrLookup):
        self.buf = buf
        self.explicit = enc.explicit
        self.vr_of = vr_of
        e = "<" if enc.little else ">"
        self.tag = struct.Struct(e + "HH")
        self.u32 = struct.Struct(e + "I")
        # One unpack per element header: tag, VR and 16-bit length, or (implicit) tag and length.
        self.head = struct.Struct(e + ("HH2sH" if enc.explicit else "HHI"))
        # UN of undefined length holds Implicit VR Little Endian (PS3.5 6.2.2)
        self.un = self if not enc.explicit and enc.little else None

    def implicit(self) -> _Walker:
        if self.un is None:
            self.un = _Walker(self.buf, Encoding(False, True), self.vr_of)
        return self.un

    def elements(
        self, pos: int, end: int, depth: int, stop: int | None = None, in_item: bool = False
    ) -> tuple[list[Element], int]:
        """The elements from ``pos`` to ``end`` (or to an item delimiter with ``in_item``);
        returns them and the offset after the last (after the delimiter)."""
        buf, out = self.buf, list[Element]()
        explicit, head, u32 = self.explicit, self.head.unpack_from, self.u32.unpack_from
        while pos < end:
            if pos + 8 > end:
                raise Malformed(
                    f"cut short, or garbage after the last element: {end - pos} stray bytes "
                    f"at byte {pos}"
                )
            if explicit:
                group, elem, vr_raw, length = head(buf, pos)
            else:
                group, elem, length = head(buf, pos)
            tag = group << 16 | elem
            if group == 0xFFFE:
                if tag == ITEM_END and in_item:
                    return out, pos + 8
                raise Malformed(
                    f"an item or delimiter {tag_name(tag)} at byte {pos} is out of place"
                )
            if stop is not None and (tag > stop or (stop == META_END and group != 0x0002)):
                return out, pos
            if explicit:
                kind = _VRS.get(vr_raw) or _other_vr(vr_raw, tag, pos)
                vr = kind[0]
                if kind[1]:
                    if pos + 12 > end:
                        raise Malformed(f"cut short in the header of {tag_name(tag)} at byte {pos}")
                    length, vpos = u32(buf, pos + 8)[0], pos + 12
                else:
                    vpos = pos + 8
            else:
                vr, vpos = "", pos + 8
            items = None
            if length == UNDEFINED:
                if self.explicit and vr not in ("SQ", "UN", "OB", "OW"):
                    raise Malformed(f"{tag_name(tag)} ({vr}) at byte {pos} has an undefined length")
                inner = self.implicit() if vr == "UN" else self
                fragments = tag == PIXEL_DATA and vr != "SQ"
                items, content_end, pos = inner.items(vpos, end, depth + 1, fragments, True)
                length = content_end - vpos
            else:
                if vpos + length > end:
                    raise Malformed(
                        f"cut short: {tag_name(tag)} at byte {pos} announces {length} bytes, "
                        f"{vpos + length - end} are missing"
                    )
                if vr == "SQ" or (not vr and self.vr_of is not None and self.vr_of(tag) == "SQ"):
                    items = self.items(vpos, vpos + length, depth + 1, False, False)[0]
                pos = vpos + length
            out.append(new_element(Element, (tag, vr, vpos, length, items)))
        if in_item:
            raise Malformed("cut short: an item has no delimiter")
        return out, pos

    def items(
        self, pos: int, end: int, depth: int, fragments: bool, delimited: bool
    ) -> tuple[list[tuple[int, int]], int, int]:
        """Items of a sequence (or pixel data fragments): their ranges, where the content
        ends (the delimiter) and the offset after it."""
        if depth > MAX_DEPTH:
            raise Malformed(f"sequences nested more than {MAX_DEPTH} deep")
        buf, out = self.buf, list[tuple[int, int]]()
        while True:
            if pos >= end and not delimited:
                return out, pos, pos
            if pos + 8 > end:
                raise Malformed("cut short: a sequence has no delimiter")
            group, elem = self.tag.unpack_from(buf, pos)
            tag, length = group << 16 | elem, self.u32.unpack_from(buf, pos + 4)[0]
            if tag == SEQUENCE_END and delimited:
                return out, pos, pos + 8
            if tag != ITEM:
                raise Malformed(f"{tag_name(tag)} at byte {pos} stands where an item should be")
            vpos = pos + 8
            if length == UNDEFINED:
                if fragments:
                    raise Malformed(f"a pixel data fragment at byte {pos} has an undefined length")
                _, pos = self.elements(vpos, end, depth, in_item=True)
                out.append((vpos, pos - 8))
                continue
            if vpos + length > end:
                raise Malformed(
                    f"cut short: the item at byte {pos} announces {length} bytes, "
                    f"{vpos + length - end} are missing"
                )
            if not fragments:
                self.elements(vpos, vpos + length, depth)
            out.append((vpos, vpos + length))
            pos = vpos + length


VrLookup = Callable[[int], str] | None


def walk(
    buf: bytes | mmap.mmap | memoryview,
    enc: Encoding,
    pos: int = 0,
    end: int | None = None,
    *,
    stop: int | None = None,
    vr_of: VrLookup = None,
) -> tuple[list[Element], int]:
    """The top-level elements of the data set in ``buf[pos:end]``, every nested item walked
    too, and where the walk ended. Raises ``Malformed`` unless the bytes end exactly after an
    element. ``stop``: end (unchecked) before the first tag above it. ``vr_of``: the
    dictionary VR of a tag, to walk into implicit VR sequences of defined length."""
    end = len(buf) if end is None else end
    try:
        return _Walker(buf, enc, vr_of).elements(pos, end, 0, stop)
    except (struct.error, RecursionError) as exc:
        raise Malformed(f"the data set cannot be walked ({exc})") from None


def inflate(data: bytes | memoryview) -> bytes:
    """A Deflated Explicit VR Little Endian data set's bytes, inflated (PS3.5 A.5)."""
    d = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        out = d.decompress(data) + d.flush()
    except zlib.error as exc:
        raise Malformed(f"the deflated data set does not inflate ({exc})") from None
    if not d.eof:
        raise Malformed("the deflated data set is cut short")
    return out  # bytes after the stream's end (some writers pad) are not part of the data set


@dataclass
class Parsed:
    """A data set walked to its end: its (inflated) bytes and top-level elements."""

    buf: bytes | mmap.mmap | memoryview
    enc: Encoding
    elements: list[Element]

    def find(self, tag: int) -> Element | None:
        return next((e for e in self.elements if e.tag == tag), None)

    def value(self, element: Element) -> bytes:
        return bytes(self.buf[element.offset : element.offset + element.length])

    def text(self, tag: int) -> str | None:
        """An ASCII value (UI, CS, ...) without its padding; None when absent."""
        e = self.find(tag)
        return None if e is None else self.value(e).decode("latin-1").rstrip("\0 ").strip()

    def sop_uids(self) -> tuple[str, str]:
        return self.text(SOP_CLASS_UID) or "", self.text(SOP_INSTANCE_UID) or ""


def parse(
    data: bytes | mmap.mmap | memoryview,
    transfer_syntax: str,
    pos: int = 0,
    *,
    vr_of: VrLookup = None,
) -> Parsed:
    """Walk a data set encoded in ``transfer_syntax`` from ``pos`` to the end of ``data``."""
    enc = Encoding.of(transfer_syntax)
    if enc.deflated:
        data, pos = inflate(memoryview(data)[pos:]), 0
        enc = Encoding(True, True)
    elements, _ = walk(data, enc, pos, vr_of=vr_of)
    return Parsed(data, enc, elements)


# ---- Part 10 File Meta Information (PS3.10 7.1) -----------------------------------------


@dataclass(frozen=True)
class FileMeta:
    sop_class: str
    sop_instance: str
    transfer_syntax: str
    offset: int  # where the data set starts


def read_meta(buf: bytes | mmap.mmap | memoryview) -> FileMeta:
    """The File Meta Information of a Part 10 file's bytes: preamble, "DICM", group 0002 in
    Explicit VR Little Endian."""
    if len(buf) < 132 or bytes(buf[128:132]) != b"DICM":
        raise Malformed("not a DICOM file (no 'DICM' after the 128-byte preamble, PS3.10 7.1)")
    elements, offset = walk(buf, Encoding(True, True), 132, stop=META_END)
    values = {
        e.tag: bytes(buf[e.offset : e.offset + e.length]).decode("latin-1").rstrip("\0 ")
        for e in elements
        if e.tag in (0x00020002, 0x00020003, 0x00020010)
    }
    if not elements or elements[0].tag >> 16 != 0x0002:
        raise Malformed("the file has no File Meta Information (group 0002)")
    if 0x00020010 not in values:
        raise Malformed("the File Meta Information has no Transfer Syntax UID (0002,0010)")
    return FileMeta(
        values.get(0x00020002, ""), values.get(0x00020003, ""), values[0x00020010], offset
    )


def _meta_element(tag: int, vr: bytes, value: bytes) -> bytes:
    head = struct.pack("<HH2s", tag >> 16, tag & 0xFFFF, vr)
    if vr == b"OB":
        return head + struct.pack("<HI", 0, len(value)) + value
    return head + struct.pack("<H", len(value)) + value


def even(text: str, pad: bytes = b"\0") -> bytes:
    """PS3.5 6.2: values have even length; UI pads with NUL, text with a space."""
    raw = text.encode("ascii")
    return raw + pad if len(raw) % 2 else raw


def encode_meta(
    sop_class: str, sop_instance: str, transfer_syntax: str, impl_uid: str, impl_version: str
) -> bytes:
    """128-byte preamble, "DICM" and the File Meta Information (PS3.10 7.1)."""
    body = b"".join(
        (
            _meta_element(0x00020001, b"OB", b"\x00\x01"),
            _meta_element(0x00020002, b"UI", even(sop_class)),
            _meta_element(0x00020003, b"UI", even(sop_instance)),
            _meta_element(0x00020010, b"UI", even(transfer_syntax)),
            _meta_element(0x00020012, b"UI", even(impl_uid)),
            _meta_element(0x00020013, b"SH", even(impl_version, b" ")),
        )
    )
    group_length = _meta_element(0x00020000, b"UL", struct.pack("<I", len(body)))
    return b"\0" * 128 + b"DICM" + group_length + body


@dataclass
class Part10:
    """A Part 10 file checked whole: its meta and its data set walked to the end."""

    meta: FileMeta
    dataset: Parsed


def parse_part10(buf: bytes | mmap.mmap | memoryview, *, vr_of: VrLookup = None) -> Part10:
    meta = read_meta(buf)
    return Part10(meta, parse(buf, meta.transfer_syntax, meta.offset, vr_of=vr_of))


def map_file(path: Path) -> mmap.mmap | bytes:
    """A file's bytes without reading them: the walker only touches the headers."""
    with open(path, "rb") as fh:
        try:
            return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped
            return b""
