"""The embedded engine: the pure-Python PACS (dicomkit.pacs) as a background process, plus
the RIS. Nothing to install beyond dicomkit itself, so it runs on any laptop."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dicomkit.config import LabConfig
from dicomkit.engines import process
from dicomkit.engines.base import (
    LabState,
    Reporter,
    ServiceState,
    ServiceStatus,
    clear_state,
    now_iso,
    write_state,
)
from dicomkit.engines.native import (
    _http_ok,
    file_logs,
    orthanc_config,
    process_status,
    start_ris,
    stop_services,
    wait_ris,
)
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
    }


class EmbeddedEngine:
    name = "embedded"

    def available(self) -> tuple[bool, str]:
        return True, "the built-in pure-Python PACS (nothing to install)"

    def up(self, cfg: LabConfig, report: Reporter) -> LabState:
        ports = {"dicom": cfg.dicom_port, "http": cfg.http_port, "ris": cfg.ris_port}
        if cfg.mwl_port != cfg.dicom_port:
            ports["mwl"] = cfg.mwl_port
        process.check_ports_free(cfg.host, ports)
        for d in (cfg.worklist_dir, cfg.log_dir, pacs_dir(cfg) / "storage"):
            d.mkdir(parents=True, exist_ok=True)
        conf_path = pacs_dir(cfg) / "server.json"
        atomic_write_text(conf_path, json.dumps(server_config(cfg), indent=2))
        state = LabState(
            engine=self.name, endpoints=cfg.endpoints(dicomweb=False), started=now_iso()
        )
        log = cfg.log_dir / "pacs.log"
        pid = process.spawn(process.python_argv(MODULE, "--config", str(conf_path)), log)
        state.services["pacs"] = ServiceState(
            "pacs", pid=pid, log=str(log), cmd_marker=str(conf_path)
        )
        report(
            f"embedded PACS starting: DICOM {cfg.dicom_port}, worklist {cfg.mwl_port}, "
            f"HTTP {cfg.http_port} (pid {pid})"
        )
        start_ris(cfg, state.services, report)
        # Record PIDs before waiting, so `down` can stop them even if the wait fails or Ctrl-C.
        write_state(cfg, state)
        pacs = state.services["pacs"]
        try:
            process.wait_until(
                lambda: (
                    process.port_answers(cfg.host, cfg.dicom_port)
                    and process.port_answers(cfg.host, cfg.mwl_port)
                    and _http_ok(f"http://{cfg.host}:{cfg.http_port}/status")
                ),
                what=f"the embedded PACS (DICOM {cfg.dicom_port}, worklist {cfg.mwl_port}, "
                f"HTTP {cfg.http_port})",
                timeout=READY_TIMEOUT,
                log_path=log,
                alive=lambda: process.pid_alive(pacs.pid),
            )
            wait_ris(cfg, state.services["ris"])
        except BaseException:
            stop_services(state, report)
            clear_state(cfg)
            raise
        return state

    def down(self, cfg: LabConfig, state: LabState | None, volumes: bool, report: Reporter) -> None:
        if state is not None:
            stop_services(state, report)
        if volumes:
            import shutil

            for d in (pacs_dir(cfg), cfg.worklist_dir, cfg.ris_db.parent):
                shutil.rmtree(d, ignore_errors=True)
            report("removed the PACS storage, the worklist folder and the RIS database")

    def status(self, cfg: LabConfig, state: LabState) -> list[ServiceStatus]:
        return process_status(cfg, state)

    def logs(self, cfg: LabConfig, state: LabState, service: str, follow: bool) -> Iterator[str]:
        return file_logs(state, service, follow)


__all__ = ["EmbeddedEngine", "server_config"]
