"""Lesson 3, query the worklist: matching vs return keys (PS3.4 C.2.2.2); the learner asks the
worklist for their station's steps today, the tutor reads the answers they saved."""

from __future__ import annotations

import datetime as _dt
import json
import shlex
import time
from typing import Any

from dicomkit import ui
from dicomkit.tutor.context import LabContext
from dicomkit.tutor.registry import Seen, Values, action, task
from dicomkit.tutor.show import ok_mark
from dicomkit.tutor.watch_lab import clear_answers, dicom_answers, json_answers, workdir

QUERY_CHOICES = (
    ("accession", "AccessionNumber = your accession (exact match)"),
    ("name", "PatientName = your patient's family name + * (wildcard)"),
    ("station", "ScheduledStationAETitle = your AE title"),
    ("today", "ScheduledProcedureStepStartDate = today's date range"),
    ("modality", "Modality = CR"),
)
DEFAULT_QUERY = "3,4"  # what a modality asks every morning: my station, today


def today() -> str:
    return _dt.date.today().strftime("%Y%m%d")


@action("worklist_query")
def worklist_query(ctx: LabContext) -> None:
    from dicomkit.dicom.scu import find_worklist
    from dicomkit.dicom.worklist import WorklistQuery

    accession = ctx.need("accession", 2)
    family = str(ctx.need("patient_name", 2)).split("^")[0] + "*"
    ctx.out.show(
        ui.table(
            "Matching keys you can set (all others stay empty: return keys)",
            ["#", "key"],
            [[str(i), text] for i, (_, text) in enumerate(QUERY_CHOICES, 1)],
        )
    )
    while True:
        raw = ctx.out.ask("Pick one or more, e.g. 3,4", DEFAULT_QUERY)
        picks = [p.strip() for p in raw.replace(" ", ",").split(",") if p.strip()]
        if picks and all(p.isdigit() and 1 <= int(p) <= len(QUERY_CHOICES) for p in picks):
            break
        ctx.out.show(f"{ui.FAIL} type numbers from 1 to {len(QUERY_CHOICES)}, e.g. 3,4")
    chosen = {QUERY_CHOICES[int(p) - 1][0] for p in picks}
    day = today()
    query = WorklistQuery(
        accession=accession if "accession" in chosen else "",
        patient_name=family if "name" in chosen else "",
        station_aet=ctx.aet if "station" in chosen else "",
        date=f"{day}-{day}" if "today" in chosen else "",
        modality="CR" if "modality" in chosen else "",
    )
    matching = query.matching_keys()
    key_rows = [[k, "matching", v] for k, v in matching.items()]
    for elem in query.identifier():
        if elem.keyword == "ScheduledProcedureStepSequence":
            key_rows += [[f">{e.keyword}", "return", ""] for e in elem.value[0]
                         if e.keyword not in matching]  # fmt: skip
        elif elem.keyword not in matching:
            key_rows.append([elem.keyword, "return", ""])
    ctx.out.show(ui.table("Your C-FIND identifier", ["key", "role", "value"], key_rows))
    t0 = time.perf_counter()
    rows = find_worklist(ctx.mwl, ctx.aet, query, ctx.cfg.timeout)
    ms = (time.perf_counter() - t0) * 1000
    mine = [r for r in rows if r["accession"] == accession]
    shown = rows[:15]
    ctx.out.show(
        ui.table(
            f"{ok_mark(bool(mine))} {len(rows)} match(es) in {ms:.0f} ms"
            + (f" (first {len(shown)})" if len(rows) > len(shown) else ""),
            ["", "accession", "patient", "station AE", "date", "time", "procedure"],
            [["▶" if r["accession"] == accession else "", r["accession"], r["patient_name"],
              r["station_aet"], r["scheduled_date"], r["scheduled_time"],
              r["requested_procedure_description"]] for r in shown],
        )
    )  # fmt: skip
    ctx.record(accession=accession, query=matching, matches=len(rows), found_mine=bool(mine))
    args = " ".join(shlex.quote(a) for a in query.findscu_args())
    ctx.out.equivalent(
        f"findscu -W -aet {ctx.aet} -aec {ctx.mwl.aet} {args} {ctx.mwl.host} {ctx.mwl.port}"
    )


def worklist_rows(folder: Any) -> list[dict[str, str]]:
    """Answers the learner saved: findscu -X files, or `dicomkit worklist find --json` output."""
    rows = []
    for ds in dicom_answers(folder):
        seq = ds.get("ScheduledProcedureStepSequence") or []
        sps = seq[0] if seq else {}
        rows.append({"accession": str(ds.get("AccessionNumber", "")),
                     "station_aet": str(sps.get("ScheduledStationAETitle", "")),
                     "scheduled_date": str(sps.get("ScheduledProcedureStepStartDate", ""))})  # fmt: skip
    for doc in json_answers(folder):
        matches = doc.get("matches", []) if isinstance(doc, dict) else []
        rows += [{k: str(m.get(k, "")) for k in ("accession", "station_aet", "scheduled_date")}
                 for m in matches if isinstance(m, dict)]  # fmt: skip
    return rows


def _prepare(ctx: LabContext) -> Values:
    folder = workdir(ctx, "lesson-3")
    clear_answers(folder)
    return {"accession": str(ctx.need("accession", 2)), "workdir": str(folder), "today": today()}


def _show_me(ctx: LabContext, values: Values) -> None:
    from dicomkit.dicom.scu import find_worklist
    from dicomkit.dicom.worklist import WorklistQuery

    query = WorklistQuery(station_aet=ctx.aet, date=values["today"])
    rows = find_worklist(ctx.mwl, ctx.aet, query, ctx.cfg.timeout)
    out = {"query": query.matching_keys(), "matches": rows}
    path = workdir(ctx, "lesson-3") / "worklist.json"
    from dicomkit.fsutil import atomic_write_text

    atomic_write_text(path, json.dumps(out, indent=2))


@task("query-worklist", _prepare, _show_me)
def query_worklist(ctx: LabContext, values: Values) -> Seen | None:
    import pathlib

    rows = worklist_rows(pathlib.Path(values["workdir"]))
    if not rows:
        return None
    accession = values["accession"]
    others = sorted({r["station_aet"] for r in rows if r["station_aet"] not in ("", ctx.aet)})
    days = sorted({r["scheduled_date"] for r in rows if r["scheduled_date"] not in ("",
                   values["today"])})  # fmt: skip
    mine = any(r["accession"] == accession for r in rows)
    text = f"your C-FIND answers: {len(rows)} item(s)"
    if others or days:
        why = ", ".join([f"station {s}" for s in others] + [f"date {d}" for d in days])
        return Seen(False, f"{text}, some not for station {ctx.aet} today ({why}): match on "
                    "ScheduledStationAETitle and the start date")  # fmt: skip
    if not mine:
        return Seen(False, f"{text}, but your order {accession} is not among them")
    return Seen(True, f"{text}, all for station {ctx.aet} today, your order {accession} among "
                "them", {"learner_query_matches": len(rows)})  # fmt: skip
