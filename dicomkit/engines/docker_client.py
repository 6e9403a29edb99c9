"""Talking to the Docker Engine: a client that has answered a ping (or an error naming the fix),
and the SDK's error types, imported only when needed."""

from __future__ import annotations

import logging
import os
from typing import Any

from dicomkit.errors import EngineError

log = logging.getLogger(__name__)

# The label on every image and container the docker engine makes.
ENGINE_LABEL = "org.dicomkit.engine"


def docker_host() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def _connect_error(exc: BaseException) -> EngineError:
    text = str(exc)
    where = docker_host()
    if "Permission denied" in text or "PermissionError" in text:
        return EngineError(
            f"permission denied on the Docker socket ({where})",
            "add your user to the docker group: `sudo usermod -aG docker $USER`, then "
            "`newgrp docker` (or log out and in)",
        )
    return EngineError(
        f"no Docker Engine answers at {where}",
        "start Docker (`sudo systemctl start docker`, or Docker Desktop), or use "
        "--engine native (apt install orthanc orthanc-dicomweb) or --engine embedded",
    )


def connect(timeout: float = 60.0) -> Any:
    """A ``docker.DockerClient`` that has answered a ping, or an EngineError naming the fix."""
    try:
        import docker
    except ImportError as exc:  # a dependency, but say so plainly if it was removed
        raise EngineError(
            f"the docker Python package is missing ({exc})", "pip install docker"
        ) from None
    try:
        client = docker.from_env(timeout=int(max(1, timeout)))
        client.ping()
    except Exception as exc:  # DockerException, requests' ConnectionError, PermissionError...
        log.debug("docker connect failed: %r", exc)
        raise _connect_error(exc) from None
    return client


def not_found() -> type[Exception]:
    import docker.errors

    return docker.errors.NotFound


def api_error() -> type[Exception]:
    import docker.errors

    return docker.errors.APIError


def explain(exc: Exception) -> str:
    return str(getattr(exc, "explanation", "") or exc)
