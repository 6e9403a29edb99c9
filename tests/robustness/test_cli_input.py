"""Bad input to the real CLI: missing, mixed, unreadable and special files; peers that are not
DICOM servers; wrong ports; garbage in DICOMKIT_* variables. Each case ends with a clear message,
the documented exit code (errors.ExitCode) and nothing stored that should not be."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import testdata
from tests.robustness.conftest import Pacs, Ris, cli, make_instances, start_pacs, start_ris, stop

pytestmark = pytest.mark.timeout(120)

USAGE, FAILED, UNREACHABLE = 2, 1, 3


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pacs]:
    server = start_pacs(tmp_path_factory.mktemp("cli-pacs"))
    try:
        yield server
    finally:
        stop(server.proc)


@pytest.fixture(scope="module")
def ris(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ris]:
    server = start_ris(tmp_path_factory.mktemp("cli-ris"))
    try:
        yield server
    finally:
        stop(server.proc)


def count(pacs: Pacs) -> int:
    return int(pacs.stats()["CountInstances"])


# ---- files --------------------------------------------------------------------------------


def test_a_missing_file_among_good_ones_sends_nothing(pacs: Pacs, tmp_path: Path) -> None:
    good = make_instances(tmp_path / "good", 2)
    before = count(pacs)
    r = cli(
        "store", *map(str, good), str(tmp_path / "nope.dcm"), "--to", pacs.peer(), home=tmp_path
    )
    assert r.returncode == USAGE, r.stderr
    assert "no such file or folder" in r.stderr and "nope.dcm" in r.stderr
    assert count(pacs) == before


def test_an_empty_folder_is_a_usage_error(pacs: Pacs, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    r = cli("store", str(tmp_path / "empty"), "--to", pacs.peer(), home=tmp_path)
    assert r.returncode == USAGE and "no files found" in r.stderr


def test_a_folder_of_mixed_files_stores_the_dicom_and_names_the_rest(
    pacs: Pacs, tmp_path: Path
) -> None:
    folder = tmp_path / "mixed"
    good = make_instances(folder / "series", 3)
    (folder / "notes.txt").write_text("not dicom")
    (folder / "empty.dcm").write_bytes(b"")
    (folder / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    (folder / "truncated.dcm").write_bytes(good[0].read_bytes()[:150])
    (folder / "preamble-only.dcm").write_bytes(b"\0" * 128 + b"DICM")
    os.mkfifo(folder / "pipe.dcm")  # opening it would block for ever
    (folder / "folder.dcm").mkdir()  # a directory named like a file
    os.symlink("/dev/zero", folder / "zero.dcm")  # a device that never ends
    os.symlink(folder / "gone", folder / "dangling.dcm")
    before = count(pacs)
    r = cli("store", str(folder), "--to", pacs.peer(), "--json", home=tmp_path, timeout=60)
    assert r.returncode == FAILED, r.stdout + r.stderr
    d = json.loads(r.stdout)
    assert d["sent"] == 3
    names = {Path(p).name for p in d["not_stored"]}
    assert names == {"notes.txt", "empty.dcm", "photo.png", "truncated.dcm", "preamble-only.dcm",
                     "pipe.dcm", "zero.dcm", "dangling.dcm"}  # fmt: skip
    reasons = {Path(f["path"]).name: f["error"] for f in d["files"] if not f["ok"]}
    assert "not a regular file" in reasons["pipe.dcm"]
    assert all(reasons.values()), reasons
    assert count(pacs) == before + 3
    # The human output lists them too, and says how to go on.
    r = cli("store", str(folder), "--to", pacs.peer(), home=tmp_path, timeout=60)
    assert r.returncode == FAILED
    assert "Not stored" in r.stderr and "pipe.dcm" in r.stderr and "--resume" in r.stderr


def test_an_unreadable_file_as_an_unprivileged_user(pacs: Pacs) -> None:
    """Root reads anything, so the CLI runs as nobody (setpriv) on a chmod 000 file."""
    setpriv = shutil.which("setpriv")
    if setpriv is None or os.geteuid() != 0:
        pytest.skip("needs root and setpriv to drop privileges")
    root = Path(tempfile.mkdtemp(prefix="dk-robust-"))
    try:
        root.chmod(0o755)
        folder = root / "images"
        good = make_instances(folder, 2)
        good[1].chmod(0o000)
        home = root / "home"
        home.mkdir(mode=0o777)
        home.chmod(0o777)
        for p in (folder, *good[:1]):
            p.chmod(0o755 if p.is_dir() else 0o644)
        before = count(pacs)
        r = cli("store", str(folder), "--to", pacs.peer(), "--json", home=home,
                wrap=[setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"])  # fmt: skip
        assert r.returncode == FAILED, r.stdout + r.stderr
        d = json.loads(r.stdout)
        assert d["sent"] == 1
        assert [Path(p).name for p in d["not_stored"]] == [good[1].name]
        assert "permission denied" in next(f["error"] for f in d["files"] if not f["ok"])
        assert count(pacs) == before + 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---- peers --------------------------------------------------------------------------------


def _serve(behaviour: str) -> tuple[int, threading.Event]:
    """A TCP server that is not a DICOM server: sends garbage, closes at once, or says nothing."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    done = threading.Event()

    def run() -> None:
        held = []
        while not done.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            if behaviour == "garbage":
                conn.sendall(os.urandom(2048))
                time.sleep(0.2)
                conn.close()
            elif behaviour == "close":
                conn.close()
            else:
                held.append(conn)  # silent: never answers
        for c in held:
            c.close()
        srv.close()

    threading.Thread(target=run, daemon=True).start()
    return int(srv.getsockname()[1]), done


