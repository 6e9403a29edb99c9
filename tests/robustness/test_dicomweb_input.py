"""Bad input to the embedded PACS's DICOMweb and REST routes: each answered with the right
status and a reason (PS3.18 10.5.3, 8.3.4), never a 500, and nothing corrupt or half-written
ever stored. Raw HTTP (httpx) so that bodies can be broken on purpose."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydicom import dcmread

from tests.conftest import start_pacs, testdata

LIMIT = 200_000  # the PACS's max_stow_bytes here


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    srv = start_pacs(tmp_path_factory.mktemp("dicomweb-bad"), "ORTHANC", max_stow_bytes=LIMIT)
    try:
        yield srv
    finally:
        srv.stop()


def url(pacs: Any, path: str) -> str:
    return f"http://127.0.0.1:{pacs.cfg.http_port}{path}"


def body(*parts: bytes, boundary: str = "XX-boundary") -> bytes:
    out = b"".join(b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n"
                   + p + b"\r\n" for p in parts)  # fmt: skip
    return out + b"--" + boundary.encode() + b"--\r\n"


RELATED = 'multipart/related; type="application/dicom"; boundary=XX-boundary'


def stow(pacs: Any, data: bytes, ctype: str = RELATED) -> httpx.Response:
    return httpx.post(url(pacs, "/dicom-web/studies"), content=data,
                      headers={"Content-Type": ctype}, timeout=30)  # fmt: skip


def stored_files(pacs: Any) -> list[Path]:
    return sorted(Path(pacs.cfg.storage_dir, "files").rglob("*"))


def failed_reasons(r: httpx.Response) -> list[int]:
    return [item["00081197"]["Value"][0] for item in r.json()["00081198"]["Value"]]


CT = testdata("CT_small.dcm").read_bytes()


@pytest.mark.parametrize(
    ("ctype", "status"),
    [
        ("application/dicom", 415),
        ("application/json", 415),
        ('multipart/related; type="application/json"; boundary=XX-boundary', 415),
        ('multipart/related; type="application/dicom"', 400),  # no boundary
        ('multipart/related; type="application/dicom"; boundary=OTHER', 400),  # wrong boundary
    ],
    ids=["dicom-not-multipart", "json", "json-parts", "no-boundary", "wrong-boundary"],
)
def test_wrong_content_type_or_boundary(pacs: Any, ctype: str, status: int) -> None:
    before = stored_files(pacs)
    r = stow(pacs, body(CT), ctype)
    assert r.status_code == status, r.text
    assert r.json()["error"]
    assert stored_files(pacs) == before


def test_body_cut_short_is_400(pacs: Any) -> None:
    data = body(CT)
    r = stow(pacs, data[: len(data) // 2])
    assert r.status_code == 400
    assert "not closed by the boundary" in r.json()["error"]


@pytest.mark.parametrize(
    ("part", "reason", "words"),
    [
        (b"hello, this is not DICOM" * 20, 0xC000, "not a DICOM file"),
        (CT[: len(CT) - 300], 0xC000, "cut short: (7FE0,0010)"),
        (CT[:1000], 0xC000, "cut short"),
        (
            CT.replace(
                b"1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322",
                b"1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12399",
                1,
            ),
            0xA900,
            "File Meta Information names",
        ),
    ],
    ids=["not-dicom", "ends-mid-pixel-data", "ends-mid-element", "meta-mismatch"],
)
def test_bad_parts_are_failed_with_a_reason_and_not_stored(
    pacs: Any, part: bytes, reason: int, words: str
) -> None:
    before = stored_files(pacs)
    r = stow(pacs, body(part))
    assert r.status_code == 409, r.text  # PS3.18 10.5.3: nothing stored
    assert failed_reasons(r) == [reason]
    assert words in r.headers["warning"]
    assert stored_files(pacs) == before  # no file, no *.tmp


def test_one_good_one_bad_is_202_with_both_sequences(pacs: Any) -> None:
    r = stow(pacs, body(CT, b"garbage" * 40))
    assert r.status_code == 202, r.text
    refs = r.json()["00081199"]["Value"]
    assert refs[0]["00081155"]["Value"] == [str(dcmread(testdata("CT_small.dcm")).SOPInstanceUID)]
    assert failed_reasons(r) == [0xC000]
    r = httpx.get(url(pacs, "/statistics"), timeout=10).json()
    assert r["CountInstances"] == 1


def test_oversized_body_is_413_declared_or_streamed(pacs: Any) -> None:
    big = body(b"\0" * (LIMIT + 1))
    r = stow(pacs, big)
    assert r.status_code == 413 and "limit" in r.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    r = httpx.post(url(pacs, "/dicom-web/studies"), content=chunks(),
                   headers={"Content-Type": RELATED}, timeout=30)  # fmt: skip
    assert r.status_code == 413


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("Foo=1", "Foo"),
        ("StudyDate=yesterday", "StudyDate"),
        ("StudyDate=2026-", "StudyDate"),
        ("limit=-1", "limit"),
        ("offset=ten", "offset"),
        ("includefield=NoSuchThing", "NoSuchThing"),
        ("fuzzymatching=maybe", "fuzzymatching"),
        ("StudyInstanceUID=1.2.*", "StudyInstanceUID"),
        ("Foo=1&Bar=2", "Bar"),
    ],
)
def test_qido_garbage_is_400_naming_the_parameter(pacs: Any, query: str, named: str) -> None:
    r = httpx.get(url(pacs, f"/dicom-web/studies?{query}"), timeout=10)
    assert r.status_code == 400, r.text
    assert named in r.json()["error"]


def test_qido_unsupported_matching_is_ignored_with_a_warning(pacs: Any) -> None:
    r = httpx.get(url(pacs, "/dicom-web/studies?SliceThickness=5&fuzzymatching=true"), timeout=10)
    assert r.status_code == 200
    assert "SliceThickness" in r.headers["warning"] and "fuzzymatching" in r.headers["warning"]


def test_qido_wants_json(pacs: Any) -> None:
    r = httpx.get(url(pacs, "/dicom-web/studies"), headers={"Accept": "application/dicom+xml"},
                  timeout=10)  # fmt: skip
    assert r.status_code == 406


def test_rendered_bad_accept_and_window(pacs: Any) -> None:
    ds = dcmread(testdata("CT_small.dcm"), stop_before_pixels=True)
    stow(pacs, body(CT))
    base = url(pacs, f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
                     f"/instances/{ds.SOPInstanceUID}")  # fmt: skip
    assert httpx.get(base + "/rendered", headers={"Accept": "application/pdf"}).status_code == 406
    assert httpx.get(base + "/rendered?window=abc").status_code == 400
    assert httpx.get(base + "/rendered?window=40,400").status_code == 200
    assert httpx.get(base + "/frames/2/rendered").status_code == 406  # one frame only
    assert httpx.get(base + "/frames/x").status_code == 400
    assert httpx.get(base + "/bulk/zz").status_code == 400
    r = httpx.get(base, headers={"Accept": 'multipart/related; type="application/dicom"; '
                                           "transfer-syntax=1.2.840.10008.1.2.4.50"})  # fmt: skip
    assert r.status_code == 406 and "1.2.840.10008.1.2.1" in r.json()["error"]


@pytest.mark.parametrize(
    ("query", "status", "named"),
    [
        ({"NoSuchKeyword": "x"}, 400, "NoSuchKeyword"),
        ({"SOPInstanceUID": "1.2.*"}, 400, "SOPInstanceUID"),
        ({"StudyInstanceUID": "*"}, 400, "StudyInstanceUID"),
        ({"0010,0020": "1CT1"}, 200, ""),
    ],
)
def test_tools_find_unknown_keyword_and_uid_wildcard(
    pacs: Any, query: dict[str, str], status: int, named: str
) -> None:
    r = httpx.post(url(pacs, "/tools/find"), json={"Level": "Instance", "Query": query},
                   timeout=10)  # fmt: skip
    assert r.status_code == status, r.text
    if named:
        assert named in r.json()["error"]
