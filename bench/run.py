#!/usr/bin/env python3
"""Side-by-side benchmarks: dicomkit and its peer (DCMTK, Orthanc) run alternately in the same
run; medians and the ratio are printed, and ``bench/RESULTS.md`` is rewritten.

    python bench/run.py                  # every bench (~5 minutes on 2 cores), rewrites RESULTS.md
    python bench/run.py help echo        # only these benches (RESULTS.md gets only these rows)
    python bench/run.py --reps 3 store   # fewer repetitions
    python bench/run.py scale            # archive growth, 1k and 10k instances (~10 min)
    python bench/run.py scale --sizes 1000,10000,100000   # and 100k (~45 min more)

Public tools only: time.perf_counter around whole processes (and around in-process calls where
said), DCMTK by absolute path (/usr/bin/storescu: the venv's pynetdicom ships a storescu too).
Every server runs on free ports with its own temporary folder under bench/out/ (gitignored);
the user's lab and home are never touched. DCMTK tools and Orthanc (which is built on DCMTK) get
TCP_NODELAY=1 in their environment, as dicomkit sets TCP_NODELAY on its own sockets: without it
every small DIMSE message on loopback stalls ~40 ms (Nagle + delayed ACK).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime as dt
import itertools
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / "out"
DATA = OUT / "data"
PY = sys.executable
_script = Path(PY).parent / "dicomkit"
DICOMKIT = [str(_script)] if _script.exists() else [PY, "-m", "dicomkit"]
INSTALL = "the running venv's `dicomkit` script"  # how DICOMKIT was installed (RESULTS.md)
PACS_PY = PY  # the interpreter that runs the embedded PACS (the wheel's venv once it is built)
ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
DCMTK = Path("/usr/bin")
NODELAY = {"TCP_NODELAY": "1"}
HOST = "127.0.0.1"
AET = "DICOMKIT"  # a known AE in compose/orthanc.json (Orthanc answers its worklist queries)
PACS_AET = "ORTHANC"
TIMEOUT = 180.0  # seconds: no single step of a bench may hang the run

sys.path.insert(0, str(REPO))


# ---- small helpers ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def port_answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.3):
            return True
    except OSError:
        return False


def http_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready within {timeout:.0f} s")
        time.sleep(0.02)


SRC: Path | None = None  # --src: run the dicomkit found in this folder (a before/after check)


def install_wheel() -> None:
    """Measure dicomkit as README's `pip install .` installs it: a wheel of this checkout in its
    own venv (a private folder under bench/out/). A development venv's editable install costs ~20 ms more per
    process (setuptools' import finder). The venv reaches the dependencies through a .pth file
    naming the running interpreter's site-packages, so nothing is downloaded but the build
    backend. Falls back to the running venv's script (and says so) when the build fails."""
    global DICOMKIT, INSTALL, PACS_PY
    import sysconfig

    # Private to this run (two runs at once must not rebuild each other's venv); removed at exit.
    OUT.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="install-", dir=OUT))
    atexit.register(shutil.rmtree, scratch, True)
    wheels, venv = scratch / "wheel", scratch / "venv"
    src = scratch / "src"  # a copy: pip builds in the source folder (build/, *.egg-info)
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "out")
    for part in ("pyproject.toml", "README.md", "dicomkit", "lessons", "compose"):
        if (REPO / part).is_dir():
            shutil.copytree(REPO / part, src / part, ignore=skip)
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(REPO / part, src / part)
    build = subprocess.run(
        [PY, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(src)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    found = sorted(wheels.glob("dicomkit-*.whl"))
    if build.returncode != 0 or not found:
        say(f"(could not build a wheel, measuring {DICOMKIT[0]}: {build.stderr.strip()[-200:]})")
        return
    subprocess.run([PY, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=TIMEOUT)
    vpy = venv / "bin" / "python"
    subprocess.run(
        [
            PY,
            "-m",
            "pip",
            "--python",
            str(vpy),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(found[-1]),
        ],
        check=True,
        timeout=TIMEOUT,
    )
    purelib = Path(
        subprocess.run(
            [str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (purelib / "_bench_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    DICOMKIT, PACS_PY = [str(venv / "bin" / "dicomkit")], str(vpy)
    INSTALL = f"a wheel of this checkout in its own venv (`pip install .`), {found[-1].name}"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DICOMKIT_")}
    if SRC is not None:
        env["PYTHONPATH"] = str(SRC)
    env["COLUMNS"] = "100"
    env.update(extra)
    return env


CPU: dict[str, list[float]] = {}  # CPU seconds (user + sys) of timed processes, by label


def timed(
    argv: list[str], env: dict[str, str] | None = None, check: bool = True, label: str = ""
) -> float:
    """Wall seconds of a whole process (output discarded, failure raised). Its CPU time goes
    to CPU[label]: less sensitive than wall time to other load on a shared machine."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(argv, env=env, capture_output=True, timeout=TIMEOUT)
    s = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if label:
        cpu = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
        CPU.setdefault(label, []).append(cpu)
    if check and p.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {p.returncode}:\n{p.stdout.decode()[-800:]}\n"
            f"{p.stderr.decode()[-800:]}"
        )
    return s


def run_json(argv: list[str], env: dict[str, str]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    p = subprocess.run(argv, env=env, capture_output=True, timeout=TIMEOUT, text=True)
    s = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return s, json.loads(p.stdout)


def rotated(names: list[str], r: int) -> list[str]:
    """``names`` starting at position r: each side goes first in turn across repetitions."""
    k = r % len(names)
    return names[k:] + names[:k]


def store_argv(port: int, folder: Path, which: str) -> list[str]:
    """`dicomkit store` to a PACS on ``port``; ``which`` "dicomkit_jobs1" on one association."""
    jobs = ["--jobs", "1"] if which == "dicomkit_jobs1" else []
    return [*DICOMKIT, "store", *jobs, "--to", f"{HOST}:{port}:{PACS_AET}", "--json", str(folder)]


def shown(argv: list[str]) -> str:
    """A command line as RESULTS.md shows it: no path of the machine that ran it."""
    words = []
    for w in argv:
        if w == PY:
            w = "python"
        elif w == DICOMKIT[0] or w.endswith("/dicomkit"):
            w = "dicomkit"
        elif w.startswith(str(REPO) + os.sep):
            w = os.path.relpath(w, REPO)
        words.append(w)
    return " ".join(words)


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    OUT.mkdir(parents=True, exist_ok=True)
    d = Path(tempfile.mkdtemp(prefix=prefix, dir=OUT))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@contextlib.contextmanager
def process(
    argv: list[str],
    log: Path,
    ready: Callable[[], bool],
    what: str,
    env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=env)
    try:
        try:
            wait_for(lambda: proc.poll() is None and ready(), what)
        except RuntimeError:
            tail = log.read_text(errors="replace")[-1500:]
            raise RuntimeError(f"{what}: see {log}\n{tail}") from None
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---- the servers ------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    port: int  # DICOM (C-STORE, C-ECHO)
    mwl_port: int
    count: Callable[[], int] = field(default=lambda: -1)
    http: str = ""  # http://HOST:PORT of its HTTP side (DICOMweb at /dicom-web)


def _lab_config(home: Path) -> Any:
    from dicomkit.config import LabConfig

    return LabConfig(
        home=home,
        dicom_port=free_port(),
        mwl_port=free_port(),
        http_port=free_port(),
        ris_port=free_port(),
    )


@contextlib.contextmanager
def orthanc(home: Path, worklists: Path | None = None, dicomweb: bool = False) -> Iterator[Server]:
    """Orthanc with the lab's own configuration (SyncStorageArea: durable), fresh storage;
    its DICOMweb plugin only when asked for."""
    from dicomkit.engines.native import orthanc_plugins
    from dicomkit.engines.orthanc_config import orthanc_config

    cfg = _lab_config(home)
    conf = orthanc_config(cfg, orthanc_plugins(ORTHANC))
    conf["StorageDirectory"] = conf["IndexDirectory"] = str(home / "orthanc-db")
    conf["Worklists"]["Database"] = str(worklists or home / "worklists")
    (worklists or home / "worklists").mkdir(parents=True, exist_ok=True)
    conf["DicomWeb"]["Enable"] = dicomweb
    path = home / "orthanc.json"
    path.write_text(json.dumps(conf))
    url = f"http://{HOST}:{cfg.http_port}"
    with process(
        [ORTHANC, str(path)],
        home / "orthanc.log",
        lambda: port_answers(cfg.dicom_port) and http_ok(f"{url}/system"),
        "Orthanc",
        env={**os.environ, **NODELAY},
    ):
        yield Server(
            "Orthanc",
            cfg.dicom_port,
            cfg.dicom_port,
            lambda: int(http_json(f"{url}/statistics")["CountInstances"]),
            url,
        )


@contextlib.contextmanager
def embedded(home: Path, worklists: Path | None = None) -> Iterator[Server]:
    """The embedded PACS exactly as `dicomkit up --engine embedded` configures it."""
    from dicomkit.engines.embedded import server_config

    cfg = _lab_config(home)
    conf = server_config(cfg)
    if worklists is not None:
        conf["worklist_dir"] = str(worklists)
    Path(conf["worklist_dir"]).mkdir(parents=True, exist_ok=True)
    path = home / "server.json"
    path.write_text(json.dumps(conf))
    url = f"http://{HOST}:{cfg.http_port}"
    # -P and clean_env: with --src, the package under test is SRC's, not the working folder's
    with process(
        [PACS_PY, "-P", "-m", "dicomkit.pacs", "--config", str(path)],
        home / "pacs.log",
        lambda: port_answers(cfg.dicom_port) and http_ok(f"{url}/status"),
        "embedded PACS",
        env=clean_env(),
    ):
        yield Server(
            "embedded",
            cfg.dicom_port,
            cfg.mwl_port,
            lambda: int(http_json(f"{url}/status")["counts"]["instances"]),
            url,
        )


@contextlib.contextmanager
def wlmscpfs(folder: Path, home: Path) -> Iterator[Server]:
    port = free_port()
    with process(
        [str(DCMTK / "wlmscpfs"), "-dfp", str(folder), str(port)],
        home / "wlm.log",
        lambda: port_answers(port),
        "wlmscpfs",
        env={**os.environ, **NODELAY},
    ):
        yield Server("wlmscpfs", port, port)


# ---- data (generated once, kept under bench/out/data) -----------------------------------


def _marker(folder: Path) -> Path:
    return folder.with_name(folder.name + ".complete")  # beside it: storescu +sd sends all files


def _done(folder: Path, n: int) -> bool:
    return _marker(folder).exists() and _marker(folder).read_text() == str(n)


def _copies_of_ct_small(folder: Path) -> Any:
    """An empty ``folder`` and pydicom's CT_small.dcm, to save changed copies of into it."""
    from pydicom import dcmread
    from pydicom.data import get_testdata_file

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return dcmread(get_testdata_file("CT_small.dcm"))


def small_files(n: int = 500) -> Path:
    """n copies of pydicom's CT_small.dcm (39 KB), each with its own SOP Instance UID."""
    folder = DATA / f"small-{n}"
    if _done(folder, n):
        return folder
    from pydicom.uid import generate_uid

    ds = _copies_of_ct_small(folder)
    for i in range(n):
        uid = generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.save_as(folder / f"ct{i:04d}.dcm", enforce_file_format=True)
    _marker(folder).write_text(str(n))
    return folder


def large_files(n: int = 20, size: int = 512) -> Path:
    """n CT images of size x size, 16 bits, noise (incompressible, like real data's low bits)."""
    folder = DATA / f"large-{n}x{size}"
    if _done(folder, n):
        return folder
    import numpy as np
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    rng = np.random.default_rng(7)
    ds = _copies_of_ct_small(folder)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Rows = ds.Columns = size
    ds.SeriesInstanceUID = generate_uid()
    for i in range(n):
        ds.PixelData = rng.integers(0, 4096, (size, size), dtype=np.uint16).tobytes()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = i + 1
        ds.save_as(folder / f"img{i:03d}.dcm", enforce_file_format=True)
    _marker(folder).write_text(str(n))
    return folder


def tiny_studies(n: int = 10_000) -> Path:
    """n studies of one 8x8 CT instance each (from CT_small), accessions ACC-00000..."""
    folder = DATA / f"studies-{n}"
    if _done(folder, n):
        return folder
    from pydicom.uid import generate_uid

    ds = _copies_of_ct_small(folder)
    ds.Rows = ds.Columns = 8
    ds.PixelData = bytes(128)
    for i in range(n):
        ds.PatientID, ds.PatientName = f"P{i % 3000:04d}", f"PATIENT^{i:05d}"
        ds.AccessionNumber = f"ACC-{i:05d}"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(folder / f"s{i:05d}.dcm", enforce_file_format=True)
    _marker(folder).write_text(str(n))
    return folder


def worklist_items(n: int = 10_000) -> Path:
    """n worklist items (.wl, the RIS's own encoding) in DIR/ORTHANC/ with the lockfile that
    wlmscpfs wants; Orthanc and the embedded PACS read DIR/ORTHANC directly."""
    root = DATA / f"mwl-{n}"
    folder = root / PACS_AET
    if _done(root, n):
        return root
    from dicomkit.dicom.worklist import build_item, encode, new_item_id
    from dicomkit.ris.models import OrderIn, OrderOut

    shutil.rmtree(root, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "lockfile").write_text("")
    order = OrderOut(
        order=OrderIn(
            patient_id="P0",
            patient_name="DOE^JANE",
            accession="ACC-0",
            modality="CT",
            study_desc="CT HEAD",
        ),
        worklist_item_id="",
        study_instance_uid="1.2.3",
        requested_procedure_id="RP0",
        scheduled_procedure_step_id="SPS0",
        scheduled_date="20260101",
        scheduled_time="0800",
        station_aet=AET,
        created="",
    )
    ds = build_item(order)
    sps = ds.ScheduledProcedureStepSequence[0]
    spots = {
        "acc": ("ACC-KKKKK", 1),
        "pid": ("PQQQQQ", 1),
        "name": ("DOEWW^JANEVVVVV", 1),
        "study": (_uid(4, 8_999_999), 1),
        "rp": ("RPXXXXX", 1),
        "sps": ("SPSYYYYY", 1),
        "date": ("20991129", 1),
        "item": (_uid(5, 8_999_999), 1),
    }
    ds.AccessionNumber, ds.PatientID = spots["acc"][0], spots["pid"][0]
    ds.PatientName, ds.StudyInstanceUID = spots["name"][0], spots["study"][0]
    ds.RequestedProcedureID, sps.ScheduledProcedureStepID = spots["rp"][0], spots["sps"][0]
    sps.ScheduledProcedureStepStartDate = spots["date"][0]
    ds.file_meta.MediaStorageSOPInstanceUID = spots["item"][0]
    template = _Template(encode(ds), spots)  # 100,000 encodes take minutes: patch one
    for i in range(n):
        data = template.fill(
            acc=f"ACC-{i:05d}",
            pid=f"P{i:05d}",
            name=f"DOE{i % 97:02d}^JANE{i:05d}",
            study=_uid(4, i),
            rp=f"RP{i:05d}",
            sps=f"SPS{i:05d}",
            date=f"2026{1 + i % 12:02d}{1 + i % 28:02d}",
            item=_uid(5, i),
        )
        (folder / f"{new_item_id()}.wl").write_bytes(data)
    _marker(root).write_text(str(n))
    return root


def files_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.dcm"))


# ---- results ----------------------------------------------------------------------------


@dataclass
class Row:
    bench: str
    dicomkit: str
    peer: str
    ratio: str  # >1: dicomkit is faster (time ratio peer/dicomkit, or rate ratio dicomkit/peer)
    target: str
    met: str
    command: str = ""
    note: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


ROWS: list[Row] = []


def say(msg: str) -> None:
    print(msg, flush=True)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def mark(ok: bool) -> str:
    return "yes" if ok else "**no**"


def ms(s: float) -> str:
    return f"{s * 1000:.0f} ms" if s >= 0.1 else f"{s * 1000:.1f} ms"


# ---- benches ----------------------------------------------------------------------------


def bench_store(reps: int) -> None:
    """500 small files: dicomkit store vs storescu into a fresh Orthanc each time, and the same
    storescu into a fresh embedded PACS (its ingest rate against Orthanc's)."""
    folder = small_files(500)
    n = 500
    env_dk = clean_env()
    storescu = [str(DCMTK / "storescu"), "-aet", AET, "-aec", PACS_AET, "+sd", "+r", HOST]
    kinds = ["dicomkit", "storescu", "storescu_embedded", "dicomkit_jobs1"]
    t: dict[str, list[float]] = {k: [] for k in kinds}
    inner: list[float] = []
    for r in range(reps):
        for which in rotated(kinds, r):
            with workdir("store-") as home:
                srv = embedded if which == "storescu_embedded" else orthanc
                with srv(home) as s:
                    if which.startswith("dicomkit"):
                        argv = store_argv(s.port, folder, which)
                        sec, out = run_json(argv, {**env_dk, "DICOMKIT_HOME": str(home)})
                        assert out["sent"] == n, out
                        if which == "dicomkit":
                            inner.append(out["seconds"])
                    else:
                        sec = timed([*storescu, str(s.port), str(folder)], clean_env(**NODELAY))
                    got = s.count()
                    assert got == n, f"{s.name} holds {got} instances, expected {n}"
            t[which].append(sec)
            say(f"  store-small rep {r + 1} {which}: {n / sec:.0f} inst/s")
    dk, sc, se, d1 = (n / median(t[k]) for k in kinds)
    ROWS.append(
        Row(
            "store 500 small files (CT_small, 39 KB) -> Orthanc",
            f"{dk:.0f} inst/s",
            f"storescu {sc:.0f} inst/s",
            ratio(dk, sc),
            ">= 1.0x",
            mark(dk >= sc),
            command=f"dicomkit store --to HOST:PORT:ORTHANC --json DIR  |  TCP_NODELAY=1 "
            f"/usr/bin/storescu -aet {AET} -aec {PACS_AET} +sd +r HOST PORT DIR",
            note=f"whole process, fresh Orthanc per run, dicomkit's default of 4 parallel "
            f"associations; its own transfer time {n / median(inner):.0f} inst/s (without "
            f"process start); on one association (`--jobs 1`) {d1:.0f} inst/s = {ratio(d1, sc)}",
            raw={"seconds": t, "inner_seconds": inner},
        )
    )
    ROWS.append(
        Row(
            "embedded PACS ingest, sender storescu, 500 small files",
            f"{se:.0f} inst/s",
            f"Orthanc {sc:.0f} inst/s",
            ratio(se, sc),
            ">= 1.0x Orthanc, durable",
            mark(se >= sc),
            command="TCP_NODELAY=1 /usr/bin/storescu ... +sd +r HOST PORT DIR, to each server",
            note="both fsync every instance before Success (Orthanc SyncStorageArea true; "
            "embedded: file + folder fsync)",
        )
    )
    say(
        f"store-small: dicomkit {dk:.0f}/s, storescu {sc:.0f}/s ({ratio(dk, sc)}); "
        f"embedded ingest {se:.0f}/s vs Orthanc {sc:.0f}/s ({ratio(se, sc)})"
    )


def bench_large(reps: int) -> None:
    folder = large_files(20, 512)
    n, mb = 20, files_bytes(folder) / 1e6
    storescu = [str(DCMTK / "storescu"), "-aet", AET, "-aec", PACS_AET, "+sd", "+r", HOST]
    kinds = ["dicomkit", "storescu", "dicomkit_jobs1"]
    t: dict[str, list[float]] = {k: [] for k in kinds}
    inner: list[float] = []
    for r in range(reps):
        for which in rotated(kinds, r):
            with workdir("large-") as home, orthanc(home) as s:
                if which.startswith("dicomkit"):
                    argv = store_argv(s.port, folder, which)
                    sec, out = run_json(argv, clean_env(DICOMKIT_HOME=str(home)))
                    assert out["sent"] == n, out
                    if which == "dicomkit":
                        inner.append(out["seconds"])
                else:
                    sec = timed([*storescu, str(s.port), str(folder)], clean_env(**NODELAY))
                assert s.count() == n
            t[which].append(sec)
            say(f"  store-large rep {r + 1} {which}: {mb / sec:.0f} MB/s")
    dk, sc = mb / median(t["dicomkit"]), mb / median(t["storescu"])
    dki, d1 = mb / median(inner), mb / median(t["dicomkit_jobs1"])
    ROWS.append(
        Row(
            f"store 20 x 512x512 16-bit ({mb:.1f} MB) -> Orthanc",
            f"{dk:.0f} MB/s",
            f"storescu {sc:.0f} MB/s",
            ratio(dk, sc),
            ">= 1.0x",
            mark(dk >= sc),
            command="same commands as the small-file bench",
            note=f"whole process, dicomkit's default of 4 parallel associations; its own "
            f"transfer time alone: {dki:.0f} MB/s ({ratio(dki, sc)} of storescu's whole "
            f"process); on one association (`--jobs 1`) {d1:.0f} MB/s = {ratio(d1, sc)}",
            raw={"seconds": t, "inner_seconds": inner},
        )
    )
    say(f"store-large: dicomkit {dk:.0f} MB/s (transfer {dki:.0f}), storescu {sc:.0f} MB/s")


def bench_mwl(reps: int) -> None:
    """One-match MWL query (by accession) among 10,000 items: association + C-FIND + release
    from the same in-process client (dicomkit's find_worklist) to each server, interleaved."""
    from dicomkit.dicom.net import Peer
    from dicomkit.dicom.scu import find_worklist
    from dicomkit.dicom.worklist import WorklistQuery

    n = 10_000
    root = worklist_items(n)
    q = WorklistQuery(accession=f"ACC-{n // 2:05d}")
    t: dict[str, list[float]] = {"embedded": [], "Orthanc": [], "wlmscpfs": []}
    with contextlib.ExitStack() as stack:
        h1 = stack.enter_context(workdir("mwl-emb-"))
        h2 = stack.enter_context(workdir("mwl-orth-"))
        h3 = stack.enter_context(workdir("mwl-wlm-"))
        t0 = time.perf_counter()
        servers = [
            stack.enter_context(embedded(h1, root / PACS_AET)),
            stack.enter_context(orthanc(h2, root / PACS_AET)),
            stack.enter_context(wlmscpfs(root, h3)),
        ]
        peers = {s.name: Peer(HOST, s.mwl_port, PACS_AET) for s in servers}
        # The embedded PACS loads the folder in the background after it is ready: wait for it.
        wait_for(
            lambda: len(find_worklist(peers["embedded"], AET, q)) == 1,
            "embedded worklist loaded",
            120,
        )
        load = time.perf_counter() - t0
        for r in range(reps):
            for name in rotated(list(t), r):
                t1 = time.perf_counter()
                rows = find_worklist(peers[name], AET, q, timeout=60)
                t[name].append(time.perf_counter() - t1)
                assert len(rows) == 1, (name, rows)
        # The C-FIND alone, on one open association per server (no association set-up).
        from pynetdicom.presentation import build_context

        from dicomkit.dicom.net import association
        from dicomkit.dicom.scu import MWL_FIND

        only: dict[str, list[float]] = {k: [] for k in t}
        with contextlib.ExitStack() as assocs:
            open_ = {
                k: assocs.enter_context(
                    association(peers[k], AET, [build_context(MWL_FIND)], timeout=60)
                )
                for k in t
            }
            for r in range(reps):
                for name in rotated(list(t), r):
                    t1 = time.perf_counter()
                    got = [
                        ds
                        for st, ds in open_[name].send_c_find(q.identifier(), MWL_FIND)
                        if ds is not None
                    ]
                    only[name].append(time.perf_counter() - t1)
                    assert len(got) == 1, (name, got)
    e, o, w = (median(t[k]) for k in ("embedded", "Orthanc", "wlmscpfs"))
    e1, o1, w1 = (median(only[k]) for k in ("embedded", "Orthanc", "wlmscpfs"))
    say(
        f"mwl: embedded {ms(e)}, Orthanc {ms(o)}, wlmscpfs {ms(w)}; C-FIND alone on an open "
        f"association: {ms(e1)}, {ms(o1)}, {ms(w1)}"
    )
    ROWS.append(
        Row(
            "MWL one-match query among 10,000 items",
            f"embedded {ms(e)}",
            f"Orthanc {ms(o)}, wlmscpfs {ms(w)}",
            f"{o / e:.0f}x / {w / e:.0f}x",
            "embedded <= 10 ms",
            mark(e <= 0.010),
            command="in-process: dicomkit.dicom.scu.find_worklist(peer, 'DICOMKIT', "
            "WorklistQuery(accession='ACC-05000')) = associate + C-FIND + release",
            note=f"same client for all three. The C-FIND alone on an already open association: "
            f"embedded {ms(e1)}, Orthanc {ms(o1)}, wlmscpfs {ms(w1)}. Servers started and the "
            f"embedded folder loaded in {load:.1f} s (before timing)",
            raw={"seconds": t, "cfind_only_seconds": only},
        )
    )


BARE_TYPER = HERE / "bare_typer.py"


def timed_tty(argv: list[str], env: dict[str, str]) -> float:
    """Wall seconds of a whole process whose stdin/stdout/stderr are a terminal (a pty of
    100 x 50), as when a user types the command; its output is read and discarded."""
    import fcntl
    import pty
    import struct
    import termios
    import threading

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 100, 0, 0))

    def drain() -> None:
        with contextlib.suppress(OSError):
            while os.read(master, 65536):
                pass

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, env=env, stdin=slave, stdout=slave, stderr=slave)
    # Not p.wait(TIMEOUT): with a timeout Popen.wait polls with sleeps doubling up to 50 ms, so
    # a 100 ms process was seen at 113 or 163 ms. A blocking wait, and a timer for the timeout.
    killer = threading.Timer(TIMEOUT, p.kill)
    killer.start()
    try:
        p.wait()
    finally:
        killer.cancel()
    sec = time.perf_counter() - t0
    os.close(slave)
    reader.join(5)
    os.close(master)
    if p.returncode != 0:
        raise RuntimeError(f"{argv} exited {p.returncode} on a terminal")
    return sec


def bench_help(reps: int) -> None:
    env = clean_env()
    cmds = {
        "dicomkit --help": [*DICOMKIT, "--help"],
        "python -c pass": [PY, "-c", "pass"],
        "bare Typer app --help": [PY, str(BARE_TYPER), "--help"],
    }
    tty_env = {k: v for k, v in env.items() if k != "COLUMNS"} | {"TERM": "xterm-256color"}
    t: dict[str, list[float]] = {k: [] for k in cmds}
    tty: dict[str, list[float]] = {"dicomkit --help": [], "bare Typer app --help": []}
    for _ in range(2):  # warm the page cache and .pyc files
        for argv in cmds.values():
            timed(argv, env)
    for r in range(reps):
        for k in rotated(list(cmds), r):
            t[k].append(timed(cmds[k], env, label=k))
        for k in rotated(list(tty), r):
            tty[k].append(timed_tty(cmds[k], tty_env))
    d, p, b = (median(v) for v in t.values())
    dt, bt = (median(v) for v in tty.values())
    dc, pc, bc = (median(CPU[k]) for k in cmds)
    say(
        f"help: dicomkit {ms(d)}, python -c pass {ms(p)}, bare Typer {ms(b)} "
        f"(CPU {ms(dc)}, {ms(pc)}, {ms(bc)}); on a terminal: dicomkit {ms(dt)}, bare Typer {ms(bt)}"
    )
    ROWS.append(
        Row(
            "`dicomkit --help`, whole process: on a terminal / piped",
            f"{ms(dt)} / {ms(d)}",
            f"bare Typer {ms(bt)} / {ms(b)}; python -c pass {ms(p)}",
            f"{bt / dt:.2f}x / {b / d:.2f}x of bare Typer",
            "<= 150 ms",
            mark(max(d, dt) <= 0.150),
            command=f"{shown(cmds['dicomkit --help'])}  |  python -c pass  |  "
            f"{shown(cmds['bare Typer app --help'])}",
            note="on a terminal (a 100-column pty, TERM=xterm-256color, timed with a blocking "
            "wait) and piped: click's plain help from the lazily loading group (cli/app.py), "
            "Rich not imported; the bare Typer app draws Rich panels. "
            f"CPU time piped (user+sys): dicomkit {ms(dc)}, python -c pass "
            f"{ms(pc)}, bare Typer {ms(bc)}",
            raw={"seconds": t, "tty_seconds": tty, "cpu_seconds": {k: CPU[k] for k in cmds}},
        )
    )


def bench_echo(reps: int) -> None:
    with workdir("echo-") as home, orthanc(home) as s:
        env = clean_env(DICOMKIT_HOME=str(home))
        cmds = {
            "dicomkit echo": [*DICOMKIT, "echo", "--to", f"{HOST}:{s.port}:{PACS_AET}"],
            "echoscu": [
                str(DCMTK / "echoscu"),
                "-aet",
                AET,
                "-aec",
                PACS_AET,
                HOST,
                str(s.port),
            ],
        }
        t: dict[str, list[float]] = {k: [] for k in cmds}
        for argv in cmds.values():
            timed(argv, {**env, **NODELAY})
        for r in range(reps):
            for k in rotated(list(cmds), r):
                t[k].append(timed(cmds[k], {**env, **NODELAY} if k == "echoscu" else env, label=k))
    d, e = median(t["dicomkit echo"]), median(t["echoscu"])
    dc, ec = median(CPU["dicomkit echo"]), median(CPU["echoscu"])
    say(f"echo: dicomkit {ms(d)}, echoscu {ms(e)} (CPU {ms(dc)}, {ms(ec)})")
    ROWS.append(
        Row(
            "`dicomkit echo` -> Orthanc, whole process",
            ms(d),
            f"echoscu {ms(e)}",
            ratio(e, d),
            "<= 150 ms",
            mark(d <= 0.150),
            command=f"dicomkit echo --to HOST:PORT:ORTHANC  |  TCP_NODELAY=1 /usr/bin/echoscu -aet "
            f"{AET} -aec {PACS_AET} HOST PORT",
            note=f"CPU time (user+sys): dicomkit {ms(dc)}, echoscu {ms(ec)}",
            raw={"seconds": t, "cpu_seconds": {k: CPU[k] for k in cmds}},
        )
    )


def bench_up(reps: int) -> None:
    """`dicomkit up` until it returns (it returns when every service answers), then down."""
    t: dict[str, list[float]] = {"native": [], "embedded": []}
    for r in range(reps):
        for engine in rotated(list(t), r):
            with workdir(f"up-{engine}-") as home:
                env = clean_env(
                    DICOMKIT_HOME=str(home),
                    DICOMKIT_DICOM_PORT=str(free_port()),
                    DICOMKIT_MWL_PORT=str(free_port()),
                    DICOMKIT_HTTP_PORT=str(free_port()),
                    DICOMKIT_RIS_PORT=str(free_port()),
                )
                try:
                    t[engine].append(timed([*DICOMKIT, "up", "--engine", engine, "--json"], env))
                finally:
                    timed([*DICOMKIT, "down"], env, check=False)
            say(f"  up rep {r + 1} {engine}: {ms(t[engine][-1])}")
    nat, emb = median(t["native"]), median(t["embedded"])
    say(f"up: native {ms(nat)}, embedded {ms(emb)}")
    ROWS.append(
        Row(
            "`dicomkit up` to ready (PACS + worklist + RIS answering)",
            f"native {nat:.2f} s, embedded {emb:.2f} s",
            "-",
            "-",
            "<= 2 s each",
            mark(nat <= 2 and emb <= 2),
            command="dicomkit up --engine native|embedded --json",
            note="fresh home and free ports each run; `dicomkit down` after each (not timed)",
            raw={"seconds": t},
        )
    )


def _storescu(port: int, folder: Path) -> None:
    argv = [str(DCMTK / "storescu"), "-aet", AET, "-aec", PACS_AET, "+sd", "+r", HOST, str(port)]
    timed([*argv, str(folder)], clean_env(**NODELAY))


def _related(files: list[Path]) -> tuple[bytes, str]:
    """A STOW-RS body (PS3.18 10.5.1) of these files and its Content-Type."""
    boundary = "dicomkit-bench-boundary"
    parts = [b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n"
             + f.read_bytes() + b"\r\n" for f in files]  # fmt: skip
    body = b"".join(parts) + b"--" + boundary.encode() + b"--\r\n"
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def bench_dicomweb(reps: int) -> None:
    """DICOMweb beside Orthanc's plugin, same files, same run: QIDO-RS one-match study search
    among 10,000 studies, WADO-RS retrieve of a 100-instance series."""
    import httpx

    studies, series = tiny_studies(10_000), large_files(100, 512)
    names = ["embedded", "Orthanc"]
    qido: dict[str, list[float]] = {k: [] for k in names}
    wado: dict[str, list[float]] = {k: [] for k in names}
    cold: dict[str, float] = {}
    size = files_bytes(series)
    from pydicom import dcmread

    head = dcmread(next(series.glob("*.dcm")), stop_before_pixels=True)
    series_path = f"/dicom-web/studies/{head.StudyInstanceUID}/series/{head.SeriesInstanceUID}"
    accept = 'multipart/related; type="application/dicom"; transfer-syntax=*'
    with (
        workdir("dw-e-") as he,
        workdir("dw-o-") as ho,
        embedded(he) as e,
        orthanc(ho, dicomweb=True) as o,
    ):
        servers = {"embedded": e, "Orthanc": o}
        for s in servers.values():
            say(f"  loading 10,000 studies + a 100-instance series into {s.name} (storescu)")
            _storescu(s.port, studies)
            _storescu(s.port, series)
            assert s.count() == 10_100, s.count()
        with httpx.Client(timeout=TIMEOUT) as client:
            for name, s in servers.items():
                t0 = time.perf_counter()
                r = client.get(f"{s.http}/dicom-web/studies?AccessionNumber=ACC-05000")
                cold[name] = time.perf_counter() - t0
                assert r.status_code == 200 and len(r.json()) == 1, (name, r.text[:200])
            for i in range(reps):
                for name in rotated(names, i):
                    url = f"{servers[name].http}/dicom-web/studies?AccessionNumber=ACC-{(i * 37) % 10_000:05d}"
                    t0 = time.perf_counter()
                    r = client.get(url)
                    qido[name].append(time.perf_counter() - t0)
                    assert r.status_code == 200 and len(r.json()) == 1, (name, r.text[:200])
            for i in range(max(3, reps // 4)):
                for name in rotated(names, i):
                    t0 = time.perf_counter()
                    got = 0
                    with client.stream("GET", servers[name].http + series_path,
                                           headers={"Accept": accept}) as r:  # fmt: skip
                        assert r.status_code == 200, (name, r.status_code)
                        for chunk in r.iter_bytes():
                            got += len(chunk)
                    wado[name].append(time.perf_counter() - t0)
                    assert got > 0.99 * size, (name, got, size)  # the PACS rewrites the meta
                    say(f"  wado rep {i + 1} {name}: {size / 1e6 / wado[name][-1]:.0f} MB/s")
    qe, qo = median(qido["embedded"]), median(qido["Orthanc"])
    ROWS.append(
        Row(
            "QIDO-RS study search, one match among 10,000 studies",
            ms(qe),
            f"Orthanc plugin {ms(qo)}",
            ratio(qo, qe),
            "embedded <= Orthanc",
            mark(qe <= qo),
            command="GET /dicom-web/studies?AccessionNumber=ACC-nnnnn (httpx, one keep-alive "
            "connection, a different accession each time)",
            note=f"{reps} queries per side, alternating; both loaded by storescu first. The first "
            f"query after new instances builds the embedded PACS's read cache: "
            f"embedded {ms(cold['embedded'])}, Orthanc {ms(cold['Orthanc'])} (first query)",
            raw={"seconds": qido, "first": cold},
        )
    )
    we, wo = (size / 1e6 / median(wado[k]) for k in names)
    ROWS.append(
        Row(
            f"WADO-RS retrieve of a 100-instance series ({size / 1e6:.0f} MB, 512x512 16-bit)",
            f"{we:.0f} MB/s",
            f"Orthanc plugin {wo:.0f} MB/s",
            ratio(we, wo),
            ">= 1.0x",
            mark(we >= wo),
            command=f"GET /dicom-web/studies/S/series/S, Accept: {accept} (streamed)",
            note="MB/s of the stored files' size over the whole response time",
            raw={"seconds": wado},
        )
    )
    say(f"dicomweb: qido {ms(qe)} vs {ms(qo)}; wado {we:.0f} vs {wo:.0f} MB/s")


def bench_stow(reps: int) -> None:
    """STOW-RS of 500 small instances in one request, into a fresh server each run: the
    embedded PACS beside Orthanc's DICOMweb plugin."""
    import httpx

    small = small_files(500)
    names = ["embedded", "Orthanc"]
    body, ctype = _related(sorted(small.glob("*.dcm")))
    stow: dict[str, list[float]] = {k: [] for k in names}
    for i in range(reps):
        for name in rotated(names, i):
            with workdir("dw-stow-") as home:
                srv = embedded if name == "embedded" else orthanc
                kwargs = {} if name == "embedded" else {"dicomweb": True}
                with srv(home, **kwargs) as s:
                    t0 = time.perf_counter()
                    r = httpx.post(f"{s.http}/dicom-web/studies", content=body,
                                   headers={"Content-Type": ctype}, timeout=TIMEOUT)  # fmt: skip
                    stow[name].append(time.perf_counter() - t0)
                    assert r.status_code == 200, (name, r.status_code, r.text[:300])
                    assert s.count() == 500, (name, s.count())
            say(f"  stow rep {i + 1} {name}: {500 / stow[name][-1]:.0f} inst/s")
    se, so = (500 / median(stow[k]) for k in names)
    ROWS.append(
        Row(
            "STOW-RS of 500 small instances (CT_small, 39 KB) in one request",
            f"{se:.0f} inst/s",
            f"Orthanc plugin {so:.0f} inst/s",
            ratio(se, so),
            ">= 1.0x",
            mark(se >= so),
            command="POST /dicom-web/studies, multipart/related; type=application/dicom, 500 parts",
            note="fresh server per run; both fsync every instance (Orthanc SyncStorageArea true)",
            raw={"seconds": stow},
        )
    )
    say(f"stow: {se:.0f} vs {so:.0f} inst/s")


# ---- scale: how each engine's cost grows with the archive (issue 18) ----------------------

SCALE_MARK_START, SCALE_MARK_END = "<!-- scale bench: start -->", "<!-- scale bench: end -->"
SCALE_SIZES = (1_000, 10_000)  # --sizes 1000,10000,100000 adds the 100k step (~25 min more)
# Syllables of synthetic family names: ~1,700 distinct names, so a 5-letter prefix picks out a
# patient or two among hundreds (the wildcard query), as in a real archive.
_SYLLABLES = ("BA", "KO", "MI", "RA", "SU", "TE", "NO", "LI", "DA", "VE", "GO", "PE")
_GIVEN = ("ANNA", "JOHN", "MARIA", "PAUL", "ELIF", "KENJI", "OLGA", "ARJUN", "SARA", "LUCA")
_UID_ROOT = "1.2.826.0.1.3680043.8.498.18."  # pydicom's root + this number
# orthanc-pg-N: `dicomkit up --engine native --nodes 2` (PostgreSQL index, shared storage),
# sent to through N of its nodes at once (one `dicomkit store` per node); queries go to node 1.
SCALE_ENGINES = ("embedded", "orthanc-sqlite", "orthanc-pg-1", "orthanc-pg-2")


@dataclass
class _Shape:
    """Where each instance of the synthetic archive sits: patient -> study -> series."""

    patient: int
    study: int
    series: int
    number: int
    series_size: int
    modality: str


def _scale_stream(total: int) -> Iterator[_Shape]:
    """The archive as a stream: patients with 1-4 studies, studies with 1-3 series, series of
    20-200 instances (log-uniform: many short series, some long ones). Seeded: the same
    archive every run, so the first N instances are always the same."""
    import math
    import random

    rng = random.Random(18)
    made = patient = study = series = 0
    while True:
        for _ in range(rng.randint(1, 4)):
            modality = rng.choice(("CT", "CT", "MR", "MR", "CR", "US"))
            for _ in range(rng.randint(1, 3)):
                size = int(math.exp(rng.uniform(math.log(20), math.log(200))))
                for k in range(size):
                    if made == total:
                        return
                    yield _Shape(patient, study, series, k + 1, size, modality)
                    made += 1
                series += 1
            study += 1
        patient += 1


def scale_patient_name(patient: int) -> str:
    a = _SYLLABLES
    n = patient * 7919  # spread neighbours apart in name space
    family = a[n % 12] + a[(n // 12) % 12] + a[(n // 144) % 12] + "V"
    return f"{family}^{_GIVEN[patient % len(_GIVEN)]}"


def scale_accession(study: int) -> str:
    return f"A{study:07d}"


class _Template:
    """One file written by pydicom (or the RIS's encoder) with a placeholder of each varying
    value's final length; its copies differ only in those bytes. Writing 100,000 files with
    pydicom one by one took over half an hour on this loaded 2-core machine."""

    def __init__(self, data: bytes, placeholders: dict[str, tuple[str, int]]) -> None:
        self.data = data
        self.spots: dict[str, tuple[list[int], int]] = {}
        for name, (text, count) in placeholders.items():
            raw, offsets, at = text.encode(), [], data.find(text.encode())
            while at >= 0:
                offsets.append(at)
                at = data.find(raw, at + 1)
            assert len(offsets) == count, (name, text, len(offsets))
            self.spots[name] = (offsets, len(raw))

    def fill(self, **values: str) -> bytes:
        buf = bytearray(self.data)
        for name, value in values.items():
            offsets, n = self.spots[name]
            raw = value.encode()
            assert len(raw) == n, (name, value, n)
            for at in offsets:
                buf[at : at + n] = raw
        return bytes(buf)


def _uid(kind: int, n: int) -> str:
    return f"{_UID_ROOT}{kind}.{1_000_000 + n}"  # fixed width (a template's placeholder)


def _instance_template() -> _Template:
    from io import BytesIO

    from pydicom.data import get_testdata_file
    from pydicom.filereader import dcmread

    ds = dcmread(get_testdata_file("CT_small.dcm"))
    ds.Rows = ds.Columns = 16
    ds.PixelData = bytes(16 * 16 * 2)
    for kw in ("OtherPatientIDs", "RequestAttributesSequence"):
        if kw in ds:
            del ds[kw]
    spots = {
        "name": ("QQQQQQQ^QQQQQQ", 1),
        "pid": ("PIDQQQQQQ", 1),
        "birth": ("18880808", 1),
        "acc": ("AQQQQQQQ", 1),
        "study_id": ("SQQQQ", 1),
        "date": ("20991129", 1),
        "desc": ("DQQQQQQQQQQ", 1),
        "study": (_uid(1, 8_999_999), 1),
        "series": (_uid(2, 8_999_999), 1),
        "sop": (_uid(3, 8_999_999), 2),  # the data set's and the file meta's
        "modality": ("QM", 1),
        "series_no": ("7331", 1),
        "number": ("7337", 1),
    }
    ds.PatientName, ds.PatientID = spots["name"][0], spots["pid"][0]
    ds.PatientBirthDate, ds.AccessionNumber = spots["birth"][0], spots["acc"][0]
    ds.StudyID, ds.StudyDate, ds.StudyDescription = (
        spots[k][0] for k in ("study_id", "date", "desc")
    )
    ds.StudyInstanceUID, ds.SeriesInstanceUID = spots["study"][0], spots["series"][0]
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = spots["sop"][0]
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "QM", "7331", "7337"
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return _Template(out.getvalue(), spots)


def scale_data(sizes: list[int]) -> list[Path]:
    """One folder per growth step (instances sizes[i-1]..sizes[i]), made once under bench/out."""
    bounds = [0, *sizes]
    folders = [DATA / f"scale-{a}-{b}" for a, b in itertools.pairwise(bounds)]
    if all(_done(f, b - a) for f, a, b in zip(folders, bounds, bounds[1:], strict=False)):
        return folders
    say(f"  writing the synthetic archive ({sizes[-1]:,} instances, once, under bench/out/data)")
    template = _instance_template()
    for n, shape in enumerate(_scale_stream(sizes[-1])):
        step = next(i for i, b in enumerate(bounds[1:]) if n < b)
        folder = folders[step]
        if _done(folder, bounds[step + 1] - bounds[step]):
            continue
        if n == bounds[step]:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
        p, st, se = shape.patient, shape.study, shape.series
        data = template.fill(
            name=scale_patient_name(p).ljust(14),
            pid=f"PID{p:06d}",
            birth=f"19{40 + p % 60:02d}0{1 + p % 9}15",
            acc=scale_accession(st),
            study_id=f"{st % 100000:05d}",
            date=f"20{20 + st % 6:02d}{1 + st % 12:02d}{1 + st % 28:02d}",
            desc=f"{shape.modality} STUDY {st % 17:02d}",
            study=_uid(1, st),
            series=_uid(2, se),
            sop=_uid(3, n),
            modality=shape.modality,
            series_no=f"{se % 10000:04d}",
            number=f"{shape.number:04d}",
        )
        (folder / f"i{n:07d}.dcm").write_bytes(data)
        if n + 1 == bounds[step + 1]:
            _marker(folder).write_text(str(bounds[step + 1] - bounds[step]))
    return folders


def _scale_studies(upto: int) -> list[tuple[str, str, str]]:
    """(accession, PatientID, StudyInstanceUID) of every study among the first ``upto``."""
    seen: dict[int, tuple[str, str, str]] = {}
    for s in _scale_stream(upto):
        seen.setdefault(
            s.study, (scale_accession(s.study), f"PID{s.patient:06d}", _uid(1, s.study))
        )
    return list(seen.values())


def disk_bytes(folder: Path) -> int:
    """Bytes the files under ``folder`` occupy on disk (allocated blocks, like du)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, f)).st_blocks * 512
    return total


@contextlib.contextmanager
def nodes_lab(home: Path) -> Iterator[tuple[list[Server], Path]]:
    """`dicomkit up --engine native --nodes 2` in ``home`` on free ports, as README starts it;
    its nodes (node 1 first) and its worklist folder. `down --volumes` afterwards."""
    home.chmod(0o755)  # PostgreSQL runs as the postgres user when we are root: it must get in
    ports = ("DICOM", "MWL", "HTTP", "RIS", "HL7", "MPPS", "RETRIEVE")
    env = clean_env(
        DICOMKIT_HOME=str(home), **{f"DICOMKIT_{p}_PORT": str(free_port()) for p in ports}
    )
    argv = [*DICOMKIT, "up", "--engine", "native", "--nodes", "2", "--json"]
    try:
        _, up = run_json(argv, env)
        servers = []
        for n, node in enumerate(up["nodes"]):
            url = node["http"]
            port = int(node["dicom"].rsplit(":", 1)[1])
            mwl = int(up["worklist"].rsplit(":", 1)[1]) if n == 0 else port
            count = lambda url=url: int(http_json(f"{url}/statistics")["CountInstances"])  # noqa: E731
            servers.append(Server(f"node {n + 1}", port, mwl, count, url))
        yield servers, home / "lab" / "worklists"
    finally:
        timed([*DICOMKIT, "down", "--volumes"], env, check=False)


@contextlib.contextmanager
def scale_server(
    engine: str, home: Path, worklists: Path
) -> Iterator[tuple[list[Server], Path, list[Path]]]:
    """The nodes of ``engine`` (one but for orthanc-pg-N), the worklist folder it reads, and
    the folders that hold its archive (storage + index)."""
    if engine == "embedded":
        with embedded(home, worklists) as s:
            yield [s], worklists, [home]
    elif engine == "orthanc-sqlite":
        with orthanc(home, worklists, dicomweb=True) as s:
            yield [s], worklists, [home / "orthanc-db"]
    elif engine.startswith("orthanc-pg-"):
        senders = int(engine.rsplit("-", 1)[1])
        with nodes_lab(home) as (nodes, wl):
            yield nodes[:senders], wl, [home / "lab" / "orthanc", home / "lab" / "postgres"]
    else:
        raise ValueError(f"unknown engine {engine!r}: choose from {', '.join(SCALE_ENGINES)}")


def _halves(chunk: Path, parts: int) -> list[Path]:
    """``chunk``'s files split into ``parts`` folders of hard links (one per sender), once."""
    if parts == 1:
        return [chunk]
    files = sorted(chunk.glob("*.dcm"))
    out = []
    for k in range(parts):
        part = chunk.with_name(f"{chunk.name}.part{k}of{parts}")
        mine = files[k::parts]
        if not _done(part, len(mine)):
            shutil.rmtree(part, ignore_errors=True)
            part.mkdir()
            for f in mine:
                os.link(f, part / f.name)
            _marker(part).write_text(str(len(mine)))
        out.append(part)
    return out


def _store_parallel(nodes: list[Server], chunk: Path, home: Path) -> tuple[int, float, float]:
    """One `dicomkit store` per node at once, each with its share of ``chunk``: (instances
    sent, seconds of the slowest one's transfer, wall seconds of the whole)."""
    procs = []
    t0 = time.perf_counter()
    for k, (node, part) in enumerate(zip(nodes, _halves(chunk, len(nodes)), strict=True)):
        env = clean_env(DICOMKIT_HOME=str(home / f"client{k}"))
        argv = [*DICOMKIT, "store", "--to", f"{HOST}:{node.port}:{PACS_AET}", "--json", str(part)]
        procs.append(
            subprocess.Popen(
                argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    sent, slowest = 0, 0.0
    for p in procs:
        out, err = p.communicate(timeout=3 * 3600)
        if p.returncode != 0:
            raise RuntimeError(f"dicomkit store exited {p.returncode}:\n{out[-800:]}\n{err[-800:]}")
        got = json.loads(out)
        sent += int(got["sent"])
        slowest = max(slowest, float(got["seconds"]))
    return sent, slowest, time.perf_counter() - t0


def _median_ms(xs: list[float]) -> float:
    return median(xs) * 1000


def _timed_calls(fn: Callable[[int], Any], reps: int) -> list[float]:
    out = []
    for i in range(reps):
        t0 = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t0)
    return out


def _scale_step(engine: str, s: Server, reps: int, upto: int, items: list[Path]) -> dict[str, Any]:
    """Every query class against an archive of ``upto`` instances: first query after the
    growth step (``*_first``) and the median of ``reps`` more."""
    import httpx
    from pydicom.dataset import Dataset
    from pynetdicom.presentation import build_context

    from dicomkit.dicom.net import Peer, association
    from dicomkit.dicom.scu import MWL_FIND, find_worklist
    from dicomkit.dicom.worklist import WorklistQuery

    study_root_find = "1.2.840.10008.5.1.4.1.2.2.1"
    studies = _scale_studies(upto)
    pick = [studies[(i * 7919) % len(studies)] for i in range(reps + 1)]
    target = scale_patient_name(0)[:5] + "*"
    out: dict[str, Any] = {"studies": len(studies)}

    def study_query(**keys: str) -> Dataset:
        q = Dataset()
        q.QueryRetrieveLevel = "STUDY"
        for kw in ("PatientName", "PatientID", "StudyDate", "StudyDescription",
                   "StudyInstanceUID", "AccessionNumber", "ModalitiesInStudy",
                   "NumberOfStudyRelatedInstances"):  # fmt: skip
            setattr(q, kw, keys.get(kw, ""))
        return q

    # MWL among as many worklist items as the archive has instances; first, so that the
    # embedded PACS has read the new items before anything else is timed (it reads them in
    # the background: timed beside the other queries, that reading slowed them).
    from pydicom import dcmread

    wl = dcmread(items[len(items) // 2], stop_before_pixels=True)
    q = WorklistQuery(accession=str(wl.AccessionNumber))
    mwl_peer = Peer(HOST, s.mwl_port, PACS_AET)
    if engine == "embedded":  # it says how many items it has read
        wait_for(lambda: http_json(f"{s.http}/status")["counts"]["worklist_items"] >= len(items),
                 f"embedded worklist of {len(items)} items read", 900)  # fmt: skip
    wait_for(lambda: len(find_worklist(mwl_peer, AET, q, timeout=TIMEOUT)) == 1,
             f"{engine} worklist of {len(items)} items loaded", 600)  # fmt: skip
    with association(mwl_peer, AET, [build_context(MWL_FIND)], timeout=TIMEOUT) as assoc:

        def mwl(i: int) -> None:
            got = [ds for st, ds in assoc.send_c_find(q.identifier(), MWL_FIND) if ds is not None]
            assert len(got) == 1, (engine, "MWL", len(got))

        out["mwl"] = median(_timed_calls(mwl, max(3, reps // 2)))
    out["mwl_items"] = len(items)

    peer = Peer(HOST, s.port, PACS_AET)
    with association(peer, AET, [build_context(study_root_find)], timeout=TIMEOUT) as assoc:

        def cfind(q: Dataset) -> int:
            got = [ds for st, ds in assoc.send_c_find(q, study_root_find) if ds is not None]
            return len(got)

        def by_acc(i: int) -> None:
            n = cfind(study_query(AccessionNumber=pick[i][0]))
            assert n == 1, (engine, "C-FIND accession", pick[i], n)

        times = _timed_calls(by_acc, reps + 1)
        out["cfind_acc_first"], out["cfind_acc"] = times[0], median(times[1:])
        matches: list[int] = []
        times = _timed_calls(lambda i: matches.append(cfind(study_query(PatientName=target))),
                             reps + 1)  # fmt: skip
        assert matches and min(matches) >= 1, (engine, "C-FIND name", matches)
        out["cfind_name"], out["cfind_name_matches"] = median(times[1:]), matches[0]
    with httpx.Client(base_url=s.http, timeout=TIMEOUT) as client:

        def tools_find(i: int) -> None:
            body = {"Level": "Study", "Query": {"AccessionNumber": pick[i][0]}}
            r = client.post("/tools/find", json=body)
            assert r.status_code == 200 and len(r.json()) == 1, (engine, r.text[:200])

        times = _timed_calls(tools_find, reps + 1)
        out["tools_find_first"], out["tools_find"] = times[0], median(times[1:])

        def qido(i: int) -> None:
            r = client.get("/dicom-web/studies", params={"PatientID": pick[i][1]})
            assert r.status_code == 200 and len(r.json()) >= 1, (engine, r.text[:200])

        times = _timed_calls(qido, reps + 1)
        out["qido_first"], out["qido"] = times[0], median(times[1:])
    return out


def bench_scale(
    reps: int, sizes: list[int] | None = None, engines: list[str] | None = None
) -> None:
    """Grow each engine's archive step by step (dicomkit store, its default parallel
    associations) and time every query class at each size."""
    sizes = sorted(sizes or SCALE_SIZES)
    engines = engines or list(SCALE_ENGINES)
    chunks = scale_data(sizes)
    wl_all = sorted((worklist_items(sizes[-1]) / PACS_AET).glob("*.wl"))
    results: dict[str, list[dict[str, Any]]] = {}
    t_start = time.perf_counter()
    for engine in engines:
        rows = results[engine] = []
        with workdir(f"scale-{engine}-") as home, workdir("scale-wl-") as wl_home:
            wl = wl_home / PACS_AET
            wl.mkdir()
            (wl / "lockfile").write_text("")
            with scale_server(engine, home, wl) as (nodes, live, archive):
                s = nodes[0]
                done, linked = 0, 0
                for size, chunk in zip(sizes, chunks, strict=True):
                    sent, seconds, wall = _store_parallel(nodes, chunk, wl_home)
                    assert sent == size - done, (engine, sent, size - done)
                    got = s.count()
                    assert got == size, f"{engine} holds {got} instances, expected {size}"
                    row = {"size": size, "ingest": sent / seconds, "ingest_wall": sent / wall}
                    done = size
                    for item in wl_all[linked:size]:
                        os.link(item, live / item.name)
                    linked = size
                    row["disk_per_instance"] = sum(disk_bytes(a) for a in archive) / size
                    row.update(_scale_step(engine, s, reps, size, wl_all[:size]))
                    rows.append(row)
                    _scale_progress(results, reps, t_start)
                    say(
                        f"  scale {engine} {size:,}: ingest {row['ingest']:.0f} inst/s, C-FIND acc "
                        f"{ms(row['cfind_acc'])} (first {ms(row['cfind_acc_first'])}), name* "
                        f"{ms(row['cfind_name'])}, /tools/find {ms(row['tools_find'])}, QIDO "
                        f"{ms(row['qido'])} (first {ms(row['qido_first'])}), MWL {ms(row['mwl'])}, "
                        f"{row['disk_per_instance'] / 1024:.1f} KiB/inst"
                    )
    _scale_progress(results, reps, t_start)


SCALE_RESULTS: list[Path] = []  # where the scale section goes (main sets it)


def _scale_progress(results: dict[str, list[dict[str, Any]]], reps: int, t_start: float) -> None:
    """The figures so far into RESULTS.md: a long run stopped halfway keeps what it measured."""
    facts = machine()
    run = f"{facts['date']}, {facts['dicomkit']}, reps {reps}"
    seconds = time.perf_counter() - t_start
    SCALE.update(results=dict(results), runs=dict.fromkeys(results, run), seconds=seconds)
    if SCALE_RESULTS:
        write_scale(SCALE_RESULTS[0])


SCALE: dict[str, Any] = {}  # bench_scale's figures, for its own section of RESULTS.md
# (key, column title, is a rate) of the growth table, in order.
_SCALE_COLUMNS = (
    ("ingest", "ingest (inst/s)", True),
    ("cfind_acc", "Study C-FIND by accession", False),
    ("cfind_name", "Study C-FIND by PatientName wildcard", False),
    ("tools_find", "`/tools/find` by accession", False),
    ("qido", "QIDO-RS studies by PatientID", False),
    ("mwl", "MWL C-FIND by accession", False),
)


def _cell(key: str, row: dict[str, Any]) -> str:
    if key == "ingest":
        return f"{row['ingest']:.0f}"
    text = ms(row[key])
    if f"{key}_first" in row:
        text += f" (first {ms(row[f'{key}_first'])})"
    if key == "cfind_name":
        text += f", {row['cfind_name_matches']} match(es)"
    if key == "mwl":
        text += f" among {row['mwl_items']:,}"
    return text


def _growth(rows: list[dict[str, Any]], key: str, rate: bool) -> float:
    """Cost at the largest size over cost at the smallest (cost = 1/rate for ingest)."""
    a, b = rows[0][key], rows[-1][key]
    return a / b if rate else b / a


def scale_goals(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Issue 18's goals, checked on this run's figures."""
    lines = []
    emb, ort = results.get("embedded"), results.get("orthanc-sqlite")
    if emb and ort:
        common = sorted({r["size"] for r in emb} & {r["size"] for r in ort})
        if common:
            n = common[-1]
            e = next(r for r in emb if r["size"] == n)
            o = next(r for r in ort if r["size"] == n)
            ratio_in = e["ingest"] / o["ingest"]
            lines.append(f"- at {n:,} instances, embedded ingest {ratio_in:.2f}x Orthanc-SQLite "
                         f"(goal >= 1.0x): {mark(ratio_in >= 1.0)}")  # fmt: skip
            lines.append(f"- at {n:,} instances, embedded Study C-FIND by accession "
                         f"{ms(e['cfind_acc'])} (goal <= 20 ms): {mark(e['cfind_acc'] <= 0.020)}")  # fmt: skip
            worse = [t for k, t, rate in _SCALE_COLUMNS[1:] if e[k] > o[k]]
            lines.append(
                f"- at {n:,} instances, query classes where embedded is slower than "
                f"Orthanc-SQLite: {', '.join(worse) or 'none'} (goal none): {mark(not worse)}"
            )
    pg1, pg2 = results.get("orthanc-pg-1"), results.get("orthanc-pg-2")
    if pg1 and pg2:
        n = min(pg1[-1]["size"], pg2[-1]["size"])
        a = next(r for r in pg1 if r["size"] == n)
        b = next(r for r in pg2 if r["size"] == n)
        r2 = b["ingest"] / a["ingest"]
        lines.append(f"- at {n:,} instances, two PostgreSQL nodes with two senders ingest "
                     f"{r2:.2f}x one node (goal >= 1.5x): {mark(r2 >= 1.5)}")  # fmt: skip
    for engine, rows in results.items():
        if len(rows) < 2:
            continue
        growth = {t: _growth(rows, k, rate) for k, t, rate in _SCALE_COLUMNS}
        over = [f"{t} {g:.1f}x" for t, g in growth.items() if g > 2]
        lines.append(
            f"- {engine}, cost from {rows[0]['size']:,} to {rows[-1]['size']:,} instances "
            f"(per instance for ingest, per query for queries; goal within 2x): "
            + (", ".join(f"{t} {g:.2f}x" for t, g in growth.items()))
            + f": {mark(not over)}"
        )
    return lines


def scale_plot(results: dict[str, list[dict[str, Any]]], png: Path) -> str:
    """The growth curves as a PNG (matplotlib: `pip install '.[bench]'`); what was done."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no plot: matplotlib is not installed (`pip install -e '.[bench]'`)"
    panels = [*_SCALE_COLUMNS, ("disk_per_instance", "disk per instance (KiB)", False)]
    fig, axes = plt.subplots(2, 4, figsize=(16, 7.5))
    for ax, (key, title, rate) in zip(axes.flat, panels, strict=False):
        for engine, rows in results.items():
            xs = [r["size"] for r in rows]
            if key == "disk_per_instance":
                ys = [r[key] / 1024 for r in rows]
            else:
                ys = [r[key] if rate else r[key] * 1000 for r in rows]
            ax.plot(xs, ys, marker="o", label=engine)
        ax.set_xscale("log")
        if rate:
            ax.set_ylim(bottom=0)
        if not rate and key != "disk_per_instance":
            ax.set_yscale("log")
            ax.set_ylabel("ms (median)")
        ax.set_title(title.replace("`", ""), fontsize=10)
        ax.set_xlabel("instances in the archive")
        ax.grid(True, which="both", alpha=0.3)
    axes.flat[-1].axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle("dicomkit scale bench: cost as the archive grows (python bench/run.py scale)")
    fig.tight_layout()
    fig.savefig(png, dpi=80)
    plt.close(fig)
    return f"plot: `{png.relative_to(REPO)}`"


def write_scale(path: Path) -> None:
    """Rewrite the scale section of RESULTS.md (appended the first time); the rest is kept."""
    # Engines not grown in this run keep the rows of the run that grew them (said per engine).
    saved = OUT / f"scale-{path.stem}.json"  # one per results file
    if saved.exists():
        old = json.loads(saved.read_text())
        for engine, rows in old.get("results", {}).items():
            if engine not in SCALE["results"]:
                SCALE["results"][engine] = rows
                SCALE["runs"][engine] = old.get("runs", {}).get(engine, "an earlier run")
    results = SCALE["results"]
    plot = scale_plot(results, HERE / "scale.png")
    facts = machine()
    head = "| engine | instances (studies) | " + " | ".join(t for _k, t, _r in _SCALE_COLUMNS)
    lines = [
        SCALE_MARK_START,
        "## Scale: cost as the archive grows (issue 18)",
        "",
        "`python bench/run.py scale` (default `--sizes 1000,10000`; add 100000 for the 100k step). "
        "A synthetic archive of realistic shape (patients with 1-4 studies, 1-3 series per "
        "study, series of 20-200 instances of 16x16 CT from CT_small, ~1,700 distinct family "
        "names) is sent in steps with `dicomkit store` (its default parallel associations) into "
        "one server per engine; after each step every query class runs against it. Query "
        "figures are medians over `--reps` (default 5) with a different key each time; "
        '"first" is the first query after the step\'s new instances. MWL items: as many '
        "as the archive has instances, hard-linked into the worklist folder.",
        "",
        f"- machine: {facts['machine']}; Orthanc {facts['Orthanc']} (its DICOMweb plugin, "
        f"SyncStorageArea); last run {SCALE['seconds']:.0f} s; {plot}",
        *[f"- {engine}: run {run}" for engine, run in SCALE["runs"].items()],
        "",
        head + " | disk / instance |",
        "|" + "---|" * (len(_SCALE_COLUMNS) + 3),
    ]
    for engine, rows in results.items():
        for r in rows:
            cells = " | ".join(_cell(k, r) for k, _t, _r in _SCALE_COLUMNS)
            lines.append(f"| {engine} | {r['size']:,} ({r['studies']:,}) | {cells} | "
                         f"{r['disk_per_instance'] / 1024:.1f} KiB |")  # fmt: skip
    lines += ["", "Goals (issue 18):", "", *scale_goals(results), SCALE_MARK_END]
    section = "\n".join(lines)
    text = path.read_text() if path.exists() else ""
    if SCALE_MARK_START in text:
        a = text.index(SCALE_MARK_START)
        b = text.index(SCALE_MARK_END) + len(SCALE_MARK_END)
        text = text[:a] + section + text[b:]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)
    saved.write_text(json.dumps(SCALE, indent=1))


BENCHES: dict[str, tuple[Callable[[int], None], int]] = {
    "help": (bench_help, 15),
    "echo": (bench_echo, 15),
    "up": (bench_up, 3),
    "mwl": (bench_mwl, 21),
    "store": (bench_store, 3),
    "large": (bench_large, 5),
    "dicomweb": (bench_dicomweb, 21),
    "stow": (bench_stow, 5),
    "scale": (bench_scale, 5),
}
# Not in a plain `python bench/run.py`: it takes minutes per engine and writes its own section.
ON_REQUEST = ("scale",)


# ---- RESULTS.md -------------------------------------------------------------------------


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).splitlines()[0].strip()
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def machine() -> dict[str, str]:
    from importlib.metadata import version

    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = _version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    return {
        "date": dt.datetime.now().astimezone().isoformat(timespec="minutes"),
        "machine": f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}",
        "python": platform.python_version(),
        "dicomkit": f"{version('dicomkit')} (git {commit}), measured as {INSTALL}",
        "pydicom / pynetdicom": f"{version('pydicom')} / {version('pynetdicom')}",
        "typer / rich": f"{version('typer')} / {version('rich')}",
        "Orthanc": _version([ORTHANC, "--version"]).split()[-1],
        "DCMTK": _version([str(DCMTK / "storescu"), "--version"]).split()[2],
    }


def write_results(path: Path, names: list[str], reps: dict[str, int], seconds: float) -> None:
    facts = machine()
    lines = [
        "# Benchmarks: dicomkit side by side with DCMTK and Orthanc",
        "",
        "Regenerate with `python bench/run.py` (writes this file; raw figures in "
        "`bench/out/results.json`).",
        "Each bench runs dicomkit and its peer alternately in the same run; figures are medians.",
        "**Ratio > 1 means dicomkit is faster** (rate ratio dicomkit/peer, or time ratio "
        "peer/dicomkit).",
        "DCMTK tools and Orthanc run with `TCP_NODELAY=1` in their environment (DCMTK leaves "
        "Nagle on otherwise, ~40 ms stall per small message on loopback); dicomkit sets "
        "TCP_NODELAY on its own sockets.",
        "",
        *[f"- {k}: {v}" for k, v in facts.items()],
        f"- benches: {', '.join(f'{n} x{reps[n]}' for n in names)}; whole run {seconds:.0f} s",
        "",
        "| bench | dicomkit | peer | ratio | target | met |",
        "|---|---|---|---|---|---|",
        *[
            f"| {r.bench} | {r.dicomkit} | {r.peer} | {r.ratio} | {r.target} | {r.met} |"
            for r in ROWS
        ],
        "",
        "## Commands and notes",
        "",
    ]
    for r in ROWS:
        lines.append(f"- **{r.bench}**: `{r.command}`" + (f". {r.note}" if r.note else ""))
    path.write_text("\n".join(lines) + "\n" + other_sections(path))


def other_sections(path: Path) -> str:
    """What other benches wrote into the file (bench/hl7.py's section, from its
    ``<!-- ... bench: start -->`` marker on): kept when this bench rewrites its part."""
    old = path.read_text() if path.exists() else ""
    at = old.find("<!-- ")
    return "\n" + old[at:] if at >= 0 else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "benches", nargs="*", metavar="BENCH", help=f"some of: {', '.join(BENCHES)} (default: all)"
    )
    ap.add_argument("--reps", type=int, default=0, help="repetitions per side (default: per bench)")
    ap.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    ap.add_argument(
        "--src",
        type=Path,
        help="measure the dicomkit package in this folder "
        "instead of the installed one (e.g. an export of an older commit)",
    )
    ap.add_argument(
        "--editable",
        action="store_true",
        help="measure the running venv's dicomkit script instead of a wheel built from this checkout",
    )
    ap.add_argument(
        "--sizes",
        default=",".join(str(n) for n in SCALE_SIZES),
        help="scale: archive sizes in instances, comma-separated (default %(default)s)",
    )
    ap.add_argument(
        "--engines",
        default=",".join(SCALE_ENGINES),
        help="scale: engines to grow (default %(default)s)",
    )
    args = ap.parse_args()
    try:
        sizes = sorted({int(n) for n in args.sizes.split(",") if n.strip()})
    except ValueError:
        ap.error(f"--sizes {args.sizes!r}: give instance counts like 1000,10000,100000")
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not sizes or sizes[0] < 100 or any(e not in SCALE_ENGINES for e in engines):
        ap.error(f"--sizes needs counts >= 100 and --engines some of {', '.join(SCALE_ENGINES)}")
    if args.src is None and not args.editable:
        install_wheel()
    if args.src is not None:
        global SRC, DICOMKIT
        SRC = args.src.resolve()
        DICOMKIT = [PY, "-P", "-m", "dicomkit"]  # -P: the working folder must not shadow SRC
        sys.path.insert(0, str(SRC))
    names = args.benches or [n for n in BENCHES if n not in ON_REQUEST]
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        ap.error(f"unknown bench(es) {', '.join(unknown)}: choose from {', '.join(BENCHES)}")
    reps = {n: args.reps or BENCHES[n][1] for n in names}
    t0 = time.perf_counter()
    SCALE_RESULTS.append(args.results)
    for name in names:
        say(f"== {name} (x{reps[name]})")
        if name == "scale":
            bench_scale(reps[name], sizes, engines)
        else:
            BENCHES[name][0](reps[name])
    seconds = time.perf_counter() - t0
    OUT.mkdir(exist_ok=True)
    table = [n for n in names if n not in ON_REQUEST]
    if table:
        (OUT / "results.json").write_text(json.dumps([r.__dict__ for r in ROWS], indent=1))
        write_results(args.results, table, reps, seconds)
    if SCALE:
        write_scale(args.results)  # again: the plot and the section of the whole run
    say("")
    say(args.results.read_text())


if __name__ == "__main__":
    main()
