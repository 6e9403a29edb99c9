"""The embedded PACS's configuration: one JSON file written by the engine, read at start.

Known AEs use the shape of Orthanc's ``DicomModalities`` (``AET``, ``Host``, ``Port``,
``AllowFindWorklist``) so both engines are configured from the same compose/orthanc.json.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dicomkit.errors import ConfigError


@dataclass(frozen=True)
class Modality:
    """A remote AE this PACS knows: it may query the worklist and receive C-MOVEs."""

    aet: str
    host: str
    port: int
    allow_find_worklist: bool = True


@dataclass(frozen=True)
class ServerConfig:
    storage_dir: Path
    worklist_dir: Path
    aet: str = "ORTHANC"
    host: str = "127.0.0.1"
    dicom_port: int = 4242
    mwl_port: int = 10500
    http_port: int = 8042
    name: str = "dicomkit PACS"
    modalities: dict[str, Modality] = field(default_factory=dict)
    # Orthanc's DicomCheckCalledAet / DicomAlwaysAllowFindWorklist, same meaning.
    check_called_aet: bool = True
    always_allow_find_worklist: bool = False
    max_associations: int = 32
    # Seconds an idle or silent peer may hold an association (Orthanc's DicomScpTimeout).
    network_timeout: float = 30.0
    # Largest P-DATA PDU we accept (PS3.8 D.1 Maximum Length); larger ones abort the association.
    max_pdu: int = 1024 * 1024
    # Worklist files bigger than this are not worklist items (a real one is ~2 KB).
    max_worklist_file: int = 1024 * 1024
    # Largest STOW-RS request body (PS3.18 10.5); bigger ones are refused with 413.
    max_stow_bytes: int = 512 * 1024 * 1024
    # The RIS API the MPPS SCP tells of each step (pacs/mpps.py); empty: nobody is told.
    ris_url: str = ""
    # The lab's event feed (dicomkit/labevents.py); None: no feed.
    events_path: Path | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ServerConfig:
        try:
            mods = {
                str(name): Modality(
                    aet=str(m["AET"]),
                    host=str(m.get("Host", "127.0.0.1")),
                    port=int(m.get("Port", 104)),
                    allow_find_worklist=bool(m.get("AllowFindWorklist", True)),
                )
                for name, m in dict(d.get("modalities", {})).items()
            }
            cfg = cls(
                storage_dir=Path(d["storage_dir"]),
                worklist_dir=Path(d["worklist_dir"]),
                aet=str(d.get("aet", "ORTHANC")),
                host=str(d.get("host", "127.0.0.1")),
                dicom_port=int(d.get("dicom_port", 4242)),
                mwl_port=int(d.get("mwl_port", 10500)),
                http_port=int(d.get("http_port", 8042)),
                name=str(d.get("name", "dicomkit PACS")),
                modalities=mods,
                check_called_aet=bool(d.get("check_called_aet", True)),
                always_allow_find_worklist=bool(d.get("always_allow_find_worklist", False)),
                max_associations=int(d.get("max_associations", 32)),
                network_timeout=float(d.get("network_timeout", 30.0)),
                max_pdu=int(d.get("max_pdu", 1024 * 1024)),
                max_worklist_file=int(d.get("max_worklist_file", 1024 * 1024)),
                max_stow_bytes=int(d.get("max_stow_bytes", 512 * 1024 * 1024)),
                ris_url=str(d.get("ris_url", "")),
                events_path=Path(d["events_path"]) if d.get("events_path") else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(
                f"the embedded PACS configuration is invalid ({type(exc).__name__}: {exc})",
                "let `dicomkit up --engine embedded` rewrite it",
            ) from None
        if cfg.max_associations < 1 or cfg.max_pdu < 4096 or cfg.network_timeout <= 0:
            raise ConfigError(
                "max_associations, max_pdu or network_timeout is out of range",
                "use e.g. 32 associations, a PDU of at least 4096 bytes, a positive timeout",
            )
        return cfg

    @classmethod
    def load(cls, path: Path) -> ServerConfig:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot read the embedded PACS configuration {path}: {exc}",
                "let `dicomkit up --engine embedded` rewrite it",
            ) from None
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["storage_dir"] = str(self.storage_dir)
        d["worklist_dir"] = str(self.worklist_dir)
        d["events_path"] = str(self.events_path) if self.events_path else ""
        d["modalities"] = {
            name: {
                "AET": m.aet,
                "Host": m.host,
                "Port": m.port,
                "AllowFindWorklist": m.allow_find_worklist,
            }
            for name, m in self.modalities.items()
        }
        return d

    def find_modality(self, aet: str) -> Modality | None:
        # Orthanc compares AE titles case-insensitively unless StrictAetComparison is set.
        want = aet.strip().upper()
        for m in self.modalities.values():
            if m.aet.strip().upper() == want:
                return m
        return None

    def may_find_worklist(self, calling_aet: str) -> bool:
        if self.always_allow_find_worklist:
            return True
        m = self.find_modality(calling_aet)
        return m is not None and m.allow_find_worklist

    @property
    def index_path(self) -> Path:
        return self.storage_dir / "index.sqlite3"

    @property
    def mpps_db(self) -> Path:
        return self.storage_dir / "mpps.sqlite3"
