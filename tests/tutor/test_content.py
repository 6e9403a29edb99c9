"""The course against the engine (rustlings' `dev check`): every file listed, every name known."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from dicomkit.tutor.checks import CHECKS
from dicomkit.tutor.course import lessons_root, load_course, parse_segments
from dicomkit.tutor.course import problems as content_problems
from dicomkit.tutor.registry import ACTIONS, TASK_VALUES, TASKS, load_all

load_all()


def problems(course, checks, actions):  # type: ignore[no-untyped-def]
    return content_problems(course, checks, actions, TASKS, TASK_VALUES)


SOURCE = Path(str(lessons_root()))
# The tools a task's last hint (the exact command) may start with.
TASK_TOOLS = {"echoscu", "findscu", "storescu", "movescu", "dicomkit", "curl"}


def test_shipped_course_has_no_problems() -> None:
    course = load_course()
    assert problems(course, CHECKS, ACTIONS) == []
    assert [lesson.number for lesson in course.lessons] == list(range(1, 15))


def test_every_check_and_action_is_used_by_some_lesson() -> None:
    course = load_course()
    used_checks = {c for lesson in course.lessons for c in lesson.checks}
    used_actions = {a for lesson in course.lessons for a in lesson.actions}
    assert set(CHECKS) == used_checks
    assert set(ACTIONS) == used_actions
    assert set(TASKS) == {t for lesson in course.lessons for t in lesson.tasks}


def test_each_lesson_explains_runs_asks_checks_and_recaps() -> None:
    for lesson in load_course().lessons:
        kinds = [s.kind for s in lesson.segments]
        assert kinds[0] == "text", lesson.slug  # an explanation first
        # Every lesson has a task the learner does in their own shell (the tutor watches).
        assert "task" in kinds and "question" in kinds and "recap" in kinds, lesson.slug
        assert lesson.checks and lesson.hints.strip()


@pytest.fixture
def course_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "lessons"
    shutil.copytree(SOURCE, dest, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    return dest


def _edit_toml(folder: Path, old: str, new: str, count: int = 1) -> None:
    path = folder / "lessons.toml"
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, count))


def _problems(folder: Path) -> list[str]:
    return problems(load_course(folder), CHECKS, ACTIONS)


def test_a_lesson_file_not_listed_is_reported(course_copy: Path) -> None:
    (course_copy / "09-extra.md").write_text("Hello\n")
    assert any("09-extra.md" in p and "does not list" in p for p in _problems(course_copy))


def test_a_listed_lesson_without_a_file_is_reported(course_copy: Path) -> None:
    (course_copy / "04-acquire-an-image.md").unlink()
    assert any("no file 04-acquire-an-image.md" in p for p in _problems(course_copy))


def test_an_unknown_check_name_is_reported(course_copy: Path) -> None:
    _edit_toml(course_copy, 'checks = ["order_in_ris"', 'checks = ["order_in_ris_typo"')
    assert any("unknown check 'order_in_ris_typo'" in p for p in _problems(course_copy))


def test_an_unknown_action_name_is_reported(course_copy: Path) -> None:
    _edit_toml(course_copy, '"echo_mwl"]', '"echo_everything"]')
    found = _problems(course_copy)
    assert any("unknown action 'echo_everything'" in p for p in found)
    assert any("does not list" in p and "echo_mwl" in p for p in found)  # marker now unlisted


def test_a_duplicate_number_is_reported(course_copy: Path) -> None:
    _edit_toml(course_copy, "number = 3\n", "number = 2\n")
    assert any("duplicate number 2" in p for p in _problems(course_copy))


def test_an_empty_hint_is_reported(course_copy: Path) -> None:
    text = (course_copy / "lessons.toml").read_text()
    text = re.sub(r'hints = """\nIs the lab up\?.*?"""', 'hints = """\n  \n"""', text, flags=re.S)
    (course_copy / "lessons.toml").write_text(text)
    assert any("lesson 1" in p and "empty hint" in p for p in _problems(course_copy))


def test_a_question_marker_without_a_question_is_reported(course_copy: Path) -> None:
    md = course_copy / "03-query-the-worklist.md"
    md.write_text(md.read_text() + "\n::: question nope\n")
    assert any("asks question 'nope'" in p for p in _problems(course_copy))


def test_an_unknown_placeholder_is_reported(course_copy: Path) -> None:
    md = course_copy / "01-meet-the-lab.md"
    md.write_text("Port {{dicom_prot}}\n" + md.read_text())
    assert any("{{dicom_prot}}" in p for p in _problems(course_copy))


def test_a_newer_format_version_is_refused(course_copy: Path) -> None:
    from dicomkit.tutor.course import CourseError

    _edit_toml(course_copy, "format_version = 1", "format_version = 99")
    with pytest.raises(CourseError, match="format_version 99"):
        load_course(course_copy)


def test_markers_split_the_prose() -> None:
    segs = parse_segments("Intro\n\n::: action echo_pacs\nMore\n::: recap\nDone\n")
    assert [(s.kind, s.value) for s in segs] == [
        ("text", "Intro"), ("action", "echo_pacs"), ("text", "More"), ("recap", ""),
        ("text", "Done"),
    ]  # fmt: skip


def test_every_task_has_three_hints_ending_with_a_command_and_a_goal_without_it() -> None:
    for lesson in load_course().lessons:
        for task in lesson.tasks.values():
            assert len(task.hints) == 3, task.id
            command = task.hints[-1]
            assert command.split()[0] in TASK_TOOLS
            assert command not in task.goal, task.id  # stated as a goal, not as the command


def test_a_task_without_hints_is_reported(course_copy: Path) -> None:
    text = (course_copy / "lessons.toml").read_text()
    start = text.index('id = "echo-pacs"')
    hints = text.index("hints = [", start)
    end = text.index("]", hints)
    (course_copy / "lessons.toml").write_text(text[:hints] + "hints = [" + text[end:])
    assert any("echo-pacs" in p and "3 hints" in p for p in _problems(course_copy))


def test_a_lesson_without_a_task_is_reported(course_copy: Path) -> None:
    md = course_copy / "05-send-to-the-pacs.md"
    md.write_text(md.read_text().replace("::: task store-image\n", ""))
    found = _problems(course_copy)
    assert any("lesson 5" in p and "no task" in p for p in found)
    assert any("store-image" in p and "never run" in p for p in found)
