"""The lesson runner and verify: what ``dicomkit lesson/next/verify/lessons/hint/reset`` hand off to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dicomkit.config import LabConfig
from dicomkit.errors import DicomkitError, ExitCode, LabNotRunning, UsageError
from dicomkit.tutor.context import CheckResult, LabContext
from dicomkit.tutor.course import Course, Lesson, Question, fill, load_course
from dicomkit.tutor.progress import Progress
from dicomkit.tutor.screen import Screen, split_commands

MAX_TRIES = 3  # wrong answers before the tutor shows the right one and moves on


def lab_context(cfg: LabConfig, progress: Progress, lesson: int = 0) -> LabContext:
    """The running lab, or LabNotRunning that says how to start one."""
    from dicomkit.engines.process import port_answers
    from dicomkit.engines.state import read_state

    state = read_state(cfg)
    if state is None:
        raise LabNotRunning(
            "no lab is running, so there is nothing to run or check against",
            "start it with `dicomkit up` (Next: dicomkit up)",
        )
    ep = state.endpoints
    if not port_answers(ep.host, ep.dicom_port):
        raise LabNotRunning(
            f"the lab's PACS does not answer on {ep.host}:{ep.dicom_port}",
            "restart it with `dicomkit down && dicomkit up` (see `dicomkit status`)",
        )
    return LabContext(cfg, ep, state.engine, progress, lesson)


def next_command(course: Course, progress: Progress) -> str:
    current = progress.current([lesson.number for lesson in course.lessons])
    return f"dicomkit lesson {current}" if current is not None else "dicomkit verify"


# ---- the course list -----------------------------------------------------------------------


def course_status(cfg: LabConfig) -> dict[str, Any]:
    """Each lesson's status, its tasks (done by you, shown by the tutor, to do) and a percentage:
    one step per task plus one for the lesson's checks."""
    course = load_course()
    progress = Progress.load(cfg.home)
    current = progress.current([lesson.number for lesson in course.lessons])
    lessons = []
    steps_all = done_all = 0
    for lesson in course.lessons:
        status = progress.status(lesson.number)
        mark = "done" if status == "done" else "current" if lesson.number == current else "todo"
        states = progress.outcomes(lesson.number).get("tasks", {})
        tasks = [{"id": t, "title": lesson.tasks[t].title, "status": states.get(t, "todo")}
                 for t in lesson.task_order if t in lesson.tasks]  # fmt: skip
        finished = sum(t["status"] in ("done", "shown") for t in tasks) + (mark == "done")
        steps_all += len(tasks) + 1
        done_all += finished
        lessons.append({"number": lesson.number, "slug": lesson.slug, "title": lesson.title,
                        "status": mark, "started": status == "started", "tasks": tasks,
                        "percent": round(100 * finished / (len(tasks) + 1))})  # fmt: skip
    return {
        "lessons": lessons,
        "current": current,
        "percent": round(100 * done_all / max(steps_all, 1)),
        "next": next_command(course, progress),
        "progress_file": str(progress.path),
    }


def hint(cfg: LabConfig, number: int | None) -> dict[str, Any]:
    """The next hint, one at a time: for the lesson's first unfinished task its next level
    (the goal, then which tool, then the exact command); else the lesson's general hints."""
    from dicomkit.tutor.context import LabContext
    from dicomkit.tutor.registry import load_all
    from dicomkit.tutor.tasks import next_hint, prepare, task_status

    load_all()
    course = load_course()
    progress = Progress.load(cfg.home)
    if number is None:
        number = _working_on(progress, [x.number for x in course.lessons])
    lesson = course.get(number)
    from dicomkit.engines.state import read_state

    state = read_state(cfg)
    ep = state.endpoints if state is not None else cfg.endpoints()
    ctx = LabContext(cfg, ep, state.engine if state else cfg.engine, progress, number)
    out: dict[str, Any] = {"lesson": number, "title": lesson.title}
    todo = [t for t in lesson.task_order if task_status(ctx, number, t) not in ("done", "shown")]
    if todo and state is not None:
        text = lesson.tasks[todo[0]]
        published = progress.outcomes(number).get("open_task") or {}
        if published.get("id") == text.id:  # the running lesson's values (its ports, files)
            values = {str(k): str(v) for k, v in published.get("values", {}).items()}
        else:
            try:
                values = prepare(ctx, lesson, text.id)
            except DicomkitError:
                values = {k: str(v) for k, v in ctx.values().items()}
            finally:
                ctx.close()
        level, said = next_hint(ctx, lesson, text, values)
        return out | {"task": text.id, "task_title": text.title, "level": level,
                      "of": len(text.hints), "hint": said}  # fmt: skip
    return out | {"task": None, "hint": fill(lesson.hints, {k: str(v) for k, v in
                                                          ctx.values().items()})}  # fmt: skip