@pytest.mark.parametrize("behaviour", ["garbage", "close", "silent"])
@pytest.mark.parametrize("command", [["echo"], ["worklist", "find"], ["store", "FILE"]])
def test_a_peer_that_is_not_a_dicom_server(
    tmp_path: Path, behaviour: str, command: list[str]
) -> None:
    port, done = _serve(behaviour)
    try:
        args = [str(testdata("CT_small.dcm")) if a == "FILE" else a for a in command]
        t0 = time.monotonic()
        r = cli(*args, "--to", f"127.0.0.1:{port}:ORTHANC", "--timeout", "2", "--json",
                home=tmp_path, timeout=60)  # fmt: skip
        assert r.returncode == UNREACHABLE, r.stdout + r.stderr
        d = json.loads(r.stdout)
        assert d["error"] == "ConnectionFailed" and d["hint"]
        assert "Traceback" not in r.stderr
        assert time.monotonic() - t0 < 20
    finally:
        done.set()


@pytest.mark.parametrize("command", [["worklist", "find"], ["store", "FILE"]])
def test_the_ris_http_port_is_not_dicom(ris: Ris, tmp_path: Path, command: list[str]) -> None:
    args = [str(testdata("CT_small.dcm")) if a == "FILE" else a for a in command]
    r = cli(*args, "--to", f"127.0.0.1:{ris.port}:ORTHANC", "--timeout", "3", home=tmp_path)
    assert r.returncode == UNREACHABLE, r.stderr
    assert "DICOM" in r.stderr and "Traceback" not in r.stderr


def test_orders_against_a_dicom_port_or_nothing(pacs: Pacs, tmp_path: Path) -> None:
    for port in (pacs.dicom_port, 9):
        r = cli("order", "list", home=tmp_path, DICOMKIT_RIS_PORT=str(port), DICOMKIT_TIMEOUT="3")
        assert r.returncode == UNREACHABLE, r.stderr
        assert "the RIS does not answer" in r.stderr and "dicomkit up" in r.stderr


@pytest.mark.parametrize(
    ("args", "env", "fragment"),
    [
        (["echo", "--to", "127.0.0.1:0:ORTHANC"], {}, "not valid"),
        (["echo", "--to", "127.0.0.1:70000:ORTHANC"], {}, "not valid"),
        (["echo", "--to", "127.0.0.1:http:ORTHANC"], {}, "is not a number"),
        (["echo", "--to", "127.0.0.1:4242"], {}, "HOST:PORT:AET"),
        (["echo"], {"DICOMKIT_DICOM_PORT": "99999"}, "not a TCP port"),
        (["echo"], {"DICOMKIT_DICOM_PORT": "-1"}, "not a TCP port"),
        (["echo"], {"DICOMKIT_DICOM_PORT": "0x1092"}, "DICOMKIT_DICOM_PORT"),
        (["echo"], {"DICOMKIT_TIMEOUT": "nan"}, "timeout"),
        (["echo"], {"DICOMKIT_TIMEOUT": "inf"}, "timeout"),
        (["echo"], {"DICOMKIT_TIMEOUT": "1e309"}, "timeout"),
        (["echo"], {"DICOMKIT_TIMEOUT": "ten"}, "DICOMKIT_TIMEOUT"),
        (["echo"], {"DICOMKIT_AET": "A\\B"}, "AE title"),
        (["echo"], {"DICOMKIT_AET": "A" * 17}, "AE title"),
        (["echo"], {"DICOMKIT_AET": "BAD\x1bAE"}, "AE title"),
        (["echo"], {"DICOMKIT_PACS_AET": "        "}, "AE title"),
        (["up"], {"DICOMKIT_ENGINE": "../../bin/sh"}, "unknown engine"),
        (["status"], {"DICOMKIT_RIS_PORT": "5000; rm -rf /"}, "DICOMKIT_RIS_PORT"),
    ],
)
def test_wrong_ports_and_garbage_in_the_environment(
    tmp_path: Path, args: list[str], env: dict[str, str], fragment: str
) -> None:
    r = cli(*args, "--json", home=tmp_path, **env)
    assert r.returncode == USAGE, r.stdout + r.stderr
    d = json.loads(r.stdout)
    assert fragment in d["message"] and d["hint"], d
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "lab").exists()  # nothing started, nothing written


def test_a_home_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    home = tmp_path / "home-is-a-file"
    home.write_text("x")
    for args in (["reset", "--all"], ["status"], ["store", str(testdata("CT_small.dcm"))]):
        r = cli(*args, home=home)
        assert r.returncode == USAGE, r.stderr
        assert "is not a folder" in r.stderr and "Traceback" not in r.stderr
    assert home.read_text() == "x"


def test_an_order_file_that_is_missing_or_not_an_order(ris: Ris, tmp_path: Path) -> None:
    env = {"DICOMKIT_RIS_PORT": str(ris.port)}
    bad = tmp_path / "order.json"
    for content in (None, "{garbage", "[1, 2]", '"just a string"'):
        if content is not None:
            bad.write_text(content)
        r = cli("order", "create", "--from-json", str(bad), home=tmp_path, **env)
        assert r.returncode == USAGE, r.stderr
        assert "order" in r.stderr and "Traceback" not in r.stderr
    r = cli("order", "create", "--from-json", str(tmp_path), home=tmp_path, **env)
    assert r.returncode == USAGE and "cannot read an order" in r.stderr
