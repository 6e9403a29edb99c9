"""The names lessons.toml may use: actions (the tutor does a step), tasks (the learner does it,
the tutor watches the lab), filled by the lesson modules in ``dicomkit.tutor.steps``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dicomkit.tutor.context import LabContext

Action = Callable[[LabContext], None]
ACTIONS: dict[str, Action] = {}


@dataclass(frozen=True)
class Seen:
    """What the tutor saw in the lab while watching a task."""

    ok: bool
    text: str  # in words: "your C-FIND answers list 1 item, yours among them"
    outcomes: dict[str, Any] = field(default_factory=dict)  # recorded when ok


Values = dict[str, str]


@dataclass(frozen=True)
class Task:
    name: str
    prepare: Callable[[LabContext], Values]  # sets the scene; values for the goal and hints
    probe: Callable[[LabContext, Values], Seen | None]  # None: nothing to see yet
    show_me: Callable[[LabContext, Values], None]  # the tutor does it (--show-me)
    needs: str = ""  # "dicomweb" / "events" (the lab's event feed): not doable on a lab without it


TASKS: dict[str, Task] = {}
# Placeholders a task's prepare() may add to the lab's {{values}} (the content test knows them).
TASK_VALUES = (
    "accession", "workdir", "image", "patient_name", "today", "yesterday",
    "study_uid", "script", "j2k", "j2k_flag", "birth_date",
    "hl7_file", "retrieve_port",
)  # fmt: skip


def action(name: str) -> Callable[[Action], Action]:
    def register(fn: Action) -> Action:
        ACTIONS[name] = fn
        return fn

    return register


def task(
    name: str,
    prepare: Callable[[LabContext], Values],
    show_me: Callable[[LabContext, Values], None],
    needs: str = "",
) -> Callable[[Callable[[LabContext, Values], Seen | None]], Task]:
    """Register a task by its probe: ``@task("place-order", prepare, show_me)``."""

    def register(probe: Callable[[LabContext, Values], Seen | None]) -> Task:
        TASKS[name] = Task(name, prepare, probe, show_me, needs)
        return TASKS[name]

    return register


def load_all() -> None:
    """Import every lesson module so the registries are full."""
    import dicomkit.tutor.steps  # noqa: F401