def _working_on(progress: Progress, numbers: list[int]) -> int:
    """The lesson whose task the learner faces right now (a running `lesson` published it),
    else the first lesson not done, else the last one."""
    open_now = []
    for n in numbers:
        outcomes = progress.outcomes(n)
        task = (outcomes.get("open_task") or {}).get("id")
        if task and outcomes.get("tasks", {}).get(task) not in ("done", "shown"):
            open_now.append((str(progress.to_dict()["lessons"][str(n)].get("started", "")), n))
    if open_now:
        return max(open_now)[1]
    current = progress.current(numbers)
    return current if current is not None else numbers[-1]


def reset(cfg: LabConfig, number: int | None, everything: bool) -> str:
    if everything:
        existed = Progress.reset_all(cfg.home)
        return "progress cleared: the course starts again at lesson 1" if existed else (
            "there was no progress to clear")  # fmt: skip
    if number is None:
        raise UsageError("say which lesson to reset", "dicomkit reset 3, or dicomkit reset --all")
    course = load_course()
    course.get(number)
    removed = Progress.load(cfg.home).reset(number)
    return (
        f"lesson {number} is to do again (what it did in the lab stays there)"
        if removed
        else f"lesson {number} had no progress to reset"
    )


# ---- running a lesson ----------------------------------------------------------------------


@dataclass
class LessonOutcome:
    lesson: Lesson
    checks: list[CheckResult]
    passed: bool
    next: str
    steps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return ExitCode.OK if self.passed else ExitCode.FAILED

    def to_dict(self) -> dict[str, Any]:
        """`dicomkit lesson N --json`: its steps, checks and outcome."""
        return {
            "lesson": self.lesson.number,
            "slug": self.lesson.slug,
            "title": self.lesson.title,
            "steps": self.steps,
            "checks": [c.to_dict() for c in self.checks],
            "done": self.passed,
            "next": self.next,
        }


def pick_next(cfg: LabConfig) -> int | None:
    """The first lesson not done, or None when the course is complete."""
    course = load_course()
    progress = Progress.load(cfg.home)
    return progress.current([lesson.number for lesson in course.lessons])


def show_complete(cfg: LabConfig, screen: Screen) -> None:
    """What `next` says after the last lesson: a summary and what to do next (not an error)."""
    from dicomkit import ui

    course = load_course()
    progress = Progress.load(cfg.home)
    screen.show(f"{ui.OK} The course is complete: all {len(course.lessons)} lessons are done.")
    for lesson in course.lessons:
        screen.show(f"  {ui.OK} {lesson.number}. {ui.escape(lesson.title)}")
    screen.show("Next: [cmd]dicomkit verify[/cmd] checks every lesson against the live lab; "
                "[cmd]dicomkit lesson N[/cmd] redoes one; [cmd]dicomkit --help[/cmd] lists every "
                f"tool you used. Progress: {ui.escape(str(progress.path))}")  # fmt: skip


