"""The docker engine: compose/docker-compose.yml realised through the Docker SDK.

The YAML is the one description of the stack. This module reads it (with the lab's ports, AE
titles and images substituted for its ``${DICOMKIT_...}`` variables), then creates the network,
volumes and containers with the labels Docker Compose itself writes, so ``docker compose -p
dicomkit ps/down`` recognise what ``dicomkit up`` made, and re-running ``up`` converges.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import yaml

from dicomkit.config import LabConfig
from dicomkit.engines import process
from dicomkit.engines.protocol import Reporter, ServiceStatus
from dicomkit.engines.state import LabState, ServiceState, clear_state, now_iso, write_state
from dicomkit.errors import ConfigError, EngineError, PortInUse

log = logging.getLogger(__name__)

DEFAULT_PROJECT = "dicomkit"
# The Compose release whose label set we write (compose reads these to find its containers).
COMPOSE_VERSION = "2.27.0"
SOURCE_HASH_LABEL = "org.dicomkit.source-hash"
ENGINE_LABEL = "org.dicomkit.engine"
# Lab service names (the same on every engine) <-> compose service names.
LAB_SERVICE = {"orthanc": "pacs", "ris": "ris", "mpps": "mpps"}
HEALTH_TIMEOUT = 90.0
PING_TIMEOUT = 2.0
OFFLINE_HINT = (
    "no image registry answers from here? Use --engine native (apt install orthanc "
    "orthanc-dicomweb) or --engine embedded (nothing to install), or point "
    "DICOMKIT_ORTHANC_IMAGE / DICOMKIT_RIS_IMAGE at images you have (docker images)"
)
_VAR_RE = re.compile(
    r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>[^}]*))?\})"
)
_PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


# ---- the compose file ------------------------------------------------------------------------


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


def compose_variables(cfg: LabConfig, env: dict[str, str] | None = None) -> dict[str, str]:
    """The ``${...}`` values for the compose file: the environment, then this lab's config."""
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
        }
    )
    for var, value in (
        ("DICOMKIT_ORTHANC_IMAGE", cfg.orthanc_image),
        ("DICOMKIT_RIS_IMAGE", cfg.ris_image),
    ):
        if value:
            values[var] = value
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


def _compose_file() -> Path:
    """The YAML shipped with the package (compose/ in a checkout, dicomkit/compose when installed)."""
    ref = resources.files("dicomkit.compose").joinpath("docker-compose.yml")
    path = Path(str(ref))
    if not path.is_file():
        raise EngineError(
            "compose/docker-compose.yml is missing from this installation", "reinstall dicomkit"
        )
    return path


def load_compose(
    cfg: LabConfig, env: dict[str, str] | None = None, path: Path | None = None
) -> ComposeProject:
    path = path or _compose_file()
    raw = yaml.safe_load(path.read_text())
    data = _walk(raw, compose_variables(cfg, env))
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
        )
    return ComposeProject(
        name=str(data.get("name") or project_name(env)),
        services=services,
        volumes=list((data.get("volumes") or {}).keys()),
        compose_file=path,
    )


# ---- talking to the Engine -------------------------------------------------------------------


def _docker_host() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def _connect_error(exc: BaseException) -> EngineError:
    text = str(exc)
    where = _docker_host()
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


def _not_found() -> type[Exception]:
    import docker.errors

    return docker.errors.NotFound


def _api_error() -> type[Exception]:
    import docker.errors

    return docker.errors.APIError


def _explain(exc: Exception) -> str:
    return str(getattr(exc, "explanation", "") or exc)


# ---- images ------------------------------------------------------------------------------------


