"""Transfer syntax conversion for C-GET / C-MOVE sub-operations.

A retrieve peer that accepted no presentation context in the stored transfer syntax gets the
instance decoded into an uncompressed syntax it did accept (PS3.4 C.4.2.3.1 / C.4.3.3.1: the
SCP chooses the syntax of each C-STORE sub-operation among the accepted contexts). The SOP
Instance UID is kept: a change of transfer syntax is the same instance (PS3.5 10.1).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

log = logging.getLogger(__name__)

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_BE = "1.2.840.10008.1.2.2"

# What a decoded instance is sent in, best first: the uncompressed syntaxes every SCP must
# support (PS3.5 10.1: Implicit VR Little Endian is the default) and their explicit sibling.
UNCOMPRESSED = (EXPLICIT_LE, IMPLICIT_LE)
# Byte width of each value word for the VRs whose bytes follow the transfer syntax's
# endianness and that pydicom keeps as bytes (PS3.5 7.3).
_WORD = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


class CannotTranscode(Exception):
    """The instance cannot be sent in any syntax the peer accepted; the message says why."""


def _little_endian_uncompressed(ts: str) -> bool:
    # pynetdicom re-encodes among these by itself (explicit <-> implicit, deflated <-> inflated).
    return ts in (EXPLICIT_LE, IMPLICIT_LE, DEFLATED_LE)


def choose_syntax(stored: str, accepted: Iterable[str]) -> str | None:
    """The transfer syntax to send an instance stored in ``stored`` over a peer that accepted
    ``accepted`` for its SOP class: ``stored`` itself when it can go as it is, else an
    accepted uncompressed little endian syntax to decode into, else None."""
    accepted = list(accepted)
    if stored in accepted:
        return stored
    if _little_endian_uncompressed(stored) and any(
        _little_endian_uncompressed(ts) for ts in accepted
    ):
        return stored  # pynetdicom converts the encoding on the way
    for ts in UNCOMPRESSED:
        if ts in accepted:
            return ts
    return None


def transcode(ds: Dataset, target: str) -> str:
    """Convert ``ds`` (read from its file, pixel data as stored) in place to ``target``, an
    uncompressed little endian syntax: decode compressed pixel data, or swap a big endian
    data set's words. Returns what was done, for the log. Raises CannotTranscode."""
    from pydicom.uid import UID

    stored = UID(str(ds.file_meta.TransferSyntaxUID))
    if target not in UNCOMPRESSED:
        raise CannotTranscode(f"{UID(target).name} is not a syntax this PACS encodes into")
    for _elem in ds.iterall():
        pass  # parse every raw element now, with the encoding it was read in
    if stored.is_compressed and "PixelData" not in ds:
        what = f"relabelled {stored.name} (no Pixel Data)"
    elif stored.is_compressed:
        _decompress(ds)
        what = f"decoded {stored.name}"
    elif not stored.is_little_endian:
        _to_little_endian(ds)
        what = "byte-swapped Explicit VR Big Endian"
    else:
        what = f"re-encoded {stored.name}"
    ds.file_meta.TransferSyntaxUID = UID(target)
    implicit = target == IMPLICIT_LE
    ds.set_original_encoding(implicit, True, ds.original_character_set)
    return f"{what} to {UID(target).name}"


def _decompress(ds: Dataset) -> None:
    from pydicom.pixels import decompress

    if "PixelData" not in ds:
        raise CannotTranscode("compressed transfer syntax but no Pixel Data to decode")
    photometric = str(ds.get("PhotometricInterpretation", ""))
    try:
        # as_rgb: YBR_FULL / YBR_FULL_422 come out as RGB and PhotometricInterpretation says so
        # (PS3.3 C.7.6.3.1.2); the SOP Instance UID stays (same instance, another syntax).
        decompress(ds, as_rgb=True, generate_instance_uid=False)
    except Exception as exc:
        raise CannotTranscode(f"pydicom cannot decode it ({type(exc).__name__}: {exc})") from exc
    # PS3.3 C.7.6.3: the Extended Offset Table only describes encapsulated Pixel Data.
    for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        if keyword in ds:
            delattr(ds, keyword)
    if photometric != str(ds.PhotometricInterpretation):
        log.info(
            "PhotometricInterpretation %s -> %s (decoded)",
            photometric,
            ds.PhotometricInterpretation,
        )


def _to_little_endian(ds: Dataset) -> None:
    """Swap the words of every bytes-valued element (OW, OF, OL, OD, OV), at every depth;
    pydicom re-encodes the numeric VRs itself (every element is parsed already)."""
    import numpy as np

    for elem in ds.iterall():
        word = _WORD.get(str(elem.VR))
        if elem.tag == 0x7FE00010:
            word = _pixel_word(ds, str(elem.VR))
        if not word or word == 1 or not isinstance(elem.value, bytes | bytearray):
            continue
        if len(elem.value) % word:
            raise CannotTranscode(
                f"{elem.keyword or elem.tag} has a length not a multiple of {word}"
            )
        arr = np.frombuffer(elem.value, dtype=f">u{word}")
        elem.value = arr.astype(f"<u{word}").tobytes()
    for item in _items(ds):
        item.set_original_encoding(False, True, item.original_character_set)


def _pixel_word(ds: Dataset, vr: str) -> int:
    # Pixel Data words are BitsAllocated wide (PS3.5 8.1.1); 8-bit data sent as OW is swapped
    # in 16-bit words, 1-bit data is a bit stream (as pydicom reads them).
    bits = int(ds.get("BitsAllocated", 16) or 16)
    if bits >= 16:
        return bits // 8
    return 2 if bits == 8 and vr == "OW" else 1


def _items(ds: Dataset) -> Iterable[Dataset]:
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                yield item
                yield from _items(item)
