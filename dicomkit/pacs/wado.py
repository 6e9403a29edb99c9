"""WADO-RS (PS3.18 10.4 Retrieve Transaction) over the embedded PACS's storage: which stored
files a URL names, and what of them to send (instances, metadata, bulk data, frames)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from dicomkit.pacs.httperror import HttpError

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from dicomkit.pacs.qido import Cache
    from dicomkit.pacs.storage import Storage

log = logging.getLogger(__name__)

# PS3.18 Table 8.7.3-2 (single-frame media types): a compressed frame's media type.
FRAME_MEDIA_TYPES = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
}


def files(cache: Cache, study: str, series: str | None = None,
          sop: str | None = None) -> list[tuple[str, str, str]]:  # fmt: skip
    """(path, SOP Class, transfer syntax) of each stored instance the URL names; 404 if none."""
    keys = {"StudyInstanceUID": study}
    level = "STUDY"
    if series is not None:
        keys["SeriesInstanceUID"] = series
        level = "SERIES"
    if sop is not None:
        keys["SOPInstanceUID"] = sop
        level = "IMAGE"
    found = cache.find(level, keys)
    if not found:
        what = {"STUDY": f"study {study}", "SERIES": f"series {series} in study {study}",
                "IMAGE": f"instance {sop} in series {series} of study {study}"}[level]  # fmt: skip
        raise HttpError(404, f"no {what}")
    return cache.index.files_under(level, [res.id for res, _flat, _values in found])


def target(stored: str, wanted: set[str]) -> str:
    """The uncompressed syntax to convert an instance stored in ``stored`` into, among those
    the client named; 406 naming what is possible when there is none."""
    from dicomkit.pacs.transcode import UNCOMPRESSED

    for ts in UNCOMPRESSED:
        if ts in wanted:
            return ts
    raise HttpError(
        406, f"stored as {stored}; ask with transfer-syntax=* (as stored) or "
        f"{' or '.join(UNCOMPRESSED)} (converted)",
    )  # fmt: skip


def converted(storage: Storage, path: str, ts: str) -> bytes:
    """A stored instance decoded (or byte-swapped) into the uncompressed syntax ``ts``."""
    from io import BytesIO

    from dicomkit.pacs.transcode import CannotTranscode, transcode

    ds = read(storage, path)
    try:
        what = transcode(ds, ts)
    except CannotTranscode as exc:
        raise HttpError(406, str(exc)) from None
    except Exception as exc:  # a codec that cannot decode this pixel data
        log.warning("WADO-RS: cannot convert %s: %s", path, exc)
        raise HttpError(406, f"the stored pixel data cannot be decoded here ({exc})") from None
    log.info("WADO-RS: %s %s", ds.SOPInstanceUID, what)
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def read(storage: Storage, path: str) -> Dataset:
    from pydicom import dcmread

    return dcmread(storage.absolute(path))


def metadata(ds: Dataset, instance_url: str) -> dict[str, Any]:
    """DICOM JSON of an instance (PS3.18 Annex F), binary values over 1 KiB as BulkDataURIs."""

    def bulk_uri(elem: Any) -> str:
        return f"{instance_url}/bulk/{int(elem.tag):08X}"

    return dict(ds.to_json_dict(bulk_data_threshold=1024, bulk_data_element_handler=bulk_uri))


def bulk(ds: Dataset, tag: int) -> bytes:
    """The value of the first element with ``tag``, top level first, then inside sequences."""
    if tag in ds:
        value = ds[tag].value
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
    for elem in ds.iterall():
        if int(elem.tag) == tag and isinstance(elem.value, (bytes, bytearray)):
            return bytes(elem.value)
    raise HttpError(404, f"the instance has no bulk data element {tag:08X}")


def frames(ds: Dataset, numbers: list[int]) -> tuple[str, list[bytes]]:
    """The part media type and the bytes of the asked frames (1-based), as stored."""
    from pydicom.uid import UID

    from dicomkit.dicom.render import frame_count

    if "PixelData" not in ds:
        raise HttpError(404, "the instance has no pixel data, so no frames")
    count = frame_count(ds)
    wrong = [n for n in numbers if not 1 <= n <= count]
    if wrong:
        raise HttpError(404, f"frame(s) {wrong} out of range: the instance has {count}")
    ts = str(ds.file_meta.TransferSyntaxUID)
    if UID(ts).is_compressed:
        from pydicom.encaps import generate_frames

        all_frames = list(generate_frames(ds.PixelData, number_of_frames=count))
        media = FRAME_MEDIA_TYPES.get(ts, "application/octet-stream")
        return f"{media}; transfer-syntax={ts}", [all_frames[n - 1] for n in numbers]
    rows, cols = int(ds.Rows), int(ds.Columns)
    samples, bits = int(ds.get("SamplesPerPixel", 1)), int(ds.BitsAllocated)
    size = (rows * cols * samples * bits + 7) // 8
    data = ds.PixelData
    return (
        f"application/octet-stream; transfer-syntax={ts}",
        [bytes(data[(n - 1) * size : n * size]) for n in numbers],
    )
