"""A PostgreSQL cluster in the lab's folder, the shared index of several Orthanc nodes: Debian's
server binaries (initdb, postgres), reached on a unix socket in the lab's folder (no TCP port),
run as the ``postgres`` user when dicomkit runs as root (PostgreSQL refuses root)."""

from __future__ import annotations

import contextlib
import os
import pwd
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from dicomkit.config import LabConfig
from dicomkit.errors import EngineError

DATABASE = "orthanc"
USERNAME = "orthanc"  # the cluster's superuser: initdb --username
PORT = 5432  # only names the socket file (.s.PGSQL.5432); no TCP listener
SOCKET_PATH_MAX = 107  # sun_path in Linux's sockaddr_un, less the final NUL
INSTALL_HINT = "sudo apt install postgresql orthanc-postgresql"


def find_bindir() -> Path | None:
    """Debian's server binaries (/usr/lib/postgresql/VERSION/bin; initdb is not on PATH)."""
    root = Path("/usr/lib/postgresql")
    versions = sorted(
        (p for p in root.glob("*/bin") if (p / "initdb").is_file() and p.parent.name.isdigit()),
        key=lambda p: int(p.parent.name),
    )
    return versions[-1] if versions else None


@dataclass(frozen=True)
class Cluster:
    """Where the lab's cluster lives; what Orthanc's PostgreSQL plugin is told."""

    root: Path

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    @property
    def socket_path(self) -> Path:
        return self.socket_dir / f".s.PGSQL.{PORT}"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    def plugin_config(self) -> dict[str, object]:
        """The "PostgreSQL" section of each node's configuration."""
        return {
            "EnableIndex": True,
            # The DICOM files stay in one shared folder (StorageDirectory): PostgreSQL large
            # objects would make every instance a database write and the database as big as
            # the archive, and `dicomkit show`/the lessons expect the files on disk.
            "EnableStorage": False,
            "Host": str(self.socket_dir),  # libpq: a host starting with "/" is a socket folder
            "Port": PORT,
            "Database": DATABASE,
            "Username": USERNAME,
            "Password": "",
            "EnableSsl": False,
            # Several Orthanc processes write the same index (Orthanc >= 1.9.2 with plugin
            # >= 4.0; Orthanc book, faq/scalability "multiple writers"): no exclusive lock.
            "Lock": False,
            "IndexConnectionsCount": 4,
            # Ride out a PostgreSQL restart rather than exit: 30 tries, 1 s apart.
            "MaximumConnectionRetries": 30,
            "ConnectionRetryInterval": 1,
        }


def cluster_for(cfg: LabConfig) -> Cluster:
    return Cluster(cfg.lab_dir / "postgres")


