"""Run the RIS API: ``python -m dicomkit.ris --db FILE --worklist-dir DIR [--host H] [--port P]
[--hl7-port N]`` (with ``--hl7-port``, HL7 v2 over MLLP too)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from dicomkit.asgi import REQUEST_TIMEOUT, DeadlineH11Protocol

log = logging.getLogger("dicomkit.ris")


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost are loopback; anything else (0.0.0.0, a name, a LAN
    address) may be reachable from other machines."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="dicomkit-ris", description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5000)
    ap.add_argument("--db", type=Path, required=True)
    ap.add_argument("--worklist-dir", type=Path, required=True)
    ap.add_argument("--station-aet", default="DICOMKIT")
    ap.add_argument("--log-level", default="info")
    ap.add_argument(
        "--request-timeout",
        type=float,
        default=REQUEST_TIMEOUT,
        help="seconds a client has to send a whole request before it is disconnected",
    )
    ap.add_argument(
        "--hl7-port",
        type=int,
        default=0,
        help="also listen for HL7 v2 over MLLP on this port (0: no HL7 listener)",
    )
    ap.add_argument("--hl7-host", default=None, help="HL7 listen address (default: --host)")
    ap.add_argument(
        "--hl7-timeout",
        type=float,
        default=30.0,
        help="seconds an HL7 connection may take to deliver one whole message before it is closed",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")

    import uvicorn

    from dicomkit.ris.app import create_app

    if not is_loopback(args.host):
        log.warning("the RIS listens on %s beyond loopback with no authentication", args.host)
    hl7 = (args.hl7_host or args.host, args.hl7_port) if args.hl7_port else None
    if hl7 is not None and not is_loopback(hl7[0]):
        log.warning("the HL7 listener is on %s beyond loopback with no authentication", hl7[0])
    app = create_app(args.db, args.worklist_dir, args.station_aet, hl7, args.hl7_timeout)
    protocol: Any = type(
        "RisProtocol", (DeadlineH11Protocol,), {"request_timeout": args.request_timeout}
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        timeout_keep_alive=5,
        limit_concurrency=256,
        http=protocol,
    )


if __name__ == "__main__":
    main()
