"""The command line as the README promises it (issue 14), on the real entry point: the embedded
PACS runs in this process on free ports, the CLI in a subprocess. No external peer."""

from __future__ import annotations

import datetime as dt
import http.server
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, start_pacs, testdata
from tests.robustness.conftest import cli as run_cli

AET = "ORTHANC"


def cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, home=home, **env)


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    srv = start_pacs(tmp_path_factory.mktemp("pacs"), AET, always_allow_find_worklist=True)
    try:
        yield srv
    finally:
        srv.stop()


def peer(pacs: Any, mwl: bool = False) -> str:
    return f"127.0.0.1:{pacs.cfg.mwl_port if mwl else pacs.cfg.dicom_port}:{AET}"


def schedule(pacs: Any, accession: str) -> Path:
    """A worklist item in the PACS's folder, written as the RIS writes it."""
    from dicomkit.dicom.worklist import build_item, new_item_id, write_item
    from dicomkit.ris.models import OrderIn, OrderOut

    order = OrderIn(patient_id="P-14", patient_name="TEST^CLI", accession=accession,
                    modality="CR", study_desc="XR CHEST")  # fmt: skip
    now = dt.datetime.now()
    item_id = new_item_id()
    out = OrderOut(order=order, worklist_item_id=item_id, study_instance_uid="1.2.3.14",
                   requested_procedure_id="RP1", scheduled_procedure_step_id="SPS1",
                   scheduled_date=now.strftime("%Y%m%d"), scheduled_time="0900",
                   station_aet="DICOMKIT", created=now.isoformat())  # fmt: skip
    return write_item(pacs.cfg.worklist_dir, item_id, build_item(out))


# ---- bad input is exit 2, before anything is sent -------------------------------------


def test_logs_of_an_unknown_service_is_bad_input(tmp_path: Path) -> None:
    r = cli(tmp_path, "logs", "orthanc", "--json")
    assert r.returncode == 2, r.stdout + r.stderr
    assert json.loads(r.stdout)["hint"] == "choose one of: pacs, ris"


def test_logs_json_is_one_object_a_line(tmp_path: Path) -> None:
    from dicomkit.config import LabConfig
    from dicomkit.engines.state import LabState, ServiceState, write_state

    cfg = LabConfig(home=tmp_path)
    log = tmp_path / "ris.log"
    log.write_text('INFO started\nGET /orders "200"\n')
    state = LabState("embedded", cfg.endpoints(dicomweb=False))
    state.services["ris"] = ServiceState("ris", log=str(log))
    write_state(cfg, state)
    r = cli(tmp_path, "logs", "ris", "--json")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert lines == [{"service": "ris", "line": "INFO started"},
                     {"service": "ris", "line": 'GET /orders "200"'}]  # fmt: skip


def test_negative_jobs_is_refused(tmp_path: Path) -> None:
    r = cli(tmp_path, "store", "--jobs", "-3", str(testdata("CT_small.dcm")), "--json")
    assert r.returncode == 2, r.stdout + r.stderr
    d = json.loads(r.stdout)
    assert d["error"] == "UsageError" and "-3" in d["message"]


def test_usage_errors_are_json_with_json(tmp_path: Path) -> None:
    r = cli(tmp_path, "echo", "--no-such-flag", "--json")
    assert r.returncode == 2
    assert "--no-such-flag" in json.loads(r.stdout)["message"]


# ---- store: files that are not instances to store are refused up front -----------------


def test_store_refuses_non_dicom_and_worklist_files_and_sends_the_rest(
    pacs: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "ct.dcm").write_bytes(testdata("CT_small.dcm").read_bytes())
    (folder / "notes.txt").write_text("not dicom at all")
    wl = schedule(pacs, "ACC-WL")
    (folder / "item.wl").write_bytes(wl.read_bytes())
    r = cli(tmp_path, "store", str(folder), "--to", peer(pacs), "--json")
    assert r.returncode == 1, r.stdout + r.stderr
    d = json.loads(r.stdout)
    assert d["sent"] == 1 and d["failed"] == 0
    why = {Path(f["path"]).name: f["error"] for f in d["files"] if not f["ok"]}
    assert why["item.wl"].startswith("not a storage SOP class: 1.2.840.10008.5.1.4.31")
    assert why["notes.txt"].startswith("not a DICOM file")
    # In words: pydicom's advice to programmers is not shown, nor --resume (nothing to resend).
    r = cli(tmp_path, "store", str(folder / "notes.txt"), "--to", peer(pacs))
    assert r.returncode == 1
    assert "force=True" not in r.stderr and "--resume" not in r.stderr
    assert "not a DICOM file" in r.stderr


# ---- make-image --out FOLDER -----------------------------------------------------------


