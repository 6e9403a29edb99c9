"""compose/docker-compose.yml, read: the one description of the docker engine's stack, with the
lab's ports, AE titles and images substituted for its ``${DICOMKIT_...}`` variables (Compose's
own interpolation rules), as plain data. No Docker here: the file is read the same with or
without an Engine."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from dicomkit.config import LabConfig
from dicomkit.engines.state import Node
from dicomkit.errors import ConfigError, EngineError

DEFAULT_PROJECT = "dicomkit"
NODES_FILE = "docker-compose.nodes.yml"  # postgres + orthanc-2, on top of the main file
# Lab service names (the same on every engine) <-> compose service names.
LAB_SERVICE = {"orthanc": "pacs", "ris": "ris", "mpps": "mpps"}


def lab_service(compose_service: str) -> str:
    """The lab's name of a compose service: orthanc -> pacs, orthanc-2 -> pacs-2."""
    if compose_service.startswith("orthanc-"):
        return "pacs-" + compose_service.removeprefix("orthanc-")
    return LAB_SERVICE.get(compose_service, compose_service)


def compose_service(lab_name: str) -> str:
    """The compose service of a lab service: pacs -> orthanc, pacs-2 -> orthanc-2."""
    if lab_name.startswith("pacs-"):
        return "orthanc-" + lab_name.removeprefix("pacs-")
    return {v: k for k, v in LAB_SERVICE.items()}.get(lab_name, lab_name)


_VAR_RE = re.compile(
    r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>[^}]*))?\})"
)
_PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass(frozen=True)
class PortSpec:
    host_ip: str
    host_port: int
    container_port: int
    protocol: str = "tcp"


@dataclass(frozen=True)
class MountSpec:
    source: str  # a volume name (unprefixed) or an absolute host path
    target: str
    read_only: bool
    kind: str  # "volume" or "bind"


@dataclass
class ServiceSpec:
    name: str
    image: str
    build: dict[str, Any] | None = None
    command: list[str] | None = None
    environment: dict[str, str] = field(default_factory=dict)
    ports: list[PortSpec] = field(default_factory=list)
    mounts: list[MountSpec] = field(default_factory=list)
    healthcheck: dict[str, Any] | None = None
    restart: str = "no"
    extra_hosts: dict[str, str] = field(default_factory=dict)  # name -> address (or host-gateway)
    depends_on: dict[str, str] = field(default_factory=dict)  # service -> condition


@dataclass
class ComposeProject:
    name: str
    services: dict[str, ServiceSpec]
    volumes: list[str]
    compose_file: Path

    @property
    def network(self) -> str:
        return f"{self.name}_default"

    def container_name(self, service: str) -> str:
        return f"{self.name}-{service}-1"

    def volume_name(self, volume: str) -> str:
        return f"{self.name}_{volume}"


def project_name(env: dict[str, str] | None = None) -> str:
    """``DICOMKIT_PROJECT`` (tests use their own, so they never touch a user's lab)."""
    env = dict(os.environ) if env is None else env
    name = env.get("DICOMKIT_PROJECT") or DEFAULT_PROJECT
    if not _PROJECT_RE.match(name):
        raise ConfigError(
            f"DICOMKIT_PROJECT {name!r} is not a valid compose project name",
            "use lowercase letters, digits, '-' and '_', starting with a letter or digit",
        )
    return name


