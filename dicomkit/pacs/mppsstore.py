"""The MPPS SCP's procedure steps in SQLite (pacs/mpps.py applies the rules): one row per
step, its attributes as DICOM JSON, and whether the RIS still has to be told its state.
A restart keeps them."""

from __future__ import annotations

import contextlib
import datetime as _dt
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydicom.dataset import Dataset


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def first_scheduled(ds: Dataset) -> tuple[str, str]:
    """Accession and Study Instance UID of the first scheduled step this MPPS performs."""
    items = ds.get("ScheduledStepAttributesSequence") or []
    if not len(items):
        return "", ""
    item = items[0]
    return str(item.get("AccessionNumber", "") or ""), str(item.get("StudyInstanceUID", "") or "")


class StepStore:
    """The procedure steps, one row each (DICOM JSON), in SQLite: a restart keeps them."""

    _SCHEMA = """
    CREATE TABLE IF NOT EXISTS steps (
        sop_instance TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        accession TEXT NOT NULL,
        study_uid TEXT NOT NULL,
        data TEXT NOT NULL,
        created TEXT NOT NULL,
        updated TEXT NOT NULL,
        ris_pending INTEGER NOT NULL DEFAULT 0
    );
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(self._SCHEMA)

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA synchronous=FULL")  # an acknowledged step survives a crash
            yield db
        finally:
            db.close()

    def get(self, sop_instance: str) -> tuple[str, Dataset] | None:
        from pydicom.dataset import Dataset

        with self._db() as db:
            row = db.execute(
                "SELECT state, data FROM steps WHERE sop_instance = ?", (sop_instance,)
            ).fetchone()
        if row is None:
            return None
        return str(row[0]), Dataset.from_json(row[1])

    def insert(self, sop_instance: str, ds: Dataset) -> bool:
        """False when the SOP Instance UID is taken (nothing written)."""
        accession, study = first_scheduled(ds)
        now = _now()
        try:
            with self._lock, self._db() as db:
                db.execute(
                    "INSERT INTO steps (sop_instance, state, accession, study_uid, data, created,"
                    " updated, ris_pending) VALUES (?,?,?,?,?,?,?,1)",
                    (sop_instance, str(ds.PerformedProcedureStepStatus), accession, study,
                     ds.to_json(), now, now),
                )  # fmt: skip
        except sqlite3.IntegrityError:
            return False
        return True

    def replace(self, sop_instance: str, expected_state: str, ds: Dataset) -> bool:
        """Write the step's new attributes if it is still in ``expected_state`` (another
        association may have finished it meanwhile): False if it was not."""
        with self._lock, self._db() as db:
            cur = db.execute(
                "UPDATE steps SET state = ?, data = ?, updated = ?, ris_pending = 1"
                " WHERE sop_instance = ? AND state = ?",
                (str(ds.PerformedProcedureStepStatus), ds.to_json(), _now(), sop_instance,
                 expected_state),
            )  # fmt: skip
            return cur.rowcount == 1

    def pending(self) -> list[tuple[str, str, str, str]]:
        """Steps whose last state the RIS has not acknowledged: (uid, state, accession, study)."""
        with self._db() as db:
            rows = db.execute(
                "SELECT sop_instance, state, accession, study_uid FROM steps"
                " WHERE ris_pending = 1 ORDER BY updated"
            ).fetchall()
        return [(str(a), str(b), str(c), str(d)) for a, b, c, d in rows]

    def heard(self, sop_instance: str) -> tuple[str, str]:
        """When the step's last N-CREATE/N-SET was received (ISO 8601, UTC) and the Performed
        Station AE Title (0040,0241) it names: what the RIS keeps with the status."""
        with self._db() as db:
            row = db.execute(
                "SELECT updated, json_extract(data, '$.\"00400241\".Value[0]') FROM steps"
                " WHERE sop_instance = ?",
                (sop_instance,),
            ).fetchone()
        if row is None:
            return "", ""
        return str(row[0]), str(row[1] or "")

    def mark_told(self, sop_instance: str, state: str) -> None:
        with self._lock, self._db() as db:
            db.execute(
                "UPDATE steps SET ris_pending = 0 WHERE sop_instance = ? AND state = ?",
                (sop_instance, state),
            )

    def list(self) -> list[dict[str, str]]:
        with self._db() as db:
            rows = db.execute(
                "SELECT sop_instance, state, accession, study_uid, created, updated FROM steps"
                " ORDER BY created"
            ).fetchall()
        keys = ("sop_instance_uid", "state", "accession", "study_instance_uid", "created",
                "updated")  # fmt: skip
        return [dict(zip(keys, map(str, r), strict=True)) for r in rows]
