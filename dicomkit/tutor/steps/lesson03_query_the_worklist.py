"""Lesson 3, query the worklist: matching vs return keys (PS3.4 C.2.2.2); the learner asks the
worklist for their station's steps today, the tutor sees the C-FIND the worklist answered (the
lab's event feed: its matching keys and how many items it matched)."""

from __future__ import annotations

import datetime as _dt
import shlex
import time

from dicomkit import ui
from dicomkit.dicom.net import status_category
from dicomkit.labevents import LabEvent
from dicomkit.tutor.context import LabContext
from dicomkit.tutor.registry import Seen, Values, action, task
from dicomkit.tutor.show import ok_mark
from dicomkit.tutor.watch_lab import date_covers, lab_saw, matched, status_text, watch_from_now

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


def _prepare(ctx: LabContext) -> Values:
    return {"accession": str(ctx.need("accession", 2)), "today": today(), **watch_from_now(ctx)}


def _show_me(ctx: LabContext, values: Values) -> None:
    from dicomkit.dicom.scu import find_worklist
    from dicomkit.dicom.worklist import WorklistQuery

    query = WorklistQuery(station_aet=ctx.aet, date=values["today"])
    find_worklist(ctx.mwl, ctx.aet, query, ctx.cfg.timeout)


def judge_worklist_find(ctx: LabContext, e: LabEvent, station: str, day: str) -> Seen:
    """A worklist C-FIND the MWL SCP saw, judged as "this station's steps for ``day``"."""
    keys = dict(e.get("keys") or {})
    asked = f"your C-FIND from {e.calling}"
    status = e.get("status")
    if isinstance(status, int) and status_category(status) == "failure":
        return Seen(False, f"the worklist refused {asked} ({status_text(status, 'find')})")
    wrong = []
    if keys.get("ScheduledStationAETitle") != station:
        wrong.append(f"station {keys.get('ScheduledStationAETitle') or '(any)'}, not {station}")
    if not date_covers(keys.get("ScheduledProcedureStepStartDate"), day):
        wrong.append(f"start date {keys.get('ScheduledProcedureStepStartDate') or '(any)'}, "
                     f"not {day}")  # fmt: skip
    if wrong:
        return Seen(False, f"{asked} {matched(e)}, but it asked for {'; '.join(wrong)}: match on "
                    "ScheduledStationAETitle and ScheduledProcedureStepStartDate")  # fmt: skip
    if not e.get("matches"):
        return Seen(False, f"{asked} {matched(e)} for station {station} on {day}")
    return Seen(True, f"{asked} {matched(e)}: every step scheduled for station {station} on {day}",
                {"learner_query_matches": e.get("matches")})  # fmt: skip


@task("query-worklist", _prepare, _show_me, needs="events")
def query_worklist(ctx: LabContext, values: Values) -> Seen | None:
    """The worklist C-FIND the MWL SCP saw from the learner, with its match count."""
    finds = lab_saw(ctx, values, "mwl-find")
    if not finds:
        return None
    return judge_worklist_find(ctx, finds[-1], ctx.aet, values["today"])
