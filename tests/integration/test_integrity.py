"""Nothing corrupt is ever acknowledged: C-STOREs whose data set was cut on the wire, has
trailing bytes, or names other UIDs than its command, sent by pynetdicom (which streams a
file's bytes as they are) to the embedded PACS on both of its paths, and to native Orthanc as
the reference; and `dicomkit store` refusing such files before it sends anything."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from dicomkit.dicom.net import Peer
from tests.conftest import lab_env, need, start_lab, start_pacs, stop_lab, testdata

AET = "ORTHANC"
CT_SMALL = testdata("CT_small.dcm")  # explicit VR LE, Pixel Data 32768 bytes, last element


def _variant(tmp: Path, name: str) -> tuple[Path, str, str]:
    """A file whose File Meta is intact and whose data set is corrupt as ``name`` says; the
    command pynetdicom builds from it names the File Meta's UIDs."""
    raw = CT_SMALL.read_bytes()
    ds = pydicom.dcmread(CT_SMALL)
    uid = generate_uid()
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    path = tmp / f"{name.replace(' ', '_')}.dcm"
    ds.save_as(path, enforce_file_format=True)
    if name in ("instance UID differs", "class UID differs"):
        ds = pydicom.dcmread(path)  # saved as read: save_as(enforce...) would align the meta
        if name == "instance UID differs":
            ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        else:
            ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"  # MR Image
        ds.save_as(path)
    raw = path.read_bytes()
    if name == "1000 bytes short in Pixel Data":
        raw = raw[:-1000]
    elif name == "1 byte short":
        raw = raw[:-1]
    elif name == "3 garbage bytes appended":
        raw = raw + b"\x01\x02\x03"
    path.write_bytes(raw)
    return path, str(ds.file_meta.MediaStorageSOPInstanceUID), uid


CASES = {
    "1000 bytes short in Pixel Data": 0xC000,
    "1 byte short": 0xC000,
    "3 garbage bytes appended": 0xC000,
    "instance UID differs": 0xA900,
    "class UID differs": 0xA900,
}


def _send_raw(port: int, path: Path) -> int | None:
    return _send(port, path)[0]


def _send(port: int, path: Path) -> tuple[int | None, str]:
    """C-STORE with pynetdicom streaming the file's data set bytes unchanged: the status (None
    when the peer aborted instead) and the Error Comment."""
    from pynetdicom import AE, _config
    from pynetdicom.presentation import build_context

    meta = pydicom.dcmread(path, stop_before_pixels=True).file_meta
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        ae = AE(ae_title="DICOMKIT")
        cx = build_context(str(meta.MediaStorageSOPClassUID), [str(meta.TransferSyntaxUID)])
        assoc = ae.associate("127.0.0.1", port, [cx], ae_title=AET)
        assert assoc.is_established
        try:
            rsp = assoc.send_c_store(path)
            if "Status" not in rsp:
                return None, ""
            return int(rsp.Status), str(rsp.get("ErrorComment", ""))
        finally:
            if assoc.is_established:
                assoc.release()
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = False


@pytest.fixture(scope="module", params=["embedded-lean", "embedded-pynetdicom"])
def pacs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[object]:
    mp = pytest.MonkeyPatch()
    mp.setenv("DICOMKIT_LEAN", "1" if request.param == "embedded-lean" else "0")
    srv = start_pacs(tmp_path_factory.mktemp(request.param), AET)
    try:
        yield srv
    finally:
        srv.stop()
        mp.undo()


