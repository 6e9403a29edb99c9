"""C-GET and C-MOVE from the embedded PACS to DCMTK peers that accept only uncompressed syntaxes.

The PACS holds every file pydicom ships (``get_testdata_files``), stored as received. DCMTK's
``getscu`` with its default contexts, and ``movescu`` to a default ``storescp``, must get back
every instance pydicom can decode; an instance pydicom cannot decode is listed with the reason.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_files
from pydicom.uid import UID

from dicomkit.dicom.net import Peer
from dicomkit.dicom.scu import store_files
from dicomkit.pacs.settings import Modality
from tests.conftest import free_port, need, start_pacs, testdata, wait_port

pytestmark = pytest.mark.dcmtk

AET = "EMBEDDED"
UNCOMPRESSED_LE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}


@dataclass
class Stored:
    path: Path  # the PACS's own copy (the first one stored wins on a duplicate UID)
    name: str  # the pydicom test files with this SOP Instance UID
    transfer_syntax: str
    cannot: str | None  # why pydicom cannot decode it, or None


@dataclass
class Loaded:
    srv: object
    port: int
    storescp_port: int
    instances: dict[str, Stored]  # by SOP Instance UID
    studies: list[str]

    def expected(self) -> set[str]:
        return {uid for uid, s in self.instances.items() if s.cannot is None}


def why_pydicom_cannot(path: Path) -> str | None:
    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:
        return f"pydicom cannot read it ({type(exc).__name__})"
    if "PixelData" in ds:
        try:
            ds.pixel_array  # noqa: B018  # the decode is the check
        except Exception as exc:
            text = " ".join(str(exc).split())[:240]
            return f"pydicom cannot decode its pixel data ({type(exc).__name__}: {text})"
    return None


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    home = tmp_path_factory.mktemp("transcoding")
    storescp_port = free_port()
    srv = start_pacs(
        home, AET, modalities={"storescp": Modality("STORESCP", "127.0.0.1", storescp_port)}
    )
    try:
        port = srv.cfg.dicom_port
        files = [Path(f) for f in get_testdata_files() if Path(f).is_file()]
        store_files(Peer("127.0.0.1", port, AET), "LOADER", files)
        names: dict[str, list[str]] = {}
        for f in files:
            try:
                uid = str(pydicom.dcmread(f, stop_before_pixels=True, force=True).SOPInstanceUID)
            except Exception:
                continue
            names.setdefault(uid, []).append(f.name)
        index = srv.index
        patients = [r.id for r in index.resources("PATIENT")]
        instances: dict[str, Stored] = {}
        studies: set[str] = set()
        for rel, _sop_class, ts in index.files_under("PATIENT", patients):
            path = Path(srv.storage.absolute(rel))
            head = pydicom.dcmread(path, stop_before_pixels=True)
            studies.add(str(head.StudyInstanceUID))
            uid = str(head.SOPInstanceUID)
            name = " or ".join(names.get(uid, ["?"]))
            instances[uid] = Stored(path, name, ts, why_pydicom_cannot(path))
        assert len(instances) > 80, "pydicom's test files did not load"
        yield Loaded(srv, port, storescp_port, instances, sorted(studies))
    finally:
        srv.stop()  # type: ignore[attr-defined]


def _keys(loaded: Loaded) -> list[str]:
    # PS3.4 C.2.2.2.2: a list of UIDs is allowed in the unique key of a C-GET / C-MOVE.
    return ["-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID=" + "\\".join(loaded.studies)]


def _env() -> dict[str, str]:
    return {**os.environ, "TCP_NODELAY": "1"}  # Debian's DCMTK keeps Nagle on otherwise


def _received(folder: Path) -> dict[str, Path]:
    out = {}
    for f in folder.iterdir():
        out[str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID)] = f
    return out


def _report(what: str, loaded: Loaded, got: dict[str, Path]) -> str:
    lines = [f"{what}: {len(got)} of {len(loaded.instances)} instances came back; "
             f"pydicom can decode {len(loaded.expected())}"]  # fmt: skip
    for uid, s in sorted(loaded.instances.items(), key=lambda kv: kv[1].name):
        if uid not in got:
            why = s.cannot or "NOT SENT although pydicom decodes it"
            lines.append(f"  missing {s.name} ({UID(s.transfer_syntax).name}): {why}")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def got_by_getscu(loaded: Loaded, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("getscu")
    # getscu's default: it proposes only the uncompressed syntaxes for each storage class.
    p = subprocess.run(
        [need("getscu"), "-S", "-aet", "GETSCU", "-aec", AET, "-od", str(out),
         *_keys(loaded), "127.0.0.1", str(loaded.port)],
        capture_output=True, text=True, timeout=300, env=_env(),
    )  # fmt: skip
    assert "Association Accepted" in p.stdout + p.stderr or p.returncode == 0, p.stderr
    return _received(out)


@pytest.fixture(scope="module")
def got_by_movescu(loaded: Loaded, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("storescp")
    # storescp's default: it accepts only the uncompressed syntaxes.
    scp = subprocess.Popen(
        [need("storescp"), "-aet", "STORESCP", "-od", str(out), str(loaded.storescp_port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(),
    )  # fmt: skip
    try:
        wait_port(loaded.storescp_port, scp)
        p = subprocess.run(
            [need("movescu"), "-S", "-aet", "MOVESCU", "-aec", AET, "-aem", "STORESCP",
             *_keys(loaded), "127.0.0.1", str(loaded.port)],
            capture_output=True, text=True, timeout=300, env=_env(),
        )  # fmt: skip
        assert "Association Accepted" in p.stdout + p.stderr or p.returncode in (0, 68), p.stderr
    finally:
        scp.terminate()
        scp.wait(10)
    return _received(out)


def test_getscu_gets_back_every_instance_pydicom_can_decode(
    loaded: Loaded, got_by_getscu: dict[str, Path]
) -> None:
    report = _report("getscu", loaded, got_by_getscu)
    print(report)
    assert loaded.expected() <= set(got_by_getscu), report


def test_movescu_to_storescp_gets_back_every_instance_pydicom_can_decode(
    loaded: Loaded, got_by_movescu: dict[str, Path]
) -> None:
    report = _report("movescu -> storescp", loaded, got_by_movescu)
    print(report)
    assert loaded.expected() <= set(got_by_movescu), report


def _pixel_bytes(ds: pydicom.Dataset) -> int:
    n = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1))
    n *= int(ds.get("NumberOfFrames", 1) or 1)
    bits = int(ds.BitsAllocated)
    size = (n * bits + 7) // 8
    return size + size % 2  # PS3.5 7.1.1: values have an even length


@pytest.mark.parametrize("peer", ["getscu", "movescu"])
def test_converted_instances_are_correct(
    loaded: Loaded, peer: str, request: pytest.FixtureRequest
) -> None:
    got: dict[str, Path] = request.getfixturevalue(f"got_by_{peer}")
    converted = 0
    for uid, s in loaded.instances.items():
        if uid not in got or s.transfer_syntax in UNCOMPRESSED_LE:
            continue
        stored = pydicom.dcmread(s.path)
        received = pydicom.dcmread(got[uid])
        ts = str(received.file_meta.TransferSyntaxUID)
        if ts == s.transfer_syntax:
            assert not UID(ts).is_compressed, f"{s.name}: the peer accepted only uncompressed"
            continue  # storescp accepts Explicit VR Big Endian too: sent as stored
        assert ts in UNCOMPRESSED_LE, f"{s.name}: received in {UID(ts).name}"
        converted += 1
        # DCMTK reads the received file without complaint.
        dump = subprocess.run([need("dcmdump"), str(got[uid])], capture_output=True,
                              text=True, timeout=60)  # fmt: skip
        complaints = [ln for ln in dump.stderr.splitlines() if ln.startswith(("E:", "W:", "F:"))]
        assert dump.returncode == 0 and complaints == [], (s.name, complaints)
        if "PixelData" not in stored:
            continue
        # Decoded colour comes out as RGB and says so (PS3.3 C.7.6.3.1.2), interleaved.
        pi = str(stored.PhotometricInterpretation)
        if UID(s.transfer_syntax).is_compressed and pi.startswith("YBR"):
            assert received.PhotometricInterpretation == "RGB", s.name
        if UID(s.transfer_syntax).is_compressed and int(received.get("SamplesPerPixel", 1)) > 1:
            assert received.PlanarConfiguration == 0, s.name
        assert len(received.PixelData) == _pixel_bytes(received), s.name
        # The same pixels pydicom decodes from the stored file (colour converted to RGB).
        assert np.array_equal(received.pixel_array, stored.pixel_array), s.name
    assert converted >= 20, f"only {converted} instances needed converting: the set-up changed?"


def test_the_log_says_what_was_converted(
    loaded: Loaded, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    j2k = pydicom.dcmread(testdata("JPEG2000.dcm"), stop_before_pixels=True)
    assert str(j2k.SOPInstanceUID) in loaded.instances
    with caplog.at_level(logging.INFO, logger="dicomkit.pacs.qr"):
        p = subprocess.run(
            [need("getscu"), "-S", "-aet", "GETSCU", "-aec", AET, "-od", str(tmp_path),
             "-k", "QueryRetrieveLevel=IMAGE", "-k", f"StudyInstanceUID={j2k.StudyInstanceUID}",
             "-k", f"SeriesInstanceUID={j2k.SeriesInstanceUID}",
             "-k", f"SOPInstanceUID={j2k.SOPInstanceUID}", "127.0.0.1", str(loaded.port)],
            capture_output=True, text=True, timeout=60, env=_env(),
        )  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    assert set(_received(tmp_path)) == {str(j2k.SOPInstanceUID)}
    said = [r.getMessage() for r in caplog.records if r.name == "dicomkit.pacs.qr"]
    assert any(
        str(j2k.SOPInstanceUID) in m and "decoded JPEG 2000 Image Compression to" in m for m in said
    ), said
