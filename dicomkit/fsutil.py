"""File-system helpers: atomic writes and safe names."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so a reader sees either the old file or the whole new one.

    The temporary file lives in the same folder (``os.replace`` is only atomic within a file
    system), is fsynced before the rename, and the folder is fsynced after it so the rename
    itself survives a power cut.
    """
    path = Path(path)
    tmp = stage_bytes(path, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def stage_bytes(path: Path, data: bytes, mode: int = 0o644) -> str:
    """``data`` written and fsynced to a hidden ``.*.tmp`` file beside ``path``: what
    ``os.replace`` then publishes at once (``atomic_write_bytes``, or a caller that must
    rename under its own lock)."""
    fd, tmp = tempfile.mkstemp(dir=Path(path).parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return tmp


def atomic_write_text(path: Path, text: str, mode: int = 0o644) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode)


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def is_within(child: Path, parent: Path) -> bool:
    """True when ``child`` resolves inside ``parent`` (guards every path built at run time)."""
    try:
        child.resolve().relative_to(parent.resolve())
    except ValueError:
        return False
    return True