@pytest.mark.parametrize("case", list(CASES))
def test_embedded_pacs_refuses_and_stores_nothing(pacs: object, case: str, tmp_path: Path) -> None:
    path, meta_uid, ds_uid = _variant(tmp_path, case)
    before = pacs.index.counts()["instances"]  # type: ignore[attr-defined]
    status, comment = _send(pacs.cfg.dicom_port, path)  # type: ignore[attr-defined]
    assert status == CASES[case], f"{case}: 0x{status or 0:04X}"
    assert ("cut short" if status == 0xC000 else "UID differs from the command") in comment
    assert pacs.index.counts()["instances"] == before  # type: ignore[attr-defined]
    for uid in (meta_uid, ds_uid):
        assert pacs.index.instance_path(uid) is None  # type: ignore[attr-defined]
    assert not list(pacs.storage.files.glob("*/*.tmp"))  # type: ignore[attr-defined]


def test_a_whole_file_is_still_stored(pacs: object, tmp_path: Path) -> None:
    path, _, uid = _variant(tmp_path, "whole")
    assert _send_raw(pacs.cfg.dicom_port, path) == 0x0000  # type: ignore[attr-defined]
    assert pacs.index.instance_path(uid) is not None  # type: ignore[attr-defined]


@pytest.mark.orthanc
def test_orthanc_refuses_the_same_cases(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The reference: native Orthanc never answers Success to these either."""
    lab = start_lab(tmp_path_factory.mktemp("orthanc-integrity"), "native")
    try:
        port = lab.endpoints.dicom_port
        tmp = tmp_path_factory.mktemp("cases")
        seen = {}
        for case in CASES:
            seen[case] = _send_raw(port, _variant(tmp, case)[0])
        assert all(s != 0x0000 for s in seen.values()), seen
    finally:
        stop_lab(lab)


@pytest.mark.dcmtk
def test_storescu_cannot_send_a_cut_file_and_a_whole_one_is_stored(
    pacs: object, tmp_path: Path
) -> None:
    cut, _, _ = _variant(tmp_path, "1000 bytes short in Pixel Data")
    whole, _, uid = _variant(tmp_path, "whole")
    port = str(pacs.cfg.dicom_port)  # type: ignore[attr-defined]
    p = subprocess.run([need("storescu"), "-aec", AET, "127.0.0.1", port, str(cut)],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert p.returncode != 0
    p = subprocess.run([need("storescu"), "-aec", AET, "127.0.0.1", port, str(whole)],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert pacs.index.instance_path(uid) is not None  # type: ignore[attr-defined]


def test_dicomkit_store_refuses_a_cut_file_and_sends_by_the_data_set(
    pacs: object, tmp_path: Path
) -> None:
    cut, _, cut_uid = _variant(tmp_path, "1 byte short")
    garbage, _, garbage_uid = _variant(tmp_path, "3 garbage bytes appended")
    differs, meta_uid, ds_uid = _variant(tmp_path, "instance UID differs")
    peer = f"127.0.0.1:{pacs.cfg.dicom_port}:{AET}"  # type: ignore[attr-defined]
    p = subprocess.run(
        [sys.executable, "-m", "dicomkit", "store", "--to", peer, "--json",
         str(cut), str(garbage), str(differs)],
        capture_output=True, text=True, timeout=120, env=lab_env(tmp_path / "home"),
    )  # fmt: skip
    assert p.returncode == 1, p.stderr
    report = json.loads(p.stdout)
    files = {Path(f["path"]).name: f for f in report["files"]}
    for name in (cut.name, garbage.name):
        assert not files[name]["ok"] and "cut short" in files[name]["error"], files[name]
    assert files[differs.name]["ok"] and files[differs.name]["sop_instance_uid"] == ds_uid
    assert "file meta" in files[differs.name]["note"]
    index = pacs.index  # type: ignore[attr-defined]
    assert index.instance_path(ds_uid) is not None and index.instance_path(meta_uid) is None
    assert index.instance_path(cut_uid) is None and index.instance_path(garbage_uid) is None
    assert sorted(report["not_stored"]) == sorted([str(cut), str(garbage)])


def test_peer_parse() -> None:
    assert str(Peer.parse(f"127.0.0.1:4242:{AET}")) == f"{AET}@127.0.0.1:4242"
