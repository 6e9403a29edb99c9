"""The embedded engine: the pure-Python PACS (dicomkit.pacs) as a background process, plus
the RIS. Nothing to install beyond dicomkit itself, so it runs on any laptop."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from dicomkit.config import LabConfig
from dicomkit.engines import process
from dicomkit.engines.orthanc_config import orthanc_config
from dicomkit.engines.process_lab import ProcessLab, http_ok, record, wait_ready
from dicomkit.engines.protocol import Reporter
from dicomkit.engines.state import LabState, ServiceState, now_iso
from dicomkit.errors import EngineError
from dicomkit.fsutil import atomic_write_text

MODULE = "dicomkit.pacs"
READY_TIMEOUT = 20.0  # seconds; it is normally ready in well under 2


def pacs_dir(cfg: LabConfig) -> Path:
    return cfg.lab_dir / "pacs"


def server_config(cfg: LabConfig) -> dict[str, Any]:
    """The embedded server's configuration: this lab's ports and AE title, and the known AEs
    of compose/orthanc.json (the same list the native engine gives Orthanc)."""
    orthanc = orthanc_config(cfg)
    return {
        "name": str(orthanc.get("Name", "dicomkit PACS")),
        "aet": cfg.pacs_aet,
        "host": cfg.host,
        "dicom_port": cfg.dicom_port,
        "mwl_port": cfg.mwl_port,
        "http_port": cfg.http_port,
        "storage_dir": str(pacs_dir(cfg) / "storage"),
        "worklist_dir": str(cfg.worklist_dir),
        "modalities": orthanc.get("DicomModalities", {}),
        "check_called_aet": bool(orthanc.get("DicomCheckCalledAet", True)),
        "always_allow_find_worklist": bool(orthanc.get("DicomAlwaysAllowFindWorklist", False)),
        "network_timeout": float(orthanc.get("DicomScpTimeout", 30)),
        "max_associations": 32,
        "max_pdu": 1024 * 1024,
        "ris_url": f"http://{cfg.host}:{cfg.ris_port}",  # the MPPS SCP tells the RIS
    }


class EmbeddedEngine(ProcessLab):
    name = "embedded"

    def available(self) -> tuple[bool, str]:
        return True, "the built-in pure-Python PACS (nothing to install)"

    def up(self, cfg: LabConfig, report: Reporter) -> LabState:
        if cfg.nodes > 1:
            raise EngineError(
                f"the embedded engine is one node: it cannot run --nodes {cfg.nodes}",
                f"use --engine native --nodes {cfg.nodes} (Orthanc and PostgreSQL installed "
                f"here) or --engine docker --nodes {cfg.nodes}",
            )
        ports = {"dicom": cfg.dicom_port, "http": cfg.http_port, "ris": cfg.ris_port,
                 "hl7": cfg.hl7_port}  # fmt: skip
        if cfg.mwl_port != cfg.dicom_port:
            ports["mwl"] = cfg.mwl_port
        process.check_ports_free(cfg.host, ports)
        for d in (cfg.worklist_dir, cfg.log_dir, pacs_dir(cfg) / "storage"):
            d.mkdir(parents=True, exist_ok=True)
        conf_path = pacs_dir(cfg) / "server.json"
        atomic_write_text(conf_path, json.dumps(server_config(cfg), indent=2))
        # The PACS is the MPPS SCP too, on its DICOM port under its AE title.
        endpoints = replace(cfg.endpoints(dicomweb=True), mpps_port=cfg.dicom_port,
                            mpps_aet=cfg.pacs_aet)  # fmt: skip
        state = LabState(engine=self.name, endpoints=endpoints, started=now_iso())
        log = cfg.log_dir / "pacs.log"
        pid = process.spawn(process.python_argv(MODULE, "--config", str(conf_path)), log)
        record(cfg, state, ServiceState("pacs", pid=pid, log=str(log), cmd_marker=str(conf_path)))
        report(
            f"embedded PACS starting: DICOM {cfg.dicom_port}, worklist {cfg.mwl_port}, "
            f"HTTP {cfg.http_port} (pid {pid})"
        )
        wait_ready(
            cfg,
            state,
            lambda: (
                process.port_answers(cfg.host, cfg.dicom_port)
                and process.port_answers(cfg.host, cfg.mwl_port)
                and http_ok(f"http://{cfg.host}:{cfg.http_port}/status")
            ),
            f"the embedded PACS (DICOM {cfg.dicom_port}, worklist {cfg.mwl_port}, "
            f"HTTP {cfg.http_port})",
            READY_TIMEOUT,
            report,
        )
        return state

    def storage_dir(self, cfg: LabConfig) -> Path:
        return pacs_dir(cfg)


__all__ = ["EmbeddedEngine", "server_config"]
