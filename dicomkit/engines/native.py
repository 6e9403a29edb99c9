"""The native engine: the Orthanc binary installed on this machine, plus the RIS and the MPPS
SCP as processes (the process lab)."""

from __future__ import annotations

import json
import os
import shutil
import signal
from dataclasses import replace
from pathlib import Path

from dicomkit.config import LabConfig
from dicomkit.engines import postgres, process
from dicomkit.engines.orthanc_config import node_config, orthanc_config
from dicomkit.engines.process_lab import ProcessLab, http_ok, record, stop_services, wait_ready
from dicomkit.engines.protocol import Reporter
from dicomkit.engines.state import (
    LabState,
    Node,
    ServiceState,
    clear_state,
    node_ports,
    now_iso,
)
from dicomkit.errors import EngineError
from dicomkit.fsutil import atomic_write_text


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


def orthanc_answers(host: str, node: Node) -> bool:
    return process.port_answers(host, node.dicom_port) and http_ok(
        f"http://{host}:{node.http_port}/system"
    )


def start_orthanc(
    cfg: LabConfig,
    state: LabState,
    binary: str,
    plugins: list[str],
    number: int,
    node: Node,
    index: dict[str, object] | None,
    report: Reporter,
) -> None:
    """Orthanc node ``number`` (1: the lab's PACS, service ``pacs``; n: ``pacs-n``)."""
    if index is None:
        conf = orthanc_config(cfg, plugins)
    else:
        conf = node_config(cfg, plugins, number, node.dicom_port, node.http_port, index)
    suffix = "" if number == 1 else f"-{number}"
    conf_path = cfg.lab_dir / "orthanc" / f"orthanc{suffix}.json"
    atomic_write_text(conf_path, json.dumps(conf, indent=2))
    log = cfg.log_dir / f"orthanc{suffix}.log"
    # DCMTK (inside Orthanc) leaves Nagle on unless TCP_NODELAY=1 is in its environment:
    # measured here, storescu -> Orthanc goes from ~100 ms to ~14 ms per small instance.
    env = {**os.environ, "TCP_NODELAY": "1"}
    pid = process.spawn([binary, str(conf_path)], log, env=env)
    name = f"pacs{suffix}"
    record(cfg, state, ServiceState(name, pid=pid, log=str(log), cmd_marker=str(conf_path)))
    what = "Orthanc" if index is None else f"Orthanc node {number}"
    report(f"{what} starting: DICOM {node.dicom_port}, HTTP {node.http_port} (pid {pid})")


def wait_orthanc(cfg: LabConfig, state: LabState, name: str, node: Node) -> None:
    svc = state.services[name]
    try:
        process.wait_until(
            lambda: orthanc_answers(cfg.host, node),
            what=f"Orthanc (DICOM {node.dicom_port}, HTTP {node.http_port})",
            timeout=30.0,
            log_path=Path(svc.log),
            alive=lambda: process.pid_alive(svc.pid),
        )
    except BaseException:
        stop_services(state, lambda m: None)
        clear_state(cfg)
        raise


def start_postgres(cfg: LabConfig, state: LabState, report: Reporter) -> dict[str, object]:
    """The nodes' shared index: the lab's PostgreSQL cluster, started and waited for; the
    PostgreSQL section of the nodes' configuration."""
    cluster = postgres.cluster_for(cfg)
    user = postgres.prepare(cluster)
    pid = postgres.spawn(cluster, user)
    record(
        cfg,
        state,
        ServiceState(
            "postgres",
            pid=pid,
            log=str(cluster.log),
            cmd_marker=str(cluster.data_dir),
            stop_signal=signal.SIGINT,  # fast shutdown: ends the nodes' sessions
        ),
    )
    report(f"PostgreSQL starting on {cluster.socket_path} (pid {pid})")
    try:
        process.wait_until(
            lambda: postgres.answers(cluster),
            what=f"PostgreSQL on {cluster.socket_path}",
            timeout=30.0,
            log_path=cluster.log,
            alive=lambda: process.pid_alive(pid),
        )
        postgres.ensure_database(cluster, user)
    except BaseException:
        stop_services(state, lambda m: None)
        clear_state(cfg)
        raise
    return cluster.plugin_config()


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
        lab_ports = {
            "dicom": cfg.dicom_port,
            "http": cfg.http_port,
            "ris": cfg.ris_port,
            "hl7": cfg.hl7_port,
            "mpps": cfg.mpps_port,
        }
        process.check_ports_free(cfg.host, lab_ports)
        nodes = node_ports(cfg)
        for d in (cfg.worklist_dir, cfg.log_dir, cfg.lab_dir / "orthanc" / "db"):
            d.mkdir(parents=True, exist_ok=True)
        plugins = orthanc_plugins(binary)
        has_dicomweb = any(Path(p, "libOrthancDicomWeb.so").exists() for p in plugins)
        state = LabState(
            engine=self.name,
            # Orthanc has one DICOM port: it serves the worklist there too.
            endpoints=replace(cfg.endpoints(dicomweb=has_dicomweb), mwl_port=cfg.dicom_port),
            started=now_iso(),
            nodes=nodes if cfg.nodes > 1 else [],
        )
        index: dict[str, object] | None = None
        if cfg.nodes > 1:
            if not any(Path(p, "libOrthancPostgreSQLIndex.so").exists() for p in plugins):
                raise EngineError(
                    "--nodes needs Orthanc's PostgreSQL plugin, which is not installed",
                    f"{postgres.INSTALL_HINT}, or use --nodes 1",
                )
            index = start_postgres(cfg, state, report)
        for number, node in enumerate(nodes, 1):
            start_orthanc(cfg, state, binary, plugins, number, node, index, report)
            if number == 1 and len(nodes) > 1:
                # Node 1 creates the index's tables; the others start on a ready schema.
                wait_orthanc(cfg, state, "pacs", node)
        start_mpps(cfg, state, report)
        # Orthanc 1.10 has no listen-address option: say so rather than imply loopback only.
        ports = ", ".join(str(n.dicom_port) for n in nodes)
        report(
            f"warning: Orthanc listens on every interface; HTTP refuses remote clients "
            f"(RemoteAccessAllowed false) but DICOM port{'s' if len(nodes) > 1 else ''} {ports} accepts C-ECHO/C-STORE "
            f"from any host. Firewall it on a shared network, or use --engine embedded/docker "
            f"(loopback only)."
        )
        wait_ready(
            cfg,
            state,
            lambda: (
                all(orthanc_answers(cfg.host, n) for n in nodes)
                and process.port_answers(cfg.host, cfg.mpps_port)
            ),
            f"Orthanc (DICOM {ports}, HTTP {', '.join(str(n.http_port) for n in nodes)}) "
            f"and the MPPS SCP ({cfg.mpps_port})",
            30.0 + 5.0 * (len(nodes) - 1),
            report,
        )
        return state

    def down(self, cfg: LabConfig, state: LabState | None, volumes: bool, report: Reporter) -> None:
        super().down(cfg, state, volumes, report)
        cluster = postgres.cluster_for(cfg)
        if volumes and cluster.root.exists():
            postgres.remove(cluster)
            report("removed the nodes' PostgreSQL database")

    def storage_dir(self, cfg: LabConfig) -> Path:
        return cfg.lab_dir / "orthanc"


__all__ = ["NativeEngine", "find_orthanc", "orthanc_plugins"]
