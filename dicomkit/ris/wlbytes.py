"""The bytes of an order's worklist item, written directly: the same file, byte for byte, as
``worklist.encode(worklist.build_item(order))`` (pydicom), at a fraction of the CPU time.

Building and encoding the pydicom dataset was most of the RIS's CPU per order (the HL7 and HTTP
paths both write one item per order). ``dicom/worklist.py`` stays the reference: the RIS reads
and rewrites items through it elsewhere, and ``tests/unit/test_wlbytes.py`` requires identical
bytes from both for generated orders. Change the item there and here together.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from dicomkit.dicom import vr

if TYPE_CHECKING:
    from dicomkit.ris.models import OrderOut

MWL_FIND_SOP_CLASS = b"1.2.840.10008.5.1.4.31"
EXPLICIT_VR_LE = b"1.2.840.10008.1.2.1"
_LONG_VRS = frozenset({b"OB", b"OW", b"SQ", b"UN", b"UT", b"UC", b"UR"})  # PS3.5 7.1.2


def _el(tag: int, vr_: bytes, value: bytes) -> bytes:
    """One Explicit VR Little Endian element; odd values padded (UI and OB with NUL, text
    with a space: PS3.5 6.2)."""
    if len(value) % 2:
        value += b"\0" if vr_ in (b"UI", b"OB") else b" "
    if vr_ in _LONG_VRS:
        return struct.pack("<HH2s2xI", tag >> 16, tag & 0xFFFF, vr_, len(value)) + value
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr_, len(value)) + value


def _sq(tag: int, *items: bytes) -> bytes:
    body = b"".join(struct.pack("<HHI", 0xFFFE, 0xE000, len(i)) + i for i in items)
    return _el(tag, b"SQ", body)


def encode_item(order: OrderOut, sop_instance_uid: str | None = None) -> bytes:
    """The ``.wl`` file of ``order`` (see ``worklist.build_item`` for what each key is)."""
    import pydicom
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, generate_uid

    o = order.order
    utf8 = vr.needs_utf8(o.patient_name, o.study_desc, o.referring_physician)
    enc = "utf-8" if utf8 else "ascii"

    def t(value: str) -> bytes:
        return value.encode(enc)

    desc = o.study_desc or f"{o.modality} procedure"
    code = (
        _el(0x00080100, b"SH", t(o.procedure_code or o.modality))
        + _el(0x00080102, b"SH", b"DICOMKIT")
        + _el(0x00080104, b"LO", t((o.study_desc or o.modality)[:64]))
    )
    sps = b"".join(
        [
            _el(0x00080060, b"CS", t(o.modality)),
            _el(0x00400001, b"AE", t(order.station_aet)),
            _el(0x00400002, b"DA", t(order.scheduled_date)),
            _el(0x00400003, b"TM", t(order.scheduled_time)),
            _el(0x00400006, b"PN", b""),
            _el(0x00400007, b"LO", t(desc)),
            _sq(0x00400008, code),
            _el(0x00400009, b"SH", t(order.scheduled_procedure_step_id)),
            _el(0x00400010, b"SH", b""),
            _el(0x00400011, b"SH", b""),
            _el(0x00400020, b"CS", b"SCHEDULED"),
        ]
    )
    body = b"".join(
        [
            _el(0x00080005, b"CS", b"ISO_IR 192") if utf8 else b"",
            _el(0x00080050, b"SH", t(o.accession)),
            _el(0x00080090, b"PN", t(o.referring_physician or "")),
            _el(0x00081030, b"LO", t(o.study_desc)),
            _el(0x00100010, b"PN", t(o.patient_name)),
            _el(0x00100020, b"LO", t(o.patient_id)),
            _el(0x00100030, b"DA", t(o.birth_date or "")),
            _el(0x00100040, b"CS", t(o.sex or "")),
            _el(0x0020000D, b"UI", t(order.study_instance_uid)),
            _el(0x00321060, b"LO", t(desc)),
            _sq(0x00321064, code),
            _sq(0x00400100, sps),
            _el(0x00401001, b"SH", t(order.requested_procedure_id)),
            _el(0x00401003, b"SH", b""),
        ]
    )
    meta = b"".join(
        [
            _el(0x00020001, b"OB", b"\x00\x01"),
            _el(0x00020002, b"UI", MWL_FIND_SOP_CLASS),
            _el(0x00020003, b"UI", (sop_instance_uid or generate_uid()).encode()),
            _el(0x00020010, b"UI", EXPLICIT_VR_LE),
            _el(0x00020012, b"UI", PYDICOM_IMPLEMENTATION_UID.encode()),
            _el(0x00020013, b"SH", f"PYDICOM {pydicom.__version__}".encode()),
        ]
    )
    group_length = _el(0x00020000, b"UL", struct.pack("<I", len(meta)))
    return b"\0" * 128 + b"DICM" + group_length + meta + body
