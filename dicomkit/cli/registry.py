"""Every top-level command: its name, the help panel it is listed in, and where it lives.

A command's help is its docstring (a group's is its Typer app's ``help``); ``cli/app.py``
imports a command's module only when that command runs or a help page lists it.
Adding a command is one line.
"""

from __future__ import annotations

# name: (panel, "module:attr"), in the order `dicomkit --help` lists them.
COMMANDS: dict[str, tuple[str, str]] = {
    "up": ("Lab", "dicomkit.cli.lab:up"),
    "down": ("Lab", "dicomkit.cli.lab:down"),
    "status": ("Lab", "dicomkit.cli.lab:status"),
    "logs": ("Lab", "dicomkit.cli.lab:logs"),
    "timeline": ("Lab", "dicomkit.cli.timelinecmd:timeline"),
    "order": ("RIS", "dicomkit.cli.orders:app"),
    "hl7": ("RIS", "dicomkit.cli.hl7cmd:app"),
    "worklist": ("DICOM", "dicomkit.cli.dicom:worklist_app"),
    "echo": ("DICOM", "dicomkit.cli.dicom:echo"),
    "mpps": ("DICOM", "dicomkit.cli.mppscmd:app"),
    "make-image": ("DICOM", "dicomkit.cli.dicom:make_image"),
    "store": ("DICOM", "dicomkit.cli.dicom:store"),
    "studies": ("DICOM", "dicomkit.cli.dicom:studies"),
    "retrieve": ("DICOM", "dicomkit.cli.workflow:retrieve"),
    "commit": ("DICOM", "dicomkit.cli.workflow:commit"),
    "show": ("DICOM", "dicomkit.cli.show:show"),
    "anonymize": ("DICOM", "dicomkit.cli.anonymizecmd:anonymize"),
    "lessons": ("Tutor", "dicomkit.cli.tutor:lessons"),
    "lesson": ("Tutor", "dicomkit.cli.tutor:lesson"),
    "next": ("Tutor", "dicomkit.cli.tutor:next_"),
    "hint": ("Tutor", "dicomkit.cli.tutor:hint"),
    "reset": ("Tutor", "dicomkit.cli.tutor:reset"),
    "verify": ("Tutor", "dicomkit.cli.tutor:verify"),
    "watch": ("Tutor", "dicomkit.cli.tutor:watch"),
}
