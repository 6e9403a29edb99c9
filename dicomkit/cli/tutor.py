"""The tutor's commands: lessons, lesson, next, hint, reset, verify. Thin: dicomkit.tutor does the work."""

from __future__ import annotations

from typing import Annotated

import typer

from dicomkit.cli.common import CTX, JsonOpt, set_json

NoInputOpt = Annotated[
    bool,
    typer.Option(
        "--no-input",
        help="Never prompt: take the default (right) answers. Implied when stdin is not a terminal.",
    ),
]


def lessons(json: JsonOpt = False) -> None:
    """List the course: ✓ done, ▶ current, · to do."""
    from dicomkit import ui
    from dicomkit.tutor.runner import course_status, show_course
    from dicomkit.tutor.screen import RichScreen

    set_json(json)
    status = course_status(CTX.config())
    if json:
        ui.print_json(status)
        return
    show_course(status, RichScreen(no_input=True))


def lesson(
    number: Annotated[int, typer.Argument(help="The lesson's number (see `dicomkit lessons`).")],
    no_input: NoInputOpt = False,
) -> None:
    """Run lesson N against the live lab: explain, do it for real, ask, check, recap."""
    from dicomkit.tutor.runner import run_lesson
    from dicomkit.tutor.screen import RichScreen

    outcome = run_lesson(CTX.config(), number, RichScreen(no_input))
    raise typer.Exit(outcome.exit_code)


def next_(no_input: NoInputOpt = False) -> None:
    """Run the next lesson that is not done yet."""
    from dicomkit.tutor.runner import pick_next, run_lesson, show_complete
    from dicomkit.tutor.screen import RichScreen

    cfg = CTX.config()
    number = pick_next(cfg)
    if number is None:
        show_complete(cfg, RichScreen(no_input=True))
        return
    outcome = run_lesson(cfg, number, RichScreen(no_input))
    raise typer.Exit(outcome.exit_code)


def hint(
    number: Annotated[
        int | None, typer.Argument(help="Lesson number. [default: the current lesson]")
    ] = None,
) -> None:
    """Show the hints for a lesson (the current one by default)."""
    from dicomkit import ui
    from dicomkit.tutor.runner import hint as get_hint

    found, text = get_hint(CTX.config(), number)
    ui.console.print(f"[hint]Hints for lesson {found.number}:[/hint] {ui.escape(found.title)}")
    for line in text.splitlines():
        # Not in a panel: a hint's command must reach the terminal whole (soft-wrapped).
        ui.console.print(ui.escape(line), soft_wrap=True)


def reset(
    number: Annotated[int | None, typer.Argument(help="The lesson to do again.")] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Forget all progress (also repairs a damaged file).")
    ] = False,
) -> None:
    """Mark a lesson (or, with --all, the whole course) as to do again. The lab is untouched."""
    from dicomkit import ui
    from dicomkit.tutor.runner import reset as do_reset

    message = do_reset(CTX.config(), number, all_)
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
