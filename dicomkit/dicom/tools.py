"""Which DCMTK tool a printed command line will really run."""

from __future__ import annotations

import shutil

# pynetdicom installs console scripts with DCMTK's names (other flags, other output): with a
# venv active they come first on PATH.
DCMTK_NAMES = ("echoscu", "findscu", "storescu", "getscu", "movescu")


def shadowing_script(command: str) -> str | None:
    """The path of the pynetdicom script that ``command`` (a DCMTK command line) would run
    instead of DCMTK's tool, or None when its first word is not shadowed."""
    name = command.split(" ", 1)[0]
    if name not in DCMTK_NAMES:
        return None
    path = shutil.which(name)
    if path is None:
        return None
    try:
        with open(path, "rb") as fh:
            head = fh.read(1024)
    except OSError:
        return None
    return path if head.startswith(b"#!") and b"pynetdicom" in head else None


def shadowing_warning(command: str) -> str | None:
    """One line for the learner when ``command`` would run pynetdicom's script, else None."""
    path = shadowing_script(command)
    if path is None:
        return None
    name = command.split(" ", 1)[0]
    return (
        f"warning: `{name}` on your PATH is pynetdicom's script ({path}), not DCMTK's: "
        f"its flags differ. Run /usr/bin/{name}, or deactivate the venv first."
    )
