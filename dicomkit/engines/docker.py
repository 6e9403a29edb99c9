"""The docker engine: compose/docker-compose.yml (compose.py) realised through the Docker SDK
(docker_client.py, docker_images.py, docker_containers.py), recorded in the lab's state file."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dicomkit.config import LabConfig
from dicomkit.engines.compose import (
    NODES_FILE,
    compose_file,
    compose_service,
    lab_service,
    load_compose,
    project_name,
    start_order,
    with_nodes,
)
from dicomkit.engines.docker_client import connect, docker_host, not_found
from dicomkit.engines.docker_containers import (
    check_ports,
    converge_container,
    ensure_network,
    ensure_volumes,
    find_container,
    health_status,
    host_gateway,
    probe,
    project_containers,
    wait_healthy,
)
from dicomkit.engines.docker_images import build_ris_image, ensure_image
from dicomkit.engines.protocol import Reporter, ServiceStatus
from dicomkit.engines.state import (
    LabState,
    Node,
    ServiceState,
    clear_state,
    node_ports,
    now_iso,
    write_state,
)
from dicomkit.errors import EngineError

PING_TIMEOUT = 2.0


def _orthanc_version(cfg: LabConfig) -> str:
    import httpx

    with contextlib.suppress(httpx.HTTPError, ValueError):
        return str(
            httpx.get(f"http://{cfg.host}:{cfg.http_port}/system", timeout=2.0)
            .json()
            .get("Version", "")
        )
    return ""


def prepare_feed(cfg: LabConfig) -> None:
    """The folder Orthanc's Lua writes the lab's event feed into (DICOMKIT_FEED_DIR, mounted in
    its container), and ``<lab>/events.jsonl`` pointing into it: where every reader looks."""
    from dicomkit.labevents import EVENTS_FILE, events_path

    feed_dir = cfg.lab_dir / "feed"
    feed_dir.mkdir(parents=True, exist_ok=True)
    cfg.worklist_dir.mkdir(parents=True, exist_ok=True)  # DICOMKIT_WORKLISTS, bound likewise
    link = events_path(cfg.lab_dir)
    target = Path("feed") / EVENTS_FILE
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return
    with contextlib.suppress(FileNotFoundError):
        link.unlink()  # an earlier lab's feed (another engine) in the same home
    link.symlink_to(target)


def _older_than(version: str, minimum: tuple[int, ...]) -> bool:
    nums = tuple(int(n) for n in re.findall(r"\d+", version)[:3])
    return bool(nums) and nums < minimum


def _project_of(container_name: str) -> str:
    return container_name.rsplit("-", 2)[0] if container_name.count("-") >= 2 else ""


class DockerEngine:
    name = "docker"

    def available(self) -> tuple[bool, str]:
        try:
            client = connect(timeout=PING_TIMEOUT)
        except EngineError as exc:
            # select_engine() shows only this reason: carry the fix when it is not "start Docker".
            if exc.message.startswith("permission denied"):
                return False, f"{exc.message}: {exc.hint}"
            return False, exc.message
        try:
            version = client.version().get("Version", "?")
        except Exception:
            version = "?"
        finally:
            client.close()
        return True, f"Docker Engine {version} answers at {docker_host()}"

    def up(self, cfg: LabConfig, report: Reporter) -> LabState:
        client = connect()
        nodes = node_ports(cfg)
        overlays, extra = [], {}
        if len(nodes) > 1:
            overlays = [compose_file(NODES_FILE)]
            extra = {
                "DICOMKIT_NODE2_DICOM_PORT": str(nodes[1].dicom_port),
                "DICOMKIT_NODE2_HTTP_PORT": str(nodes[1].http_port),
            }
        project = load_compose(cfg, overlays=overlays, extra=extra)
        if len(nodes) > 2:
            project = with_nodes(project, nodes)
        missing = {"orthanc", "ris"} - set(project.services)
        if missing:
            raise EngineError(
                f"the compose file {project.compose_file} lacks the service(s) {', '.join(sorted(missing))}",
                "restore compose/docker-compose.yml from the dicomkit sources",
            )
        images = {}
        for name, svc in project.services.items():
            if svc.build is not None:
                images[name] = build_ris_image(client, svc.image, svc.build, report)
            else:
                images[name] = ensure_image(client, svc.image, report)
        check_ports(client, project)
        ensure_network(client, project)
        ensure_volumes(client, project)
        prepare_feed(cfg)
        endpoints = cfg.endpoints(dicomweb=True)
        if not cfg.listen_host and "orthanc" in project.services:
            gateway = host_gateway(client)
            if gateway:
                endpoints = dataclasses.replace(endpoints, listen_host=gateway)
            else:
                report(
                    "note: no Docker bridge gateway found: `dicomkit retrieve` (C-MOVE) and "
                    "`commit` listen on 127.0.0.1, which Orthanc in its container cannot reach "
                    "(use `retrieve --get`, or set DICOMKIT_LISTEN_HOST)"
                )
        state = LabState(
            engine=self.name,
            endpoints=endpoints,
            started=now_iso(),
            nodes=nodes if len(nodes) > 1 else [],
        )

        def node_of(service: str) -> Node | None:
            """orthanc-2.. answer on their own ports; the others on the lab's."""
            if service.startswith("orthanc-"):
                return nodes[int(service.removeprefix("orthanc-")) - 1]
            return None

        gave_up = []

        def give_up() -> None:
            gave_up.append(True)
            for container in containers.values():
                with contextlib.suppress(Exception):
                    container.stop(timeout=5)
            clear_state(cfg)

        containers: dict[str, Any] = {}
        try:
            for name in start_order(project):
                svc = project.services[name]
                for dep, condition in svc.depends_on.items():
                    # e.g. PostgreSQL before the nodes; node 1 (it makes the index's tables)
                    # before the others.
                    if condition == "service_healthy" and dep in containers:
                        try:
                            wait_healthy(cfg, containers[dep], dep, report, node=node_of(dep))
                        except EngineError:
                            give_up()
                            raise
                containers[name] = converge_container(client, project, svc, images[name], report)
                lab_name = lab_service(name)
                state.services[lab_name] = ServiceState(lab_name, container=containers[name].name)
        finally:
            # Record what exists, so `dicomkit down` finds it even after Ctrl-C or a failed start.
            if state.services and not gave_up:
                write_state(cfg, state)
        try:
            for name, container in containers.items():
                wait_healthy(cfg, container, name, report, node=node_of(name))
        except EngineError:
            give_up()
            raise
        from dicomkit.engines.docker_feed import dicom_log_verbose
        from dicomkit.labevents import PROBE_HEADER

        if not dicom_log_verbose(f"http://{cfg.host}:{cfg.http_port}", {PROBE_HEADER: "up"}, 5.0):
            report("note: Orthanc did not take the dicom log level: the tutor will not see "
                   "associations and C-ECHOs (the event feed still has finds and stores)")  # fmt: skip
        version = _orthanc_version(cfg)
        if version:
            report(f"Orthanc {version} ({project.services['orthanc'].image})")
            if _older_than(version, (1, 12, 11)):
                report(
                    f"note: Orthanc {version} predates 1.12.11, which fixed published CVEs: a lab image only"
                )
        return state

    def down(self, cfg: LabConfig, state: LabState | None, volumes: bool, report: Reporter) -> None:
        projects = {project_name()}
        if state is not None:
            projects.update(
                p for p in (_project_of(s.container) for s in state.services.values()) if p
            )
        try:
            client = connect()
        except EngineError:
            if state is None and not volumes:
                return
            raise
        for project in sorted(projects):
            for container in project_containers(client, project):
                with contextlib.suppress(not_found()):
                    container.stop(timeout=10)
                with contextlib.suppress(not_found()):
                    container.remove(force=True)
                report(f"removed container {container.name}")
            for network in client.networks.list(
                filters={"label": f"com.docker.compose.project={project}"}
            ):
                with contextlib.suppress(not_found()):
                    network.remove()
                    report(f"removed network {network.name}")
            if volumes:
                for volume in client.volumes.list(
                    filters={"label": f"com.docker.compose.project={project}"}
                ):
                    with contextlib.suppress(not_found()):
                        volume.remove(force=True)
                        report(f"removed volume {volume.name}")

    def status(self, cfg: LabConfig, state: LabState) -> list[ServiceStatus]:
        ep = state.endpoints
        ports = {
            "pacs": f"{ep.dicom_port}/dicom, {ep.mwl_port}/mwl, {ep.http_port}/http",
            "ris": f"{ep.ris_port}/http, {ep.hl7_port}/hl7",
            "mpps": f"{ep.mpps_port}/dicom (MPPS, AE {ep.mpps_aet})",
            "postgres": "no host port (the nodes' shared index)",
        }
        node_of: dict[str, Node] = {}
        for number, node in enumerate(state.nodes[1:], 2):
            node_of[f"orthanc-{number}"] = node
            ports[f"pacs-{number}"] = f"{node.dicom_port}/dicom, {node.http_port}/http"
        try:
            client = connect(timeout=5)
        except EngineError as exc:
            return [
                ServiceStatus(s.name, False, False, ports.get(s.name, ""), exc.message)
                for s in state.services.values()
            ]
        out = []
        probe_cfg = cfg.with_overrides(
            host=ep.host,
            dicom_port=ep.dicom_port,
            mwl_port=ep.mwl_port,
            http_port=ep.http_port,
            ris_port=ep.ris_port,
            mpps_port=ep.mpps_port,
        )
        for svc in state.services.values():
            container = find_container(client, svc.container) if svc.container else None
            if container is None:
                out.append(
                    ServiceStatus(
                        svc.name,
                        False,
                        False,
                        ports.get(svc.name, ""),
                        f"container {svc.container} is gone",
                    )
                )
                continue
            health = health_status(container)
            running = container.status == "running"
            compose_name = container.labels.get("com.docker.compose.service", svc.name)
            if compose_name == "postgres":
                healthy = running and health == "healthy"
            else:
                healthy = (
                    running
                    and health != "unhealthy"
                    and probe(probe_cfg, compose_name, node_of.get(compose_name))
                )
            out.append(
                ServiceStatus(
                    svc.name,
                    running,
                    healthy,
                    ports.get(svc.name, ""),
                    f"container {container.name} ({container.status}, health {health})",
                )
            )
        return out

    def logs(self, cfg: LabConfig, state: LabState, service: str, follow: bool) -> Iterator[str]:
        lab_name = lab_service(compose_service(service))
        svc = state.services.get(lab_name)
        if svc is None or not svc.container:
            raise EngineError(
                f"no service {service!r} in this lab", f"choose one of: {', '.join(state.services)}"
            )
        client = connect()
        container = find_container(client, svc.container)
        if container is None:
            raise EngineError(
                f"the container {svc.container} is gone", "start the lab again: dicomkit up"
            )
        return _lines(container.logs(stream=True, follow=follow))


def _lines(chunks: Iterator[bytes]) -> Iterator[str]:
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line.decode(errors="replace") + "\n"
    if pending:
        yield pending.decode(errors="replace") + "\n"


__all__ = ["DockerEngine"]