def _server_user() -> pwd.struct_passwd | None:
    """The account PostgreSQL runs as: ``postgres`` when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise EngineError(
            "PostgreSQL refuses to run as root and this machine has no postgres user",
            f"{INSTALL_HINT} (it creates the postgres user), or run dicomkit as a normal user",
        ) from None


def _run(argv: list[str], user: pwd.struct_passwd | None, what: str) -> None:
    kwargs: dict[str, object] = {}
    if user is not None:
        kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(user),
        cwd="/",
        **kwargs,  # type: ignore[call-overload]
    )
    if proc.returncode != 0:
        raise EngineError(
            f"{what} failed (exit {proc.returncode})",
            (proc.stderr or proc.stdout).strip()[-600:] or "see the PostgreSQL log",
        )


def _env(user: pwd.struct_passwd | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C.UTF-8"
    if user is not None:
        env.update(HOME=user.pw_dir, USER=user.pw_name, LOGNAME=user.pw_name)
    return env


def _check_reachable(path: Path, user: pwd.struct_passwd) -> None:
    """Every folder above the cluster must let the postgres user through (x)."""
    for folder in [path, *path.parents]:
        st = folder.stat()
        if st.st_uid == user.pw_uid:
            continue
        if st.st_mode & 0o001 or (st.st_gid == user.pw_gid and st.st_mode & 0o010):
            continue
        raise EngineError(
            f"the postgres user cannot reach {path}: {folder} is closed to it",
            f"let it through with `chmod o+x {folder}` (and any closed folder above), or "
            f"choose a dicomkit home it can reach (DICOMKIT_HOME)",
        )


def prepare(cluster: Cluster) -> pwd.struct_passwd | None:
    """Create the cluster once (initdb), owned by the account that will run it."""
    bindir = find_bindir()
    if bindir is None:
        raise EngineError("PostgreSQL's server is not installed", INSTALL_HINT)
    if len(str(cluster.socket_path)) > SOCKET_PATH_MAX:
        raise EngineError(
            f"the PostgreSQL socket path {cluster.socket_path} is longer than "
            f"{SOCKET_PATH_MAX} characters (a unix socket limit)",
            "choose a shorter dicomkit home, e.g. DICOMKIT_HOME=~/dicomkit",
        )
    user = _server_user()
    cluster.root.mkdir(parents=True, exist_ok=True)
    cluster.socket_dir.mkdir(exist_ok=True)
    if user is not None:
        _check_reachable(cluster.root, user)
        for d in (cluster.root, cluster.socket_dir):
            os.chown(d, user.pw_uid, user.pw_gid)
        if cluster.data_dir.exists():
            os.chown(cluster.data_dir, user.pw_uid, user.pw_gid)
    if not (cluster.data_dir / "PG_VERSION").is_file():
        _run(
            [str(bindir / "initdb"), "--pgdata", str(cluster.data_dir),
             "--username", USERNAME, "--auth", "trust", "--encoding", "UTF8",
             "--no-instructions"],
            user,
            f"initdb of the lab's PostgreSQL cluster in {cluster.data_dir}",
        )  # fmt: skip
    return user


def server_argv(cluster: Cluster) -> list[str]:
    bindir = find_bindir()
    assert bindir is not None  # prepare() checked
    return [
        str(bindir / "postgres"),
        "-D", str(cluster.data_dir),
        "-k", str(cluster.socket_dir),
        "-p", str(PORT),
        "-c", "listen_addresses=",  # the unix socket only: nothing on the network
        "-c", "unix_socket_permissions=0777",  # the socket folder is the lab's
        "-c", "max_connections=200",
    ]  # fmt: skip


def spawn(cluster: Cluster, user: pwd.struct_passwd | None) -> int:
    """Start the server in the background (its own session), output to its log; its PID."""
    cluster.log.parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, object] = {}
    if user is not None:
        kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    with open(cluster.log, "ab") as log:
        if user is not None:
            os.chown(cluster.log, user.pw_uid, user.pw_gid)
        proc = subprocess.Popen(
            server_argv(cluster),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=_env(user),
            cwd="/",
            close_fds=True,
            **kwargs,  # type: ignore[call-overload]
        )
    return int(proc.pid)


def answers(cluster: Cluster) -> bool:
    """The server accepts connections on its socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect(str(cluster.socket_path))
        except OSError:
            return False
    return True


def ensure_database(cluster: Cluster, user: pwd.struct_passwd | None) -> None:
    """The ``orthanc`` database (createdb), once."""
    bindir = find_bindir()
    assert bindir is not None
    psql = [str(bindir / "psql"), "-h", str(cluster.socket_dir), "-p", str(PORT), "-U", USERNAME]
    probe = subprocess.run(
        [*psql, "-d", "postgres", "-tAc", f"SELECT 1 FROM pg_database WHERE datname='{DATABASE}'"],
        capture_output=True,
        text=True,
        timeout=30,
        env=_env(None),
    )
    if probe.returncode == 0 and probe.stdout.strip() == "1":
        return
    _run(
        [str(bindir / "createdb"), "-h", str(cluster.socket_dir), "-p", str(PORT),
         "-U", USERNAME, DATABASE],
        user,
        "createdb orthanc",
    )  # fmt: skip


def remove(cluster: Cluster) -> None:
    import shutil

    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(cluster.root)


__all__ = ["Cluster", "answers", "cluster_for", "ensure_database", "find_bindir", "prepare"]
