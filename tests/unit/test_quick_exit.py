"""The console script's quick exit (``cli.main.run``): after the command, the parts of the
interpreter's shutdown that matter are done by hand and the module teardown is skipped.

Checked on real processes: exit codes and messages as before, output complete through pipes,
threads still running are waited for, atexit handlers run. No timing here (bench/ measures it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from dicomkit import __version__
from dicomkit.errors import ExitCode


def dicomkit(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # Not PYTHONUNBUFFERED: stdout must be block-buffered as it is for users piping the output.
    e = {k: v for k, v in os.environ.items() if not k.startswith(("DICOMKIT_", "PYTHONUNBUF"))}
    e.update(COLUMNS="100", **env)
    return subprocess.run(
        [sys.executable, "-m", "dicomkit", *args],
        capture_output=True,
        text=True,
        env=e,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


def script(body: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run ``body`` then ``cli.main.run()`` with sys.argv = ["dicomkit", "--version"]."""
    code = textwrap.dedent(body) + textwrap.dedent("""
        import sys
        sys.argv = ["dicomkit", "--version"]
        from dicomkit.cli.main import run
        run()
        print("not reached", flush=True)
    """)
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )


def test_output_and_exit_code_of_a_successful_command() -> None:
    r = dicomkit("--version")
    assert (r.returncode, r.stdout, r.stderr) == (0, f"dicomkit {__version__}\n", "")


def test_long_piped_output_is_complete() -> None:
    """stdout is a pipe (block-buffered): os._exit would drop the buffer if run() did not flush."""
    r = dicomkit("lessons", "--json", DICOMKIT_HOME=os.devnull + "-none")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout) > 1000
    assert json.loads(r.stdout)  # the whole document, closing bracket included


def test_usage_error_keeps_typers_exit_code_and_message() -> None:
    r = dicomkit("no-such-command")
    assert r.returncode == ExitCode.USAGE
    assert "No such command" in r.stderr


def test_dicomkit_error_exit_code_and_json_document() -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    r = dicomkit("echo", "--to", "127.0.0.1:1:NOBODY", "--json", "--timeout", "2")
    assert r.returncode == ExitCode.UNREACHABLE, r.stderr
    assert "error" in json.loads(r.stdout)


def test_running_thread_is_waited_for_and_atexit_handlers_run(tmp_path: Path) -> None:
    r = script(
        """
        import atexit, threading, time
        from pathlib import Path
        def work():
            time.sleep(0.3)
            Path("thread-done").write_text("yes")
        threading.Thread(target=work).start()  # not a daemon: Python waits for it
        atexit.register(lambda: Path("atexit-ran").write_text("yes"))
        """,
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"dicomkit {__version__}\n"
    assert (tmp_path / "thread-done").read_text() == "yes"
    assert (tmp_path / "atexit-ran").read_text() == "yes"


def test_atexit_handlers_run_on_the_quick_path(tmp_path: Path) -> None:
    r = script(
        """
        import atexit, logging
        from pathlib import Path
        logging.basicConfig(filename="log.txt", level=logging.INFO)
        logging.getLogger("x").info("buffered until logging.shutdown")
        atexit.register(lambda: Path("atexit-ran").write_text("yes"))
        """,
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "atexit-ran").read_text() == "yes"
    assert "buffered until logging.shutdown" in (tmp_path / "log.txt").read_text()


def test_exit_with_a_message_takes_the_normal_path() -> None:
    code = "from dicomkit.cli.main import _quick_exit; _quick_exit('bad thing')"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stderr.strip()) == (1, "bad thing")
