"""The RIS's order book: SQLite for the orders, one ``.wl`` file per order for the worklist.

Creating an order writes the worklist file first (atomically), then commits the row; a failure
in between removes the file, so there is never a worklist item without an order or the reverse.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import datetime as _dt
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dicomkit.dicom import worklist
from dicomkit.fsutil import atomic_write_bytes, fsync_dir, stage_bytes
from dicomkit.ris.models import OrderIn, OrderOut

log = logging.getLogger(__name__)


class DuplicateAccession(Exception):
    pass


class OrderNotFound(Exception):
    pass


class StatusConflict(Exception):
    """The order cannot take this state (it is closed, or another step or study is named)."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    accession TEXT PRIMARY KEY,
    item_id TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL,
    data TEXT NOT NULL
);
-- What happened to each order, and when: how it arrived (HTTP or HL7), each status change and
-- who reported it. A table of its own, created if missing: an older order book keeps working.
CREATE TABLE IF NOT EXISTS order_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    accession TEXT NOT NULL,
    at TEXT NOT NULL,
    event TEXT NOT NULL,
    via TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS order_events_accession ON order_events (accession, id);
"""


def _now_ms() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def _event(
    db: sqlite3.Connection, accession: str, event: str, via: str, detail: dict[str, Any]
) -> None:
    """One row of ``order_events``, inside the caller's transaction (it commits with the change)."""
    db.execute(
        "INSERT INTO order_events (accession, at, event, via, detail) VALUES (?,?,?,?,?)",
        (accession, _now_ms(), event, via, json.dumps(detail, sort_keys=True)),
    )


@dataclasses.dataclass(eq=False)
class _Job:
    """One order on its way in: its item staged at ``tmp``, to be renamed to ``path``."""

    out: OrderOut
    path: Path
    tmp: str
    via: str = "http"
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)
    done: bool = False
    error: BaseException | None = None


