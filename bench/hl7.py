#!/usr/bin/env python3
"""HL7 order -> worklist item visible to MWL C-FIND, beside ``POST /orders``.

    python bench/hl7.py                 # 1,000 orders per run; rewrites the HL7 section of RESULTS.md
    python bench/hl7.py --orders 200 --no-write   # a quick look, RESULTS.md untouched

Starts a lab with the embedded engine (``dicomkit up --engine embedded``) in a temporary home
under bench/out/ on free ports, and stops it afterwards. Runs, each with its own accessions:

- HL7, one MLLP connection: N ORM^O01 one after another; latency = send -> ACK received.
- HL7, 20 MLLP connections: N ORM^O01 spread over 20 concurrent connections.
- POST /orders, one keep-alive HTTP connection, then 20 concurrent ones: the same orders as JSON.
- Visibility: orders sent one at a time, each followed at once by an MWL C-FIND for its
  accession on an open association; latency = send -> the C-FIND answer that holds the item.

The RIS sends AA only after the worklist item is renamed into place, fsynced, and the order
committed, so an item is visible to the MWL SCP from the moment its ACK leaves; each run ends
with one MWL C-FIND by its patient ID that must return every acknowledged order.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / "out"
sys.path.insert(0, str(REPO))

from tests import hl7util  # noqa: E402  (the same message builder the tests use)

MARK_START, MARK_END = "<!-- hl7 bench: start -->", "<!-- hl7 bench: end -->"
CONNECTIONS = 20
TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LabRun:
    def __init__(self) -> None:
        OUT.mkdir(exist_ok=True)
        self.home = Path(tempfile.mkdtemp(prefix="hl7-", dir=OUT))
        self.ports = {p: free_port() for p in ("DICOM", "MWL", "HTTP", "RIS", "HL7")}
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DICOMKIT_")}
        self.env["DICOMKIT_HOME"] = str(self.home)
        self.env.update({f"DICOMKIT_{k}_PORT": str(v) for k, v in self.ports.items()})

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dicomkit", *args],
            env=self.env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    def up(self) -> None:
        r = self.cli("up", "--engine", "embedded", "--json")
        if r.returncode != 0:
            raise SystemExit(f"dicomkit up failed:\n{r.stdout}\n{r.stderr}")
        atexit.register(self.down)

    def cpu_seconds(self, service: str) -> float:
        """User + system CPU a lab process has used so far (/proc/PID/stat)."""
        state = json.loads((self.home / "lab" / "state.json").read_text())
        pid = state["services"][service]["pid"]
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def down(self) -> None:
        self.cli("down", "--volumes")
        shutil.rmtree(self.home, ignore_errors=True)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summary(name: str, latencies: list[float], wall: float, extra: str = "") -> dict[str, Any]:
    return {
        "run": name,
        "orders": len(latencies),
        "per_second": len(latencies) / wall,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": max(latencies) * 1000,
        "wall_s": wall,
        "note": extra,
    }


def concurrent(
    n: int, conns: int, work: Callable[[int, list[int]], list[float]]
) -> tuple[list[float], float]:
    """``work(worker, indexes)`` on ``conns`` threads; indexes 0..n-1 dealt round-robin."""
    results: list[list[float]] = [[] for _ in range(conns)]
    start = threading.Barrier(conns + 1)

    def run(w: int) -> None:
        start.wait(TIMEOUT)
        results[w] = work(w, list(range(w, n, conns)))

    threads = [threading.Thread(target=run, args=(w,)) for w in range(conns)]
    for t in threads:
        t.start()
    start.wait(TIMEOUT)
    t0 = time.perf_counter()
    for t in threads:
        t.join(TIMEOUT * 20)
    wall = time.perf_counter() - t0
    return [x for r in results for x in r], wall


def hl7_worker(port: int, prefix: str, patient: str) -> Callable[[int, list[int]], list[float]]:
    def work(_: int, indexes: list[int]) -> list[float]:
        lat = []
        messages = [
            hl7util.frame(hl7util.orm(accession=f"{prefix}{i}", patient_id=patient, modality="CT",
                                      msg_id=f"{prefix}{i}"))
            for i in indexes
        ]  # fmt: skip
        with hl7util.connect(port, TIMEOUT) as s:
            buf = bytearray()
            for m in messages:
                t = time.perf_counter()
                s.sendall(m)
                ack = hl7util.read_ack(s, buf)
                lat.append(time.perf_counter() - t)
                if hl7util.ack_code(ack) != "AA":
                    raise SystemExit(f"not accepted: {ack!r}")
        return lat

    return work


def http_worker(url: str, prefix: str, patient: str) -> Callable[[int, list[int]], list[float]]:
    import httpx

    def work(_: int, indexes: list[int]) -> list[float]:
        lat = []
        with httpx.Client(timeout=TIMEOUT) as client:
            for i in indexes:
                body = {"patient_id": patient, "patient_name": "DOE^JANE", "accession": f"{prefix}{i}",
                        "modality": "CT", "study_desc": "CT HEAD WO CONTRAST", "birth_date": "19800101",
                        "sex": "F", "procedure_code": "CT-HEAD"}  # fmt: skip
                t = time.perf_counter()
                r = client.post(f"{url}/orders", json=body)
                lat.append(time.perf_counter() - t)
                if r.status_code != 201:
                    raise SystemExit(f"not created: {r.status_code} {r.text}")
        return lat

    return work


def mwl_count(lab: LabRun, **query: str) -> int:
    from dicomkit.dicom.net import Peer
    from dicomkit.dicom.scu import find_worklist
    from dicomkit.dicom.worklist import WorklistQuery

    peer = Peer("127.0.0.1", lab.ports["MWL"], "ORTHANC")
    return len(find_worklist(peer, "DICOMKIT", WorklistQuery(**query), timeout=TIMEOUT))


def visibility(lab: LabRun, n: int) -> dict[str, Any]:
    """Send one ORM, then at once C-FIND its accession on an open MWL association."""
    from pynetdicom.presentation import build_context

    from dicomkit.dicom.net import Peer, association
    from dicomkit.dicom.worklist import MWL_FIND_SOP_CLASS, WorklistQuery

    peer = Peer("127.0.0.1", lab.ports["MWL"], "ORTHANC")
    lat = []
    late: list[tuple[str, float]] = []  # acknowledged, but not in the first C-FIND's answer
    t0 = time.perf_counter()
    with (
        hl7util.connect(lab.ports["HL7"], TIMEOUT) as s,
        association(
            peer, "DICOMKIT", [build_context(MWL_FIND_SOP_CLASS)], timeout=TIMEOUT
        ) as assoc,
    ):

        def found(acc: str) -> int:
            return sum(
                1
                for status, ds in assoc.send_c_find(
                    WorklistQuery(accession=acc).identifier(), MWL_FIND_SOP_CLASS
                )
                if ds is not None and status is not None and status.Status in (0xFF00, 0xFF01)
            )

        buf = bytearray()
        for i in range(n):
            acc = f"V{i}"
            t = time.perf_counter()
            s.sendall(
                hl7util.frame(hl7util.orm(accession=acc, patient_id="BENCH-V", modality="CT"))
            )
            if hl7util.ack_code(hl7util.read_ack(s, buf)) != "AA":
                raise SystemExit("visibility run: order not accepted")
            acked = time.perf_counter()
            hits = found(acc)
            lat.append(time.perf_counter() - t)
            if hits == 0:  # acknowledged, yet not in the answer: how long until it shows?
                while hits == 0 and time.perf_counter() - acked < 5:
                    hits = found(acc)
                late.append((acc, (time.perf_counter() - acked) * 1000))
            if hits != 1:
                raise SystemExit(f"visibility run: {acc} acknowledged, C-FIND found {hits} in 5 s")
    note = f"{n - len(late)}/{n} found by the first C-FIND after the ACK; " + (
        f"{len(late)} only by a later one (up to {max(ms for _, ms in late):.0f} ms after the ACK)"
        if late
        else "none late"
    )
    out = summary("HL7 ORM -> ACK -> MWL C-FIND finds it (1 connection + 1 association)",
                  lat, time.perf_counter() - t0, note)  # fmt: skip
    out["late"] = len(late)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--orders", type=int, default=1000, help="orders per run (default 1000)")
    ap.add_argument("--visible", type=int, default=200, help="orders in the visibility run")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args()
    n = args.orders
    load_before = os.getloadavg()
    lab = LabRun()
    lab.up()
    ris = f"http://127.0.0.1:{lab.ports['RIS']}"
    runs = []
    t_all = time.perf_counter()
    # Warm-up (first orders pay for imports in the RIS process), not measured.
    hl7_worker(lab.ports["HL7"], "W", "BENCH-W")(0, list(range(20)))
    for name, prefix, conns, make in (
        ("HL7 ORM^O01 over MLLP, 1 connection", "H1-", 1, lambda p, pat: hl7_worker(lab.ports["HL7"], p, pat)),
        (f"HL7 ORM^O01 over MLLP, {CONNECTIONS} connections", "H20-", CONNECTIONS, lambda p, pat: hl7_worker(lab.ports["HL7"], p, pat)),
        ("POST /orders, 1 keep-alive connection", "P1-", 1, lambda p, pat: http_worker(ris, p, pat)),
        (f"POST /orders, {CONNECTIONS} connections", "P20-", CONNECTIONS, lambda p, pat: http_worker(ris, p, pat)),
    ):  # fmt: skip
        patient = f"BENCH-{prefix.rstrip('-')}"
        cpu0 = lab.cpu_seconds("ris")
        lat, wall = concurrent(n, conns, make(prefix, patient))
        ris_cpu_ms = (lab.cpu_seconds("ris") - cpu0) / n * 1000
        seen = mwl_count(lab, patient_id=patient)
        if seen != n:
            raise SystemExit(f"{name}: {n} acknowledged, MWL C-FIND by patient ID found {seen}")
        runs.append(summary(name, lat, wall, f"MWL C-FIND by patient ID afterwards: {seen}/{n}"))
        runs[-1]["ris_cpu_ms"] = ris_cpu_ms
        print(json.dumps(runs[-1]), flush=True)
    cpu0 = lab.cpu_seconds("pacs")
    runs.append(visibility(lab, args.visible))
    runs[-1]["pacs_cpu_ms"] = (lab.cpu_seconds("pacs") - cpu0) / args.visible * 1000
    print(json.dumps(runs[-1]), flush=True)
    total = time.perf_counter() - t_all
    load_after = os.getloadavg()
    if not args.no_write:
        write_results(runs, n, load_before, load_after, total)


def write_results(
    runs: list[dict[str, Any]],
    n: int,
    before: tuple[float, ...],
    after: tuple[float, ...],
    total: float,
) -> None:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                         text=True).stdout.strip()  # fmt: skip

    def cpu_cell(r: dict[str, Any]) -> str:
        if "ris_cpu_ms" in r:
            return f"RIS {r['ris_cpu_ms']:.1f}"
        return f"MWL SCP {r['pacs_cpu_ms']:.1f}" if "pacs_cpu_ms" in r else "-"

    rows = "\n".join(
        f"| {r['run']} | {r['orders']} | {r['per_second']:.0f} | {r['p50_ms']:.1f} | "
        f"{r['p99_ms']:.1f} | {r['max_ms']:.0f} | {cpu_cell(r)} | {'yes' if r['per_second'] >= 500 and r['p99_ms'] <= 50 else 'no'} |"
        for r in runs
    )
    notes = "\n".join(f"- {r['run']}: {r['note']}" for r in runs if r["note"])
    section = f"""{MARK_START}
