"""A record of which SOP instances a peer acknowledged, so ``store --resume`` sends the rest.

One append-only file per peer, named by a hash of the peer (never by the peer's raw values).
A torn last line (crash mid-write) is ignored on reading.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import IO

from dicomkit.dicom.net import Peer


class StoreJournal:
    def __init__(self, folder: Path, peer: Peer) -> None:
        key = hashlib.sha256(f"{peer.host}:{peer.port}:{peer.aet}".encode()).hexdigest()[:24]
        self.path = Path(folder) / f"store-{key}.log"
        self._fh: IO[str] | None = None

    def acknowledged(self) -> set[str]:
        try:
            text = self.path.read_text(errors="replace")
        except FileNotFoundError:
            return set()
        lines = text.split("\n")
        # Every complete line ends with "\n": the piece after the last one may be torn.
        return {ln for ln in lines[:-1] if ln}

    def record(self, sop_instance_uid: str) -> None:
        if not sop_instance_uid:
            return
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="ascii", errors="replace")  # noqa: SIM115 (kept open across files)
        self._fh.write(sop_instance_uid + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
