"""What the PACS logged: the associations, echoes and worklist queries it served, read from its
log (Orthanc runs --verbose in the native engine). The embedded PACS does not log these yet, so
callers treat "nothing logged" as "cannot tell", never as a failure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from dicomkit.tutor.context import LabContext

# Orthanc 1.10+ (main.cpp, PluginsManager.cpp) at --verbose.
_REQUEST = re.compile(r"Incoming (\w+) request from AET (\S+) on IP \S+, calling AET (\S+)")
_REJECTED = re.compile(r'Rejected (\w+) request from remote DICOM modality with AET "([^"]+)"')
_MATCHES = re.compile(r"Worklist C-Find: parsed \d+ files, found (\d+) match")


@dataclass(frozen=True)
class Served:
    service: str  # Echo, FindWorklist, Find, Store, ...
    calling: str
    called: str = ""
    refused: bool = False
    matches: int | None = None  # worklist queries: how many items it answered


def log_path(ctx: LabContext) -> Path | None:
    from dicomkit.engines.base import read_state

    state = read_state(ctx.cfg)
    pacs = state.services.get("pacs") if state is not None else None
    return Path(pacs.log) if pacs is not None and pacs.log else None


def mark(ctx: LabContext) -> str:
    """Where the log ends now: events after this are the learner's."""
    path = log_path(ctx)
    return str(path.stat().st_size) if path is not None and path.is_file() else "0"


def served_since(ctx: LabContext, offset: str) -> list[Served]:
    path = log_path(ctx)
    if path is None or not path.is_file():
        return []
    with path.open("rb") as f:
        f.seek(int(offset or 0))
        text = f.read().decode("utf-8", "replace")
    out: list[Served] = []
    for line in text.splitlines():
        if m := _REQUEST.search(line):
            out.append(Served(m.group(1), m.group(2), m.group(3)))
        elif m := _REJECTED.search(line):
            out.append(Served(m.group(1), m.group(2), refused=True))
        elif (m := _MATCHES.search(line)) and out and out[-1].service == "FindWorklist":
            last = out.pop()
            out.append(Served(last.service, last.calling, last.called, False, int(m.group(1))))
    return out


def describe_worklist_queries(ctx: LabContext, offset: str) -> str:
    """ "; the PACS log shows ..." for the worklist queries since ``offset``, or ""."""
    finds = [s for s in served_since(ctx, offset) if s.service == "FindWorklist"]
    if not finds:
        return ""
    said = []
    for s in finds[-3:]:
        said.append(f"refused {s.calling}" if s.refused else
                    f"a worklist C-FIND from {s.calling} matched {s.matches} item(s)")  # fmt: skip
    return "; the PACS log shows " + ", then ".join(said)
