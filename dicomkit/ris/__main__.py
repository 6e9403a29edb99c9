"""Run the RIS API: ``python -m dicomkit.ris --db FILE --worklist-dir DIR [--host H] [--port P]``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="dicomkit-ris", description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5000)
    ap.add_argument("--db", type=Path, required=True)
    ap.add_argument("--worklist-dir", type=Path, required=True)
    ap.add_argument("--station-aet", default="DICOMKIT")
    ap.add_argument("--log-level", default="info")
    args = ap.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")

    import uvicorn

    from dicomkit.ris.app import create_app

    if args.host not in ("127.0.0.1", "localhost", "::1"):
        logging.getLogger("dicomkit.ris").warning(
            "the RIS listens on %s beyond loopback with no authentication", args.host
        )
    app = create_app(args.db, args.worklist_dir, args.station_aet)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        timeout_keep_alive=5,
        limit_concurrency=256,
    )


if __name__ == "__main__":
    main()