def run_lesson(cfg: LabConfig, number: int, screen: Screen, show_me: bool = False) -> LessonOutcome:
    """Run lesson N: prose, the tutor's steps, the learner's tasks (watched; or done by the tutor
    with ``show_me``, which a non-interactive screen implies), questions, checks, recap."""
    from rich.panel import Panel

    from dicomkit import ui
    from dicomkit.tutor.checks import run_check
    from dicomkit.tutor.registry import ACTIONS, load_all
    from dicomkit.tutor.screen import workflow_diagram
    from dicomkit.tutor.tasks import run_task

    load_all()
    demo = show_me or not screen.interactive
    course = load_course()
    lesson = course.get(number)
    progress = Progress.load(cfg.home)
    ctx = lab_context(cfg, progress, number)
    ctx.screen = screen
    values = ctx.values()
    progress.start(number)
    total = course.lessons[-1].number
    screen.show(Panel(f"[bold]{ui.escape(lesson.title)}[/bold]",
                      title=f"Lesson {number} of {total}", expand=False))  # fmt: skip
    screen.show(workflow_diagram(lesson.actor))
    recap: list[str] = []
    steps: list[dict[str, Any]] = []
    in_recap = False
    try:
        for seg in lesson.segments:
            shown = len(screen.commands)
            step: dict[str, Any] | None = None
            if seg.kind == "recap":
                in_recap = True
            elif in_recap and seg.kind == "text":
                recap.append(fill(seg.value, values))
            elif seg.kind == "text":
                screen.markdown(fill(seg.value, values))
            elif seg.kind == "diagram":
                screen.show(workflow_diagram(seg.value))
            elif seg.kind == "action":
                ACTIONS[seg.value](ctx)
                step = {"kind": "action", "name": seg.value}
            elif seg.kind == "task":
                step = run_task(ctx, lesson, seg.value, screen, demo)
            elif seg.kind == "question":
                first = ask(screen, lesson.questions[seg.value], values, lesson)
                step = {"kind": "question", "id": seg.value, "right_first_time": first}
            if step is not None:
                steps.append(step | {"commands": screen.commands[shown:]})
    except KeyboardInterrupt:
        # Every outcome so far was saved atomically; the lesson just is not marked done.
        screen.show(
            f"\n[warn]Stopped. Lesson {number} is not marked done; rerun it with "
            f"`dicomkit lesson {number}`.[/warn]"
        )
        raise
    finally:
        ctx.close()
    results = [run_check(name, ctx) for name in lesson.checks]
    screen.show(check_table(f"Checks for lesson {number}", results))
    # Honest progress: a skipped check or task is not a pass, so the lesson is not done.
    undone = [s["id"] for s in steps if s["kind"] == "task" and s["status"] == "unavailable"]
    passed = all(r.ok for r in results) and not undone
    if passed:
        progress = Progress.load(cfg.home)
        progress.complete(number)
        if recap:
            from rich.markdown import Markdown

            parts = [part for text in recap for part in split_commands(text)]
            prose = "\n\n".join(text for kind, text in parts if kind == "markdown")
            screen.show(Panel(Markdown(prose), title="Recap", border_style="green"))
            for kind, command in parts:
                if kind == "command":  # outside the panel: printed whole
                    screen.command(command)
        nxt = next_command(course, progress)
    else:
        for r in results:
            if not r.ok and r.fix:
                screen.show(f"[hint]Fix:[/hint] {ui.escape(r.fix)}")
        nxt = f"dicomkit lesson {number}"
        if undone or all(r.ok or r.skipped for r in results):
            later = course.after(number)
            screen.show(f"[warn]Lesson {number} is not done: this lab cannot do all of it "
                        "(skipped above).[/warn]")  # fmt: skip
            if later is not None:
                nxt = f"dicomkit lesson {later.number}"
    screen.show(f"Next: [cmd]{nxt}[/cmd]")
    return LessonOutcome(lesson, results, passed, nxt, steps)


def _matches(q: Question, raw: str, values: dict[str, Any]) -> bool | None:
    """True/False for a valid answer; None when the input is not an answer at all."""
    text = raw.strip()
    if not text:
        return None
    answer = fill(q.answer, values)
    if q.choices:
        choices = [fill(c, values) for c in q.choices]
        if text.isdigit():
            i = int(text)
            return None if not 1 <= i <= len(choices) else choices[i - 1] == answer
        lowered = [c.lower() for c in choices]
        if text.lower() in lowered:
            return choices[lowered.index(text.lower())] == answer
        return None
    accepted = {normal(answer), *(normal(fill(a, values)) for a in q.accept)}
    return normal(text) in accepted