## HL7 orders into the worklist (`python bench/hl7.py`)

Order -> worklist item visible to MWL C-FIND, on the embedded engine (RIS + embedded MWL SCP),
client and lab on the same machine. Goal: >= 500 orders/s sustained, p99 <= 50 ms.

- date: {dt.datetime.now(dt.timezone.utc).isoformat(timespec="minutes")}
- machine: {cpu}, {os.cpu_count()} cores, Linux {platform.release()}; load average before / after: {before[0]:.2f} / {after[0]:.2f} (the machine is shared)
- python: {platform.python_version()}; dicomkit git {rev}; {n} orders per run; whole bench {total:.0f} s

| run | orders | orders/s | p50 ms | p99 ms | max ms | CPU ms per order | goal met |
|---|---|---|---|---|---|---|---|
{rows}

Each acknowledged order is durable and visible: the RIS answers AA (or 201) only after the
worklist item is fsynced and renamed into place and the order row committed (SQLite WAL,
synchronous=FULL). After each run one MWL C-FIND by the run's patient ID returned every order.

{notes}

**The goal is not met. What limits it:**
- *CPU in one Python process.* The RIS spends the CPU time per order shown above (HL7 parse
  with python-hl7, OrderIn validation, the item's bytes, SQLite), under one GIL: 500 orders/s
  needs <= 2 ms of CPU per order on one core with nothing else running, and the bench client
  runs on the same two cores.
- *Durability per order.* Each order costs an fsync of its item; the rename into place, the
  folder fsync and the synchronous SQLite commit are done once per batch of the orders waiting
  at that moment (group commit, dicomkit/ris/store.py). One connection sends one order at a
  time, so its batches are of one: its rate is bounded by ~3 fsyncs (~4 ms each on this disk)
  plus the CPU. 20 connections share folder fsyncs and commits, and queue behind each other
  for the CPU: latency = queue length / rate.
- *A shared machine.* Other developers' test suites ran during the bench (load average above);
  the same bench on an idle machine should give more, not measured here.
- *Visibility run:* the embedded MWL SCP re-lists the worklist folder when it changed since the
  last query (dicomkit/pacs/mwl.py), i.e. on every query in this run, with ~4,000 items in the
  folder: that listing, not the RIS, is most of the 40+ ms. An order the first C-FIND after
  its ACK did not return is counted above as "late", with how long it took to appear.
{MARK_END}"""
    path = HERE / "RESULTS.md"
    text = path.read_text()
    if MARK_START in text:
        text = re.sub(
            re.escape(MARK_START) + ".*?" + re.escape(MARK_END), lambda _: section, text, flags=re.S
        )
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)
    print(f"wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
