"""What every engine offers: up, down, status and logs of one lab."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from dicomkit.config import LabConfig
from dicomkit.engines.state import LabState

Reporter = Callable[[str], None]


@dataclass
class ServiceStatus:
    name: str
    running: bool
    healthy: bool
    ports: str
    detail: str = ""


class Engine(Protocol):
    name: str

    def available(self) -> tuple[bool, str]:
        """Whether this engine can run here, and why (or why not)."""
        ...

    def up(self, cfg: LabConfig, report: Reporter) -> LabState: ...

    def down(
        self, cfg: LabConfig, state: LabState | None, volumes: bool, report: Reporter
    ) -> None: ...

    def status(self, cfg: LabConfig, state: LabState) -> list[ServiceStatus]: ...

    def logs(
        self, cfg: LabConfig, state: LabState, service: str, follow: bool
    ) -> Iterator[str]: ...
