"""`dicomkit verify` at 80 columns: a check's value (a UID, a path) is printed whole, for the
terminal to soft-wrap, so it can be copied; Rich would otherwise break it across two lines."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from dicomkit import ui
from dicomkit.tutor.context import CheckResult
from dicomkit.tutor.course import load_course
from dicomkit.tutor.runner import LessonVerdict, VerifyReport, show_verify
from dicomkit.tutor.screen import RichScreen

UID = "1.2.826.0.1.3680043.8.498.75789803009588871943846309823644817440"


def test_a_check_value_is_never_broken_at_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(ui, "console", Console(file=out, width=80, no_color=True), raising=False)
    seen = f"StudyInstanceUID={UID}"
    check = CheckResult("moved_study_on_disk", True, "the study on disk", seen)
    failed = CheckResult("study_committed", False, "3/3 committed", f"0/3 for {UID}", "commit")
    lesson = load_course().get(11)
    report = VerifyReport([LessonVerdict(lesson, True, [check, failed])], "dicomkit lesson 12", "x")
    show_verify(report, RichScreen(no_input=True))
    text = out.getvalue()
    assert f"    ✓ moved_study_on_disk: {seen}\n" in text
    assert f"seen:     0/3 for {UID}\n" in text
