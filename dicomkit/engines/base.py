"""What every engine offers, the lab's state file, and the choice of engine."""

from __future__ import annotations

import datetime as _dt
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from dicomkit.config import Endpoints, LabConfig
from dicomkit.errors import EngineError, StateError
from dicomkit.fsutil import atomic_write_text

Reporter = Callable[[str], None]

STATE_VERSION = 1


@dataclass
class ServiceState:
    name: str
    pid: int = 0
    log: str = ""
    container: str = ""
    cmd_marker: str = ""  # a string its command line contains, to recognise our PID


@dataclass
class LabState:
    engine: str
    endpoints: Endpoints
    services: dict[str, ServiceState] = field(default_factory=dict)
    started: str = ""
    version: int = STATE_VERSION

    def to_json(self) -> str:
        d = asdict(self)
        return json.dumps(d, indent=2)

    @classmethod
    def from_json(cls, text: str, path: Path) -> LabState:
        try:
            d = json.loads(text)
            if d.get("version") != STATE_VERSION:
                raise ValueError(f"state version {d.get('version')!r}")
            return cls(
                engine=str(d["engine"]),
                endpoints=Endpoints(**d["endpoints"]),
                services={k: ServiceState(**v) for k, v in d.get("services", {}).items()},
                started=str(d.get("started", "")),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise StateError(
                f"the lab state file {path} is unreadable ({exc})",
                f"stop any lab processes by hand if needed, then delete {path}",
            ) from None


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def read_state(cfg: LabConfig) -> LabState | None:
    try:
        text = cfg.state_file.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read {cfg.state_file}: {exc}", "check its permissions") from None
    return LabState.from_json(text, cfg.state_file)


def write_state(cfg: LabConfig, state: LabState) -> None:
    cfg.lab_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cfg.state_file, state.to_json())


def clear_state(cfg: LabConfig) -> None:
    cfg.state_file.unlink(missing_ok=True)


@dataclass
class ServiceStatus:
    name: str
    running: bool
    healthy: bool
    ports: str
    detail: str = ""


class Engine(Protocol):
    name: str

    def available(self) -> tuple[bool, str]:
        """Whether this engine can run here, and why (or why not)."""
        ...

    def up(self, cfg: LabConfig, report: Reporter) -> LabState: ...

    def down(
        self, cfg: LabConfig, state: LabState | None, volumes: bool, report: Reporter
    ) -> None: ...

    def status(self, cfg: LabConfig, state: LabState) -> list[ServiceStatus]: ...

    def logs(
        self, cfg: LabConfig, state: LabState, service: str, follow: bool
    ) -> Iterator[str]: ...


def get_engine(name: str) -> Engine:
    if name == "native":
        from dicomkit.engines.native import NativeEngine

        return NativeEngine()
    if name == "docker":
        try:
            from dicomkit.engines.docker import DockerEngine
        except ImportError as exc:
            raise EngineError(
                f"the docker engine is not available: {exc}", "use --engine native"
            ) from None
        return DockerEngine()
    if name == "embedded":
        try:
            from dicomkit.engines.embedded import EmbeddedEngine
        except ImportError as exc:
            raise EngineError(
                f"the embedded engine is not available: {exc}", "use --engine native"
            ) from None
        return EmbeddedEngine()
    raise EngineError(f"unknown engine {name!r}", "choose docker, native or embedded")


