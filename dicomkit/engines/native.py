"""The native engine: the Orthanc binary installed on this machine, plus the RIS and the MPPS
SCP as processes (the process lab)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

from dicomkit.config import LabConfig
from dicomkit.engines import process
from dicomkit.engines.orthanc_config import events_lua, orthanc_config
from dicomkit.engines.process_lab import ProcessLab, http_ok, record, wait_ready
from dicomkit.engines.protocol import Reporter
from dicomkit.engines.state import LabState, ServiceState, now_iso
from dicomkit.errors import EngineError


def find_orthanc() -> str | None:
    """The Orthanc binary: on PATH, or where Debian puts it (/usr/sbin is not on every PATH)."""
    found = shutil.which("Orthanc")
    if found:
        return found
    for candidate in ("/usr/sbin/Orthanc", "/usr/local/sbin/Orthanc", "/usr/local/bin/Orthanc"):
        if Path(candidate).is_file():
            return candidate
    return None


def orthanc_plugins(binary: str) -> list[str]:
    """Debian's plugin folder when present (the worklist and DICOMweb plugins live there)."""
    for folder in ("/usr/share/orthanc/plugins", "/usr/lib/orthanc"):
        if Path(folder).is_dir():
            return [folder]
    return []


def start_mpps(cfg: LabConfig, state: LabState, report: Reporter) -> None:
    """The MPPS SCP beside Orthanc, which has none (dicomkit/pacs/mpps.py)."""
    log = cfg.log_dir / "mpps.log"
    argv = process.python_argv(
        "dicomkit.pacs.mpps",
        "--host", cfg.host,
        "--port", str(cfg.mpps_port),
        "--aet", cfg.mpps_aet,
        "--db", str(cfg.mpps_db),
        "--ris-url", f"http://{cfg.host}:{cfg.ris_port}",
    )  # fmt: skip
    pid = process.spawn(argv, log)
    record(cfg, state, ServiceState("mpps", pid=pid, log=str(log), cmd_marker="dicomkit.pacs.mpps"))
    report(f"MPPS SCP {cfg.mpps_aet} starting on {cfg.host}:{cfg.mpps_port} (pid {pid})")


class NativeEngine(ProcessLab):
    name = "native"

    def available(self) -> tuple[bool, str]:
        binary = find_orthanc()
        if binary:
            return True, f"Orthanc found at {binary}"
        return False, "no Orthanc binary on PATH (apt install orthanc orthanc-dicomweb)"

    def up(self, cfg: LabConfig, report: Reporter) -> LabState:
        binary = find_orthanc()
        if binary is None:
            raise EngineError(
                "Orthanc is not installed",
                "sudo apt install orthanc orthanc-dicomweb, or use --engine embedded",
            )
        process.check_ports_free(
            cfg.host,
            {
                "dicom": cfg.dicom_port,
                "http": cfg.http_port,
                "ris": cfg.ris_port,
                "hl7": cfg.hl7_port,
                "mpps": cfg.mpps_port,
            },
        )
        for d in (cfg.worklist_dir, cfg.log_dir, cfg.lab_dir / "orthanc" / "db"):
            d.mkdir(parents=True, exist_ok=True)
        plugins = orthanc_plugins(binary)
        from dicomkit.fsutil import atomic_write_text

        lua_path = cfg.lab_dir / "orthanc" / "events.lua"
        atomic_write_text(lua_path, events_lua(cfg))  # the lab's event feed (labevents.py)
        conf = orthanc_config(cfg, plugins, [str(lua_path)])
        conf_path = cfg.lab_dir / "orthanc" / "orthanc.json"
        atomic_write_text(conf_path, json.dumps(conf, indent=2))
        has_dicomweb = any(Path(p, "libOrthancDicomWeb.so").exists() for p in plugins)
        state = LabState(
            engine=self.name,
            # Orthanc has one DICOM port: it serves the worklist there too.
            endpoints=replace(cfg.endpoints(dicomweb=has_dicomweb), mwl_port=cfg.dicom_port),
            started=now_iso(),
        )
        log = cfg.log_dir / "orthanc.log"
        # DCMTK (inside Orthanc) leaves Nagle on unless TCP_NODELAY=1 is in its environment:
        # measured here, storescu -> Orthanc goes from ~100 ms to ~14 ms per small instance.
        env = {**os.environ, "TCP_NODELAY": "1"}
        # The dicom category logs each association and C-ECHO (read into the event feed, and what
        # `dicomkit logs pacs` teaches with); Orthanc masks query values there (DeidentifyLogs).
        pid = process.spawn([binary, "--verbose-dicom", str(conf_path)], log, env=env)
        record(cfg, state, ServiceState("pacs", pid=pid, log=str(log), cmd_marker=str(conf_path)))
        report(f"Orthanc starting: DICOM {cfg.dicom_port}, HTTP {cfg.http_port} (pid {pid})")
        start_mpps(cfg, state, report)
        # Orthanc 1.10 has no listen-address option: say so rather than imply loopback only.
        report(
            f"warning: Orthanc listens on every interface; HTTP refuses remote clients "
            f"(RemoteAccessAllowed false) but DICOM port {cfg.dicom_port} accepts C-ECHO/C-STORE "
            f"from any host. Firewall it on a shared network, or use --engine embedded/docker "
            f"(loopback only)."
        )
        wait_ready(
            cfg,
            state,
            lambda: (
                process.port_answers(cfg.host, cfg.dicom_port)
                and http_ok(f"http://{cfg.host}:{cfg.http_port}/system")
                and process.port_answers(cfg.host, cfg.mpps_port)
            ),
            f"Orthanc (DICOM {cfg.dicom_port}, HTTP {cfg.http_port}) and the MPPS SCP "
            f"({cfg.mpps_port})",
            30.0,
            report,
        )
        return state

    def storage_dir(self, cfg: LabConfig) -> Path:
        return cfg.lab_dir / "orthanc"


__all__ = ["NativeEngine", "find_orthanc", "orthanc_plugins"]
