"""The lab as local processes, shared by the native and embedded engines: the RIS (and any
other service) started in the background and recorded in the state file, waited for, stopped,
its status and its log."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

from dicomkit.config import LabConfig
from dicomkit.engines import process
from dicomkit.engines.protocol import Reporter, ServiceStatus
from dicomkit.engines.state import LabState, ServiceState, clear_state, write_state
from dicomkit.errors import EngineError


def http_ok(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def start_ris(cfg: LabConfig, state: LabState, report: Reporter) -> None:
    log = cfg.log_dir / "ris.log"
    argv = process.python_argv(
        "dicomkit.ris",
        "--host", cfg.host,
        "--port", str(cfg.ris_port),
        "--db", str(cfg.ris_db),
        "--worklist-dir", str(cfg.worklist_dir),
        "--station-aet", cfg.aet,
        "--log-level", "warning",
        "--hl7-port", str(cfg.hl7_port),
    )  # fmt: skip
    pid = process.spawn(argv, log)
    record(cfg, state, ServiceState("ris", pid=pid, log=str(log), cmd_marker="dicomkit.ris"))
    report(f"RIS API starting on {cfg.host}:{cfg.ris_port}, HL7 MLLP {cfg.hl7_port} (pid {pid})")


def record(cfg: LabConfig, state: LabState, service: ServiceState) -> None:
    """Note a started process in the lab's state file before anything else can fail (even
    printing that it started: a closed pipe or terminal), so that `down` finds it."""
    state.services[service.name] = service
    write_state(cfg, state)


def wait_ris(cfg: LabConfig, svc: ServiceState, timeout: float = 20.0) -> None:
    process.wait_until(
        lambda: (
            http_ok(f"http://{cfg.host}:{cfg.ris_port}/healthz")
            and process.port_answers(cfg.host, cfg.hl7_port)
        ),
        what=f"the RIS API on port {cfg.ris_port} and its HL7 listener on {cfg.hl7_port}",
        timeout=timeout,
        log_path=Path(svc.log),
        alive=lambda: process.pid_alive(svc.pid),
    )


def stop_services(state: LabState, report: Reporter) -> None:
    # Last started, first stopped: the PACS nodes before the database they write to.
    for svc in reversed(list(state.services.values())):
        if svc.pid and process.stop_pid(svc.pid, svc.cmd_marker, sig=svc.stop_signal):
            report(f"stopped {svc.name} (pid {svc.pid})")


def process_status(cfg: LabConfig, state: LabState) -> list[ServiceStatus]:
    ep = state.endpoints
    out = []
    for svc in state.services.values():
        alive = process.pid_alive(svc.pid) and svc.cmd_marker in process.cmdline(svc.pid)
        if svc.name == "ris":
            healthy = alive and http_ok(f"{ep.ris_url}/healthz")
            ports = f"{ep.ris_port}/http, {ep.hl7_port}/hl7"
        elif svc.name == "postgres":
            from dicomkit.engines import postgres

            cluster = postgres.cluster_for(cfg)
            healthy = alive and postgres.answers(cluster)
            ports = f"unix socket {cluster.socket_path} (the nodes' shared index)"
        elif svc.name.startswith("pacs-"):
            node = state.node_list()[int(svc.name.removeprefix("pacs-")) - 1]
            healthy = (
                alive
                and process.port_answers(ep.host, node.dicom_port)
                and http_ok(f"http://{ep.host}:{node.http_port}/system")
            )
            ports = f"{node.dicom_port}/dicom, {node.http_port}/http"
        elif svc.name == "mpps":
            healthy = alive and process.port_answers(ep.host, ep.mpps_port)
            ports = f"{ep.mpps_port}/dicom (MPPS, AE {ep.mpps_aet})"
        else:
            healthy = alive and process.port_answers(ep.host, ep.dicom_port)
            ports = f"{ep.dicom_port}/dicom"
            if ep.mwl_port != ep.dicom_port:
                ports += f", {ep.mwl_port}/mwl"
            ports += f", {ep.http_port}/http"
            if alive and healthy:
                healthy = http_ok(_status_url(state))
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
    start_ris(cfg, state, report)
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

            for d in (self.storage_dir(cfg), cfg.worklist_dir, cfg.ris_db.parent,
                      cfg.mpps_db.parent):  # fmt: skip
                shutil.rmtree(d, ignore_errors=True)
            report("removed the PACS storage, the worklist folder and the RIS database")

    def status(self, cfg: LabConfig, state: LabState) -> list[ServiceStatus]:
        return process_status(cfg, state)

    def logs(self, cfg: LabConfig, state: LabState, service: str, follow: bool) -> Iterator[str]:
        return file_logs(state, service, follow)
