"""Lab lifecycle: up, down, status, logs."""

from __future__ import annotations

from typing import Annotated

import typer

from dicomkit.cli.common import CTX, JsonOpt, set_json
from dicomkit.errors import LabNotRunning

EngineOpt = Annotated[
    str | None,
    typer.Option(
        "--engine",
        "-e",
        help="docker, native (an installed Orthanc), embedded (pure Python) or auto.",
    ),
]


def up(
    engine: EngineOpt = None,
    nodes: Annotated[
        int | None,
        typer.Option(
            "--nodes",
            help="Orthanc nodes sharing one PostgreSQL index and storage (native, docker); "
            "node 1 keeps the lab's ports. [default: 1]",
        ),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Start the lab: a PACS (Orthanc or the embedded one), its worklist, and the RIS API."""
    from dicomkit import ui
    from dicomkit.engines.choice import start_lab
    from dicomkit.engines.state import describe, read_state

    set_json(json)
    cfg = CTX.config(engine=engine, nodes=nodes)
    running = read_state(cfg)
    if running is not None:
        from dicomkit.engines.choice import get_engine

        current = get_engine(running.engine)
        statuses = current.status(cfg, running)
        have = len(running.node_list())
        if nodes is not None and nodes != have and statuses and all(s.healthy for s in statuses):
            from dicomkit.errors import UsageError

            raise UsageError(
                f"the lab is already up with {have} node{'s' if have > 1 else ''}",
                f"stop it first: dicomkit down && dicomkit up --nodes {nodes}",
            )
        if statuses and all(s.healthy for s in statuses):
            if json:
                ui.print_json({"already_running": True, **describe(running)})
            else:
                ui.console.print(
                    f"{ui.OK} the lab is already up on the [bold]{running.engine}[/bold] engine"
                )
                print_endpoints(running)
            return
        # Half-running (crash, reboot): stop what is left, then start fresh.
        current.down(cfg, running, False, lambda m: None)

    say = (lambda m: None) if json else (lambda m: ui.err_console.print(f"[muted]{m}[/muted]"))

    def chose(engine: object, why: str) -> None:
        if not json:
            ui.console.print(
                f"Engine: [bold]{getattr(engine, 'name', '?')}[/bold] [muted]({why})[/muted]"
            )

    state, why = start_lab(cfg, say, chose)
    from dicomkit.engines.state import write_state

    write_state(cfg, state)
    if json:
        ui.print_json({"already_running": False, "why": why, **describe(state)})
        return
    ui.console.print(f"{ui.OK} the lab is up")
    print_endpoints(state)
    ui.console.print("Next: [cmd]dicomkit lesson 1[/cmd]  (or [cmd]dicomkit echo[/cmd])")


def print_endpoints(state: object) -> None:
    from dicomkit import ui
    from dicomkit.engines.state import LabState

    assert isinstance(state, LabState)
    ep = state.endpoints
    rows = [
        ["PACS (DICOM)", f"{ep.host}:{ep.dicom_port}", f"AE title {ep.pacs_aet}"],
        ["Worklist (MWL)", f"{ep.host}:{ep.mwl_port}", f"AE title {ep.pacs_aet}"],
        [
            "PACS (HTTP)",
            ep.pacs_url,
            "Orthanc Explorer at /app/explorer.html"
            if state.engine != "embedded"
            else "a page of studies with previews at /",
        ],
        ["RIS API", ep.ris_url, "OpenAPI docs at /docs"],
        [
            "RIS HL7 (MLLP)",
            f"{ep.host}:{ep.hl7_port}",
            "ORM, OMI, ADT: dicomkit hl7 send",
        ],
        [
            "Retrieve / commitment",
            f"{ep.host}:{ep.retrieve_port}",
            f"AE title {ep.aet} while retrieve/commit run",
        ],
        [
            "MPPS SCP",
            f"{ep.host}:{ep.mpps_port}",
            f"AE title {ep.mpps_aet}: dicomkit mpps",
        ],
    ]
    if ep.dicomweb:
        rows.append(["DICOMweb", ep.dicomweb_url, "QIDO-RS / WADO-RS / STOW-RS"])
    for number, node in enumerate(state.nodes[1:], 2):
        rows.append(
            [
                f"PACS node {number}",
                f"{ep.host}:{node.dicom_port}",
                f"AE title {ep.pacs_aet}, HTTP http://{ep.host}:{node.http_port}",
            ]
        )
    ui.console.print(ui.table("Lab endpoints", ["service", "address", "notes"], rows, ("address",)))


def down(
    volumes: Annotated[
        bool,
        typer.Option("--volumes", "-v", help="Also delete stored images, orders and worklist."),
    ] = False,
    engine: EngineOpt = None,
    json: JsonOpt = False,
) -> None:
    """Stop the lab (and with --volumes, delete its data)."""
    from dicomkit import ui
    from dicomkit.engines.choice import get_engine
    from dicomkit.engines.state import clear_state, read_state

    set_json(json)
    cfg = CTX.config(engine=engine)
    state = read_state(cfg)
    name = state.engine if state else (cfg.engine if cfg.engine != "auto" else None)
    messages: list[str] = []
    if name is None:
        # No state file: `up` was interrupted before writing it, or Compose started the stack.
        # Docker containers carry the project label, so they can still be found and removed.
        docker = get_engine("docker")
        if docker.available()[0]:
            docker.down(cfg, None, volumes, messages.append)
        if volumes:
            get_engine("native").down(cfg, None, True, messages.append)
    else:
        get_engine(name).down(cfg, state, volumes, messages.append)
    clear_state(cfg)
    if volumes:
        import shutil

        # The store journal records what *this* PACS acknowledged; with its data gone,
        # `store --resume` must send everything again.
        shutil.rmtree(cfg.lab_dir / "journal", ignore_errors=True)
        # Likewise the MPPS steps this modality started: the SCP's copies are gone.
        cfg.mpps_steps_file.unlink(missing_ok=True)
    if json:
        ui.print_json({"stopped": state is not None, "engine": name, "messages": messages})
        return
    for m in messages:
        ui.console.print(f"[muted]{m}[/muted]")
    ui.console.print(f"{ui.OK} the lab is down" if state else "no lab was running")


def status(json: JsonOpt = False) -> None:
    """Show the lab's engine, services, ports and health (exit 4 when it is not up)."""
    from dicomkit import ui
    from dicomkit.engines.choice import get_engine
    from dicomkit.engines.state import describe, read_state

    set_json(json)
    cfg = CTX.config()
    state = read_state(cfg)
    if state is None:
        raise LabNotRunning("no lab is running", "start it with `dicomkit up`")
    services = get_engine(state.engine).status(cfg, state)
    healthy = bool(services) and all(s.healthy for s in services)
    if json:
        ui.print_json(
            {
                **describe(state),
                "healthy": healthy,
                "services": [s.__dict__ for s in services],
            }
        )
    else:
        ui.console.print(f"Engine: [bold]{state.engine}[/bold]  started {state.started}")
        rows = [
            [
                s.name,
                "running" if s.running else "stopped",
                "healthy" if s.healthy else "NOT healthy",
                s.ports,
                s.detail,
            ]
            for s in services
        ]
        ui.console.print(
            ui.table("Services", ["service", "state", "health", "ports", "detail"], rows)
        )
    if not healthy:
        raise typer.Exit(1)


def logs(
    service: Annotated[
        str,
        typer.Argument(
            help="pacs, ris, or mpps (beside Orthanc); pacs-2.. and postgres with --nodes"
        ),
    ],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    json: Annotated[
        bool, typer.Option("--json", help='One JSON object a line: {"service", "line"}.')
    ] = False,
) -> None:
    """Print a service's log (like `docker compose logs`)."""
    import json as jsonlib
    import sys

    from dicomkit.engines.choice import get_engine
    from dicomkit.engines.state import read_state
    from dicomkit.errors import UsageError

    set_json(json)
    cfg = CTX.config()
    state = read_state(cfg)
    # The nodes of `up --nodes N` add pacs-2.., postgres.
    known = (*SERVICES, *(state.services if state else ()))
    if service not in known:
        raise UsageError(
            f"no service {service!r}", f"choose one of: {', '.join(dict.fromkeys(known))}"
        )
    if state is None:
        raise LabNotRunning("no lab is running", "start it with `dicomkit up`")
    try:
        for line in get_engine(state.engine).logs(cfg, state, service, follow):
            if json:
                line = jsonlib.dumps({"service": service, "line": line.rstrip("\n")}) + "\n"
            sys.stdout.write(line)
            if follow:
                sys.stdout.flush()
    except KeyboardInterrupt:
        return


SERVICES = ("pacs", "ris")
