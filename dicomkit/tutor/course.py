"""The course as data: ``lessons/lessons.toml`` (order, titles, checks, actions, questions, hints)
plus one Markdown file per lesson whose ``::: kind name`` marker lines place the steps."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from typing import Any

from dicomkit.errors import DicomkitError

FORMAT_VERSION = 1
ACTORS = ("ris", "worklist", "modality", "pacs")
SEGMENT_KINDS = ("action", "task", "question", "diagram", "recap")
HINT_LEVELS = 3  # a task's hints, one at a time: the goal, which tool, the exact command
# Values a lesson's prose, prompts and answers may name as {{name}}; filled from the live lab.
PLACEHOLDERS = (
    "host", "pacs_aet", "aet", "dicom_port", "mwl_port", "http_port", "ris_port",
    "ris_url", "pacs_url", "dicomweb_url", "engine", "hl7_port",
)  # fmt: skip
_MARKER = re.compile(r"^:::\s*(\w+)(?:\s+([\w-]+))?\s*$")
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


class CourseError(DicomkitError):
    """The lesson files are missing or malformed (a packaging or authoring bug)."""


@dataclass(frozen=True)
class Question:
    id: str
    prompt: str
    answer: str  # the right choice's text, or the expected free-text answer
    choices: tuple[str, ...] = ()
    accept: tuple[str, ...] = ()  # more accepted free-text answers
    explain: str = ""  # shown once answered right
    wrong: str = ""  # feedback for a wrong answer
    why: tuple[str, ...] = ()  # per choice: why that choice is wrong ("" for the right one)


@dataclass(frozen=True)
class TaskText:
    """A task's words: the goal (never the command) and its hints, from vague to exact."""

    id: str
    title: str
    goal: str
    hints: tuple[str, ...]


@dataclass(frozen=True)
class Segment:
    kind: str  # "text" or one of SEGMENT_KINDS
    value: str  # Markdown for text; the name for the others


@dataclass(frozen=True)
class Lesson:
    number: int
    slug: str
    title: str
    actor: str
    checks: tuple[str, ...]
    actions: tuple[str, ...]
    hints: str
    questions: dict[str, Question]
    segments: tuple[Segment, ...] = ()
    tasks: dict[str, TaskText] = field(default_factory=dict)

    @property
    def task_order(self) -> list[str]:
        """The task ids in the order the Markdown runs them."""
        return [s.value for s in self.segments if s.kind == "task"]

    @property
    def filename(self) -> str:
        return lesson_filename(self.number, self.slug)


@dataclass
class Course:
    format_version: int
    lessons: list[Lesson]
    files: list[str] = field(default_factory=list)  # every *.md in the folder

    def get(self, number: int) -> Lesson:
        for lesson in self.lessons:
            if lesson.number == number:
                return lesson
        from dicomkit.errors import UsageError

        raise UsageError(
            f"there is no lesson {number}",
            f"choose one of {self.lessons[0].number}-{self.lessons[-1].number} "
            "(see `dicomkit lessons`)",
        )

    def after(self, number: int) -> Lesson | None:
        later = [lesson for lesson in self.lessons if lesson.number > number]
        return later[0] if later else None


def lesson_filename(number: int, slug: str) -> str:
    return f"{number:02d}-{slug}.md"


def lessons_root() -> Traversable:
    return resources.files("dicomkit.lessons")


def _toml_loads(text: str) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    return dict(tomllib.loads(text))


def parse_segments(markdown: str) -> tuple[Segment, ...]:
    """Split a lesson's Markdown at ``::: kind name`` lines; the prose between stays Markdown."""
    out: list[Segment] = []
    buf: list[str] = []

    def flush() -> None:
        text = "\n".join(buf).strip()
        if text:
            out.append(Segment("text", text))
        buf.clear()

    for line in markdown.splitlines():
        m = _MARKER.match(line)
        if m is None:
            buf.append(line)
            continue
        flush()
        out.append(Segment(m.group(1), m.group(2) or ""))
    flush()
    return tuple(out)


