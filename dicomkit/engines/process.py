"""Background processes for the native and embedded engines: start, wait (bounded), stop."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from dicomkit.errors import EngineError, PortInUse


def spawn(argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> int:
    """Start ``argv`` detached from our terminal (own session), output to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in the terminal must not kill the lab
            env=env,
            close_fds=True,
        )
    return proc.pid


def python_argv(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our exited child not yet reaped) is not alive.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def stop_pid(
    pid: int, expect_in_cmdline: str, timeout: float = 10.0, sig: int = signal.SIGTERM
) -> bool:
    """``sig`` (SIGTERM), wait, SIGKILL. Only signals a process whose command line still
    matches, so a recycled PID is never killed by mistake. Returns True if it was running."""
    if not pid_alive(pid):
        return False
    cl = cmdline(pid)
    if cl and expect_in_cmdline not in cl:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return True


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As the servers do: connections of a crashed server in TIME_WAIT must not count as
        # "taken" (a listener still refuses the bind).
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    # Also refuse when something listens on the wildcard address for this port.
    return not port_answers(host, port, timeout=0.2)


def free_port(host: str, avoid: set[int]) -> int:
    """A port the system has free now on ``host`` (none of ``avoid``): for a lab's extra nodes."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if port not in avoid:
            return port


def port_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return True
    except OSError:
        return False


def port_holder(port: int) -> str:
    """Which process listens on ``port`` (Linux /proc), e.g. ``Orthanc (pid 1234)``."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                local, state, inode = parts[1], parts[3], parts[9]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    inodes.add(inode)
    if not inodes:
        return ""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:[") and target[8:-1] in inodes:
                        name = (proc / "comm").read_text().strip()
                        return f"{name} (pid {proc.name})"
    return "another program (its owner is not visible to this user)"


def check_ports_free(host: str, ports: dict[str, int]) -> None:
    for what, port in ports.items():
        if not port_is_free(host, port):
            holder = port_holder(port)
            raise PortInUse(
                f"port {port} ({what}) on {host} is already taken"
                + (f" by {holder}" if holder else ""),
                f"stop that program, or choose another port, e.g. "
                f"DICOMKIT_{what.upper().replace(' ', '_')}_PORT={port + 10000 if port < 55000 else port - 1000}",
                port=port,
                holder=holder,
            )


def wait_until(
    check: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    log_path: Path | None = None,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Poll ``check`` until it is true or ``timeout`` passes; fail early if the process died."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        if check():
            return
        if alive is not None and not alive():
            raise EngineError(
                f"{what} exited while starting",
                f"see its log: {log_path}" + _tail(log_path),
            )
        if time.monotonic() > deadline:
            raise EngineError(
                f"{what} did not become ready within {timeout:.0f} s",
                f"see its log: {log_path}" + _tail(log_path),
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def _tail(path: Path | None, lines: int = 8) -> str:
    if path is None:
        return ""
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return ("\nlast lines:\n  " + "\n  ".join(text)) if text else ""