def compose_variables(
    cfg: LabConfig, env: dict[str, str] | None = None, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The ``${...}`` values for the compose file: the environment, this lab's config, then
    ``extra`` (e.g. the ports `up --nodes N` chose for node 2)."""
    env = dict(os.environ) if env is None else env
    values = dict(env)
    values.update(
        {
            "DICOMKIT_PROJECT": project_name(env),
            "DICOMKIT_DICOM_PORT": str(cfg.dicom_port),
            "DICOMKIT_MWL_PORT": str(cfg.mwl_port),
            "DICOMKIT_HTTP_PORT": str(cfg.http_port),
            "DICOMKIT_RIS_PORT": str(cfg.ris_port),
            "DICOMKIT_HL7_PORT": str(cfg.hl7_port),
            "DICOMKIT_MPPS_PORT": str(cfg.mpps_port),
            "DICOMKIT_MPPS_AET": cfg.mpps_aet,
            "DICOMKIT_PACS_AET": cfg.pacs_aet,
            "DICOMKIT_AET": cfg.aet,
            "DICOMKIT_RETRIEVE_PORT": str(cfg.retrieve_port),
            # Where Orthanc's Lua writes the lab's event feed (labevents.py).
            "DICOMKIT_FEED_DIR": str(cfg.lab_dir / "feed"),
            # The lab's worklist folder, bound into the RIS and Orthanc containers: the tutor
            # counts a worklist C-FIND's matches over it, as on the native engine.
            "DICOMKIT_WORKLISTS": str(cfg.worklist_dir),
        }
    )
    for var, value in (
        ("DICOMKIT_ORTHANC_IMAGE", cfg.orthanc_image),
        ("DICOMKIT_RIS_IMAGE", cfg.ris_image),
    ):
        if value:
            values[var] = value
    values.update(extra or {})
    return values


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's variable syntax: ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``$$``."""

    def sub(m: re.Match[str]) -> str:
        name = m.group("name")
        if name is None:
            return "$"
        have = variables.get(name)
        op = m.group("op")
        if op == ":-" and not have:
            return m.group("default")
        if op == "-" and have is None:
            return m.group("default")
        return have or ""

    return _VAR_RE.sub(sub, value)


def _walk(node: Any, variables: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, variables)
    if isinstance(node, list):
        return [_walk(v, variables) for v in node]
    if isinstance(node, dict):
        return {k: _walk(v, variables) for k, v in node.items()}
    return node


def parse_duration(text: str | int | float) -> int:
    """Compose durations (``2s``, ``1m30s``, ``500ms``) in nanoseconds, as the Engine API wants."""
    if isinstance(text, (int, float)):
        return int(text * 1_000_000_000)
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    total = 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise ConfigError(f"bad duration {text!r} in the compose file", "use e.g. 2s or 1m30s")
    for number, unit in parts:
        total += float(number) * units[unit]
    return int(total * 1_000_000_000)


def parse_port(text: str) -> PortSpec:
    """``[HOST_IP:]HOST_PORT:CONTAINER_PORT[/PROTO]`` (the short syntax)."""
    spec, _, proto = str(text).partition("/")
    parts = spec.rsplit(":", 2)
    try:
        if len(parts) == 3:
            return PortSpec(parts[0], int(parts[1]), int(parts[2]), proto or "tcp")
        if len(parts) == 2:
            return PortSpec("", int(parts[0]), int(parts[1]), proto or "tcp")
    except ValueError:
        pass
    raise ConfigError(
        f"port {text!r} in the compose file is not HOST_IP:HOST_PORT:CONTAINER_PORT",
        "write it like 127.0.0.1:4242:4242",
    )


def parse_extra_hosts(block: Any) -> dict[str, str]:
    """Compose ``extra_hosts``, as a list of ``name:address`` (or ``name=address``) or a mapping."""
    if not block:
        return {}
    if isinstance(block, dict):
        return {str(k): str(v) for k, v in block.items()}
    out = {}
    for item in block:
        name, sep, address = str(item).partition("=")
        if not sep:
            name, sep, address = str(item).partition(":")
        if not sep or not name or not address:
            raise EngineError(
                f"extra_hosts entry {item!r} is not NAME:ADDRESS",
                'write it as "host.docker.internal:host-gateway" in the compose file',
            )
        out[name] = address
    return out


def parse_mount(text: str, base_dir: Path) -> MountSpec:
    parts = str(text).split(":")
    if len(parts) not in (2, 3):
        raise ConfigError(f"volume {text!r} in the compose file is not SOURCE:TARGET[:ro]", "")
    source, target = parts[0], parts[1]
    read_only = len(parts) == 3 and "ro" in parts[2].split(",")
    if source.startswith((".", "/", "~")):
        path = Path(source).expanduser()
        if not path.is_absolute():
            path = (base_dir / path).resolve()
        return MountSpec(str(path), target, read_only, "bind")
    return MountSpec(source, target, read_only, "volume")


def _depends_on(value: Any) -> dict[str, str]:
    """Both syntaxes: a list of services (started first), or service -> {condition}."""
    if isinstance(value, list):
        return {str(v): "service_started" for v in value}
    if isinstance(value, dict):
        return {
            str(k): str((v or {}).get("condition", "service_started")) for k, v in value.items()
        }
    return {}


def compose_file(name: str = "docker-compose.yml") -> Path:
    """A YAML file shipped with the package (compose/ in a checkout, dicomkit/compose when
    installed)."""
    ref = resources.files("dicomkit.compose").joinpath(name)
    path = Path(str(ref))
    if not path.is_file():
        raise EngineError(f"compose/{name} is missing from this installation", "reinstall dicomkit")
    return path


def merge(base: Any, override: Any, key: str = "") -> Any:
    """Compose's merge of a second file onto the first: mappings key by key, ``ports`` and
    ``volumes`` of a service appended (without repeats), any other value replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for k, v in override.items():
            out[k] = merge(base[k], v, str(k)) if k in base else v
        return out
    if isinstance(base, list) and isinstance(override, list) and key in ("ports", "volumes"):
        return base + [v for v in override if v not in base]
    return override


def load_compose(
    cfg: LabConfig,
    env: dict[str, str] | None = None,
    path: Path | None = None,
    overlays: list[Path] | None = None,
    extra: dict[str, str] | None = None,
) -> ComposeProject:
    """The compose file (and ``overlays`` merged on top, as ``docker compose -f A -f B``)."""
    path = path or compose_file()
    raw = yaml.safe_load(path.read_text())
    for overlay in overlays or []:
        raw = merge(raw, yaml.safe_load(overlay.read_text()))
    data = _walk(raw, compose_variables(cfg, env, extra))
    services: dict[str, ServiceSpec] = {}
    for name, svc in (data.get("services") or {}).items():
        command = svc.get("command")
        if isinstance(command, str):
            command = command.split()
        env_block = svc.get("environment") or {}
        if isinstance(env_block, list):
            env_block = dict(item.split("=", 1) for item in env_block)
        health = svc.get("healthcheck")
        healthcheck = None
        if health and not health.get("disable"):
            test = health["test"]
            healthcheck = {
                "test": ["CMD-SHELL", test] if isinstance(test, str) else list(test),
                "interval": parse_duration(health.get("interval", "30s")),
                "timeout": parse_duration(health.get("timeout", "30s")),
                "retries": int(health.get("retries", 3)),
                "start_period": parse_duration(health.get("start_period", "0s")),
            }
        services[name] = ServiceSpec(
            name=name,
            image=str(svc["image"]),
            build=svc.get("build"),
            command=[str(c) for c in command] if command else None,
            environment={str(k): str(v) for k, v in env_block.items()},
            ports=[parse_port(p) for p in svc.get("ports") or []],
            mounts=[parse_mount(v, path.parent) for v in svc.get("volumes") or []],
            healthcheck=healthcheck,
            restart=str(svc.get("restart", "no")),
            extra_hosts=parse_extra_hosts(svc.get("extra_hosts")),
            depends_on=_depends_on(svc.get("depends_on")),
        )
    return ComposeProject(
        name=str(data.get("name") or project_name(env)),
        services=services,
        volumes=list((data.get("volumes") or {}).keys()),
        compose_file=path,
    )


def with_nodes(project: ComposeProject, nodes: list[Node]) -> ComposeProject:
    """Nodes 3..N made like orthanc-2 of the nodes file, on their own host ports (``nodes``:
    every node's ports, node 1 first). Compose itself would need a file per node."""
    template = project.services.get("orthanc-2")
    if template is None:
        raise EngineError(
            f"the compose files lack the service orthanc-2 ({NODES_FILE})",
            "restore compose/ from the dicomkit sources",
        )
    for number, node in enumerate(nodes[2:], 3):
        env = dict(template.environment)
        conf = json.loads(env.get("ORTHANC_JSON") or "{}")
        conf["Name"] = f"dicomkit PACS node {number}"
        env["ORTHANC_JSON"] = json.dumps(conf)
        host_port = {4242: node.dicom_port, 8042: node.http_port}
        ports = [
            replace(p, host_port=host_port.get(p.container_port, p.host_port))
            for p in template.ports
        ]
        name = f"orthanc-{number}"
        project.services[name] = replace(template, name=name, environment=env, ports=ports)
    return project


def start_order(project: ComposeProject) -> list[str]:
    """Services in file order, each after those it depends on."""
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in order:
            return
        if name in path:
            raise ConfigError(
                f"the compose files' depends_on loop: {' -> '.join((*path, name))}", ""
            )
        for dep in project.services[name].depends_on:
            if dep in project.services:
                visit(dep, (*path, name))
        order.append(name)

    for name in project.services:
        visit(name, ())
    return order
