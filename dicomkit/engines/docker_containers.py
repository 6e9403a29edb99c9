"""The compose project made real through the Docker SDK: network, volumes and containers with
the labels Docker Compose itself writes, so ``docker compose -p dicomkit ps/down`` recognise
what ``dicomkit up`` made and re-running ``up`` converges (a container is recreated only when
its configuration changed); then waited for until healthy on its host ports."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from typing import Any

from dicomkit.config import LabConfig
from dicomkit.engines import process
from dicomkit.engines.compose import ComposeProject, ServiceSpec, lab_service
from dicomkit.engines.docker_client import ENGINE_LABEL, api_error, explain, not_found
from dicomkit.engines.protocol import Reporter
from dicomkit.engines.state import Node
from dicomkit.errors import EngineError, PortInUse

# The Compose release whose label set we write (compose reads these to find its containers).
COMPOSE_VERSION = "2.27.0"
HEALTH_TIMEOUT = 90.0
UNPUBLISHED = ("postgres",)  # services with no host port: their healthcheck is the probe


def _labels(project: ComposeProject, **extra: str) -> dict[str, str]:
    # Only Compose's own labels: compose compares a volume's labels with the file's and warns
    # ("label has changed") about any other.
    return {
        "com.docker.compose.project": project.name,
        "com.docker.compose.version": COMPOSE_VERSION,
        **extra,
    }


def container_config(project: ComposeProject, svc: ServiceSpec, image_id: str) -> dict[str, Any]:
    """Keyword arguments for ``containers.create`` (minus the labels that hash them)."""
    from docker.types import Mount

    ports: dict[str, list[tuple[str, int]]] = {}
    for p in svc.ports:
        binding = (p.host_ip or "0.0.0.0", p.host_port)
        key = f"{p.container_port}/{p.protocol}"
        if binding not in ports.setdefault(key, []):  # mwl_port == dicom_port: publish once
            ports[key].append(binding)
    mounts = [
        Mount(
            target=m.target,
            source=project.volume_name(m.source) if m.kind == "volume" else m.source,
            type=m.kind,
            read_only=m.read_only,
        )
        for m in svc.mounts
    ]
    return {
        "image": image_id,
        "command": svc.command,
        "environment": dict(sorted(svc.environment.items())),
        "ports": ports,
        "mounts": mounts,
        "healthcheck": svc.healthcheck,
        "restart_policy": {"Name": svc.restart} if svc.restart != "no" else None,
        "hostname": svc.name,
    }


def config_hash(config: dict[str, Any]) -> str:
    text = json.dumps(
        config, sort_keys=True, default=lambda o: dict(o) if isinstance(o, dict) else repr(o)
    )
    return hashlib.sha256(text.encode()).hexdigest()


def find_container(client: Any, name: str) -> Any | None:
    try:
        return client.containers.get(name)
    except not_found():
        return None


def project_containers(client: Any, project: str) -> list[Any]:
    return list(
        client.containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"})
    )


_PORT_ERR = re.compile(r"(?:Bind for [^ ]*:(\d+) failed|listen tcp[46]? [^ ]*:(\d+): bind)")


def _start(container: Any, svc: ServiceSpec) -> None:
    try:
        container.start()
    except api_error() as exc:
        text = explain(exc)
        m = _PORT_ERR.search(text)
        if m or "port is already allocated" in text or "address already in use" in text:
            port = int((m.group(1) or m.group(2)) if m else 0)
            holder = process.port_holder(port) if port else ""
            raise PortInUse(
                f"port {port or '?'} ({svc.name}) is already taken"
                + (f" by {holder}" if holder else ""),
                "stop that program, or choose other ports (DICOMKIT_DICOM_PORT, DICOMKIT_MWL_PORT, "
                "DICOMKIT_HTTP_PORT, DICOMKIT_RIS_PORT)",
                port=port,
                holder=holder,
            ) from None
        raise EngineError(
            f"cannot start {svc.name}: {text}", f"see `docker logs {container.name}`"
        ) from None


def check_ports(client: Any, project: ComposeProject) -> None:
    """Fail before creating anything when a host port is taken by something that is not ours."""
    ours: set[int] = set()
    for c in project_containers(client, project.name):
        if c.status == "running":
            for bindings in (c.attrs.get("HostConfig", {}).get("PortBindings") or {}).values():
                ours.update(int(b.get("HostPort") or 0) for b in bindings or [])
    what = {"orthanc": "PACS", "ris": "RIS", "mpps": "MPPS SCP"}
    for svc in project.services.values():
        for p in svc.ports:
            if p.host_port in ours:
                continue
            if not process.port_is_free(p.host_ip or "0.0.0.0", p.host_port):
                holder = process.port_holder(p.host_port)
                raise PortInUse(
                    f"port {p.host_port} ({what.get(svc.name, svc.name)}, container port "
                    f"{p.container_port}) on {p.host_ip or '*'} is already taken"
                    + (f" by {holder}" if holder else ""),
                    "stop that program, or move the lab: DICOMKIT_DICOM_PORT, DICOMKIT_MWL_PORT, "
                    "DICOMKIT_HTTP_PORT, DICOMKIT_RIS_PORT (or --engine native)",
                    port=p.host_port,
                    holder=holder,
                )


def ensure_network(client: Any, project: ComposeProject) -> None:
    if client.networks.list(names=[project.network]):
        return
    client.networks.create(
        project.network,
        driver="bridge",
        labels=_labels(project, **{"com.docker.compose.network": "default"}),
    )


def ensure_volumes(client: Any, project: ComposeProject) -> None:
    for vol in project.volumes:
        name = project.volume_name(vol)
        try:
            client.volumes.get(name)
        except not_found():
            client.volumes.create(
                name, labels=_labels(project, **{"com.docker.compose.volume": vol})
            )


def converge_container(
    client: Any, project: ComposeProject, svc: ServiceSpec, image: Any, report: Reporter
) -> Any:
    config = container_config(project, svc, image.id)
    wanted = config_hash(config)
    name = project.container_name(svc.name)
    existing = find_container(client, name)
    if existing is not None:
        if existing.labels.get("com.docker.compose.config-hash") == wanted:
            if existing.status != "running":
                report(f"starting {name}")
                _start(existing, svc)
            return existing
        report(f"recreating {name} (its configuration changed)")
        existing.remove(force=True)
    labels = _labels(
        project,
        **{
            "com.docker.compose.service": svc.name,
            "com.docker.compose.container-number": "1",
            "com.docker.compose.oneoff": "False",
            "com.docker.compose.config-hash": wanted,
            "com.docker.compose.image": image.id,
            "com.docker.compose.depends_on": "",
            "com.docker.compose.project.working_dir": str(project.compose_file.parent),
            "com.docker.compose.project.config_files": str(project.compose_file),
            ENGINE_LABEL: "docker",
        },
    )
    endpoint = client.api.create_endpoint_config(aliases=[svc.name, name])
    container = client.containers.create(
        name=name,
        labels=labels,
        network=project.network,
        networking_config={project.network: endpoint},
        detach=True,
        **{k: v for k, v in config.items() if v is not None},
    )
    report(f"created {name}")
    _start(container, svc)
    return container


def _logs_tail(container: Any, lines: int = 12) -> str:
    with contextlib.suppress(Exception):
        text = container.logs(tail=lines).decode(errors="replace").rstrip()
        if text:
            return "\nlast log lines:\n  " + "\n  ".join(text.splitlines())
    return ""


def health_status(container: Any) -> str:
    return str(((container.attrs.get("State") or {}).get("Health") or {}).get("Status", "none"))


def probe(cfg: LabConfig, service: str, node: Node | None = None) -> bool:
    """Is the service answering on its host port (what the lab's users actually reach)?
    ``node``: the ports of an Orthanc node other than the first (orthanc-2...)."""
    import httpx

    if node is not None:
        cfg = cfg.with_overrides(
            dicom_port=node.dicom_port, mwl_port=node.dicom_port, http_port=node.http_port
        )
        service = "orthanc"
    if service == "mpps":
        # A C-ECHO, not a bare connect: pynetdicom keeps an association slot for a silent
        # connection until its timeout.
        from dicomkit.dicom.net import Peer, echo
        from dicomkit.errors import DicomkitError

        try:
            return echo(Peer(cfg.host, cfg.mpps_port, cfg.mpps_aet), cfg.aet, timeout=2.0).ok
        except DicomkitError:
            return False
    url = (
        f"http://{cfg.host}:{cfg.http_port}/system"
        if service == "orthanc"
        else f"http://{cfg.host}:{cfg.ris_port}/healthz"
    )
    try:
        ok = httpx.get(url, timeout=1.0).status_code in (200, 401)
    except httpx.HTTPError:
        return False
    if service == "orthanc":
        ok = (
            ok
            and process.port_answers(cfg.host, cfg.dicom_port)
            and process.port_answers(cfg.host, cfg.mwl_port)
        )
    return ok


def wait_healthy(
    cfg: LabConfig,
    container: Any,
    service: str,
    report: Reporter,
    timeout: float = HEALTH_TIMEOUT,
    node: Node | None = None,
) -> None:
    """Until the container is healthy and answers on its host ports, or ``timeout`` passes.
    A service without host ports (postgres) is ready when its own healthcheck says healthy."""
    report(f"waiting for {service} ({container.name}) to become healthy")
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        container.reload()
        status, health = container.status, health_status(container)
        if status in ("exited", "dead") or health == "unhealthy":
            raise EngineError(
                f"{service} ({container.name}) is {health if status == 'running' else status}",
                f"see `docker logs {container.name}` or `dicomkit logs {lab_service(service)}`"
                + _logs_tail(container),
            )
        if status == "running" and (
            health == "healthy"
            if service in UNPUBLISHED
            else health in ("healthy", "starting", "none") and probe(cfg, service, node)
        ):
            return
        if time.monotonic() > deadline:
            raise EngineError(
                f"{service} ({container.name}) did not become healthy within {timeout:.0f} s "
                f"(state {status}, health {health})",
                f"see `docker logs {container.name}`" + _logs_tail(container),
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