class OrderStore:
    def __init__(self, db_path: Path, worklist_dir: Path, default_station_aet: str = "DICOMKIT"):
        self.db_path = Path(db_path)
        self.worklist_dir = Path(worklist_dir)
        self.default_station_aet = default_station_aet
        self._lock = threading.Lock()
        self._local = threading.local()
        self._queue = threading.Condition()  # orders waiting for the next group commit
        self._pending: builtins.list[_Job] = []
        self._committing = False
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.worklist_dir.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection, kept open: opening one per call cost a connect, and
        closing the last one a WAL checkpoint, on every order (most of an order's time)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(
                self.db_path, timeout=30, isolation_level=None, check_same_thread=False
            )
            db.execute("PRAGMA synchronous=FULL")  # an acknowledged order survives a crash
            self._local.db = db
        try:
            yield db
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")  # never leave a kept connection inside a transaction
            raise

    def recover(self) -> dict[str, int]:
        """After a crash: rewrite missing worklist files, drop leftover temporary files."""
        rewritten = removed = 0
        for tmp in self.worklist_dir.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed += 1
        for out in self.list():
            path = worklist.item_path(self.worklist_dir, out.worklist_item_id)
            if not path.exists() and not out.closed:
                worklist.write_item(
                    self.worklist_dir, out.worklist_item_id, worklist.build_item(out)
                )
                rewritten += 1
        return {"rewritten": rewritten, "removed_tmp": removed}

    def create(
        self, order: OrderIn, via: str = "http", detail: dict[str, Any] | None = None
    ) -> OrderOut:
        """Place ``order``; ``via`` says how it arrived ("http", "hl7") and ``detail`` what
        carried it (the HL7 message type and control ID), both kept in its events."""
        from pydicom.uid import generate_uid

        item_id = worklist.new_item_id()
        date, time = order.scheduled()
        out = OrderOut(
            order=order,
            worklist_item_id=item_id,
            study_instance_uid=generate_uid(),
            requested_procedure_id=f"RP{item_id[:14].upper()}",
            scheduled_procedure_step_id=f"SPS{item_id[:13].upper()}",
            scheduled_date=date,
            scheduled_time=time,
            station_aet=order.station_aet or self.default_station_aet,
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        )
        # Encoding and writing the item (the slow part: CPU and an fsync) happen outside the
        # lock, into a hidden temporary file, concurrently with other orders. What must be
        # serial -- the duplicate check, the rename that makes the item visible, the folder
        # fsync and the commit -- is done for every order waiting at that moment in one batch
        # (group commit): one folder fsync and one commit per batch, not per order.
        data = worklist.encode(worklist.build_item(out))
        path = worklist.item_path(self.worklist_dir, item_id)
        job = _Job(out, path, stage_bytes(path, data), via, dict(detail or {}))
        try:
            self._group_commit(job)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(job.tmp)  # still there unless it became the item
        if job.error is not None:
            raise job.error
        log.info("order created: worklist item %s", item_id)
        return out

    def _group_commit(self, job: _Job) -> None:
        """Wait until ``job`` is committed (or failed) in some batch. The first waiter with no
        batch under way commits everything queued so far; the others wait for it."""
        with self._queue:
            self._pending.append(job)
            while not job.done:
                if self._committing:
                    self._queue.wait()
                    continue
                self._committing = True
                batch, self._pending = self._pending, []
                self._queue.release()
                try:
                    self._commit_batch(batch)
                finally:
                    self._queue.acquire()
                    self._committing = False
                    self._queue.notify_all()

    def _commit_batch(self, batch: builtins.list[_Job]) -> None:
        """One transaction for ``batch``: each order whose accession is taken (in the table or
        earlier in the batch) fails alone with DuplicateAccession; if the folder fsync or the
        commit fails, every order of the batch fails and its item is removed again."""
        placed: builtins.list[_Job] = []
        try:
            with self._lock, self._connect() as db:
                db.execute("BEGIN IMMEDIATE")
                seen: set[str] = set()
                try:
                    for job in batch:
                        accession = job.out.order.accession
                        taken = db.execute(
                            "SELECT 1 FROM orders WHERE accession = ?", (accession,)
                        ).fetchone()
                        if taken or accession in seen:
                            job.error = DuplicateAccession(accession)
                            continue
                        seen.add(accession)
                        os.replace(job.tmp, job.path)
                        placed.append(job)
                        db.execute(
                            "INSERT INTO orders (accession, item_id, created, data) "
                            "VALUES (?,?,?,?)",
                            (accession, job.out.worklist_item_id, job.out.created,
                             job.out.model_dump_json()),
                        )  # fmt: skip
                        _event(db, accession, "created", job.via,
                               {**job.detail, "worklist_item_id": job.out.worklist_item_id})  # fmt: skip
                    if placed:
                        fsync_dir(self.worklist_dir)  # the renames survive a power cut
                    db.execute("COMMIT")
                except BaseException:
                    for job in placed:
                        with contextlib.suppress(OSError):
                            os.unlink(job.path)
                    raise
        except BaseException as exc:
            for job in batch:
                if job.error is None:
                    job.error = exc
        finally:
            for job in batch:
                job.done = True
        if len(batch) > 1:
            log.debug("group commit: %d orders in one transaction", len(batch))

    def get(self, accession: str) -> OrderOut:
        with self._connect() as db:
            row = db.execute("SELECT data FROM orders WHERE accession = ?", (accession,)).fetchone()
        if not row:
            raise OrderNotFound(accession)
        return OrderOut.model_validate(json.loads(row[0]))

    def list(self) -> list[OrderOut]:
        with self._connect() as db:
            rows = db.execute("SELECT data FROM orders ORDER BY created, accession").fetchall()
        return [OrderOut.model_validate(json.loads(r[0])) for r in rows]

    @staticmethod
    def _begin(db: sqlite3.Connection, accession: str) -> OrderOut:
        """BEGIN IMMEDIATE and read the order (rolled back, OrderNotFound, if there is none)."""
        db.execute("BEGIN IMMEDIATE")
        row = db.execute("SELECT data FROM orders WHERE accession = ?", (accession,)).fetchone()
        if not row:
            db.execute("ROLLBACK")
            raise OrderNotFound(accession)
        return OrderOut.model_validate(json.loads(row[0]))

    def delete(
        self, accession: str, via: str = "http", detail: dict[str, Any] | None = None
    ) -> OrderOut:
        with self._lock, self._connect() as db:
            out = self._begin(db, accession)
            # Remove the worklist item first: a cancelled order must stop matching at once.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(worklist.item_path(self.worklist_dir, out.worklist_item_id))
            db.execute("DELETE FROM orders WHERE accession = ?", (accession,))
            _event(db, accession, "cancelled", via, detail or {})
            db.execute("COMMIT")
        return out

    def update_patient(
        self, patient_id: str, changes: dict[str, Any], detail: dict[str, Any] | None = None
    ) -> builtins.list[OrderOut]:
        """Apply new demographics (``OrderIn`` field -> value, None to clear) to every open
        order of ``patient_id`` and rewrite their worklist items in place (same item, same
        UIDs). Every order is validated before anything is written: all change, or none.
        Raises pydantic's ``ValidationError`` for a value that breaks a VR rule."""
        with self._lock, self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                rows = db.execute(
                    "SELECT data FROM orders WHERE json_extract(data, '$.order.patient_id') = ?",
                    (patient_id,),
                ).fetchall()
                old = [OrderOut.model_validate(json.loads(r[0])) for r in rows]
                new = [
                    o.model_copy(
                        update={
                            "order": OrderIn.model_validate({**o.order.model_dump(), **changes})
                        }
                    )
                    for o in old
                ]
                written: builtins.list[OrderOut] = []
                try:
                    for before, after in zip(old, new, strict=False):
                        db.execute(
                            "UPDATE orders SET data = ? WHERE accession = ?",
                            (after.model_dump_json(), after.order.accession),
                        )
                        written.append(before)
                        _event(db, after.order.accession, "patient updated", "hl7",
                               {**(detail or {}), "fields": sorted(changes)})  # fmt: skip
                        if after.closed:
                            continue  # its step is done: no worklist item to rewrite
                        atomic_write_bytes(
                            worklist.item_path(self.worklist_dir, after.worklist_item_id),
                            worklist.encode(worklist.build_item(after)),
                        )
                    db.execute("COMMIT")
                except BaseException:
                    for before in written:  # put back the items already rewritten
                        if before.closed:
                            continue
                        with contextlib.suppress(OSError):
                            worklist.write_item(
                                self.worklist_dir,
                                before.worklist_item_id,
                                worklist.build_item(before),
                            )
                    raise
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        if new:
            log.info("patient updated: %d open order(s)", len(new))
        return new

    def set_status(
        self,
        accession: str,
        status: str,
        mpps_uid: str = "",
        study_uid: str = "",
        detail: dict[str, Any] | None = None,
    ) -> OrderOut:
        """The order follows its procedure step: SCHEDULED -> IN PROGRESS -> COMPLETED or
        DISCONTINUED (IHE RAD TF-2 4.6/4.7). A closed step's worklist item is removed, so
        a modality no longer sees it. The same report twice is a no-op (the MPPS SCP
        retries). ``detail``: what the MPPS SCP says of the message (when it arrived, from
        which AE), kept in the order's events."""
        with self._lock, self._connect() as db:
            out = self._begin(db, accession)
            problem = _transition_problem(out, status, mpps_uid, study_uid)
            if problem == "same":
                db.execute("ROLLBACK")
                return out
            if problem:
                db.execute("ROLLBACK")
                raise StatusConflict(problem)
            new = out.model_copy(update={
                "status": status,
                "mpps_sop_instance_uid": mpps_uid or out.mpps_sop_instance_uid,
                "status_updated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            })  # fmt: skip
            db.execute(
                "UPDATE orders SET data = ? WHERE accession = ?", (new.model_dump_json(), accession)
            )
            _event(db, accession, status, "mpps",
                   {**(detail or {}), "mpps_sop_instance_uid": new.mpps_sop_instance_uid})  # fmt: skip
            if new.closed:
                # Before the commit: if the commit fails the order is still open, and
                # recover() writes its item again.
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(worklist.item_path(self.worklist_dir, out.worklist_item_id))
            db.execute("COMMIT")
        log.info("order %s: %s -> %s", accession, out.status, status)
        return new

    def events(self, accession: str) -> builtins.list[dict[str, Any]]:
        """What happened to the order, oldest first (kept after a cancel)."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT at, event, via, detail FROM order_events WHERE accession = ? ORDER BY id",
                (accession,),
            ).fetchall()
        return [{"accession": accession, "at": at, "event": event, "via": via,
                 "detail": json.loads(detail)} for at, event, via, detail in rows]  # fmt: skip

    def count(self) -> int:
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM orders").fetchone()[0])


_NEXT = {"SCHEDULED": ("IN PROGRESS", "COMPLETED", "DISCONTINUED"),
         "IN PROGRESS": ("COMPLETED", "DISCONTINUED")}  # fmt: skip


def _transition_problem(out: OrderOut, status: str, mpps_uid: str, study_uid: str) -> str:
    """Why ``out`` cannot move to ``status`` ("" if it can; "same" if it is there already)."""
    if study_uid and study_uid != out.study_instance_uid:
        return f"the MPPS names study {study_uid}, the order has {out.study_instance_uid}"
    if out.mpps_sop_instance_uid and mpps_uid and mpps_uid != out.mpps_sop_instance_uid:
        return f"the order is reported by another MPPS ({out.mpps_sop_instance_uid})"
    if status == out.status:
        return "same"
    if status not in _NEXT.get(out.status, ()):
        return f"the order is {out.status}: it cannot become {status}"
    return ""
