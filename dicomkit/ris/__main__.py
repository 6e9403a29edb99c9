"""Run the RIS API: ``python -m dicomkit.ris --db FILE --worklist-dir DIR [--host H] [--port P]``."""

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
    args = ap.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")

    import uvicorn

    from dicomkit.ris.app import create_app

    if not is_loopback(args.host):
        log.warning("the RIS listens on %s beyond loopback with no authentication", args.host)
    app = create_app(args.db, args.worklist_dir, args.station_aet)
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