def pull_image(client: Any, image: str, report: Reporter) -> None:
    """Pull ``image``, reporting each layer's progress (in 25 % steps) through ``report``."""
    from docker.utils import parse_repository_tag

    repo, tag = parse_repository_tag(image)
    report(f"pulling {image} (not present locally)")
    seen: dict[str, str] = {}
    try:
        for event in client.api.pull(repo, tag=tag or "latest", stream=True, decode=True):
            if "error" in event:
                raise EngineError(f"cannot pull {image}: {event['error']}", OFFLINE_HINT)
            layer, status = event.get("id", ""), event.get("status", "")
            detail = event.get("progressDetail") or {}
            if status == "Downloading" and detail.get("total"):
                step = int(4 * detail.get("current", 0) / detail["total"]) * 25
                status = f"Downloading {step}%"
            if layer and seen.get(layer) != status:
                seen[layer] = status
                report(f"  {layer}: {status}")
    except EngineError:
        raise
    except Exception as exc:
        raise EngineError(f"cannot pull {image}: {_explain(exc)}", OFFLINE_HINT) from None


def ensure_image(client: Any, image: str, report: Reporter) -> Any:
    try:
        return client.images.get(image)
    except _not_found():
        pull_image(client, image, report)
        return client.images.get(image)


def source_root() -> Path | None:
    """The checkout this package runs from (pyproject.toml beside dicomkit/), if any."""
    here = Path(__file__).resolve().parent.parent.parent
    pyproject = here / "pyproject.toml"
    if pyproject.is_file() and 'name = "dicomkit"' in pyproject.read_text(errors="replace"):
        return here
    return None


def _tree(root: Path, prefix: str) -> Iterator[tuple[str, Path]]:
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_dir() or "__pycache__" in rel.parts or path.suffix in (".pyc", ".pyo"):
            continue
        if rel.parts[0] == "wheels" or rel.parts[0].endswith(".egg-info"):
            continue
        yield f"{prefix}/{rel.as_posix()}", path


def _installed_pyproject(packages: list[str]) -> str:
    """A pyproject.toml for building the installed package (no checkout at hand), laid out
    like the real one: lessons/ and compose/ at the top, shipped as dicomkit.lessons/.compose."""
    dist = metadata.distribution("dicomkit")
    deps = [r for r in (dist.requires or []) if "extra ==" not in r]
    return (
        '[build-system]\nrequires = ["setuptools>=68", "wheel"]\n'
        'build-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "dicomkit"\nversion = "{dist.version}"\nreadme = "README.md"\n'
        f"dependencies = {json.dumps(deps)}\n\n"
        f"[tool.setuptools]\npackages = {json.dumps(sorted(packages))}\n\n"
        "[tool.setuptools.package-dir]\n"
        '"dicomkit.lessons" = "lessons"\n"dicomkit.compose" = "compose"\n\n'
        "[tool.setuptools.package-data]\n"
        'dicomkit = ["py.typed"]\n"dicomkit.lessons" = ["*.toml", "*.md"]\n'
        '"dicomkit.compose" = ["*.yml", "*.json", "Dockerfile*", "*.md"]\n'
    )


def ris_build_files() -> dict[str, bytes]:
    """The RIS image's build context: this package's sources and compose/Dockerfile."""
    files: dict[str, bytes] = {}
    root = source_root()
    if root is not None:
        for name in ("pyproject.toml", "README.md"):
            if (root / name).is_file():
                files[name] = (root / name).read_bytes()
        for folder in ("dicomkit", "lessons", "compose"):
            for arc, path in _tree(root / folder, folder):
                files[arc] = path.read_bytes()
    else:
        pkg = Path(__file__).resolve().parent.parent
        for arc, path in _tree(pkg, "dicomkit"):
            parts = arc.split("/")
            if parts[1] in ("compose", "lessons"):
                arc = "/".join(parts[1:])  # the Dockerfile copies them from the context root
            files[arc] = path.read_bytes()
        packages = [
            ".".join(("dicomkit", *p.parent.relative_to(pkg).parts)).rstrip(".")
            for p in pkg.rglob("__init__.py")
            if "__pycache__" not in p.parts
        ]
        files["pyproject.toml"] = _installed_pyproject(packages).encode()
    files.setdefault("README.md", b"# dicomkit\n")
    if "compose/Dockerfile" not in files:
        raise EngineError(
            "compose/Dockerfile is missing from this installation", "reinstall dicomkit"
        )
    return files


