"""The docker lab's share of the event feed (dicomkit/labevents.py): Orthanc in its container
logs its ``dicom`` category to the container's output, not to a file of this machine. Before
the feed is read, the new lines are copied from the container's log (Docker API, ``since`` the
last copy) to ``<lab>/logs/orthanc.log``, where the feed reads Orthanc's log on every engine.
Orthanc masks query values in that category (DeidentifyLogs), so no patient data is copied."""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import logging
import os
from pathlib import Path
from typing import Any

from dicomkit.fsutil import atomic_write_text

log = logging.getLogger(__name__)

SINCE_FILE = Path("logs") / "orthanc-log.since"  # the last copied line's Docker timestamp


def _docker_state(lab_dir: Path) -> dict[str, Any]:
    """The state of a docker lab that is up in ``lab_dir`` ({} for other engines)."""
    try:
        state = json.loads((lab_dir / "state.json").read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) and state.get("engine") == "docker" else {}


def _pacs_container(lab_dir: Path) -> str:
    """The PACS container of a docker lab that is up in ``lab_dir`` ("" for other engines)."""
    try:
        return str(_docker_state(lab_dir)["services"]["pacs"]["container"] or "")
    except (KeyError, TypeError):
        return ""


def dicom_log_verbose(http_url: str, headers: dict[str, str], timeout: float = 3.0) -> bool:
    """Orthanc's ``dicom`` log category at verbose (each association and C-ECHO in its log,
    query values masked by Orthanc's DeidentifyLogs), set over REST (Orthanc >= 1.8.1) only when
    it is not already; True when it is verbose now. ``headers``: the feed's probe header
    (labevents.py), which keeps these requests out of the feed."""
    import httpx

    url = f"{http_url}/tools/log-level-dicom"
    try:
        level = httpx.get(url, headers=headers, timeout=timeout)
        if level.status_code == 200 and level.text.strip() in ("verbose", "trace"):
            return True
        r = httpx.put(url, content=b"verbose", headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        log.debug("dicom log level: %s", exc)
        return False
    if r.status_code == 200:
        log.info("Orthanc's dicom log category set to verbose")
    return r.status_code == 200


def keep_dicom_log_verbose(lab_dir: Path, headers: dict[str, str], timeout: float = 3.0) -> bool:
    """``dicom_log_verbose`` for the docker lab up in ``lab_dir`` (False for other engines):
    ``restart: unless-stopped`` brings a crashed Orthanc, or every container after a Docker
    restart, back at the default level, and the feed would lose its associations and C-ECHOs.
    ``up`` sets it first (engines/docker.py)."""
    try:
        ep = _docker_state(Path(lab_dir))["endpoints"]
        http_url = f"http://{ep['host']}:{int(ep['http_port'])}"
    except (KeyError, TypeError, ValueError):
        return False
    return dicom_log_verbose(http_url, headers, timeout)


def _key(stamp: str) -> str:
    """A Docker RFC 3339 timestamp (its fraction has trailing zeros cut) made sortable."""
    head, dot, rest = stamp.partition(".")
    if not dot:
        return stamp
    digits = "".join(c for c in rest if c.isdigit())
    return f"{head}.{digits.ljust(9, '0')}"


def sync_orthanc_log(lab_dir: Path, target: Path, timeout: float = 5.0) -> int:
    """Copy the PACS container's new log lines to ``target`` (labevents.py's Orthanc log in the
    lab folder); how many were copied. Nothing happens for a lab that is not on docker, or when Docker does not answer
    (the feed then lacks associations and C-ECHOs, as it says)."""
    lab_dir = Path(lab_dir)
    container = _pacs_container(lab_dir)
    if not container:
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    since_path = lab_dir / SINCE_FILE
    with open(since_path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one copier at a time (`lesson` and `watch`)
        last = ""
        with contextlib.suppress(OSError):
            last = since_path.read_text().strip()
        try:
            from dicomkit.engines.docker_client import connect

            client = connect(timeout=timeout)
        except Exception as exc:  # the tutor keeps watching what the feed file has
            log.debug("docker log copy: no Docker Engine: %s", exc)
            return 0
        try:
            since = 0
            if last:
                with contextlib.suppress(ValueError):
                    since = int(_dt.datetime.fromisoformat(last[:19]).replace(
                        tzinfo=_dt.timezone.utc).timestamp())  # fmt: skip
            options = {"since": since} if since > 0 else {}  # docker-py refuses since=0
            raw = client.containers.get(container).logs(
                stdout=True, stderr=True, timestamps=True, **options
            )
        except Exception as exc:
            log.debug("docker log copy: %s", exc)
            return 0
        finally:
            client.close()
        lines = []
        newest = last
        for line in raw.decode("utf-8", "replace").splitlines():
            stamp, _, text = line.partition(" ")
            if last and _key(stamp) <= _key(last):
                continue  # copied before (``since`` has whole seconds)
            lines.append(text)
            newest = stamp
        if lines:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, ("\n".join(lines) + "\n").encode("utf-8"))
            finally:
                os.close(fd)
            atomic_write_text(since_path, newest + "\n")
        return len(lines)
