"""The lab's state file: which engine runs the lab, its endpoints and its services, rewritten
whole and atomically; and the lab as `up` and `status` describe it."""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dicomkit.config import Endpoints, LabConfig
from dicomkit.errors import StateError
from dicomkit.fsutil import atomic_write_text

STATE_VERSION = 1


@dataclass
class ServiceState:
    name: str
    pid: int = 0
    log: str = ""
    container: str = ""
    cmd_marker: str = ""  # a string its command line contains, to recognise our PID
    stop_signal: int = 15  # SIGTERM; PostgreSQL's fast shutdown is SIGINT (2)


@dataclass(frozen=True)
class Node:
    """One Orthanc node of a lab on PostgreSQL: its own DICOM and HTTP ports."""

    dicom_port: int
    http_port: int


@dataclass
class LabState:
    engine: str
    endpoints: Endpoints
    services: dict[str, ServiceState] = field(default_factory=dict)
    started: str = ""
    version: int = STATE_VERSION
    # Orthanc nodes sharing one index (`up --nodes N`); empty: the one PACS of ``endpoints``.
    nodes: list[Node] = field(default_factory=list)

    def node_list(self) -> list[Node]:
        ep = self.endpoints
        return self.nodes or [Node(ep.dicom_port, ep.http_port)]

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
                nodes=[Node(**n) for n in d.get("nodes", [])],
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise StateError(
                f"the lab state file {path} is unreadable ({exc})",
                f"stop any lab processes by hand if needed, then delete {path}",
            ) from None


def node_ports(cfg: LabConfig) -> list[Node]:
    """Ports of the lab's ``cfg.nodes`` Orthanc nodes: node 1 keeps the lab's ports (every
    command and lesson uses them), the others get ports free now (recorded in the state file,
    listed by `status`)."""
    from dicomkit.engines import process

    nodes = [Node(cfg.dicom_port, cfg.http_port)]
    taken = {cfg.dicom_port, cfg.http_port, cfg.mwl_port, cfg.ris_port, cfg.hl7_port,
             cfg.mpps_port, cfg.retrieve_port}  # fmt: skip
    for _ in range(cfg.nodes - 1):
        dicom = process.free_port(cfg.host, taken)
        http = process.free_port(cfg.host, taken | {dicom})
        taken |= {dicom, http}
        nodes.append(Node(dicom, http))
    return nodes


def archive_port(state: LabState | None, host: str, port: int, aet: str) -> int:
    """The nodes of a lab share one archive: node 1's DICOM port for any node's (so what one
    node acknowledged counts for all, e.g. in the store journal), else ``port``."""
    if state is None or len(state.nodes) < 2:
        return port
    ep = state.endpoints
    if host == ep.host and aet == ep.pacs_aet and port in {n.dicom_port for n in state.nodes}:
        return state.nodes[0].dicom_port
    return port


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
        # Every PACS node; the first is the one above (one entry when the lab has one node).
        "nodes": [
            {"dicom": f"{ep.host}:{n.dicom_port}", "http": f"http://{ep.host}:{n.http_port}"}
            for n in state.node_list()
        ],
        # Our AE while `dicomkit retrieve` / `commit` run: the C-MOVE destination and where a
        # storage commitment report arrives on a new association (the PACS knows it so).
        "retrieve": {"aet": ep.aet, "dicom": f"{ep.host}:{ep.retrieve_port}"},
        "storage_commitment": {
            "scp": {"aet": ep.pacs_aet, "dicom": f"{ep.host}:{ep.dicom_port}"},
            "requestor": {"aet": ep.aet, "dicom": f"{ep.host}:{ep.retrieve_port}"},
        },
    }
