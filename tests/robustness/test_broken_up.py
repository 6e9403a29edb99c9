"""`dicomkit up` killed half-way by its own output (a reader that closes the pipe early, a
closed terminal) leaves nothing behind that `dicomkit down` cannot find (issue 14)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import engine_available, free_port, lab_env

pytestmark = pytest.mark.timeout(120)


def processes_under(home: Path) -> list[int]:
    """PIDs whose command line names a file under ``home`` (the lab's own processes)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(home) in cmdline:
            found.append(int(proc.name))
    return found


@pytest.mark.parametrize("engine", ["embedded", "native"])
def test_up_whose_stderr_is_closed_leaves_nothing_down_cannot_stop(
    tmp_path: Path, engine: str
) -> None:
    ok, why = engine_available(engine)
    if not ok:
        pytest.skip(why)
    home = tmp_path / "home"
    ports = ("DICOM", "MWL", "HTTP", "RIS", "HL7", "MPPS", "RETRIEVE")
    env = lab_env(home, **{f"DICOMKIT_{p}_PORT": str(free_port()) for p in ports})
    up = subprocess.Popen([sys.executable, "-m", "dicomkit", "up", "--engine", engine],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)  # fmt: skip
    assert up.stderr is not None and up.stdout is not None
    up.stderr.close()  # the progress lines after each start now fail with EPIPE
    up.stdout.read()
    assert up.wait(60) != 0
    started = processes_under(home)
    try:
        assert started, "the broken `up` started nothing: the test proves nothing"
        down = subprocess.run([sys.executable, "-m", "dicomkit", "down", "--json"],
                              env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
        assert down.returncode == 0, down.stderr
        deadline = time.monotonic() + 15
        while processes_under(home) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert processes_under(home) == []
    finally:
        for pid in processes_under(home):  # never leave an orphan, even when failing
            subprocess.run(["kill", "-9", str(pid)], check=False)
