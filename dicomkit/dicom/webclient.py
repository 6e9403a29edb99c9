"""Fetching an instance from the PACS over DICOMweb (QIDO-RS then WADO-RS, PS3.18 10.6 and
10.4): what ``dicomkit show --accession`` draws. Works on every engine (Orthanc's plugin and
the embedded PACS answer the same requests)."""

from __future__ import annotations

from io import BytesIO
from typing import TYPE_CHECKING, Any

from dicomkit.errors import ConnectionFailed, DicomkitError

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

_ROWS, _SERIES_NUMBER, _INSTANCE_NUMBER = "00280010", "00200011", "00200013"


def _get(url: str, accept: str, timeout: float, params: dict[str, str] | None = None) -> Any:
    import httpx

    try:
        r = httpx.get(url, params=params, headers={"Accept": accept}, timeout=timeout)
    except httpx.HTTPError as exc:
        raise ConnectionFailed(
            f"the PACS's DICOMweb service at {url} did not answer: {exc}",
            "check the lab with `dicomkit status`",
        ) from None
    if r.status_code >= 400:
        raise DicomkitError(
            f"GET {url} answered {r.status_code}: {r.text[:200]}", "see `dicomkit logs pacs`"
        )
    return r


def _first(item: dict[str, Any], tag: str) -> Any:
    values = item.get(tag, {}).get("Value") or [None]
    return values[0]


def fetch_by_accession(base: str, accession: str, timeout: float) -> Dataset:
    """The first image instance (lowest series, then instance number) of the first study
    with this accession number."""
    from pydicom import dcmread

    from dicomkit.pacs.mime import MimeError, parse_media_type, parse_related

    studies = _get(f"{base}/studies", "application/dicom+json", timeout,
                   {"AccessionNumber": accession}).json() if accession else []  # fmt: skip
    if not studies:
        raise DicomkitError(
            f"no study with accession {accession!r} in the PACS",
            "check with `dicomkit studies --accession ...`, or store one with `dicomkit store`",
        )
    study = _first(studies[0], "0020000D")
    r = _get(f"{base}/studies/{study}/instances", "application/dicom+json", timeout,
             {"includefield": f"{_ROWS},{_SERIES_NUMBER},{_INSTANCE_NUMBER}"})  # fmt: skip
    instances = list(r.json()) if r.content else []
    if not instances:
        raise DicomkitError(f"study {study} has no instance", "store one with `dicomkit store`")

    def order(item: dict[str, Any]) -> tuple[int, int, int]:
        def num(tag: str) -> int:
            try:
                return int(_first(item, tag) or 0)
            except (TypeError, ValueError):
                return 0

        return (0 if _first(item, _ROWS) else 1, num(_SERIES_NUMBER), num(_INSTANCE_NUMBER))

    best = min(instances, key=order)
    url = (f"{base}/studies/{study}/series/{_first(best, '0020000E')}"
           f"/instances/{_first(best, '00080018')}")  # fmt: skip
    r = _get(url, 'multipart/related; type="application/dicom"; transfer-syntax=*', timeout)
    ctype = parse_media_type(r.headers.get("content-type", ""))
    try:
        parts = parse_related(r.content, ctype.params.get("boundary", ""))
    except MimeError as exc:
        raise DicomkitError(f"the WADO-RS answer from {url} is malformed: {exc}", "") from None
    if not parts:
        raise DicomkitError(f"the WADO-RS answer from {url} has no instance", "")
    return dcmread(BytesIO(parts[0].content))
