"""How the tutor talks to the learner: a small interface, and its Rich implementation.

Actions and the runner only call ``Screen`` methods; the Rich one writes through ``dicomkit.ui``
(the one console), so the tutor never prints on its own.
"""

from __future__ import annotations

import sys
from typing import Any, Protocol

from dicomkit import ui

ACTOR_LABELS = {
    "ris": "RIS",
    "worklist": "Worklist (MWL SCP)",
    "modality": "Modality",
    "pacs": "PACS",
}
ACTOR_ARROWS = {"ris": "writes item", "worklist": "C-FIND", "modality": "C-STORE"}


class Screen(Protocol):
    interactive: bool  # a person answers the prompts
    colour: bool  # colours reach a terminal (thumbnails make sense)
    commands: list[str]  # every command shown, in order (`lesson --json` reports them)

    def show(self, renderable: Any, whole: bool = False) -> None: ...

    def markdown(self, text: str) -> None: ...

    def equivalent(self, command: str, label: str = "Equivalent") -> None: ...

    def command(self, command: str) -> None: ...

    def ask(self, prompt: str, default: str | None = None) -> str: ...

    def poll_line(self, timeout: float) -> str | None: ...


class RichScreen:
    def __init__(self, no_input: bool = False) -> None:
        # Scripts, CI and pipes get the default answers: never block on a prompt nobody sees.
        self.interactive = not no_input and sys.stdin.isatty()
        # A grey-scale thumbnail needs at least the 256-colour palette's grey ramp.
        self.colour = ui.console.is_terminal and ui.console.color_system in ("256", "truecolor")
        self.commands: list[str] = []

    def show(self, renderable: Any, whole: bool = False) -> None:
        # whole: a line of values (UIDs, paths) the terminal soft-wraps, so a copy stays whole.
        ui.console.print(renderable, soft_wrap=whole)

    def markdown(self, text: str) -> None:
        from rich.markdown import Markdown

        # Fenced blocks are commands: printed whole so a paste works (the terminal soft-wraps).
        for kind, part in split_commands(text):
            if kind == "command":
                self.command(part)
            else:
                ui.console.print(Markdown(part))

    def equivalent(self, command: str, label: str = "Equivalent") -> None:
        ui.console.print(f"[muted]{ui.escape(label)}:[/muted]")
        self.command(command)

    def command(self, command: str) -> None:
        from rich.text import Text

        self.commands.append(command)
        # soft_wrap: never insert a newline into a command (a hard-wrapped curl fails when pasted).
        ui.console.print(Text(command, style="cmd"), soft_wrap=True)

    def ask(self, prompt: str, default: str | None = None) -> str:
        if not self.interactive:
            shown = default or ""
            ui.console.print(f"[hint]?[/hint] {prompt} [muted](no input: default)[/muted] {shown}")
            return shown
        from rich.prompt import Prompt

        if default is None:
            return Prompt.ask(f"[hint]?[/hint] {prompt}", console=ui.console)
        return Prompt.ask(f"[hint]?[/hint] {prompt}", console=ui.console, default=default)

    def poll_line(self, timeout: float) -> str | None:
        """A line the learner typed within ``timeout`` seconds, or None (never blocks longer)."""
        import select
        import time

        if not self.interactive:
            time.sleep(timeout)
            return None
        ready, _, _ = select.select([sys.stdin], [], [], timeout)
        return sys.stdin.readline() if ready else None


class QuietScreen:
    """For `--json`: nothing reaches stdout but the JSON record; prompts take their defaults."""

    interactive = False
    colour = False

    def __init__(self) -> None:
        self.commands: list[str] = []

    def show(self, renderable: Any, whole: bool = False) -> None:
        pass

    def markdown(self, text: str) -> None:
        self.commands += [part for kind, part in split_commands(text) if kind == "command"]

    def equivalent(self, command: str, label: str = "Equivalent") -> None:
        self.commands.append(command)

    def command(self, command: str) -> None:
        self.commands.append(command)

    def ask(self, prompt: str, default: str | None = None) -> str:
        return default or ""

    def poll_line(self, timeout: float) -> str | None:
        import time

        time.sleep(timeout)
        return None


def workflow_diagram(current: str) -> Any:
    """RIS -> Worklist -> Modality -> PACS, with the actor of this step highlighted."""
    from rich.text import Text

    line = Text()
    for i, actor in enumerate(("ris", "worklist", "modality", "pacs")):
        label = f" {ACTOR_LABELS[actor]} "
        line.append(f"[{label}]", style="actor" if actor == current else "muted")
        if actor in ACTOR_ARROWS:
            line.append(f" ─{ACTOR_ARROWS[actor]}─▶ ", style="muted")
        if i == 3:
            break
    marker = Text()
    plain = line.plain
    start = plain.find(f"[ {ACTOR_LABELS.get(current, '')} ]")
    if start >= 0:
        marker.append(" " * start + "▲ this step", style="bold")
    from rich.console import Group

    return Group(line, marker)


def split_commands(text: str) -> list[tuple[str, str]]:
    """Markdown with fenced code blocks -> [("markdown", ...), ("command", one line), ...]."""
    out: list[tuple[str, str]] = []
    buf: list[str] = []
    fenced = False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            if not fenced and "\n".join(buf).strip():
                out.append(("markdown", "\n".join(buf)))
            buf = []
            fenced = not fenced
        elif fenced:
            if line.strip():
                out.append(("command", line.strip()))
        else:
            buf.append(line)
    if "\n".join(buf).strip():
        out.append(("markdown", "\n".join(buf)))
    return out
