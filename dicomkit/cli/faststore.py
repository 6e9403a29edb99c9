"""``dicomkit store`` without importing Typer: the command scripts run most, where the ~20-45 ms
of importing Typer (its click core, completion, subprocess) is a large part of a short batch.

:func:`parse` reads the command line the way Typer's parser (its vendored click) does, for the
forms it knows: the root options ``--home``/``-v``, then ``store`` with ``--to``, ``--aet``/
``-aet``, ``--timeout``, ``--resume``, ``--jobs``/``-j``, ``--json``, ``--`` and the paths,
options and paths in any order, a later option overriding an earlier one. Anything else (help,
an unknown or misspelt option, a value that does not convert, no path or an empty one, a path or
home that exists but is not readable, shell completion, bytes that are not UTF-8) returns None
and the run goes to Typer, which prints its usual error. ``tests/unit/test_faststore.py``
checks, over hand-picked and generated command lines, that every line parsed here gives exactly
the arguments Typer gives the command, and that the usual forms are parsed here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# store's options: name -> (parameter, takes a value)
_LONG = {
    "--to": ("to", True),
    "--aet": ("aet", True),
    "-aet": ("aet", True),  # DCMTK's spelling; click takes a one-dash name as a long option
    "--timeout": ("timeout", True),
    "--jobs": ("jobs", True),
    "--resume": ("resume", False),
    "--json": ("json", False),
}


@dataclass(frozen=True)
class Parsed:
    """The root options and the keyword arguments of ``run_store``, as Typer would pass them."""

    home: Path | None
    verbose: int
    store: dict[str, Any]


def parse(argv: list[str], environ: Mapping[str, str]) -> Parsed | None:
    """The arguments of ``dicomkit <argv>`` if it is a store run this parser is sure of."""
    if "_DICOMKIT_COMPLETE" in environ or "_TYPER_COMPLETE_ARGS" in environ:
        return None
    try:
        for a in argv:
            a.encode()  # surrogate-escaped bytes: leave them to click's handling
    except UnicodeEncodeError:
        return None
    rest = list(argv)
    home: str | None = None
    verbose = 0
    # The root group: options until the first positional, which must be `store`.
    while rest:
        tok = rest.pop(0)
        if tok == "--home":
            if not rest:
                return None
            home = rest.pop(0)
        elif tok.startswith("--home="):
            home = tok[len("--home=") :]
        elif tok == "--verbose":
            verbose += 1
        elif len(tok) > 1 and tok[0] == "-" and tok[1:] == "v" * (len(tok) - 1):
            verbose += len(tok) - 1
        elif tok == "store":
            break
        else:  # --help, --version, another command, an unknown option, `--`
            return None
    else:
        return None
    values: dict[str, str] = {}
    flags = {"resume": False, "json": False}
    paths: list[str] = []
    options = True
    while rest:
        tok = rest.pop(0)
        if not options or tok == "-" or not tok.startswith("-"):
            paths.append(tok)
            continue
        if tok == "--":
            options = False
            continue
        name, eq, attached = tok.partition("=")
        if name in _LONG:
            param, takes_value = _LONG[name]
            if not takes_value:
                if eq:  # "--json=1": click refuses a value for a flag
                    return None
                flags[param] = True
                continue
            if eq:
                values[param] = attached
            elif rest:
                values[param] = rest.pop(0)  # whatever comes next, as click does
            else:
                return None
        elif tok.startswith("-j") and not tok.startswith("--"):
            # Short -j: "-j4" or "-j 4" (and "-j=4" means the value "=4", as in click).
            if len(tok) > 2:
                values["jobs"] = tok[2:]
            elif rest:
                values["jobs"] = rest.pop(0)
            else:
                return None
        else:
            return None
    if not paths or "" in paths:
        return None  # click's "Missing argument 'PATHS...'"; store's "an empty path"
    try:
        timeout = float(values["timeout"]) if "timeout" in values else None
        jobs = int(values["jobs"]) if "jobs" in values else 0
    except ValueError:
        return None  # click's "not a valid float/integer", with its usage line
    if home is None:
        home = environ.get("DICOMKIT_HOME") or None  # click ignores an empty variable
    if not all(_readable_or_absent(p) for p in [*paths, *([home] if home is not None else [])]):
        return None  # Typer's Path type: "Path '...' is not readable."
    return Parsed(
        Path(home) if home is not None else None,
        verbose,
        {
            "paths": [Path(p) for p in paths],
            "to": values.get("to"),
            "aet": values.get("aet"),
            "timeout": timeout,
            "resume": flags["resume"],
            "jobs": jobs,
            "json": flags["json"],
        },
    )


def _readable_or_absent(path: str) -> bool:
    """Typer's Path check (readable=True): a path that exists must be readable by us."""
    try:
        os.stat(path)
    except (OSError, ValueError):
        return True  # absent (or unusable): Typer passes it on, our command reports it
    return os.access(path, os.R_OK)


def run(argv: list[str], environ: Mapping[str, str]) -> bool:
    """Run ``dicomkit store`` here if :func:`parse` is sure of the command line; else False.

    Exits as Typer's command would: 0, the command's own SystemExit, 130 on Ctrl-C, 1 on a
    closed stdout/stderr pipe (quietly). A DicomkitError propagates to ``cli.main``."""
    parsed = parse(argv, environ)
    if parsed is None:
        return False
    import errno
    import sys

    from dicomkit.cli import context
    from dicomkit.cli.storecmd import run_store

    context.setup_logging(parsed.verbose)
    context.home_option(parsed.home)
    try:
        run_store(**parsed.store)
    except KeyboardInterrupt:
        sys.exit(130)  # as Typer: Exit(130), no message
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        # as click: the reader went away; say nothing more, exit 1
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.dup2(devnull, sys.stderr.fileno())
        sys.exit(1)
    return True
