"""Running a task: the learner does it in their own shell while the tutor watches the lab, or
(--show-me, --no-input) the tutor does it. Task status and hint levels live in the progress file."""

from __future__ import annotations

import time
from typing import Any

from dicomkit import ui
from dicomkit.errors import DicomkitError
from dicomkit.labevents import FEED_ENGINES
from dicomkit.tutor.context import LabContext
from dicomkit.tutor.course import Lesson, TaskText, fill
from dicomkit.tutor.registry import TASKS, Seen, Values, load_all
from dicomkit.tutor.screen import Screen

POLL_S = 0.5  # how often the tutor looks at the lab while the learner works
SHOW_ME_WAIT_S = 15.0  # after --show-me did it, how long the lab may take to show it
FINISHED = ("done", "shown")  # done: the learner did it; shown: the tutor did it (--show-me)


def task_status(ctx: LabContext, lesson: int, name: str) -> str:
    return str(ctx.progress.outcomes(lesson).get("tasks", {}).get(name, "todo"))


def set_task_status(ctx: LabContext, lesson: int, name: str, status: str) -> None:
    tasks = dict(ctx.progress.outcomes(lesson).get("tasks", {}))
    tasks[name] = status
    ctx.progress.record(lesson, tasks=tasks)


def hints_seen(ctx: LabContext, lesson: int, name: str) -> int:
    return int(ctx.progress.outcomes(lesson).get("hints_seen", {}).get(name, 0))


def next_hint(ctx: LabContext, lesson: Lesson, text: TaskText, values: Values) -> tuple[int, str]:
    """The next hint of a task, one at a time (goal -> which tool -> the exact command)."""
    seen = dict(ctx.progress.outcomes(lesson.number).get("hints_seen", {}))
    level = min(int(seen.get(text.id, 0)) + 1, len(text.hints))
    seen[text.id] = level
    ctx.progress.record(lesson.number, hints_seen=seen)
    return level, fill(text.hints[level - 1], values)


def unavailable(ctx: LabContext, name: str) -> str:
    """Why this lab cannot do the task, or "" when it can."""
    load_all()
    if TASKS[name].needs == "dicomweb" and not ctx.endpoints.dicomweb:
        return f"the {ctx.engine} engine's PACS has no DICOMweb yet"
    if TASKS[name].needs == "events" and ctx.engine not in FEED_ENGINES:
        return (f"the {ctx.engine} engine's PACS writes no event feed yet, so the tutor cannot "
                "see what it saw (use --engine native or embedded)")  # fmt: skip
    return ""


def prepare(ctx: LabContext, lesson: Lesson, name: str) -> Values:
    load_all()
    ctx.lesson = lesson.number
    return {**{k: str(v) for k, v in ctx.values().items()}, **TASKS[name].prepare(ctx)}


def look(ctx: LabContext, name: str, values: Values) -> Seen | None:
    """One look at the lab; an error on the way (a service restarting) is not a verdict."""
    try:
        return TASKS[name].probe(ctx, values)
    except DicomkitError as exc:
        return Seen(False, f"could not look: {exc.message}")


def publish(ctx: LabContext, lesson: Lesson, name: str, values: Values) -> None:
    """`dicomkit hint` in the learner's other shell fills its hints with these very values."""
    ctx.record(open_task={"id": name, "values": values})


def finish(ctx: LabContext, lesson: Lesson, name: str, seen: Seen, status: str) -> None:
    if seen.outcomes:
        ctx.record(**seen.outcomes)
    set_task_status(ctx, lesson.number, name, status)


def goal_panel(lesson: Lesson, text: TaskText, values: Values) -> Any:
    from rich.markdown import Markdown
    from rich.panel import Panel

    return Panel(Markdown(fill(text.goal, values)), title=f"Your turn: {text.title}",
                 border_style="magenta")  # fmt: skip


def show_me(
    ctx: LabContext, lesson: Lesson, text: TaskText, values: Values, screen: Screen
) -> Seen:
    """The tutor does the task (its exact command is printed), then checks the lab like always."""
    screen.equivalent(fill(text.hints[-1], values), "The tutor does it (--show-me); by hand")
    TASKS[text.id].show_me(ctx, values)
    deadline = time.monotonic() + SHOW_ME_WAIT_S
    seen = look(ctx, text.id, values)
    while (seen is None or not seen.ok) and time.monotonic() < deadline:
        time.sleep(POLL_S)
        seen = look(ctx, text.id, values)
    if seen is None or not seen.ok:
        raise DicomkitError(
            f"the tutor did task {text.id!r} but the lab does not show it: "
            f"{seen.text if seen else 'nothing seen'}",
            "see `dicomkit status` and `dicomkit logs pacs`",
        )
    return seen


def run_task(
    ctx: LabContext, lesson: Lesson, name: str, screen: Screen, demo: bool
) -> dict[str, Any]:
    """Show the goal, then watch the lab until it shows the result (or do it, with ``demo``)."""
    text = lesson.tasks[name]
    values = prepare(ctx, lesson, name)
    screen.show(goal_panel(lesson, text, values))
    record: dict[str, Any] = {"kind": "task", "id": name, "goal": fill(text.goal, values),
                              "command": fill(text.hints[-1], values)}  # fmt: skip
    why_not = unavailable(ctx, name)
    if why_not:
        screen.show(f"[warn]This task cannot be done on this lab: {ui.escape(why_not)}. The "
                    "lesson stays not done.[/warn]")  # fmt: skip
        return record | {"status": "unavailable", "seen": why_not}
    publish(ctx, lesson, name, values)
    if demo:
        seen = show_me(ctx, lesson, text, values, screen)
        status = "shown"
    else:
        seen, status = watch_task(ctx, lesson, text, values, screen)
    screen.show(f"{ui.OK} The tutor saw {ui.escape(seen.text)}.")
    finish(ctx, lesson, name, seen, status)
    return record | {"status": status, "seen": seen.text}


def watch_task(
    ctx: LabContext, lesson: Lesson, text: TaskText, values: Values, screen: Screen
) -> tuple[Seen, str]:
    screen.show("[muted]Do it in a second shell; the tutor watches the lab. Type [bold]h[/bold] + "
                "Enter for a hint (one at a time), [bold]s[/bold] + Enter to let the tutor show "
                "you, Ctrl-C to stop.[/muted]")  # fmt: skip
    last = ""
    while True:
        seen = look(ctx, text.id, values)
        if seen is not None and seen.ok:
            return seen, "done"
        if seen is not None and seen.text != last:
            screen.show(f"{ui.FAIL} The tutor sees {ui.escape(seen.text)}.")
            last = seen.text
        key = screen.poll_line(POLL_S)
        if key is None:
            continue
        key = key.strip().lower()
        if key.startswith("h"):
            level, hint = next_hint(ctx, lesson, text, values)
            screen.show(f"[hint]Hint {level}/{len(text.hints)}:[/hint]")
            if level == len(text.hints):
                screen.command(hint)  # the exact command: whole, so a paste works
            else:
                screen.show(ui.escape(hint))
        elif key.startswith("s"):
            return show_me(ctx, lesson, text, values, screen), "shown"