def normal(text: str) -> str:
    """What a free-text answer means: case, spaces, underscores and quotes do not matter."""
    return "".join(ch for ch in text.casefold() if ch.isalnum() or ch in "(),^*")


def ask(screen: Screen, q: Question, values: dict[str, Any], lesson: Lesson) -> bool:
    """Ask until right (or MAX_TRIES wrong); returns whether the learner got there alone."""
    from rich.console import Group
    from rich.markdown import Markdown
    from rich.panel import Panel

    from dicomkit import ui

    answer = fill(q.answer, values)
    choices = [fill(c, values) for c in q.choices]
    # The prompt is Markdown (*called*): rendered, never shown with its asterisks.
    body: Any = Markdown(fill(q.prompt, values))
    if choices:
        listing = "\n".join(f"{i}. {c}" for i, c in enumerate(choices, 1))
        body = Group(body, Markdown(listing))
    screen.show(Panel(body, title="Question", border_style="cyan"))
    default = str(choices.index(answer) + 1) if choices else answer
    how = f"a number 1-{len(choices)}" if choices else "type it"
    wrong = 0
    while True:
        raw = screen.ask(f"Your answer ({how})", None if screen.interactive else default)
        verdict = _matches(q, raw, values)
        if verdict is None:
            screen.show(f"[warn]Please answer with {how}.[/warn]")
            continue
        if verdict:
            screen.show(f"{ui.OK} Right. {ui.escape(fill(q.explain, values))}")
            return wrong == 0
        wrong += 1
        feedback = fill(q.wrong, values) or "Not quite."
        why = _why(q, raw, choices)
        if why:
            feedback = f"{fill(why, values)} {feedback}"
        if wrong >= MAX_TRIES:
            screen.show(f"{ui.FAIL} {ui.escape(feedback)}\nThe answer: [bold]{ui.escape(answer)}"
                        f"[/bold]. {ui.escape(fill(q.explain, values))}")  # fmt: skip
            return False
        screen.show(f"{ui.FAIL} Not quite. {ui.escape(feedback)} Try again.")


def _why(q: Question, raw: str, choices: list[str]) -> str:
    """Why the chosen (wrong) choice is wrong, from the content's `why` list."""
    text = raw.strip()
    if not q.why:
        return ""
    if text.isdigit() and 1 <= int(text) <= len(q.why):
        return q.why[int(text) - 1]
    lowered = [c.lower() for c in choices]
    return q.why[lowered.index(text.lower())] if text.lower() in lowered else ""


def check_table(title: str, results: list[CheckResult]) -> Any:
    from rich.table import Table

    from dicomkit import ui

    t = Table(title=title, title_justify="left")
    for col in ("", "check", "expected", "seen", "time"):
        t.add_column(col)
    for r in results:
        mark = "[muted]–[/muted]" if r.skipped else ui.OK if r.ok else ui.FAIL
        seen = r.seen + (" (skipped)" if r.skipped else "")
        t.add_row(mark, r.name, ui.escape(r.expected), ui.escape(seen), f"{r.ms:.0f} ms")
    return t


# ---- verify --------------------------------------------------------------------------------


@dataclass
class LessonVerdict:
    lesson: Lesson
    done: bool
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.done and all(c.ok for c in self.checks)  # a skipped check never counts


@dataclass
class VerifyReport:
    verdicts: list[LessonVerdict]
    next: str
    engine: str

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.verdicts)

    @property
    def exit_code(self) -> int:
        return ExitCode.OK if self.ok else ExitCode.FAILED

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "engine": self.engine,
            "next": self.next,
            "lessons": [
                {
                    "number": v.lesson.number,
                    "slug": v.lesson.slug,
                    "title": v.lesson.title,
                    "done": v.done,
                    "ok": v.ok,
                    "checks": [c.to_dict() for c in v.checks],
                }
                for v in self.verdicts
            ],
        }


