"""What an action or a check is given: the lab's endpoints, the config, progress, and the screen."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dicomkit.errors import DicomkitError

if TYPE_CHECKING:
    from dicomkit.config import Endpoints, LabConfig
    from dicomkit.dicom.net import Peer
    from dicomkit.tutor.progress import Progress
    from dicomkit.tutor.screen import Screen


class LessonOrderError(DicomkitError):
    """A lesson needs an outcome of an earlier lesson that is not there yet."""


@dataclass
class CheckResult:
    name: str
    ok: bool
    expected: str
    seen: str
    fix: str = ""
    skipped: bool = False
    ms: float = 0.0

    @property
    def mark(self) -> str:
        return "skipped" if self.skipped else "pass" if self.ok else "fail"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "result": self.mark,
            "ok": self.ok,
            "expected": self.expected,
            "seen": self.seen,
            "fix": self.fix,
            "ms": round(self.ms, 1),
        }


@dataclass
class LabContext:
    """The live lab as lessons and checks see it: the same shape on every engine."""

    cfg: LabConfig
    endpoints: Endpoints
    engine: str
    progress: Progress
    lesson: int = 0
    screen: Screen | None = None
    scratch: dict[str, Any] = field(default_factory=dict)  # shared between a lesson's actions
    cleanups: list[Callable[[], None]] = field(default_factory=list)  # run when the lesson ends

    def close(self) -> None:
        """Stop what the lesson started for itself (the tutor's own listeners)."""
        while self.cleanups:
            self.cleanups.pop()()

    @property
    def pacs(self) -> Peer:
        from dicomkit.dicom.net import Peer

        return Peer(self.endpoints.host, self.endpoints.dicom_port, self.endpoints.pacs_aet)

    @property
    def mwl(self) -> Peer:
        from dicomkit.dicom.net import Peer

        return Peer(self.endpoints.host, self.endpoints.mwl_port, self.endpoints.pacs_aet)

    @property
    def aet(self) -> str:
        return self.cfg.aet

    @property
    def out(self) -> Screen:
        assert self.screen is not None, "actions run with a screen"
        return self.screen

    def values(self) -> dict[str, Any]:
        """The {{placeholders}} lessons may use."""
        ep = self.endpoints
        return {
            "host": ep.host, "pacs_aet": ep.pacs_aet, "aet": self.cfg.aet,
            "dicom_port": ep.dicom_port, "mwl_port": ep.mwl_port, "http_port": ep.http_port,
            "ris_port": ep.ris_port, "ris_url": ep.ris_url, "pacs_url": ep.pacs_url,
            "dicomweb_url": ep.dicomweb_url, "engine": self.engine, "hl7_port": ep.hl7_port,
        }  # fmt: skip

    def record(self, **outcomes: Any) -> None:
        self.progress.record(self.lesson, **outcomes)

    def need(self, key: str, from_lesson: int, own: bool = False) -> Any:
        """An earlier lesson's outcome, or an error that names the lesson to run first.

        Actions read what ``from_lesson`` made; checks (``own``) what their own lesson used.
        """
        value = self.progress.find_outcome(key, prefer=self.lesson if own else from_lesson)
        if value in (None, ""):
            raise LessonOrderError(
                f"this step needs the {key.replace('_', ' ')} from lesson {from_lesson}, "
                "which has not been recorded yet",
                f"run `dicomkit lesson {from_lesson}` first",
            )
        return value