def engine_candidates(requested: str) -> list[tuple[Engine, str]]:
    """The engines to try, in order, each with why it qualifies.

    ``auto``: docker if an engine answers, else native if Orthanc is installed, else embedded;
    every available one is listed so ``start_lab`` can fall back (e.g. Docker runs but no
    registry is reachable for the Orthanc image).
    """
    if requested != "auto":
        engine = get_engine(requested)
        ok, why = engine.available()
        if not ok:
            raise EngineError(
                f"the {requested} engine cannot run here: {why}",
                _alternatives(requested),
            )
        return [(engine, f"--engine {requested}")]
    reasons: list[str] = []
    found: list[tuple[Engine, str]] = []
    for name in ("docker", "native", "embedded"):
        try:
            engine = get_engine(name)
        except EngineError as exc:
            reasons.append(f"{name}: {exc.message}")
            continue
        ok, why = engine.available()
        if ok:
            prefix = ("; ".join(reasons) + "; ") if reasons and not found else ""
            found.append((engine, f"{prefix}{name}: {why}"))
        else:
            reasons.append(f"{name}: {why}")
    if not found:
        raise EngineError(
            "no engine can run here: " + "; ".join(reasons), "install Orthanc or Docker"
        )
    return found


def select_engine(requested: str) -> tuple[Engine, str]:
    return engine_candidates(requested)[0]


def start_lab(
    cfg: LabConfig, report: Reporter, chose: Callable[[Engine, str], None]
) -> tuple[LabState, str]:
    """Start the lab on the first engine that comes up. With ``auto``, an engine that fails
    to start (other than for a taken port, which every engine would hit) yields to the next."""
    from dicomkit.errors import PortInUse

    candidates = engine_candidates(cfg.engine)
    failures: list[str] = []
    for i, (engine, why) in enumerate(candidates):
        if failures:
            why = f"{why} (after: {'; '.join(failures)})"
        chose(engine, why)
        try:
            return engine.up(cfg, report), why
        except PortInUse:
            raise
        except EngineError as exc:
            if i == len(candidates) - 1:
                raise
            failures.append(f"{engine.name} failed: {exc.message}")
            report(f"{engine.name} engine failed ({exc.message}); trying the next engine")
            leftover = read_state(cfg)
            if leftover is not None:
                engine.down(cfg, leftover, False, report)
                clear_state(cfg)
    raise AssertionError("unreachable")  # pragma: no cover


def _alternatives(name: str) -> str:
    others = {
        "docker": "start Docker, or use --engine native (apt install orthanc orthanc-dicomweb) "
        "or --engine embedded (nothing to install)",
        "native": "install Orthanc (sudo apt install orthanc orthanc-dicomweb), or use "
        "--engine embedded (nothing to install)",
        "embedded": "use --engine native or --engine docker",
    }
    return others.get(name, "")


def find_orthanc() -> str | None:
    """The Orthanc binary: on PATH, or where Debian puts it (/usr/sbin is not on every PATH)."""
    found = shutil.which("Orthanc")
    if found:
        return found
    for candidate in ("/usr/sbin/Orthanc", "/usr/local/sbin/Orthanc", "/usr/local/bin/Orthanc"):
        if Path(candidate).is_file():
            return candidate
    return None


def describe(state: LabState) -> dict[str, Any]:
    ep = state.endpoints
    return {
        "engine": state.engine,
        "started": state.started,
        "pacs": {"aet": ep.pacs_aet, "dicom": f"{ep.host}:{ep.dicom_port}", "http": ep.pacs_url},
        "worklist": f"{ep.host}:{ep.mwl_port}",
        "ris": ep.ris_url,
        "hl7": f"{ep.host}:{ep.hl7_port}",
        "mpps": {"aet": ep.mpps_aet, "dicom": f"{ep.host}:{ep.mpps_port}"},
        "dicomweb": ep.dicomweb_url if ep.dicomweb else None,
        # Our AE while `dicomkit retrieve` / `commit` run: the C-MOVE destination and where a
        # storage commitment report arrives on a new association (the PACS knows it so).
        "retrieve": {"aet": ep.aet, "dicom": f"{ep.host}:{ep.retrieve_port}"},
        "storage_commitment": {
            "scp": {"aet": ep.pacs_aet, "dicom": f"{ep.host}:{ep.dicom_port}"},
            "requestor": {"aet": ep.aet, "dicom": f"{ep.host}:{ep.retrieve_port}"},
        },
    }