def source_hash(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()[:16]


def _wheelhouse() -> list[Path]:
    """Wheels for an offline build (``DICOMKIT_WHEELHOUSE``), e.g. where no PyPI is reachable."""
    folder = os.environ.get("DICOMKIT_WHEELHOUSE")
    if not folder:
        return []
    wheels = sorted(p for p in Path(folder).glob("*.whl") if not p.name.startswith("dicomkit-"))
    if not wheels:
        raise ConfigError(
            f"DICOMKIT_WHEELHOUSE={folder} holds no wheels", "run `pip wheel -w DIR .` or unset it"
        )
    return wheels


def _tar(files: dict[str, bytes], extra: list[tuple[str, Path]]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
        for name, path in extra:
            tar.add(str(path), arcname=name)
    buf.seek(0)
    return buf


def build_ris_image(
    client: Any, image: str, build: dict[str, Any] | None, report: Reporter, force: bool = False
) -> Any:
    """Build the RIS image when it is missing or its package sources changed (a label holds
    their hash). An image without that label was not built by us: use it as it is."""
    files = ris_build_files()
    wheels = _wheelhouse()
    wanted = source_hash({**files, **{f"wheels/{w.name}": b"" for w in wheels}})
    previous = ""
    try:
        current = client.images.get(image)
        have = (current.labels or {}).get(SOURCE_HASH_LABEL)
        if not force and (have is None or have == wanted):
            return current
        previous = current.id
        report(f"the RIS image {image} is stale (package sources changed): rebuilding")
    except _not_found():
        report(f"building the RIS image {image} (first run: a minute or two)")
    args = {str(k): str(v) for k, v in ((build or {}).get("args") or {}).items()}
    context = _tar(files, [(f"compose/wheels/{w.name}", w) for w in wheels])
    started = time.monotonic()
    tail: list[str] = []
    try:
        for event in client.api.build(
            fileobj=context,
            custom_context=True,
            dockerfile="compose/Dockerfile",
            tag=image,
            buildargs=args,
            labels={SOURCE_HASH_LABEL: wanted, ENGINE_LABEL: "docker"},
            rm=True,
            forcerm=True,
            decode=True,
        ):
            if "error" in event:
                raise EngineError(
                    f"building the RIS image failed: {event['error'].strip()}",
                    ("last build lines:\n  " + "\n  ".join(tail[-8:]) + "\n" if tail else "")
                    + OFFLINE_HINT,
                )
            line = str(event.get("stream", "")).rstrip()
            if line:
                tail.append(line)
                if line.startswith("Step "):
                    first = line.splitlines()[0]
                    report(f"  {first[:72]}{'...' if len(first) > 72 else ''}")
    except EngineError:
        raise
    except Exception as exc:
        raise EngineError(f"building the RIS image failed: {_explain(exc)}", OFFLINE_HINT) from None
    report(f"built {image} in {time.monotonic() - started:.0f} s")
    built = client.images.get(image)
    if previous and previous != built.id:
        # The old build is untagged now; drop it unless a container still uses it.
        with contextlib.suppress(Exception):
            client.images.remove(previous)
    return built


# ---- containers ----------------------------------------------------------------------------------


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
    except _not_found():
        return None


def project_containers(client: Any, project: str) -> list[Any]:
    return list(
        client.containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"})
    )


_PORT_ERR = re.compile(r"(?:Bind for [^ ]*:(\d+) failed|listen tcp[46]? [^ ]*:(\d+): bind)")


def _start(container: Any, svc: ServiceSpec) -> None:
    try:
        container.start()
    except _api_error() as exc:
        text = _explain(exc)
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


def _check_ports(client: Any, project: ComposeProject) -> None:
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


def _ensure_network(client: Any, project: ComposeProject) -> None:
    if client.networks.list(names=[project.network]):
        return
    client.networks.create(
        project.network,
        driver="bridge",
        labels=_labels(project, **{"com.docker.compose.network": "default"}),
    )


def _ensure_volumes(client: Any, project: ComposeProject) -> None:
    for vol in project.volumes:
        name = project.volume_name(vol)
        try:
            client.volumes.get(name)
        except _not_found():
            client.volumes.create(
                name, labels=_labels(project, **{"com.docker.compose.volume": vol})
            )


def _converge_container(
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


def _health(container: Any) -> str:
    return str(((container.attrs.get("State") or {}).get("Health") or {}).get("Status", "none"))


def _probe(cfg: LabConfig, service: str) -> bool:
    """Is the service answering on its host port (what the lab's users actually reach)?"""
    import httpx

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
    cfg: LabConfig, container: Any, service: str, report: Reporter, timeout: float = HEALTH_TIMEOUT
) -> None:
    """Until the container is healthy and answers on its host ports, or ``timeout`` passes."""
    report(f"waiting for {service} ({container.name}) to become healthy")
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        container.reload()
        status, health = container.status, _health(container)
        if status in ("exited", "dead") or health == "unhealthy":
            raise EngineError(
                f"{service} ({container.name}) is {health if status == 'running' else status}",
                f"see `docker logs {container.name}` or `dicomkit logs {LAB_SERVICE.get(service, service)}`"
                + _logs_tail(container),
            )
        if (
            status == "running"
            and health in ("healthy", "starting", "none")
            and _probe(cfg, service)
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


def _orthanc_version(cfg: LabConfig) -> str:
    import httpx

    with contextlib.suppress(httpx.HTTPError, ValueError):
        return str(
            httpx.get(f"http://{cfg.host}:{cfg.http_port}/system", timeout=2.0)
            .json()
            .get("Version", "")
        )
    return ""


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
        return True, f"Docker Engine {version} answers at {_docker_host()}"

    def up(self, cfg: LabConfig, report: Reporter) -> LabState:
        client = connect()
        project = load_compose(cfg)
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
        _check_ports(client, project)
        _ensure_network(client, project)
        _ensure_volumes(client, project)
        state = LabState(
            engine=self.name, endpoints=cfg.endpoints(dicomweb=True), started=now_iso()
        )
        containers: dict[str, Any] = {}
        try:
            for name, svc in project.services.items():
                containers[name] = _converge_container(client, project, svc, images[name], report)
                lab_name = LAB_SERVICE.get(name, name)
                state.services[lab_name] = ServiceState(lab_name, container=containers[name].name)
        finally:
            # Record what exists, so `dicomkit down` finds it even after Ctrl-C or a failed start.
            if state.services:
                write_state(cfg, state)
        try:
            for name, container in containers.items():
                wait_healthy(cfg, container, name, report)
        except EngineError:
            for container in containers.values():
                with contextlib.suppress(Exception):
                    container.stop(timeout=5)
            clear_state(cfg)
            raise
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
                with contextlib.suppress(_not_found()):
                    container.stop(timeout=10)
                with contextlib.suppress(_not_found()):
                    container.remove(force=True)
                report(f"removed container {container.name}")
            for network in client.networks.list(
                filters={"label": f"com.docker.compose.project={project}"}
            ):
                with contextlib.suppress(_not_found()):
                    network.remove()
                    report(f"removed network {network.name}")
            if volumes:
                for volume in client.volumes.list(
                    filters={"label": f"com.docker.compose.project={project}"}
                ):
                    with contextlib.suppress(_not_found()):
                        volume.remove(force=True)
                        report(f"removed volume {volume.name}")

    def status(self, cfg: LabConfig, state: LabState) -> list[ServiceStatus]:
        ep = state.endpoints
        ports = {
            "pacs": f"{ep.dicom_port}/dicom, {ep.mwl_port}/mwl, {ep.http_port}/http",
            "ris": f"{ep.ris_port}/http, {ep.hl7_port}/hl7",
            "mpps": f"{ep.mpps_port}/dicom (MPPS, AE {ep.mpps_aet})",
        }
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
            health = _health(container)
            running = container.status == "running"
            compose_name = container.labels.get("com.docker.compose.service", svc.name)
            healthy = running and health != "unhealthy" and _probe(probe_cfg, compose_name)
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
        lab_name = LAB_SERVICE.get(service, service)
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


__all__ = [
    "ComposeProject",
    "DockerEngine",
    "build_ris_image",
    "connect",
    "load_compose",
    "project_name",
]
