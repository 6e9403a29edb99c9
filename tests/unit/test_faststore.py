"""The Typer-free ``dicomkit store`` (cli/faststore.py) against Typer itself.

1. Parsing: for hand-picked and generated command lines, ``faststore.parse`` either declines
   or gives exactly the root options and the keyword arguments Typer gives the store command
   (captured by replacing ``storecmd.run_store`` in-process, so nothing is sent), compared
   by repr: types too (1 vs 1.0 vs True, str vs Path), and NaN equals NaN. The usual
   forms must be parsed by the fast path (else the speed-up is gone without anyone noticing).
2. Whole runs: the same store, once through the fast path and once through Typer (a root
   ``--`` makes the fast parser decline; click reads the line the same), to a real C-STORE SCP:
   same output, same exit code; and the fast run imports no Typer.
No timing here: speed is measured in bench/ (issue 7).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dicomkit.cli import faststore
from dicomkit.cli.faststore import Parsed


class _Captured(Exception):
    pass


@pytest.fixture()
def typer_parse(monkeypatch: pytest.MonkeyPatch) -> Any:
    """What Typer passes: root callback's (home, verbose) and run_store's keyword arguments."""
    from dicomkit.cli import common, storecmd
    from dicomkit.cli.app import app

    root: dict[str, Any] = {}

    def fake_store(**kwargs: Any) -> None:
        raise _Captured(kwargs)

    monkeypatch.setattr(storecmd, "run_store", fake_store)
    monkeypatch.setattr(common, "setup_logging", lambda v: root.__setitem__("verbose", v))
    monkeypatch.setattr(common, "home_option", lambda h: root.__setitem__("home", h))
    for var in ("_DICOMKIT_COMPLETE", "_TYPER_COMPLETE_ARGS"):
        monkeypatch.delenv(var, raising=False)

    def parse(argv: list[str], home_env: str | None) -> Parsed | None:
        root.clear()
        with monkeypatch.context() as m:
            if home_env is None:
                m.delenv("DICOMKIT_HOME", raising=False)
            else:
                m.setenv("DICOMKIT_HOME", home_env)
            try:
                app(args=argv, prog_name="dicomkit")
            except _Captured as got:
                return Parsed(root["home"], root["verbose"], got.args[0])
            except SystemExit:
                return None  # a usage error, help, or another command's exit
        return None

    return parse


def fast(argv: list[str], home_env: str | None) -> Parsed | None:
    env = {} if home_env is None else {"DICOMKIT_HOME": home_env}
    return faststore.parse(argv, env)


USUAL = [
    ["store", "f.dcm"],
    ["store", "--json", "study/"],
    ["store", "--to", "127.0.0.1:11112:ORTHANC", "--json", "a.dcm", "b.dcm"],
    ["store", "--to=127.0.0.1:4242:ORTHANC", "-aet", "MOD1", "dir"],
    ["store", "dir", "--aet", "CT01", "--timeout", "2.5", "--resume"],
    ["-v", "store", "--jobs", "4", "x"],
    ["--home", "/tmp/lab", "-vv", "store", "-j4", "--resume", "x", "--timeout=30"],
    ["--home=/tmp/lab", "store", "-j", "2", "x", "--", "-odd-name.dcm"],
    ["--verbose", "store", "-aet=MOD1", "--jobs=1", "x"],
]

DECLINED = [
    [],
    ["store"],  # no path: Typer's "Missing argument"
    ["store", "--help"],
    ["store", "-h", "x"],
    ["store", "x", "--jobs", "four"],
    ["store", "x", "--timeout", "soon"],
    ["store", "x", "--json=1"],
    ["store", "x", "--to"],
    ["store", "x", "--bogus"],
    ["store", "x", "--tim", "3"],  # click does not complete prefixes
    ["store", "--home", "h", "x"],  # a root option after the command
    ["--version", "store", "x"],
    ["-vh", "store", "x"],
    ["--", "store", "x"],
    ["echo"],
    ["echo", "store"],
    ["studies", "--", "store"],
    ["store", "x\udcff"],  # bytes that are not UTF-8
    ["store", "a.dcm", ""],  # an empty path: Typer refuses it (store's own path type)
]


@pytest.mark.parametrize("argv", USUAL, ids=" ".join)
@pytest.mark.parametrize("home_env", [None, "/env/home"])
def test_usual_lines_take_the_fast_path_with_typers_arguments(
    typer_parse: Any, argv: list[str], home_env: str | None
) -> None:
    got = fast(argv, home_env)
    assert got is not None, f"the fast path declined {argv}"
    assert repr(got) == repr(typer_parse(argv, home_env))


@pytest.mark.parametrize("argv", DECLINED, ids=repr)
def test_other_lines_go_to_typer(argv: list[str]) -> None:
    assert fast(argv, None) is None


def test_shell_completion_goes_to_typer() -> None:
    assert faststore.parse(["store", "x"], {"_DICOMKIT_COMPLETE": "bash_complete"}) is None
    assert faststore.parse(["store", "x"], {}) is not None


ROOT = [[], ["-v"], ["-vvv"], ["--verbose", "-v"], ["--home", "H"], ["--home=H2"], ["--home="],
        ["--home", "store"], ["-v", "--home", "--json"], ["--home", "A", "--home", "B"]]  # fmt: skip
ODD_ROOT = [["--home"], ["-vx"], ["--verbose=2"], ["-"], ["-h"], ["--version"]]
TOKENS = [  # all valid for store
    ["--to", "h:1:A"], ["--to=h:2:B"], ["--to="], ["--to", "--json"], ["--aet", "M"],
    ["-aet", "N"], ["-aet=O"], ["--aet=", "x"], ["--timeout", "1.5"], ["--timeout", "nan"],
    ["--timeout", "-2"], ["--timeout", " 3 "], ["--timeout", "1e3"], ["--timeout=inf"],
    ["--jobs", "4"], ["--jobs", "-1"], ["--jobs", "+2"], ["--jobs", "1_0"], ["--jobs", "\u0663"],
    ["-j4"], ["-j", "2"], ["-j", "-3"], ["--resume"], ["--json"], ["--"], ["-"],
    ["a.dcm"], ["dir/x"], [" sp ace"], ["store"], ["échographie.dcm"], ["-j", "--json"],
]  # fmt: skip
ODD = [  # each makes Typer refuse the line (or, --help, print help)
    ["--to"], ["-aetX"], ["-a", "P"], ["--timeout", "x"], ["--timeout"], ["--jobs", "x"],
    ["-j=4"], ["-jj"], ["-json"], ["-j"], ["--jobs="], ["--resume=1"], ["--json=yes"], ["--jso"],
    ["--JSON"], ["--help"], ["-h"], ["-x"], ["--home", "h"], ["-v"], ["-weird"], [""],
]  # fmt: skip


def generated(n: int, seed: int) -> Iterator[tuple[list[str], str | None]]:
    """Command lines of 0-7 store tokens after a root prefix, one in ~8 tokens an odd one."""
    rng = random.Random(seed)
    for _ in range(n):
        argv = [*rng.choice(ROOT if rng.random() < 0.9 else ODD_ROOT), "store"]
        for _ in range(rng.randint(0, 7)):
            argv += rng.choice(TOKENS if rng.random() < 0.88 else ODD)
        yield argv, rng.choice([None, "", "/env/home"])


def test_generated_lines_parse_exactly_as_typer_parses_them(typer_parse: Any) -> None:
    """Both ways: every line Typer takes, the fast path takes with the same arguments, and
    every line Typer refuses (or answers with help), the fast path leaves to Typer."""
    taken = 0
    for argv, home_env in generated(600, seed=20261128):
        got = fast(argv, home_env)
        assert repr(got) == repr(typer_parse(argv, home_env)), (argv, home_env)
        taken += got is not None
    assert 150 < taken < 550, taken  # the corpus has both kinds in number


# -- whole runs -------------------------------------------------------------------------------

PROBE = """
import json, sys
sys.argv = ["dicomkit", *json.loads(sys.argv[1])]
from dicomkit.cli.main import run
import atexit
atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))
run()
"""


@contextlib.contextmanager
def storage_scp(title: str, on_store: Any, sops: list[str]) -> Iterator[str]:
    """A pynetdicom Storage SCP on a free port answering with ``on_store``; yields --to."""
    from pynetdicom import AE, evt

    ae = AE(ae_title=title)
    for sop in sops:
        ae.add_supported_context(sop, ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"])
    server = ae.start_server(
        ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    port = server.socket.getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"127.0.0.1:{port}:{title}"
    finally:
        server.shutdown()


@pytest.fixture()
def store_peer(tmp_path: Path) -> Iterator[str]:
    """Answers Success, or 0xA700 (out of resources) when the file ``refuse`` exists."""
    from pynetdicom.sop_class import CTImageStorage, MRImageStorage

    refuse = tmp_path / "refuse"

    def on_store(event: Any) -> int:
        return 0xA700 if refuse.exists() else 0x0000

    with storage_scp("PEER", on_store, [CTImageStorage, MRImageStorage]) as peer:
        yield peer


def whole_run(home: Path, *args: str) -> tuple[int, str, list[str], set[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DICOMKIT_")}
    env.update(DICOMKIT_HOME=str(home), COLUMNS="200", NO_COLOR="1")
    r = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(args))],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    *err, mods = r.stderr.strip().splitlines()
    return r.returncode, r.stdout, err, set(json.loads(mods))


def _same_report(a: str, b: str) -> None:
    da, db = json.loads(a), json.loads(b)
    for d in (da, db):
        d.pop("seconds", None)
    assert da == db


@pytest.mark.parametrize("refused", [False, True], ids=["stored", "refused"])
def test_fast_and_typer_runs_give_the_same_result(
    tmp_path: Path, store_peer: str, refused: bool
) -> None:
    from pydicom.data import get_testdata_file

    files = [str(get_testdata_file(n)) for n in ("CT_small.dcm", "MR_small.dcm")]
    if refused:
        (tmp_path / "refuse").touch()
    line = ["store", "--to", store_peer, "--json", *files]
    code_f, out_f, err_f, mods_f = whole_run(tmp_path / "a", *line)
    code_t, out_t, err_t, mods_t = whole_run(tmp_path / "b", "--", *line)
    assert "dicomkit.cli.faststore" in mods_f and "dicomkit.cli.storecmd" in mods_f
    assert not {m for m in mods_f if m == "typer" or m.startswith("typer.")}
    assert "typer" in mods_t  # the comparison run did go through Typer
    assert code_f == code_t == (1 if refused else 0)
    _same_report(out_f, out_t)
    assert json.loads(out_f)["failed"] == (2 if refused else 0)
    assert err_f == err_t == []


def test_fast_and_typer_runs_report_an_error_the_same(tmp_path: Path) -> None:
    """A DicomkitError (nothing listens on the port) from either path: same JSON, exit 3."""
    from pydicom.data import get_testdata_file

    from tests.conftest import free_port

    nobody = f"127.0.0.1:{free_port()}:NOBODY"
    # A file that is not DICOM (reported, skipped) and one to send.
    files = [str(Path(__file__)), str(get_testdata_file("CT_small.dcm"))]
    line = ["store", "--to", nobody, "--json", "--timeout", "2", *files]
    code_f, out_f, _, mods_f = whole_run(tmp_path / "a", *line)
    code_t, out_t, _, _ = whole_run(tmp_path / "b", "--", *line)
    assert "typer" not in mods_f
    assert code_f == code_t
    assert json.loads(out_f) == json.loads(out_t)
    assert code_f == 3, out_f


def test_a_declined_line_gets_typers_usage_error(tmp_path: Path) -> None:
    code, _, err, mods = whole_run(tmp_path, "store", "x.dcm", "--jobs", "four")
    assert code == 2
    assert "typer" in mods
    assert "'four' is not a valid int" in " ".join(err)


def test_an_empty_path_is_refused_not_taken_for_the_current_folder(tmp_path: Path) -> None:
    """`dicomkit store "$IMG"` with IMG unset: Path("") is ".", which would send everything
    below the working folder (DCMTK's storescu refuses it too)."""
    code, out, err, _ = whole_run(tmp_path, "store", "--to", "127.0.0.1:9:NOBODY", "")
    assert code == 2 and out == ""
    assert "an empty path (an unset shell variable?)" in " ".join(err)


def test_a_reader_that_goes_away_ends_both_paths_quietly_with_exit_1(
    tmp_path: Path, store_peer: str
) -> None:
    """`dicomkit store --json ... | head -c0`: the JSON (120 results, ~30 KB, more than the
    stdout buffer) meets a closed pipe while it is printed. Typer answers exit 1 and nothing on
    stderr; the fast path must do the same (not a BrokenPipeError traceback)."""
    from pydicom.data import get_testdata_file

    ct = str(get_testdata_file("CT_small.dcm"))
    line = ["store", "--to", store_peer, "--json", *[ct] * 120]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DICOMKIT_")}
    env.pop("PYTHONUNBUFFERED", None)
    results = []
    for prefix, home in (([], "a"), (["--"], "b")):
        read_end, write_end = os.pipe()
        os.close(read_end)  # the reader is gone before the first byte
        try:
            r = subprocess.run(
                [sys.executable, "-m", "dicomkit", *prefix, *line],
                stdout=write_end,
                stderr=subprocess.PIPE,
                text=True,
                env={**env, "DICOMKIT_HOME": str(tmp_path / home)},
                timeout=120,
            )
        finally:
            os.close(write_end)
        results.append((r.returncode, r.stderr))
    assert results[0] == results[1] == (1, "")


@pytest.fixture()
def slow_peer() -> Iterator[str]:
    """Takes 3 s per C-STORE: time to press Ctrl-C mid-transfer."""
    import time

    from pynetdicom.sop_class import CTImageStorage

    def on_store(event: Any) -> int:
        time.sleep(3)
        return 0x0000

    with storage_scp("SLOW", on_store, [CTImageStorage]) as peer:
        yield peer


def test_ctrl_c_mid_transfer_exits_130_on_both_paths(tmp_path: Path, slow_peer: str) -> None:
    import signal
    import time

    from pydicom.data import get_testdata_file

    ct = str(get_testdata_file("CT_small.dcm"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DICOMKIT_")}
    codes = []
    for prefix, home in (([], "a"), (["--"], "b")):
        argv = [*prefix, "store", "--to", slow_peer, "--json", ct, ct]
        proc = subprocess.Popen(
            [sys.executable, "-m", "dicomkit", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**env, "DICOMKIT_HOME": str(tmp_path / home)},
        )
        time.sleep(1.5)  # started, associated, first C-STORE waiting on the peer
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        codes.append(proc.returncode)
        assert "Traceback" not in err, err
    assert codes == [130, 130]


@pytest.mark.parametrize(
    ("where", "argv", "home_env"),
    [
        ("path", ["store", "{p}"], None),
        ("folder", ["store", "{d}"], None),
        ("--home", ["--home", "{d}", "store", "x.dcm"], None),
        ("DICOMKIT_HOME", ["store", "x.dcm"], "{d}"),
    ],
)
def test_an_unreadable_path_or_home_goes_to_typer(
    typer_parse: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
    argv: list[str],
    home_env: str | None,
) -> None:
    """Typer's Path type refuses a path that exists but cannot be read ("is not readable").
    The suite runs as root, for whom everything is readable, so os.access is replaced (the one
    stand-in here) to deny the two paths below; both parsers see the same os.access."""
    p, d = tmp_path / "secret.dcm", tmp_path / "noread"
    p.write_bytes(b"x")
    d.mkdir()
    real_access = os.access
    denied = {str(p), str(d)}

    def access(path: Any, mode: int, **kw: Any) -> bool:
        return str(path) not in denied and real_access(path, mode, **kw)

    monkeypatch.setattr(os, "access", access)
    fill = {"p": str(p), "d": str(d)}
    argv = [a.format(**fill) for a in argv]
    home_env = home_env.format(**fill) if home_env else None
    assert typer_parse(argv, home_env) is None, "Typer took it: the stand-in did not apply"
    assert fast(argv, home_env) is None
    monkeypatch.setattr(os, "access", real_access)
    assert repr(fast(argv, home_env)) == repr(typer_parse(argv, home_env)) != "None"
