"""Every top-level command, as plain data: where it lives, its help panel, its one-line help.

``dicomkit --help`` renders from this table without importing Typer or any command module
(the whole process then costs ~0.1 s instead of ~0.35 s), and ``dicomkit CMD ...`` imports only
the module of CMD (see ``cli/app.py``). ``tests/unit/test_cli_registry.py`` renders the help both
ways and requires identical text, so this table cannot drift from the commands themselves.
"""

from __future__ import annotations

from typing import NamedTuple

NAME = "dicomkit"

ROOT_HELP = (
    "A hands-on lab and tutor for the radiology imaging workflow: "
    "RIS -> Modality Worklist -> Modality -> PACS.\n\n"
    "Start with [bold]dicomkit up[/bold], then [bold]dicomkit lesson 1[/bold]."
)


class Entry(NamedTuple):
    name: str
    module: str  # dicomkit.cli.<module>
    attr: str  # a command function, or a typer.Typer for a group of commands
    panel: str  # the help panel it is listed in
    help: str  # the first paragraph of its help, as listed by `dicomkit --help`


COMMANDS_PANEL = "Commands"  # Typer's panel for commands given no panel (our sub-groups)

ENTRIES: tuple[Entry, ...] = (
    Entry(
        "order",
        "orders",
        "app",
        COMMANDS_PANEL,
        "Place and manage orders in the RIS (each order becomes a worklist item).",
    ),
    Entry(
        "worklist",
        "dicom",
        "worklist_app",
        COMMANDS_PANEL,
        "Query the Modality Worklist as a modality would (MWL C-FIND).",
    ),
    Entry(
        "up",
        "lab",
        "up",
        "Lab",
        "Start the lab: a PACS (Orthanc or the embedded one), its worklist, and the RIS API.",
    ),
    Entry("down", "lab", "down", "Lab", "Stop the lab (and with --volumes, delete its data)."),
    Entry(
        "status",
        "lab",
        "status",
        "Lab",
        "Show the lab's engine, services, ports and health (exit 4 when it is not up).",
    ),
    Entry("logs", "lab", "logs", "Lab", "Print a service's log (like `docker compose logs`)."),
    Entry(
        "echo",
        "dicom",
        "echo",
        "DICOM",
        'C-ECHO the PACS (or --mwl, or any --to peer): the DICOM "ping".',
    ),
    Entry(
        "make-image",
        "dicom",
        "make_image",
        "DICOM",
        "Acquire an image like a modality: query the worklist for the accession, copy its "
        "identifiers.",
    ),
    Entry(
        "store",
        "dicom",
        "store",
        "DICOM",
        "C-STORE files to the PACS, each in its own transfer syntax (batches on parallel "
        "associations).",
    ),
    Entry(
        "studies",
        "dicom",
        "studies",
        "DICOM",
        "Find studies in the PACS (Study Root C-FIND at STUDY level).",
    ),
    Entry(
        "lessons",
        "tutor",
        "lessons",
        "Tutor",
        "List the course: ✓ done, ▶ current, · to do.",
    ),
    Entry(
        "lesson",
        "tutor",
        "lesson",
        "Tutor",
        "Run lesson N against the live lab: explain, your tasks (watched), questions, checks, recap.",
    ),
    Entry("next", "tutor", "next_", "Tutor", "Run the next lesson that is not done yet."),
    Entry(
        "watch",
        "tutor",
        "watch",
        "Tutor",
        "Show the current task live; advance when the lab shows it.",
    ),
    Entry(
        "hint",
        "tutor",
        "hint",
        "Tutor",
        "Show the next hint, one at a time: the goal, then which tool, then the exact command.",
    ),
    Entry(
        "reset",
        "tutor",
        "reset",
        "Tutor",
        "Mark a lesson (or, with --all, the whole course) as to do again. The lab is untouched.",
    ),
    Entry(
        "verify",
        "tutor",
        "verify",
        "Tutor",
        "Check every done lesson's outcome in the live lab; exit 0 only when all pass.",
    ),
)

BY_NAME: dict[str, Entry] = {e.name: e for e in ENTRIES}


class RootOption(NamedTuple):
    long: str
    short: str
    metavar: str
    help: str
    extra: str  # "[env var: ...]" / "[default: ...]", as Typer prints it


# The root callback's options (cli/app.py `_root`) and the two Typer adds, in Typer's order.
ROOT_OPTIONS: tuple[RootOption, ...] = (
    RootOption(
        "--home", "", "<path>", "Folder for the lab's state and data.", "[env var: DICOMKIT_HOME]"
    ),
    RootOption("--verbose", "-v", "<int>", "More logging.", "[default: 0]"),
    RootOption("--version", "", "", "Show the version.", ""),
    RootOption("--install-completion", "", "", "Install completion for the current shell.", ""),
    RootOption(
        "--show-completion",
        "",
        "",
        "Show completion for the current shell, to copy it or customize the installation.",
        "",
    ),
    RootOption("--help", "-h", "", "Show this message and exit.", ""),
)


# How Typer draws help (typer/rich_utils.py): its styles and its highlighter patterns, used by
# both renderers of the root help (cli/fasthelp.py with Rich, cli/plainhelp.py without).
HELP_STYLES = {
    "option": "bold cyan",
    "switch": "bold green",
    "negative_option": "bold magenta",
    "negative_switch": "bold red",
    "types": "bold yellow",
    "types_sep": "dim",
    "usage": "yellow",
}
OPTION_HIGHLIGHTS = (
    r"(^|\W)(?P<switch>\-\w+)(?![a-zA-Z0-9])",
    r"(^|\W)(?P<option>\-\-[\w\-]+)(?![a-zA-Z0-9])",
    r"(?P<types>\<[^\>]+\>)",
    r"(?P<usage>Usage: )",
)
TYPES_HIGHLIGHTS = (
    r"^(?P<types_sep>(\[|<))",
    r"(?P<types_sep>\|)",
    r"(?P<types_sep>(\]|>))(\.\.\.)?$",
)
