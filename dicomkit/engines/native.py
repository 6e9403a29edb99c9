"""The native engine: the Orthanc binary installed on this machine, plus the RIS as a process."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from importlib import resources
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
    find_orthanc,
    now_iso,
    read_state,
    write_state,
)
from dicomkit.errors import EngineError


def orthanc_template() -> dict[str, Any]:
    text = resources.files("dicomkit.compose").joinpath("orthanc.json").read_text()
    return dict(json.loads(text))


def orthanc_config(cfg: LabConfig, plugins: list[str] | None = None) -> dict[str, Any]:
    """compose/orthanc.json with this lab's ports, AE titles and folders."""
    conf = orthanc_template()
    conf["DicomAet"] = cfg.pacs_aet
    conf["DicomPort"] = cfg.dicom_port
    conf["HttpPort"] = cfg.http_port
    storage = cfg.lab_dir / "orthanc" / "db"
    conf["StorageDirectory"] = str(storage)
    conf["IndexDirectory"] = str(storage)
    conf["Worklists"]["Database"] = str(cfg.worklist_dir)
    if plugins is not None:
        conf["Plugins"] = plugins
    conf["DicomModalities"]["dicomkit"]["AET"] = cfg.aet
    return conf


def orthanc_plugins(binary: str) -> list[str]:
    """Debian's plugin folder when present (the worklist and DICOMweb plugins live there)."""
    for folder in ("/usr/share/orthanc/plugins", "/usr/lib/orthanc"):
        if Path(folder).is_dir():
            return [folder]
    return []


def _http_ok(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def start_ris(cfg: LabConfig, services: dict[str, ServiceState], report: Reporter) -> None:
    log = cfg.log_dir / "ris.log"
    argv = process.python_argv(
        "dicomkit.ris",
        "--host", cfg.host,
        "--port", str(cfg.ris_port),
        "--db", str(cfg.ris_db),
        "--worklist-dir", str(cfg.worklist_dir),
        "--station-aet", cfg.aet,
        "--log-level", "warning",
    )  # fmt: skip
    pid = process.spawn(argv, log)
    services["ris"] = ServiceState("ris", pid=pid, log=str(log), cmd_marker="dicomkit.ris")
    report(f"RIS API starting on {cfg.host}:{cfg.ris_port} (pid {pid})")


def wait_ris(cfg: LabConfig, svc: ServiceState, timeout: float = 20.0) -> None:
    process.wait_until(
        lambda: _http_ok(f"http://{cfg.host}:{cfg.ris_port}/healthz"),
        what=f"the RIS API on port {cfg.ris_port}",
        timeout=timeout,
        log_path=Path(svc.log),
        alive=lambda: process.pid_alive(svc.pid),
    )


def stop_services(state: LabState, report: Reporter) -> None:
    for svc in state.services.values():
        if svc.pid and process.stop_pid(svc.pid, svc.cmd_marker):
            report(f"stopped {svc.name} (pid {svc.pid})")


def process_status(cfg: LabConfig, state: LabState) -> list[ServiceStatus]:
    ep = state.endpoints
    out = []
    for svc in state.services.values():
        alive = process.pid_alive(svc.pid) and svc.cmd_marker in process.cmdline(svc.pid)
        if svc.name == "ris":
            healthy = alive and _http_ok(f"{ep.ris_url}/healthz")
            ports = f"{ep.ris_port}/http"
        else:
            healthy = alive and process.port_answers(ep.host, ep.dicom_port)
            ports = f"{ep.dicom_port}/dicom"
            if ep.mwl_port != ep.dicom_port:
                ports += f", {ep.mwl_port}/mwl"
            ports += f", {ep.http_port}/http"
            if alive and healthy:
                healthy = _http_ok(_status_url(state))
        out.append(ServiceStatus(svc.name, alive, healthy, ports, f"pid {svc.pid}, log {svc.log}"))
    return out


def _status_url(state: LabState) -> str:
    ep = state.endpoints
    return f"{ep.pacs_url}/system" if state.engine != "embedded" else f"{ep.pacs_url}/status"


def file_logs(state: LabState, service: str, follow: bool) -> Iterator[str]:
    svc = state.services.get(service)
    if svc is None or not svc.log:
        raise EngineError(
            f"no service {service!r} in this lab", f"choose one of: {', '.join(state.services)}"
        )
    path = Path(svc.log)
    with open(path, errors="replace") as fh:
        yield from fh
        while follow:
            line = fh.readline()
            if line:
                yield line
            else:
                time.sleep(0.2)


def wait_ready(
    cfg: LabConfig,
    state: LabState,
    pacs_ready: Callable[[], bool],
    what: str,
    timeout: float,
    report: Reporter,
) -> None:
    """Start the RIS, record the lab's state (so `down` can stop everything even if the wait
    fails or Ctrl-C), wait for the PACS then the RIS; on failure stop both and forget the state,
    so the next `up` starts clean."""
    start_ris(cfg, state.services, report)
    write_state(cfg, state)
    pacs = state.services["pacs"]
    try:
        process.wait_until(
            pacs_ready,
            what=what,
            timeout=timeout,
            log_path=Path(pacs.log),
            alive=lambda: process.pid_alive(pacs.pid),
        )
        wait_ris(cfg, state.services["ris"])
    except BaseException:
        stop_services(state, report)
        clear_state(cfg)
        raise


class ProcessLab:
    """What the native and embedded engines share: local processes, a storage folder."""

    def storage_dir(self, cfg: LabConfig) -> Path:
        raise NotImplementedError

    def down(self, cfg: LabConfig, state: LabState | None, volumes: bool, report: Reporter) -> None:
        if state is not None:
            stop_services(state, report)
        if volumes:
            import shutil

            for d in (self.storage_dir(cfg), cfg.worklist_dir, cfg.ris_db.parent):
                shutil.rmtree(d, ignore_errors=True)
            report("removed the PACS storage, the worklist folder and the RIS database")

    def status(self, cfg: LabConfig, state: LabState) -> list[ServiceStatus]:
        return process_status(cfg, state)

    def logs(self, cfg: LabConfig, state: LabState, service: str, follow: bool) -> Iterator[str]:
        return file_logs(state, service, follow)


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
            cfg.host, {"dicom": cfg.dicom_port, "http": cfg.http_port, "ris": cfg.ris_port}
        )
        for d in (cfg.worklist_dir, cfg.log_dir, cfg.lab_dir / "orthanc" / "db"):
            d.mkdir(parents=True, exist_ok=True)
        plugins = orthanc_plugins(binary)
        conf = orthanc_config(cfg, plugins)
        conf_path = cfg.lab_dir / "orthanc" / "orthanc.json"
        from dicomkit.fsutil import atomic_write_text

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
        pid = process.spawn([binary, str(conf_path)], log, env=env)
        state.services["pacs"] = ServiceState(
            "pacs", pid=pid, log=str(log), cmd_marker=str(conf_path)
        )
        report(f"Orthanc starting: DICOM {cfg.dicom_port}, HTTP {cfg.http_port} (pid {pid})")
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
                and _http_ok(f"http://{cfg.host}:{cfg.http_port}/system")
            ),
            f"Orthanc (DICOM {cfg.dicom_port}, HTTP {cfg.http_port})",
            30.0,
            report,
        )
        return state

    def storage_dir(self, cfg: LabConfig) -> Path:
        return cfg.lab_dir / "orthanc"


__all__ = ["NativeEngine", "orthanc_config", "read_state"]
