"""Shared fixtures: real servers on free ports, waited for, torn down (never mocked)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dicomkit.config import LabConfig

REPO = Path(__file__).resolve().parent.parent


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port nothing listens on now, never one handed out before in this session. The kernel
    may give the same free port to two calls in a row (three for one server: a PACS given one
    port twice binds its DICOM socket, fails on HTTP and exits, and a test's first request
    meets the DICOM socket: "illegal request line", then "connection refused")."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def lab_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DICOMKIT_")}
    env["DICOMKIT_HOME"] = str(home)
    env["COLUMNS"] = "200"
    env.update(extra)
    return env


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Lab:
    """A running lab (any engine) and a way to drive the real CLI against it."""

    engine: str
    home: Path
    cfg: LabConfig

    @property
    def endpoints(self) -> Any:
        """What the running lab reports (native Orthanc serves the worklist on its DICOM port)."""
        from dicomkit.engines.state import read_state

        state = read_state(self.cfg)
        assert state is not None, "the lab is not up"
        return state.endpoints

    def env(self, **extra: str) -> dict[str, str]:
        return lab_env(self.home, **extra)

    def cli(
        self, *args: str, timeout: float = 120, input: str | None = None, **env: str
    ) -> CliResult:
        proc = subprocess.run(
            [sys.executable, "-m", "dicomkit", *args],
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)


def make_config(home: Path, engine: str) -> LabConfig:
    return LabConfig(
        home=home,
        dicom_port=free_port(),
        mwl_port=free_port(),
        http_port=free_port(),
        ris_port=free_port(),
        hl7_port=free_port(),
        retrieve_port=free_port(),
        mpps_port=free_port(),
        engine=engine,
    )


def _env_for(cfg: LabConfig) -> dict[str, str]:
    return {
        "DICOMKIT_DICOM_PORT": str(cfg.dicom_port),
        "DICOMKIT_MWL_PORT": str(cfg.mwl_port),
        "DICOMKIT_HTTP_PORT": str(cfg.http_port),
        "DICOMKIT_RIS_PORT": str(cfg.ris_port),
        "DICOMKIT_HL7_PORT": str(cfg.hl7_port),
        "DICOMKIT_RETRIEVE_PORT": str(cfg.retrieve_port),
        "DICOMKIT_MPPS_PORT": str(cfg.mpps_port),
    }


def engine_available(name: str) -> tuple[bool, str]:
    from dicomkit.engines.choice import get_engine
    from dicomkit.errors import EngineError

    try:
        return get_engine(name).available()
    except EngineError as exc:
        return False, exc.message


def start_lab(home: Path, engine: str, *up_args: str) -> Lab:
    """`dicomkit up --engine ENGINE [up_args]` on free ports in ``home``."""
    ok, why = engine_available(engine)
    if not ok:
        pytest.skip(f"{engine} engine not available here: {why}")
    cfg = make_config(home, engine)
    lab = Lab(engine, home, cfg)
    r = lab.cli("up", "--engine", engine, *up_args, "--json", **_env_for(cfg))
    assert r.code == 0, f"dicomkit up failed ({r.code}):\n{r.out}\n{r.err}"
    return lab


def stop_lab(lab: Lab) -> None:
    r = lab.cli("down")
    assert r.code == 0, r.err


# Engines the workflow suite runs on. Docker joins when its images exist (see tests for docker).
WORKFLOW_ENGINES = ["native", "embedded"]


@pytest.fixture(scope="module", params=WORKFLOW_ENGINES)
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    home = tmp_path_factory.mktemp(f"lab-{request.param}")
    lab = start_lab(home, request.param)
    try:
        yield lab
    finally:
        stop_lab(lab)


@pytest.fixture(scope="module")
def native_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    home = tmp_path_factory.mktemp("lab-native")
    lab = start_lab(home, "native")
    try:
        yield lab
    finally:
        stop_lab(lab)


def wait_port(
    port: int, proc: subprocess.Popen[bytes], log: Path | None = None, timeout: float = 20
) -> None:
    """Wait (bounded) until a server we started listens on ``port``; fail early if it exited."""
    import time

    where = f"; log {log}" if log else ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            text = log.read_text(errors="replace") if log and log.exists() else ""
            raise AssertionError(f"the server exited while starting{where}\n{text}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.03)
    raise AssertionError(f"nothing listens on {port} after {timeout} s{where}")


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} (DCMTK) is not installed")
    return path


def testdata(name: str) -> Path:
    from pydicom.data import get_testdata_file

    p = get_testdata_file(name)
    assert p is not None, name
    return Path(str(p))


testdata.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def start_pacs(home: Path, aet: str, **cfg: Any) -> Any:
    """The embedded PACS in this process (free ports, storage and worklists under ``home``),
    started; ``cfg`` overrides ServerConfig fields. The caller stops it."""
    from dicomkit.pacs.server import PacsServer
    from dicomkit.pacs.settings import ServerConfig

    (home / "worklists").mkdir(parents=True, exist_ok=True)
    opts: dict[str, Any] = {
        "storage_dir": home / "storage",
        "worklist_dir": home / "worklists",
        "aet": aet,
        "dicom_port": free_port(),
        "mwl_port": free_port(),
        "http_port": free_port(),
        "max_pdu": 65536,
        **cfg,
    }
    srv = PacsServer(ServerConfig(**opts))
    srv.start()
    return srv


# ---- two test speeds: `pytest -m "not slow"` needs no external peer ----------------------

SLOW_FOLDERS = {"integration", "robustness"}  # real Orthanc, DCMTK, Docker; whole labs
SLOW_FILES = {"test_course_on_lab.py", "test_learner_on_lab.py"}  # the course on a live lab
SLOW_MARKERS = {"orthanc", "dcmtk", "docker", "postgres", "chromium"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = set(item.path.relative_to(REPO).parts)
        marked = {m.name for m in item.iter_markers()}
        if parts & SLOW_FOLDERS or item.path.name in SLOW_FILES or marked & SLOW_MARKERS:
            item.add_marker(pytest.mark.slow)