def test_make_image_into_a_folder(pacs: Any, tmp_path: Path) -> None:
    schedule(pacs, "ACC-OUT")
    out = tmp_path / "images"
    out.mkdir()
    r = cli(tmp_path, "make-image", "-a", "ACC-OUT", "--to", peer(pacs, mwl=True),
            "--out", f"{out}/", "--json")  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    made = Path(json.loads(r.stdout)["file"])
    assert made.parent == out and made.suffix == ".dcm" and made.stat().st_size > 0
    # A folder that does not exist yet, named with a trailing slash, is made.
    r = cli(tmp_path, "make-image", "-a", "ACC-OUT", "--to", peer(pacs, mwl=True),
            "--out", f"{tmp_path}/new/", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert Path(json.loads(r.stdout)["file"]).parent == tmp_path / "new"


# ---- empty results say why -------------------------------------------------------------


def test_empty_results_say_nothing_matched_and_which_filter(pacs: Any, tmp_path: Path) -> None:
    r = cli(tmp_path, "worklist", "find", "-a", "NO-SUCH", "--station", "NOPE",
            "--to", peer(pacs, mwl=True))  # fmt: skip
    assert r.returncode == 0, r.stderr
    flat = " ".join(r.stdout.split())
    assert "no worklist item" in flat and "matched AccessionNumber=NO-SUCH" in flat
    assert "--date" in flat and "--station" in flat
    r = cli(tmp_path, "studies", "-a", "NO-SUCH", "--to", peer(pacs))
    assert r.returncode == 0, r.stderr
    flat = " ".join(r.stdout.split())
    assert "no study" in flat and "--date" in flat


# ---- echo to an HTTP port fails at once --------------------------------------------------


def test_echo_to_an_http_port_fails_fast(tmp_path: Path) -> None:
    """A real HTTP server (the stdlib's) waits for a request line that an A-ASSOCIATE-RQ never
    ends, as Orthanc's web server does."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        t0 = time.monotonic()
        r = cli(tmp_path, "echo", "--to", f"127.0.0.1:{server.server_port}:{AET}", "--json")
        took = time.monotonic() - t0
    finally:
        server.shutdown()
        server.server_close()
    assert r.returncode == 3, r.stdout + r.stderr
    d = json.loads(r.stdout)
    assert "HTTP server" in d["message"] and "DICOM port" in d["hint"]
    assert took < 5  # the timeout is 10 s


# ---- pynetdicom's scripts shadowing DCMTK's ----------------------------------------------


def test_a_shadowed_dcmtk_tool_is_named(pacs: Any, tmp_path: Path) -> None:
    from dicomkit.dicom.tools import shadowing_script

    venv_bin = str(Path(sys.executable).parent)
    if not (Path(venv_bin) / "echoscu").exists():
        pytest.skip("pynetdicom's console scripts are not installed beside this interpreter")
    r = cli(tmp_path, "echo", "--to", peer(pacs), PATH=f"{venv_bin}{os.pathsep}/usr/bin")
    assert r.returncode == 0, r.stderr
    assert "is pynetdicom's script" in r.stderr
    r = cli(tmp_path, "echo", "--to", peer(pacs), PATH=str(tmp_path))
    assert r.returncode == 0 and "pynetdicom" not in r.stderr
    assert shadowing_script("curl -sS http://x") is None


# ---- the lab table on an 80-column terminal ------------------------------------------------


def test_lab_table_keeps_every_address_whole_at_80_columns(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from rich.console import Console

    from dicomkit import ui
    from dicomkit.cli.lab import print_endpoints
    from dicomkit.config import LabConfig
    from dicomkit.engines.state import LabState

    ep = LabConfig(home=tmp_path, ris_port=15000, http_port=18042).endpoints(dicomweb=True)
    buf = io.StringIO()
    monkeypatch.setattr(ui, "console", Console(file=buf, width=80, theme=ui.THEME), raising=False)
    print_endpoints(LabState("native", ep))
    text = buf.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80
    for url in (ep.pacs_url, ep.ris_url, ep.dicomweb_url, f"{ep.host}:{ep.dicom_port}"):
        assert url in text, url


# ---- bench/ records no path of the machine that ran it ------------------------------------


def test_bench_results_name_no_absolute_path() -> None:
    text = (REPO / "bench" / "RESULTS.md").read_text()
    assert str(REPO.parent) not in text and "/bench/out/" not in text and "/venv/" not in text


def test_the_tutor_warns_where_it_prints_a_shadowed_dcmtk_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Lessons print their DCMTK commands through ui.equivalent (tutor/screen.py)."""
    from rich.console import Console

    from dicomkit import ui

    venv_bin = Path(sys.executable).parent
    if not (venv_bin / "storescu").exists():
        pytest.skip("pynetdicom's console scripts are not installed beside this interpreter")
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(ui, "console", Console(file=out, width=200), raising=False)
    monkeypatch.setattr(ui, "err_console", Console(file=err, width=200), raising=False)
    monkeypatch.setenv("PATH", str(venv_bin))
    ui.equivalent("storescu -aet DICOMKIT -aec ORTHANC +sd +r 127.0.0.1 4242 img.dcm")
    assert "storescu -aet DICOMKIT" in out.getvalue()
    assert "is pynetdicom's script" in err.getvalue()
