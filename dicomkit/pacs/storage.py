"""The storage area: received instances as files, named from the SHA-256 of their bytes.

A name never comes from a value the peer sent (UIDs have been used for path traversal: DCMTK
CVE-2022-2119). Each file is written as ``*.tmp`` in its final folder, fsynced, renamed with
``os.replace`` and the folder fsynced, all before the C-STORE is answered with Success, so an
acknowledged instance survives a crash and a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import tempfile
from pathlib import Path

from dicomkit.fsutil import fsync_dir

log = logging.getLogger(__name__)

# errno values that mean "the disk (or quota, or file size limit) is full": out of resources.
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class StorageFull(OSError):
    """No room left for this instance; nothing of it was left behind."""


class Storage:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.files = self.root / "files"
        self.files.mkdir(exist_ok=True)

    def path_for(self, digest: str) -> Path:
        # 256 folders of hashes: small directories, cheap folder fsyncs.
        return self.files / digest[:2] / f"{digest}.dcm"

    def relative(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def absolute(self, relative: str) -> Path:
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"stored path {relative!r} escapes the storage area")
        return path

    def write(self, data: bytes) -> Path:
        """Store ``data`` durably; return its path. Raises ``StorageFull`` (nothing left behind)
        when the disk is full, other ``OSError`` for other failures."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.path_for(digest)
        folder = path.parent
        tmp = ""
        try:
            folder.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            tmp = ""
            fsync_dir(folder)  # the rename itself must survive a power cut
        except OSError as exc:
            if tmp:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            if exc.errno in FULL_ERRNOS:
                raise StorageFull(exc.errno, f"storage full: {exc.strerror}") from exc
            raise
        return path

    def remove(self, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def read(self, relative: str) -> bytes:
        return self.absolute(relative).read_bytes()

    def sweep_tmp(self) -> int:
        """Remove ``*.tmp`` left by a crash mid-write (never acknowledged, so never indexed)."""
        removed = 0
        for tmp in self.files.glob("*/.*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed += 1
        if removed:
            log.info("removed %d unfinished file(s) from an earlier crash", removed)
        return removed