def load_course(root: Traversable | Path | None = None) -> Course:
    """Read lessons.toml and every lesson file. Raises CourseError on what cannot be read."""
    base: Traversable = lessons_root() if root is None else root
    try:
        data = _toml_loads(base.joinpath("lessons.toml").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CourseError(
            f"cannot read the course (lessons/lessons.toml): {exc}",
            "reinstall dicomkit; if you edited the lessons, fix the TOML syntax",
        ) from None
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise CourseError(
            f"lessons.toml has format_version {version!r}, this dicomkit reads {FORMAT_VERSION}",
            "use the lessons that came with this dicomkit version",
        )
    files = sorted(
        p.name for p in base.iterdir() if p.name.endswith(".md") and p.name != "README.md"
    )
    lessons = []
    for raw in data.get("lessons", []):
        try:
            lesson = _lesson(raw)
        except (KeyError, TypeError, ValueError) as exc:
            raise CourseError(
                f"lessons.toml: a lesson entry is malformed ({exc!r}): {raw.get('slug', raw)}",
                "every lesson needs number, slug, title, actor, checks, actions, hints",
            ) from None
        md = base.joinpath(lesson.filename)
        if md.is_file():
            lesson = _with_segments(lesson, md.read_text(encoding="utf-8"))
        lessons.append(lesson)
    if not lessons:
        raise CourseError("lessons.toml lists no lessons", "add [[lessons]] entries")
    return Course(int(version), lessons, files)


def _lesson(raw: dict[str, Any]) -> Lesson:
    questions = {}
    for q in raw.get("questions", []):
        question = Question(
            id=str(q["id"]),
            prompt=str(q["prompt"]).strip(),
            answer=str(q["answer"]),
            choices=tuple(str(c) for c in q.get("choices", [])),
            accept=tuple(str(a) for a in q.get("accept", [])),
            explain=str(q.get("explain", "")).strip(),
            wrong=str(q.get("wrong", "")).strip(),
            why=tuple(str(w).strip() for w in q.get("why", [])),
        )
        questions[question.id] = question
    tasks = {}
    for t in raw.get("tasks", []):
        text = TaskText(str(t["id"]), str(t["title"]).strip(), str(t["goal"]).strip(),
                        tuple(str(h).strip() for h in t["hints"]))  # fmt: skip
        tasks[text.id] = text
    return Lesson(
        tasks=tasks,
        number=int(raw["number"]),
        slug=str(raw["slug"]),
        title=str(raw["title"]),
        actor=str(raw["actor"]),
        checks=tuple(str(c) for c in raw["checks"]),
        actions=tuple(str(a) for a in raw["actions"]),
        hints=str(raw["hints"]).strip(),
        questions=questions,
    )


def _with_segments(lesson: Lesson, markdown: str) -> Lesson:
    from dataclasses import replace

    return replace(lesson, segments=parse_segments(markdown))


def fill(text: str, values: dict[str, Any]) -> str:
    """Replace {{name}} with the live lab's value (unknown names are left as they are)."""
    return _PLACEHOLDER.sub(lambda m: str(values.get(m.group(1), m.group(0))), text)


def problems(
    course: Course,
    known_checks: Iterable[str],
    known_actions: Iterable[str],
    known_tasks: Iterable[str] = (),
    task_values: Iterable[str] = (),
) -> list[str]:
    """Everything wrong with the content, as messages (the content test asserts none)."""
    checks, actions, known = set(known_checks), set(known_actions), set(known_tasks)
    placeholders = set(PLACEHOLDERS) | set(task_values)
    out: list[str] = []
    seen: dict[int, str] = {}
    slugs: set[str] = set()
    listed = {lesson.filename for lesson in course.lessons}
    for name in course.files:
        if name not in listed:
            out.append(f"{name}: a lesson file that lessons.toml does not list")
    for lesson in course.lessons:
        where = f"lesson {lesson.number} ({lesson.slug})"
        if lesson.number in seen:
            out.append(f"{where}: duplicate number {lesson.number} (also {seen[lesson.number]})")
        seen[lesson.number] = lesson.slug
        if lesson.slug in slugs:
            out.append(f"{where}: duplicate slug")
        slugs.add(lesson.slug)
        if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", lesson.slug):
            out.append(f"{where}: slug must be lowercase-with-dashes")
        if lesson.filename not in course.files:
            out.append(f"{where}: no file {lesson.filename}")
        if not lesson.hints.strip():
            out.append(f"{where}: empty hint")
        if lesson.actor not in ACTORS:
            out.append(f"{where}: unknown actor {lesson.actor!r} (one of {', '.join(ACTORS)})")
        if not lesson.checks:
            out.append(f"{where}: no checks")
        out += [f"{where}: unknown check {c!r}" for c in lesson.checks if c not in checks]
        out += [f"{where}: unknown action {a!r}" for a in lesson.actions if a not in actions]
        used_actions = [s.value for s in lesson.segments if s.kind == "action"]
        used_questions = [s.value for s in lesson.segments if s.kind == "question"]
        for seg in lesson.segments:
            if seg.kind != "text" and seg.kind not in SEGMENT_KINDS:
                out.append(f"{where}: unknown step marker '::: {seg.kind}'")
            if seg.kind == "diagram" and seg.value not in ACTORS:
                out.append(f"{where}: diagram of unknown actor {seg.value!r}")
        out += [
            f"{where}: the Markdown runs action {a!r} that lessons.toml does not list"
            for a in used_actions
            if a not in lesson.actions
        ]
        out += [
            f"{where}: action {a!r} is listed but no '::: action {a}' marker runs it"
            for a in lesson.actions
            if a not in used_actions
        ]
        out += [
            f"{where}: the Markdown asks question {q!r} that lessons.toml does not define"
            for q in used_questions
            if q not in lesson.questions
        ]
        out += [
            f"{where}: question {q!r} is defined but never asked"
            for q in lesson.questions
            if q not in used_questions
        ]
        used_tasks = lesson.task_order
        if lesson.segments and not used_tasks:
            out.append(f"{where}: has no task for the learner (a '::: task ID' step)")
        out += [f"{where}: unknown task {t!r} (not in dicomkit/tutor/steps)"
                for t in lesson.tasks if t not in known]  # fmt: skip
        out += [f"{where}: the Markdown runs task {t!r} that lessons.toml does not define"
                for t in used_tasks if t not in lesson.tasks]  # fmt: skip
        out += [f"{where}: task {t!r} is defined but never run" for t in lesson.tasks
                if t not in used_tasks]  # fmt: skip
        for t in lesson.tasks.values():
            if len(t.hints) != HINT_LEVELS or not all(t.hints):
                out.append(f"{where}: task {t.id!r} needs {HINT_LEVELS} hints (goal, tool, "
                           "command)")  # fmt: skip
            if not t.goal or not t.title:
                out.append(f"{where}: task {t.id!r}: empty title or goal")
        if lesson.segments and not used_questions:
            out.append(f"{where}: asks no question")
        if lesson.segments and not any(s.kind == "recap" for s in lesson.segments):
            out.append(f"{where}: has no '::: recap' section")
        for q in lesson.questions.values():
            if q.choices and q.answer not in q.choices:
                out.append(f"{where}: question {q.id!r}: answer is not one of its choices")
            if q.choices and (
                len(q.why) != len(q.choices)
                or any(not w for c, w in zip(q.choices, q.why, strict=True) if c != q.answer)
            ):
                out.append(f"{where}: question {q.id!r}: every wrong choice needs its `why`")
            if not q.prompt or not q.answer:
                out.append(f"{where}: question {q.id!r}: empty prompt or answer")
        texts = [lesson.hints] + [s.value for s in lesson.segments if s.kind == "text"]
        texts += [q.prompt + q.answer + q.explain + q.wrong + "".join(q.choices)
                  for q in lesson.questions.values()]  # fmt: skip
        texts += [t.title + t.goal + "".join(t.hints) for t in lesson.tasks.values()]
        for text in texts:
            for name in _PLACEHOLDER.findall(text):
                if name not in placeholders:
                    out.append(f"{where}: unknown placeholder {{{{{name}}}}}")
    numbers = [lesson.number for lesson in course.lessons]
    if numbers != sorted(numbers):
        out.append("lessons.toml: lessons are not in number order")
    return out
