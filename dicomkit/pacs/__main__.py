"""Run the embedded PACS: ``python -m dicomkit.pacs --config FILE.json``.

Logs go to stderr (the engine sends them to the lab's log folder). SIGTERM or Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path
from types import FrameType


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="dicomkit-pacs", description=__doc__)
    ap.add_argument("--config", type=Path, required=True, help="the server's JSON configuration")
    ap.add_argument("--log-level", default="info")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # pynetdicom logs every association and DIMSE message at INFO: keep the log readable.
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)

    from pydicom import config as pydicom_config
    from pynetdicom import _config as pynetdicom_config

    # pynetdicom formats every query and answer identifier for its debug log even when that
    # log is off (~0.3-0.5 ms per C-FIND here); they also hold patient data.
    pynetdicom_config.LOG_REQUEST_IDENTIFIERS = False
    pynetdicom_config.LOG_RESPONSE_IDENTIFIERS = False

    # Query keys legitimately hold wildcards and ranges ("C?", "2026-") that VR validation
    # would warn about on every C-FIND; values are checked where they are used instead.
    pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
    pydicom_config.settings.writing_validation_mode = pydicom_config.IGNORE

    from dicomkit.errors import DicomkitError
    from dicomkit.pacs.server import PacsServer
    from dicomkit.pacs.settings import ServerConfig

    log = logging.getLogger("dicomkit.pacs")
    try:
        cfg = ServerConfig.load(args.config)
        server = PacsServer(cfg)
        server.start()
    except DicomkitError as exc:
        log.error("%s (%s)", exc.message, exc.hint)
        raise SystemExit(2) from None
    except OSError as exc:
        log.error("cannot start the embedded PACS: %s", exc)
        raise SystemExit(2) from None

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    log.info(
        "ready: AE %s, DICOM %d, MWL %d, HTTP %d",
        cfg.aet,
        cfg.dicom_port,
        cfg.mwl_port,
        cfg.http_port,
    )
    stop.wait()
    log.info("stopping")
    server.stop()


if __name__ == "__main__":
    main()
