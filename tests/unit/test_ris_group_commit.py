"""Orders placed at the same moment are committed together (one folder fsync and one commit per
batch): every acknowledged order has its worklist item, every refused one has neither, and a
duplicate accession inside one batch is refused like one already in the table."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from dicomkit.dicom import worklist
from dicomkit.ris.models import OrderIn, OrderOut
from dicomkit.ris.store import DuplicateAccession, OrderStore

THREADS = 16


def _order(accession: str) -> OrderIn:
    return OrderIn(patient_id="P1", patient_name="DOE^JANE", accession=accession, modality="CT")


def _place_together(store: OrderStore, accessions: list[str]) -> list[OrderOut | BaseException]:
    """Every accession placed from its own thread, all released at once."""
    results: list[OrderOut | BaseException] = [RuntimeError("not run")] * len(accessions)
    start = threading.Barrier(len(accessions))

    def place(i: int) -> None:
        start.wait(10)
        try:
            results[i] = store.create(_order(accessions[i]))
        except BaseException as exc:  # the test looks at what each got
            results[i] = exc

    threads = [threading.Thread(target=place, args=(i,)) for i in range(len(accessions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def _consistent(store: OrderStore) -> set[str]:
    """The item files on disk are exactly the orders' items; no staged file is left."""
    items = {p.name for p in store.worklist_dir.iterdir()}
    assert not [n for n in items if n.endswith(".tmp")], items
    expected = {
        worklist.item_path(store.worklist_dir, o.worklist_item_id).name for o in store.list()
    }
    assert items == expected
    return {o.order.accession for o in store.list()}


def test_orders_waiting_together_are_committed_in_one_batch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """While one batch is committing (here: held at the store's lock), the orders that arrive
    queue up and go in together in the next one."""
    store = OrderStore(tmp_path / "orders.sqlite3", tmp_path / "worklists")
    accessions = [f"G{i}" for i in range(THREADS)]
    results: list[OrderOut | BaseException] = []
    with caplog.at_level(logging.DEBUG, logger="dicomkit.ris.store"):
        with store._lock:  # the first batch waits here; the other orders queue behind it
            runner = threading.Thread(
                target=lambda: results.extend(_place_together(store, accessions))
            )
            runner.start()
            deadline = time.monotonic() + 30
            while len(store._pending) < THREADS - 1 and time.monotonic() < deadline:
                time.sleep(0.01)
        runner.join(60)
    assert all(isinstance(r, OrderOut) for r in results), results
    assert _consistent(store) == set(accessions)
    batches = [r.getMessage() for r in caplog.records if "group commit" in r.getMessage()]
    assert f"group commit: {THREADS - 1} orders in one transaction" in batches


def test_duplicates_in_one_batch_and_in_the_table_are_refused_alone(tmp_path: Path) -> None:
    store = OrderStore(tmp_path / "orders.sqlite3", tmp_path / "worklists")
    store.create(_order("OLD"))
    accessions = ["OLD", "OLD", "D1", "D1", "D1", "D2", "D3", "D3"] * 2
    results = _place_together(store, accessions)
    created = [r for r in results if isinstance(r, OrderOut)]
    refused = [r for r in results if isinstance(r, DuplicateAccession)]
    assert len(created) + len(refused) == len(accessions), results
    # Exactly one order per new accession, whatever the batches were.
    assert sorted(o.order.accession for o in created) == ["D1", "D2", "D3"]
    assert _consistent(store) == {"OLD", "D1", "D2", "D3"}


def test_a_batch_the_database_refuses_leaves_no_item(tmp_path: Path) -> None:
    """A real refusal from SQLite (a trigger aborts the INSERT) in the middle of a batch: every
    order of that batch is refused and its item removed; the store keeps working."""
    store = OrderStore(tmp_path / "orders.sqlite3", tmp_path / "worklists")
    with sqlite3.connect(store.db_path) as db:
        db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON orders WHEN NEW.accession = 'BAD' "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END"
        )
    with pytest.raises(sqlite3.IntegrityError, match="refused by the test trigger"):
        store.create(_order("BAD"))
    assert _consistent(store) == set()
    results = _place_together(store, ["BAD"] + [f"T{i}" for i in range(THREADS - 1)])
    assert isinstance(results[0], sqlite3.IntegrityError)
    landed = _consistent(store)
    for accession, result in zip(
        ["BAD"] + [f"T{i}" for i in range(THREADS - 1)], results, strict=True
    ):
        assert (accession in landed) == isinstance(result, OrderOut), (accession, result)
    assert store.create(_order("AFTER")).order.accession == "AFTER"
