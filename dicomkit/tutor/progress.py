"""Where the learner is: one small JSON file, owned by this class, rewritten whole and atomically.

Commands never write the file themselves; every change goes through a method here that saves.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import secrets
from pathlib import Path
from typing import Any

from dicomkit.errors import StateError
from dicomkit.fsutil import atomic_write_text

KIND = "dicomkit-progress"
FORMAT_VERSION = 1
FILENAME = "progress.json"
WAY_OUT = "start the course over with `dicomkit reset --all` (the lab and its data are untouched)"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class Progress:
    def __init__(self, path: Path, data: dict[str, Any] | None = None) -> None:
        self.path = path
        self._data: dict[str, Any] = data or {
            "kind": KIND,
            "format_version": FORMAT_VERSION,
            # Prefix of every accession this learner's orders use, so reruns never collide.
            "learner": secrets.token_hex(3).upper(),
            "orders_placed": 0,
            "lessons": {},
        }

    # ---- reading -----------------------------------------------------------------------
    @classmethod
    def file_for(cls, home: Path) -> Path:
        return Path(home) / FILENAME

    @classmethod
    def load(cls, home: Path) -> Progress:
        path = cls.file_for(home)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(path)
        except UnicodeDecodeError:
            raise StateError(
                f"the progress file {path} is corrupt (not UTF-8 text)", WAY_OUT
            ) from None
        except OSError as exc:  # a directory in its place, permissions
            raise StateError(f"cannot read the progress file {path}: {exc}", WAY_OUT) from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise StateError(
                f"the progress file {path} is corrupt (not JSON: {exc})", WAY_OUT
            ) from None
        cls._validate(path, data)
        return cls(path, data)

    @staticmethod
    def _validate(path: Path, data: Any) -> None:
        if not isinstance(data, dict) or data.get("kind") != KIND:
            raise StateError(f"{path} is not a dicomkit progress file", WAY_OUT)
        version = data.get("format_version")
        if isinstance(version, int) and version > FORMAT_VERSION:
            raise StateError(
                f"{path} was written by a newer dicomkit (format {version}, this one reads "
                f"{FORMAT_VERSION})",
                f"upgrade dicomkit (pip install -U dicomkit), or {WAY_OUT}",
            )
        ok = (
            version == FORMAT_VERSION
            and isinstance(data.get("learner"), str)
            and data["learner"].isalnum()
            and isinstance(data.get("orders_placed"), int)
            and isinstance(data.get("lessons"), dict)
            and all(
                isinstance(v, dict) and isinstance(v.get("outcomes", {}), dict)
                for v in data["lessons"].values()
            )
        )
        if not ok:
            raise StateError(f"the progress file {path} is damaged (unexpected content)", WAY_OUT)

    def _entry(self, number: int) -> dict[str, Any]:
        return dict(self._data["lessons"].get(str(number), {}))

    @property
    def learner(self) -> str:
        return str(self._data["learner"])

    def status(self, number: int) -> str:
        """``done``, ``started`` or ``todo``."""
        return str(self._entry(number).get("status", "todo"))

    def is_done(self, number: int) -> bool:
        return self.status(number) == "done"

    def outcomes(self, number: int) -> dict[str, Any]:
        return dict(self._entry(number).get("outcomes", {}))

    def find_outcome(self, key: str, prefer: int | None = None) -> Any:
        """The value a lesson recorded under ``key``: ``prefer``'s first, then the latest lesson."""
        if prefer is not None and key in self.outcomes(prefer):
            return self.outcomes(prefer)[key]
        for number in sorted((int(n) for n in self._data["lessons"]), reverse=True):
            if key in self.outcomes(number):
                return self.outcomes(number)[key]
        return None

    def current(self, numbers: list[int]) -> int | None:
        """The first lesson not done, in course order (None when the course is complete)."""
        for n in numbers:
            if not self.is_done(n):
                return n
        return None

    def to_dict(self) -> dict[str, Any]:
        return dict(json.loads(json.dumps(self._data)))

    # ---- changing (each method saves) --------------------------------------------------
    def _refresh(self) -> None:
        """Re-read the file before a change: `dicomkit hint` or `watch` in the learner's other
        shell may have saved since this object was loaded, and a change must not undo theirs."""
        if not self.path.is_file():
            return  # nothing saved yet: this object's data (its learner prefix) is the truth
        # A damaged file: keep what this process holds; save() rewrites the file whole.
        with contextlib.suppress(StateError):
            self._data = Progress.load(self.path.parent)._data

    def start(self, number: int) -> None:
        self._refresh()
        entry = self._entry(number)
        entry.setdefault("status", "started")
        entry["started"] = _now()
        self._data["lessons"][str(number)] = entry
        self.save()

    def record(self, number: int, **outcomes: Any) -> None:
        self._refresh()
        entry = self._entry(number)
        entry.setdefault("status", "started")
        entry["outcomes"] = {**entry.get("outcomes", {}), **outcomes}
        self._data["lessons"][str(number)] = entry
        self.save()

    def complete(self, number: int) -> None:
        self._refresh()
        entry = self._entry(number)
        entry["status"] = "done"
        entry["completed"] = _now()
        self._data["lessons"][str(number)] = entry
        self.save()

    def next_accession(self) -> str:
        """A new accession for this learner (SH: at most 16 characters), saved before use."""
        self._refresh()
        self._data["orders_placed"] = int(self._data["orders_placed"]) + 1
        self.save()
        return f"DK{self.learner}-{self._data['orders_placed']}"

    def reset(self, number: int) -> bool:
        self._refresh()
        removed = self._data["lessons"].pop(str(number), None) is not None
        self.save()
        return removed

    @classmethod
    def reset_all(cls, home: Path) -> bool:
        """Forget everything; works on a corrupt or foreign file too (that is its point)."""
        path = cls.file_for(home)
        existed = path.exists()
        if path.is_dir() and not path.is_symlink():
            # Something made a folder where the file belongs: it holds no progress of ours,
            # but it may hold someone's files, so remove it only when it is empty.
            try:
                path.rmdir()
            except OSError:
                raise StateError(
                    f"{path} is a folder with files in it, not a progress file",
                    f"move or delete {path} yourself",
                ) from None
            return existed
        path.unlink(missing_ok=True)
        return existed

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(self._data, indent=2, sort_keys=True) + "\n")
