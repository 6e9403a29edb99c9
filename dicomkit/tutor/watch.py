"""`dicomkit watch`: the current task in a live panel that advances when the lab shows the result
(like `rustlings watch`). When a lesson's tasks are all finished its checks run; passing marks
it done and the next lesson's first task appears. The questions stay in `dicomkit lesson N`."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from dicomkit import ui
from dicomkit.config import LabConfig
from dicomkit.errors import ExitCode
from dicomkit.tutor.course import Lesson, fill, load_course
from dicomkit.tutor.progress import Progress


def _view(
    lesson: Lesson, task_id: str, values: dict[str, str], hints: list[str], status: str
) -> Any:
    from rich.console import Group
    from rich.markdown import Markdown
    from rich.panel import Panel
    from rich.text import Text

    text = lesson.tasks[task_id]
    parts: list[Any] = [Markdown(fill(text.goal, values))]
    for i, hint in enumerate(hints, 1):
        parts.append(Text(f"Hint {i}/{len(text.hints)}: {hint}", style="cyan"))
    parts.append(Text(status, style="grey50"))
    parts.append(Text("h + Enter: next hint · q + Enter: quit · Ctrl-C: stop", style="grey50"))
    return Panel(Group(*parts), title=f"Lesson {lesson.number} · your turn: {text.title}",
                 border_style="magenta")  # fmt: skip


def watch(cfg: LabConfig) -> int:
    from rich.live import Live

    from dicomkit.tutor.checks import run_check
    from dicomkit.tutor.runner import lab_context
    from dicomkit.tutor.screen import RichScreen
    from dicomkit.tutor.tasks import (
        POLL_S,
        finish,
        look,
        next_hint,
        prepare,
        publish,
        task_status,
    )
    from dicomkit.tutor.tasks import unavailable as why_unavailable

    course = load_course()
    screen = RichScreen()
    progress = Progress.load(cfg.home)
    ctx = lab_context(cfg, progress)
    ctx.screen = screen
    skipped: set[int] = set()
    try:
        while True:
            ctx.progress = Progress.load(cfg.home)
            todo = [x for x in course.lessons if not ctx.progress.is_done(x.number)
                    and x.number not in skipped]  # fmt: skip
            if not todo:
                left = [x.number for x in course.lessons if not ctx.progress.is_done(x.number)]
                if left:
                    screen.show(f"{ui.FAIL} Not done, this lab cannot do them: lesson(s) "
                                f"{', '.join(map(str, left))}.")  # fmt: skip
                    return int(ExitCode.FAILED)
                screen.show(f"{ui.OK} Every lesson is done. Next: [cmd]dicomkit verify[/cmd]")
                return int(ExitCode.OK)
            lesson = todo[0]
            ctx.lesson = lesson.number
            open_tasks = [t for t in lesson.task_order
                          if task_status(ctx, lesson.number, t) not in ("done", "shown")]  # fmt: skip
            if not open_tasks:
                results = [run_check(name, ctx) for name in lesson.checks]
                if all(r.ok for r in results):
                    ctx.progress.complete(lesson.number)
                    screen.show(f"{ui.OK} Lesson {lesson.number} done: every check passed.")
                    continue
                for r in results:
                    if not r.ok:
                        screen.show(f"{ui.FAIL} {r.name}: {ui.escape(r.seen)} "
                                    f"[hint]fix:[/hint] {ui.escape(r.fix)}")  # fmt: skip
                screen.show(f"Next: [cmd]dicomkit lesson {lesson.number}[/cmd]")
                return int(ExitCode.FAILED)
            name = open_tasks[0]
            if why_unavailable(ctx, name):
                screen.show(f"[warn]Lesson {lesson.number}: {why_unavailable(ctx, name)}; it "
                            "stays not done.[/warn]")  # fmt: skip
                skipped.add(lesson.number)
                continue
            values = prepare(ctx, lesson, name)
            ctx.progress.start(lesson.number)
            publish(ctx, lesson, name, values)
            text = lesson.tasks[name]
            level = int(ctx.progress.outcomes(lesson.number).get("hints_seen", {}).get(name, 0))
            hints = [fill(h, values) for h in text.hints[:level]]
            status = "watching the lab…"
            with Live(_view(lesson, name, values, hints, status), console=ui.console,
                      auto_refresh=False, transient=False) as live:  # fmt: skip
                while True:
                    seen = look(ctx, name, values)
                    now = _dt.datetime.now().strftime("%H:%M:%S")
                    if seen is not None and seen.ok:
                        finish(ctx, lesson, name, seen, "done")
                        live.update(_view(lesson, name, values, hints,
                                          f"✓ {now} the tutor saw {seen.text}"), refresh=True)  # fmt: skip
                        break
                    status = f"{now} watching… " + (
                        f"✗ the tutor sees {seen.text}" if seen else "nothing yet"
                    )
                    live.update(_view(lesson, name, values, hints, status), refresh=True)
                    key = screen.poll_line(POLL_S)
                    if key is None:
                        continue
                    if key.strip().lower().startswith("q"):
                        return int(ExitCode.OK)
                    if key.strip().lower().startswith("h"):
                        _, said = next_hint(ctx, lesson, text, values)
                        hints.append(said)
    finally:
        ctx.close()