def verify(cfg: LabConfig, number: int | None) -> VerifyReport:
    from dicomkit.tutor.checks import run_check

    course = load_course()
    scope = [course.get(number)] if number is not None else course.lessons
    progress = Progress.load(cfg.home)
    ctx = lab_context(cfg, progress)
    verdicts = []
    for lesson in scope:
        if not progress.is_done(lesson.number):
            verdicts.append(LessonVerdict(lesson, False))
            continue
        ctx.lesson = lesson.number
        verdicts.append(LessonVerdict(lesson, True, [run_check(c, ctx) for c in lesson.checks]))
    failed = [v for v in verdicts if v.done and not v.ok]
    if failed:
        nxt = f"dicomkit lesson {failed[0].lesson.number}"
    else:
        todo = [v for v in verdicts if not v.done]
        nxt = f"dicomkit lesson {todo[0].lesson.number}" if todo else next_command(course, progress)
        if not todo and nxt == "dicomkit verify":
            nxt = "the course is complete: explore with `dicomkit order create --help`"
    return VerifyReport(verdicts, nxt, ctx.engine)


def show_verify(report: VerifyReport, screen: Screen) -> None:
    from dicomkit import ui

    for v in report.verdicts:
        head = f"Lesson {v.lesson.number}: {ui.escape(v.lesson.title)}"
        if not v.done:
            screen.show(f"{ui.FAIL} {head}\n    expected: lesson done   seen: not done yet   "
                        f"fix: [cmd]dicomkit lesson {v.lesson.number}[/cmd]")  # fmt: skip
            continue
        screen.show(f"{ui.OK if v.ok else ui.FAIL} {head}")
        for c in v.checks:
            mark = "[muted]–[/muted]" if c.skipped else ui.OK if c.ok else ui.FAIL
            line = f"    {mark} {c.name}: {ui.escape(c.seen)}"
            if c.skipped:
                line += f" [muted](skipped: {ui.escape(c.fix)})[/muted]"
            elif not c.ok:
                line += (f"\n        expected: {ui.escape(c.expected)}"
                         f"\n        seen:     {ui.escape(c.seen)}"
                         f"\n        [hint]fix:[/hint]      {ui.escape(c.fix)}")  # fmt: skip
            screen.show(line, whole=True)  # a UID or path in it stays copyable
    passed = sum(v.ok for v in report.verdicts)
    screen.show(
        f"\n{ui.OK if report.ok else ui.FAIL} {passed}/{len(report.verdicts)} lesson(s) verified "
        f"against the live lab ({report.engine} engine)"
    )
    screen.show(f"Next: [cmd]{ui.escape(report.next)}[/cmd]")


def show_course(status: dict[str, Any], screen: Screen) -> None:
    from rich.table import Table

    from dicomkit import ui

    t = Table(title=f"dicomkit course: {status['percent']}% done", title_justify="left")
    for col in ("", "#", "lesson", "your tasks", "%"):
        t.add_column(col)
    marks = {"done": ui.OK, "current": "[bold cyan]▶[/bold cyan]", "todo": "[muted]·[/muted]"}
    task_marks = {"done": "✓", "shown": "◦", "todo": "·"}
    for row in status["lessons"]:
        title = ui.escape(row["title"])
        if row["status"] == "current":
            title = f"[bold]{title}[/bold]" + (
                " [muted](started)[/muted]" if row["started"] else ""
            )
        tasks = "\n".join(f"{task_marks.get(x['status'], '·')} {ui.escape(x['title'])}"
                          for x in row["tasks"])  # fmt: skip
        t.add_row(marks[row["status"]], str(row["number"]), title, tasks, f"{row['percent']}%")
    screen.show(t)
    screen.show("[muted]Tasks: ✓ you did it, ◦ the tutor showed you (--show-me), · to do[/muted]")
    screen.show(f"Next: [cmd]{ui.escape(status['next'])}[/cmd]")
