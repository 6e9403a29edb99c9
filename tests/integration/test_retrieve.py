"""Retrieval: `dicomkit retrieve` by C-MOVE (to the SCP it runs for the duration) and C-GET, on
every engine; and the receiving SCP itself against real senders (DCMTK storescu, the lean
sender with a cut file)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest

from dicomkit.dicom import dataset
from dicomkit.dicom.leanscu import OutgoingFile, StoreAssociation
from dicomkit.dicom.net import Peer
from dicomkit.dicom.receiver import InstanceWriter, file_name, listening
from tests.conftest import Lab, free_port, need, testdata
from tests.integration.test_workflow import order

pytestmark = [pytest.mark.orthanc, pytest.mark.dcmtk]  # native Orthanc; movescu, getscu, storescu


def acquire_study(lab: Lab, acc: str, tmp: Path, n: int = 2) -> list[Path]:
    order(lab, acc)
    files = []
    for i in range(n):
        f = tmp / f"img{i}.dcm"
        r = lab.cli("make-image", "--accession", acc, "--out", str(f), "--json")
        assert r.code == 0, r.err
        files.append(f)
    r = lab.cli("store", *map(str, files), "--json")
    assert r.code == 0, r.out + r.err
    return files


def _dcmdump_clean(path: Path) -> None:
    out = subprocess.run([need("dcmdump"), str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    bad = [ln for ln in (out.stdout + out.stderr).splitlines() if ln[:2] in ("E:", "W:", "F:")]
    assert not bad, bad


@pytest.mark.parametrize("method", ["move", "get"])
def test_retrieve_by_accession(lab: Lab, tmp_path: Path, method: str) -> None:
    acc = f"RT-{lab.engine[:3].upper()}-{method.upper()}"
    sent = {
        pydicom.dcmread(f).SOPInstanceUID: pydicom.dcmread(f)
        for f in acquire_study(lab, acc, tmp_path)
    }
    out = tmp_path / "out"
    args = ["retrieve", "--accession", acc, "--out", str(out), "--json"]
    r = lab.cli(*args, *(["--get"] if method == "get" else []))
    assert r.code == 0, r.out + r.err
    d = r.json()
    assert d["ok"] is True and d["method"] == ("C-GET" if method == "get" else "C-MOVE")
    assert d["completed"] == 2 and d["failed"] == 0 and d["received"] == 2
    if method == "move":
        assert d["destination"] == f"DICOMKIT@127.0.0.1:{lab.cfg.retrieve_port}"
    for inst in d["instances"]:
        uid = inst["sop_instance_uid"]
        assert inst["status"] == 0 and inst["status_hex"] == "0x0000"
        path = Path(inst["path"])
        # Named by a hash of the UID, never by the UID itself; no temporary file left.
        assert path.parent == out and path.name == file_name(uid)
        got = pydicom.dcmread(path)
        assert got.SOPInstanceUID == uid and got.file_meta.MediaStorageSOPInstanceUID == uid
        assert got.PixelData == sent[uid].PixelData
        assert got.AccessionNumber == acc
        _dcmdump_clean(path)
    assert sorted(p.name for p in out.iterdir()) == sorted(file_name(u) for u in sent)


def test_retrieve_by_study_uid_and_human_output(lab: Lab, tmp_path: Path) -> None:
    acc = f"RT-{lab.engine[:3].upper()}-UID"
    files = acquire_study(lab, acc, tmp_path, n=1)
    study = str(pydicom.dcmread(files[0]).StudyInstanceUID)
    r = lab.cli("retrieve", "--study-uid", study, "--out", str(tmp_path / "o"))
    assert r.code == 0, r.out + r.err
    assert "C-MOVE" in r.out and "movescu" in r.out and "1 completed" in r.out


def test_move_destination_unknown_names_the_fix(lab: Lab, tmp_path: Path) -> None:
    acc = f"RT-{lab.engine[:3].upper()}-A801"
    files = acquire_study(lab, acc, tmp_path, n=1)
    study = str(pydicom.dcmread(files[0]).StudyInstanceUID)
    r = lab.cli("retrieve", "--study-uid", study, "--out", str(tmp_path / "o"),
                "--aet", "NOTREGISTERED", "--json")  # fmt: skip
    assert r.code == 1, r.out + r.err
    err = r.json()
    assert "message" in err, r.out
    assert "register" in err["hint"] and "--get" in err["hint"]
    # PS3.4 C.4.2.1.5 0xA801 Move destination unknown; Orthanc 1.10 answers 0xC000 instead.
    want = 0xC000 if lab.engine == "native" else 0xA801
    assert err["details"]["status"] == want
    if want == 0xA801:
        assert "unknown" in err["message"]


def test_retrieve_unknown_accession_fails(lab: Lab, tmp_path: Path) -> None:
    r = lab.cli("retrieve", "--accession", "RT-NOSUCH", "--out", str(tmp_path / "o"), "--json")
    assert r.code == 2 and r.json()["error"] == "StudyNotFound"


# ---- the receiving SCP against real senders (no lab needed) ------------------------------


def _receiver(tmp_path: Path) -> tuple[InstanceWriter, int]:
    out = tmp_path / "recv"
    out.mkdir()
    return InstanceWriter(out), free_port()


def test_receiver_takes_storescu(tmp_path: Path) -> None:
    writer, port = _receiver(tmp_path)
    f = testdata("CT_small.dcm")
    with listening("DICOMKIT", "127.0.0.1", port, writer=writer):
        run = subprocess.run([need("storescu"), "-aet", "STORESCU", "-aec", "DICOMKIT",
                              "127.0.0.1", str(port), str(f)], capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0, run.stderr
    [rec] = writer.received
    assert rec.ok and rec.calling_aet == "STORESCU"
    sent, got = pydicom.dcmread(f), pydicom.dcmread(rec.path)
    assert got.SOPInstanceUID == sent.SOPInstanceUID and got.PixelData == sent.PixelData
    _dcmdump_clean(Path(rec.path))


def _send_raw(port: int, f: Path, sop_instance: str | None = None) -> tuple[int, str]:
    meta = dataset.read_meta(f.read_bytes())  # the File Meta only: the file may be cut
    sa = StoreAssociation(Peer("127.0.0.1", port, "DICOMKIT"), "FAULTY", 10)
    sa.open([(meta.sop_class, meta.transfer_syntax)])
    try:
        return sa.store(OutgoingFile(f, meta.sop_class, sop_instance or meta.sop_instance,
                                     meta.transfer_syntax, meta.offset))  # fmt: skip
    finally:
        sa.release()


def test_receiver_refuses_a_cut_data_set_and_a_uid_mismatch(tmp_path: Path) -> None:
    # A real PACS does not send cut data sets: the lean sender sends a cut file as it is.
    writer, port = _receiver(tmp_path)
    cut = tmp_path / "cut.dcm"
    whole = testdata("CT_small.dcm").read_bytes()
    cut.write_bytes(whole[: len(whole) - 1000])
    good = tmp_path / "good.dcm"
    shutil.copy(testdata("CT_small.dcm"), good)
    with listening("DICOMKIT", "127.0.0.1", port, writer=writer):
        code, comment = _send_raw(port, cut)
        assert code == 0xC000 and "not whole" in comment  # PS3.4 B.2.3 Cannot understand
        code, comment = _send_raw(port, good, sop_instance="1.2.3.4.5")
        assert code == 0xA900  # PS3.4 B.2.3 Data Set does not match SOP Class
    assert [r.status for r in writer.received] == [0xC000, 0xA900]
    assert all(r.path == "" for r in writer.received)
    assert list(writer.out_dir.iterdir()) == []  # nothing written, no temporary file left


def test_port_taken_is_a_clear_error(tmp_path: Path) -> None:
    from dicomkit.errors import ConfigError

    writer, port = _receiver(tmp_path)
    first = listening("DICOMKIT", "127.0.0.1", port, writer=writer)
    second = listening("DICOMKIT", "127.0.0.1", port, writer=writer)
    with first, pytest.raises(ConfigError) as err, second:
        pass
    assert "DICOMKIT_RETRIEVE_PORT" in err.value.hint


def test_status_names_the_retrieve_and_commitment_endpoints(lab: Lab) -> None:
    d = lab.cli("status", "--json").json()
    ours = {"aet": "DICOMKIT", "dicom": f"127.0.0.1:{lab.cfg.retrieve_port}"}
    assert d["retrieve"] == ours
    assert d["storage_commitment"] == {
        "scp": {"aet": "ORTHANC", "dicom": f"127.0.0.1:{lab.cfg.dicom_port}"},
        "requestor": ours,
    }


def _dcmtk(tool: str) -> str:
    """DCMTK's tool, not pynetdicom's console script of the same name (an active venv)."""
    path = need(tool)
    out = subprocess.run([path, "--version"], capture_output=True, text=True)
    if "dcmtk" not in out.stdout.lower():
        pytest.skip(f"{path} is not DCMTK's {tool}")
    return path


def _pixels(folder: Path) -> dict[str, bytes]:
    out = {}
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        out[str(ds.SOPInstanceUID)] = ds.PixelData
    return out


@pytest.mark.parametrize("method", ["move", "get"])
def test_same_instances_as_dcmtk(lab: Lab, tmp_path: Path, method: str) -> None:
    acc = f"RT-{lab.engine[:3].upper()}-DK{method[0].upper()}"
    files = acquire_study(lab, acc, tmp_path)
    study = str(pydicom.dcmread(files[0]).StudyInstanceUID)
    ours, theirs = tmp_path / "ours", tmp_path / "dcmtk"
    theirs.mkdir()
    r = lab.cli("retrieve", "--study-uid", study, "--out", str(ours),
                *(["--get"] if method == "get" else []))  # fmt: skip
    assert r.code == 0, r.out + r.err
    port = str(lab.cfg.dicom_port)
    keys = ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}"]
    if method == "get":
        argv = [_dcmtk("getscu"), "-S", "-aet", "DICOMKIT", "-aec", "ORTHANC", *keys,
                "-od", str(theirs), "127.0.0.1", port]  # fmt: skip
    else:
        # movescu is its own C-MOVE destination: AE DICOMKIT on the port the lab knows it by.
        argv = [_dcmtk("movescu"), "-S", "-aet", "DICOMKIT", "-aec", "ORTHANC", "-aem",
                "DICOMKIT", "+P", str(lab.cfg.retrieve_port), *keys, "-od", str(theirs),
                "127.0.0.1", port]  # fmt: skip
    run = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert _pixels(ours) == _pixels(theirs) and len(_pixels(ours)) == 2


def test_bad_input_is_a_usage_error(tmp_path: Path) -> None:
    from tests.conftest import lab_env

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        import sys

        return subprocess.run([sys.executable, "-m", "dicomkit", *args, "--json"],
                              env=lab_env(tmp_path / "home"), capture_output=True, text=True)  # fmt: skip

    a_file = tmp_path / "f"
    a_file.write_text("x")
    for args in (
        ["retrieve", "--out", str(a_file), "--accession", "A"],  # --out is a file
        ["retrieve", "--out", str(tmp_path / "o")],  # no study named
        ["retrieve", "--out", str(tmp_path / "o"), "--accession", "A", "--study-uid", "1.2"],
        ["commit"],  # nothing named
        ["commit", str(a_file)],  # not DICOM
    ):
        r = cli(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert json.loads(r.stdout)["hint"], args


def test_pacs_log_names_each_retrieve(lab: Lab, tmp_path: Path) -> None:
    if lab.engine != "embedded":
        pytest.skip("the embedded PACS's log lines (Orthanc logs in its own words)")
    acc = "RT-EMB-LOG"
    acquire_study(lab, acc, tmp_path, n=1)
    assert lab.cli("retrieve", "--accession", acc, "--out", str(tmp_path / "m")).code == 0
    assert lab.cli("retrieve", "--accession", acc, "--out", str(tmp_path / "g"), "--get").code == 0
    text = (lab.cfg.log_dir / "pacs.log").read_text()
    assert (
        f"C-MOVE of 1 instance(s) from DICOMKIT to DICOMKIT@127.0.0.1:{lab.cfg.retrieve_port}"
        in text
    )
    assert "C-GET of 1 instance(s) by DICOMKIT" in text


@pytest.mark.parametrize("method", ["move", "get"])
def test_compressed_instance_arrives_as_stored(lab: Lab, tmp_path: Path, method: str) -> None:
    f = testdata("JPEG2000.dcm")  # JPEG 2000 Lossless: our contexts take it as it is
    sent = pydicom.dcmread(f)
    r = lab.cli("store", str(f), "--json")
    assert r.code == 0, r.out + r.err
    out = tmp_path / "out"
    r = lab.cli("retrieve", "--study-uid", str(sent.StudyInstanceUID), "--out", str(out),
                "--json", *(["--get"] if method == "get" else []))  # fmt: skip
    assert r.code == 0, r.out + r.err
    [inst] = r.json()["instances"]
    assert inst["transfer_syntax"] == sent.file_meta.TransferSyntaxUID
    got = pydicom.dcmread(inst["path"])
    assert got.file_meta.TransferSyntaxUID == sent.file_meta.TransferSyntaxUID
    assert got.PixelData == sent.PixelData
