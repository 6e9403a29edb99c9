"""LabConfig: one description of the lab (AE titles, host, ports, folders) for every engine.

Precedence, lowest first: built-in defaults (the classic Orthanc tutorial), the running lab's
recorded endpoints, ``DICOMKIT_*`` environment variables, command-line flags.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from dicomkit.errors import ConfigError

ENGINES = ("auto", "docker", "native", "embedded")
MAX_NODES = 16  # Orthanc processes on one machine; more is a typo
MAX_TIMEOUT = 3600.0  # seconds; longer is a typo, and huge values overflow socket timeouts
_AE_RE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # PS3.5 6.2: AE, no backslash/control chars


def default_home() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("dicomkit", appauthor=False))


@dataclass(frozen=True)
class Endpoints:
    """Where the running lab answers. The same shape on every engine."""

    host: str = "127.0.0.1"
    pacs_aet: str = "ORTHANC"
    dicom_port: int = 4242
    mwl_port: int = 10500
    http_port: int = 8042
    ris_port: int = 5000
    dicomweb: bool = True
    hl7_port: int = 2575  # the RIS's HL7 v2 MLLP listener (IANA's HL7 port)
    # Our AE (the PACS knows it with host and port): C-MOVE destination, storage commitment
    # requestor; `dicomkit retrieve` and `commit` listen on retrieve_port while they run.
    aet: str = "DICOMKIT"
    retrieve_port: int = 11112
    # The MPPS SCP (PS3.4 Annex F): the embedded PACS itself, or a lab process beside Orthanc.
    mpps_port: int = 4243
    mpps_aet: str = "DICOMKIT_MPPS"

    @property
    def ris_url(self) -> str:
        return f"http://{self.host}:{self.ris_port}"

    @property
    def pacs_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.pacs_url}/dicom-web"


@dataclass(frozen=True)
class LabConfig:
    home: Path = field(default_factory=default_home)
    host: str = "127.0.0.1"
    pacs_aet: str = "ORTHANC"
    dicom_port: int = 4242
    mwl_port: int = 10500
    http_port: int = 8042
    ris_port: int = 5000
    hl7_port: int = 2575  # HL7 v2 over MLLP into the RIS
    # The MPPS SCP beside Orthanc (native, docker); the embedded PACS serves MPPS on its own port.
    mpps_port: int = 4243
    mpps_aet: str = "DICOMKIT_MPPS"
    # The modality's AE title: our calling AE, and the default Scheduled Station AE of orders.
    aet: str = "DICOMKIT"
    # Where `retrieve` (C-MOVE destination) and `commit` (N-EVENT-REPORT) listen as ``aet``.
    retrieve_port: int = 11112
    engine: str = "auto"
    # Orthanc nodes sharing one PostgreSQL index and storage area (native and docker engines).
    nodes: int = 1
    orthanc_image: str = ""  # empty: the one named in compose/docker-compose.yml
    ris_image: str = ""
    # Seconds to wait for a DICOM peer at TCP, association and DIMSE level.
    timeout: float = 10.0

    # ---- folders -------------------------------------------------------------------------
    @property
    def lab_dir(self) -> Path:
        return self.home / "lab"

    @property
    def worklist_dir(self) -> Path:
        return self.lab_dir / "worklists"

    @property
    def log_dir(self) -> Path:
        return self.lab_dir / "logs"

    @property
    def state_file(self) -> Path:
        return self.lab_dir / "state.json"

    @property
    def ris_db(self) -> Path:
        return self.lab_dir / "ris" / "orders.sqlite3"

    @property
    def mpps_db(self) -> Path:
        """The MPPS SCP's procedure steps (the lab process beside Orthanc)."""
        return self.lab_dir / "mpps" / "mpps.sqlite3"

    @property
    def mpps_steps_file(self) -> Path:
        """The steps `dicomkit mpps start` began, by accession (the modality's memory)."""
        return self.lab_dir / "mpps-steps.json"

    def endpoints(self, dicomweb: bool = True) -> Endpoints:
        return Endpoints(
            host=self.host,
            pacs_aet=self.pacs_aet,
            dicom_port=self.dicom_port,
            mwl_port=self.mwl_port,
            http_port=self.http_port,
            ris_port=self.ris_port,
            dicomweb=dicomweb,
            hl7_port=self.hl7_port,
            aet=self.aet,
            retrieve_port=self.retrieve_port,
            mpps_port=self.mpps_port,
            mpps_aet=self.mpps_aet,
        )

    def with_overrides(self, **values: Any) -> LabConfig:
        clean = {k: v for k, v in values.items() if v is not None}
        cfg = replace(self, **clean)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.home.exists() and not self.home.is_dir():
            raise ConfigError(
                f"the dicomkit home {self.home} is not a folder",
                "point DICOMKIT_HOME (or --home) at a folder, or remove that file",
            )
        for name in (
            "dicom_port",
            "mwl_port",
            "http_port",
            "ris_port",
            "hl7_port",
            "retrieve_port",
            "mpps_port",
        ):
            port = getattr(self, name)
            if not 1 <= port <= 65535:
                raise ConfigError(
                    f"{name} {port} is not a TCP port", "use a number from 1 to 65535"
                )
        for name in ("pacs_aet", "aet", "mpps_aet"):
            value = getattr(self, name)
            if not _AE_RE.match(value) or not value.strip():
                raise ConfigError(
                    f"{name} {value!r} is not a valid AE title",
                    "use 1-16 printable ASCII characters, no backslash (PS3.5 AE)",
                )
        if not 1 <= self.nodes <= MAX_NODES:
            raise ConfigError(
                f"nodes {self.nodes} must be from 1 to {MAX_NODES}",
                "use e.g. --nodes 2 (each node is an Orthanc process with its own ports)",
            )
        if self.engine not in ENGINES:
            raise ConfigError(
                f"unknown engine {self.engine!r}", f"choose one of: {', '.join(ENGINES)}"
            )
        # nan and inf pass "<= 0" and then break every socket call.
        if not math.isfinite(self.timeout) or not 0 < self.timeout <= MAX_TIMEOUT:
            raise ConfigError(
                f"timeout {self.timeout} must be positive and at most {MAX_TIMEOUT:.0f} seconds",
                "use e.g. 10",
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["home"] = str(self.home)
        return d


_ENV_FIELDS: dict[str, type] = {
    f.name: (int if f.type in ("int", int) else float if f.type in ("float", float) else str)
    for f in fields(LabConfig)
}


def _from_env(env: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, typ in _ENV_FIELDS.items():
        var = f"DICOMKIT_{name.upper()}"
        raw = env.get(var)
        if raw is None or raw == "":
            continue
        if name == "home":
            out[name] = Path(raw).expanduser()
            continue
        try:
            out[name] = typ(raw)
        except ValueError:
            raise ConfigError(
                f"environment variable {var}={raw!r} is not a valid {typ.__name__}",
                f"fix or unset {var} (e.g. `unset {var}`)",
            ) from None
    return out


def _from_state(home: Path) -> dict[str, Any]:
    """Ports and AE title of the lab that `dicomkit up` recorded, if it is up."""
    path = home / "lab" / "state.json"
    try:
        data = json.loads(path.read_text())
        ep = data["endpoints"]
        return {
            "host": str(ep["host"]),
            "pacs_aet": str(ep["pacs_aet"]),
            "dicom_port": int(ep["dicom_port"]),
            "mwl_port": int(ep["mwl_port"]),
            "http_port": int(ep["http_port"]),
            "ris_port": int(ep["ris_port"]),
            "hl7_port": int(ep.get("hl7_port", Endpoints.hl7_port)),
            # The port the PACS was told to reach us on at `up` (older state files: default).
            "retrieve_port": int(ep.get("retrieve_port", 11112)),
            "mpps_port": int(ep.get("mpps_port", Endpoints.mpps_port)),
            "mpps_aet": str(ep.get("mpps_aet", Endpoints.mpps_aet)),
        }
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def load_config(env: dict[str, str] | None = None, **flags: Any) -> LabConfig:
    env = dict(os.environ) if env is None else env
    from_env = _from_env(env)
    home = flags.get("home") or from_env.get("home") or default_home()
    values: dict[str, Any] = {"home": Path(home)}
    values.update(_from_state(Path(home)))
    values.update(from_env)
    values.update({k: v for k, v in flags.items() if v is not None})
    cfg = LabConfig(**values)
    cfg.validate()
    return cfg
