"""The tutor's commands: lessons, lesson, next, watch, hint, reset, verify. Thin: dicomkit.tutor
does the work."""

from __future__ import annotations

from typing import Annotated

import typer

from dicomkit.cli.common import CTX, JsonOpt, set_json

NoInputOpt = Annotated[
    bool,
    typer.Option(
        "--no-input",
        help="Never prompt: take the default (right) answers and let the tutor do the tasks "
        "(implies --show-me). Implied when stdin is not a terminal.",
    ),
]
ShowMeOpt = Annotated[
    bool,
    typer.Option("--show-me", help="The tutor does each task itself (and prints its command)."),
]


def lessons(json: JsonOpt = False) -> None:
    """List the course: ✓ done, ▶ current, · to do.

    Each lesson's tasks (✓ you did it, ◦ the tutor showed you) and a percentage.
    """
    from dicomkit import ui
    from dicomkit.tutor.runner import course_status, show_course
    from dicomkit.tutor.screen import RichScreen

    set_json(json)
    status = course_status(CTX.config())
    if json:
        ui.print_json(status)
        return
    show_course(status, RichScreen(no_input=True))


def _run(number: int, no_input: bool, show_me: bool, json: bool) -> None:
    from dicomkit import ui
    from dicomkit.tutor.runner import run_lesson
    from dicomkit.tutor.screen import QuietScreen, RichScreen

    set_json(json)
    screen = QuietScreen() if json else RichScreen(no_input)
    outcome = run_lesson(CTX.config(), number, screen, show_me=show_me or json)
    if json:
        ui.print_json(outcome.to_dict())
    raise typer.Exit(outcome.exit_code)


def lesson(
    number: Annotated[int, typer.Argument(help="The lesson's number (see `dicomkit lessons`).")],
    no_input: NoInputOpt = False,
    show_me: ShowMeOpt = False,
    json: JsonOpt = False,
) -> None:
    """Run lesson N against the live lab: explain, your tasks (watched), questions, checks, recap."""
    _run(number, no_input, show_me, json)


def next_(no_input: NoInputOpt = False, show_me: ShowMeOpt = False, json: JsonOpt = False) -> None:
    """Run the next lesson that is not done yet."""
    from dicomkit import ui
    from dicomkit.tutor.runner import course_status, pick_next, show_complete
    from dicomkit.tutor.screen import RichScreen

    set_json(json)
    cfg = CTX.config()
    number = pick_next(cfg)
    if number is None:
        if json:
            ui.print_json({"complete": True, **course_status(cfg), "next": "dicomkit verify"})
        else:
            show_complete(cfg, RichScreen(no_input=True))
        return
    _run(number, no_input, show_me, json)


def watch() -> None:
    """Show the current task live; advance when the lab shows it."""
    from dicomkit.tutor.watch import watch as run_watch

    raise typer.Exit(run_watch(CTX.config()))


def hint(
    number: Annotated[
        int | None, typer.Argument(help="Lesson number. [default: the current lesson]")
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Show the next hint, one at a time: the goal, then which tool, then the exact command."""
    from dicomkit import ui
    from dicomkit.tutor.runner import hint as get_hint

    set_json(json)
    found = get_hint(CTX.config(), number)
    if json:
        ui.print_json(found)
        return
    if found["task"]:
        ui.console.print(f"[hint]Hint {found['level']}/{found['of']} for lesson {found['lesson']}, "
                         f"task {ui.escape(found['task_title'])}:[/hint]")  # fmt: skip
    else:
        ui.console.print(f"[hint]Hints for lesson {found['lesson']}:[/hint] "
                         f"{ui.escape(found['title'])}")  # fmt: skip
    for line in found["hint"].splitlines():
        # Not in a panel: a hint's command must reach the terminal whole (soft-wrapped).
        ui.console.print(ui.escape(line), soft_wrap=True)


def reset(
    number: Annotated[int | None, typer.Argument(help="The lesson to do again.")] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Forget all progress (also repairs a damaged file).")
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Mark a lesson (or, with --all, the whole course) as to do again. The lab is untouched."""
    from dicomkit import ui
    from dicomkit.tutor.runner import reset as do_reset

    set_json(json)
    message = do_reset(CTX.config(), number, all_)
    if json:
        ui.print_json({"lesson": number, "all": all_, "message": message})
        return
    ui.console.print(f"{ui.OK} {message}")


def verify(
    number: Annotated[int | None, typer.Argument(help="Only this lesson.")] = None,
    json: JsonOpt = False,
) -> None:
    """Check every done lesson's outcome in the live lab; exit 0 only when all pass."""
    from dicomkit import ui
    from dicomkit.tutor.runner import show_verify
    from dicomkit.tutor.runner import verify as do_verify
    from dicomkit.tutor.screen import RichScreen

    set_json(json)
    report = do_verify(CTX.config(), number)
    if json:
        ui.print_json(report.to_dict())
    else:
        show_verify(report, RichScreen(no_input=True))
    raise typer.Exit(report.exit_code)
