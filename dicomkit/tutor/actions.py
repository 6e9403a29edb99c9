"""The steps lessons run for real, by name (``::: action NAME`` in a lesson's Markdown).

Each action calls the same library functions as the subcommands (``dicomkit.dicom.scu``,
``dicomkit.ris.client``, ...), shows what happened through the screen, shows the equivalent
DCMTK/curl command, and records what later lessons and ``verify`` need in the progress file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shlex
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dicomkit import ui
from dicomkit.errors import DicomkitError
from dicomkit.tutor.context import LabContext

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

Action = Callable[[LabContext], None]
ACTIONS: dict[str, Action] = {}

# Synthetic patients only: names no real person is registered under.
SYNTHETIC_PATIENTS = ("TUTOR^ADA", "TUTOR^GRACE", "TUTOR^ALAN", "TUTOR^EDSGER")
STUDY_DESC = "XR CHEST PA"


def action(name: str) -> Callable[[Action], Action]:
    def register(fn: Action) -> Action:
        ACTIONS[name] = fn
        return fn

    return register


def _ok(flag: bool) -> str:
    return ui.OK if flag else ui.FAIL


def _mark(flag: bool) -> str:
    """For table cells, which are shown as plain text."""
    return "✓" if flag else "✗"


def _facts(title: str, rows: list[list[str]]) -> Any:
    """A two-column table of facts: no header row (there is nothing to name)."""
    table = ui.table(title, ["", ""], rows)
    table.show_header = False
    return table


def _panel(body: str, title: str, style: str = "blue") -> Any:
    from rich.panel import Panel

    return Panel(body, title=title, border_style=style, expand=False)


# ---- lesson 1: meet the lab ---------------------------------------------------------------


@action("show_lab")
def show_lab(ctx: LabContext) -> None:
    ep = ctx.endpoints
    rows = [
        ["RIS", "takes orders over HTTP, writes worklist items", ep.ris_url, "-"],
        ["Worklist (MWL SCP)", "answers C-FIND for scheduled steps",
         f"{ep.host}:{ep.mwl_port}", ep.pacs_aet],
        ["Modality (you)", "queries the worklist, makes and sends images", "this terminal",
         ctx.aet],
        ["PACS (Storage + Q/R SCP)", "stores images, answers C-FIND and REST",
         f"{ep.host}:{ep.dicom_port}, {ep.pacs_url}", ep.pacs_aet],
    ]  # fmt: skip
    ctx.out.show(ui.table(f"The lab ({ctx.engine} engine)", ["actor", "role", "address",
                                                            "AE title"], rows))  # fmt: skip


def _echo(ctx: LabContext, peer: Any, what: str) -> None:
    from dicomkit.dicom.scu import echo

    result = echo(peer, ctx.aet, ctx.cfg.timeout)
    rows = [
        ["calling AE (us)", ctx.aet],
        ["called AE (them)", peer.aet],
        ["address", f"{peer.host}:{peer.port}"],
        ["status", f"0x{result.status:04X} {result.status_name}"],
        ["round trip", f"{result.ms:.1f} ms (associate + C-ECHO + release)"],
    ]
    ctx.out.show(_facts(f"{_ok(result.ok)} C-ECHO to the {what}", rows))
    ctx.out.equivalent(f"echoscu -v -aet {ctx.aet} -aec {peer.aet} {peer.host} {peer.port}")


@action("echo_pacs")
def echo_pacs(ctx: LabContext) -> None:
    _echo(ctx, ctx.pacs, "PACS")


@action("echo_mwl")
def echo_mwl(ctx: LabContext) -> None:
    if ctx.endpoints.mwl_port == ctx.endpoints.dicom_port:
        ctx.out.show(
            "[muted]This engine serves the worklist on the PACS's own DICOM port "
            f"({ctx.endpoints.dicom_port}): one AE, two services.[/muted]"
        )
    _echo(ctx, ctx.mwl, "worklist")


# ---- lesson 2: place an order ---------------------------------------------------------------


@action("place_order")
def place_order(ctx: LabContext) -> None:
    from dicomkit.dicom import vr
    from dicomkit.ris.client import RisClient

    default = SYNTHETIC_PATIENTS[int(ctx.progress.learner, 16) % len(SYNTHETIC_PATIENTS)]
    while True:
        name = ctx.out.ask("Patient name for the order (synthetic, FAMILY^GIVEN)", default)
        try:
            name = vr.check_pn(name.strip().upper())
            if not name:
                raise ValueError("a name is required")
            break
        except ValueError as exc:
            ctx.out.show(f"{ui.FAIL} {ui.escape(str(exc))}: try e.g. {default}")
    accession = ctx.progress.next_accession()
    body = {
        "patient_id": f"{accession}-PID",
        "patient_name": name,
        "accession": accession,
        "modality": "CR",
        "study_desc": STUDY_DESC,
        "sex": "O",
        "birth_date": "19700101",
        "station_aet": ctx.aet,
    }
    client = RisClient(ctx.endpoints.ris_url, timeout=ctx.cfg.timeout)
    t0 = time.perf_counter()
    out = client.create_order(body)
    ms = (time.perf_counter() - t0) * 1000
    ctx.record(
        accession=accession,
        patient_id=body["patient_id"],
        patient_name=name,
        study_instance_uid=out["study_instance_uid"],
        worklist_item_id=out["worklist_item_id"],
        scheduled_date=out["scheduled_date"],
    )
    rows = [
        ["HTTP", f"POST /orders -> 201 Created in {ms:.0f} ms"],
        ["Accession", accession],
        ["Patient", f"{name} (ID {body['patient_id']})"],
        ["Modality / procedure", f"CR / {STUDY_DESC}"],
        ["Scheduled", f"{out['scheduled_date']} {out['scheduled_time']} on {out['station_aet']}"],
        ["Study Instance UID (new)", out["study_instance_uid"]],
        ["Worklist item", f"{out['worklist_item_id']}.wl"],
    ]
    ctx.out.show(ui.table(f"{ui.OK} Order placed in the RIS", ["field", "value"], rows))
    ctx.out.equivalent(
        f"curl -sS -X POST {ctx.endpoints.ris_url}/orders -H 'Content-Type: application/json' "
        f"-d {shlex.quote(json.dumps(body))}"
    )


# PS3.4 Table K.6-1: return keys of a worklist item and their return key type.
MWL_RETURN_KEYS: tuple[tuple[str, str], ...] = (
    ("PatientName", "1"),
    ("PatientID", "1"),
    ("PatientBirthDate", "2"),
    ("PatientSex", "2"),
    ("AccessionNumber", "2"),
    ("ReferringPhysicianName", "2"),
    ("RequestedProcedureID", "1"),
    ("RequestedProcedureDescription", "1C"),
    ("StudyInstanceUID", "1"),
    ("ScheduledProcedureStepSequence", "1"),
)
SPS_RETURN_KEYS: tuple[tuple[str, str], ...] = (
    ("Modality", "1"),
    ("ScheduledStationAETitle", "1"),
    ("ScheduledProcedureStepStartDate", "1"),
    ("ScheduledProcedureStepStartTime", "1"),
    ("ScheduledProcedureStepID", "1"),
    ("ScheduledProcedureStepDescription", "1C"),
    ("ScheduledPerformingPhysicianName", "2"),
)


def missing_type1(ds: Dataset) -> list[str]:
    """Type 1 return keys (PS3.4 K.6-1) that are absent or empty in a worklist item."""
    out = [k for k, t in MWL_RETURN_KEYS if t == "1" and not ds.get(k)]
    seq = ds.get("ScheduledProcedureStepSequence") or []
    if seq:
        out += [f"ScheduledProcedureStepSequence>{k}" for k, t in SPS_RETURN_KEYS
                if t == "1" and not seq[0].get(k)]  # fmt: skip
    return out


def _tag(keyword: str) -> str:
    from pydicom.datadict import tag_for_keyword

    tag = tag_for_keyword(keyword) or 0
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _worklist_item(ctx: LabContext, accession: str) -> tuple[Dataset, str]:
    """The item as a file when this machine can read the folder, else as the MWL SCP serves it."""
    from dicomkit.dicom.worklist import item_path, read_item

    item_id = ctx.progress.find_outcome("worklist_item_id", prefer=2) or ""
    try:
        path = item_path(ctx.cfg.worklist_dir, str(item_id))
        if path.is_file():
            return read_item(path), str(path)
    except ValueError:
        pass
    from dicomkit.dicom.scu import find_worklist_datasets
    from dicomkit.dicom.worklist import WorklistQuery

    found = find_worklist_datasets(ctx.mwl, ctx.aet, WorklistQuery(accession=accession))
    if not found:
        raise DicomkitError(
            f"no worklist item for accession {accession}",
            "rerun `dicomkit lesson 2` to place the order again",
        )
    return found[0], f"MWL C-FIND answer from {ctx.mwl}"


@action("inspect_worklist_item")
def inspect_worklist_item(ctx: LabContext) -> None:
    accession = ctx.need("accession", 2)
    ds, where = _worklist_item(ctx, accession)
    rows = []
    for keyword, typ in MWL_RETURN_KEYS:
        if keyword == "ScheduledProcedureStepSequence":
            continue
        value = str(ds.get(keyword, ""))
        rows.append([keyword, _tag(keyword), typ, value, "✓" if value or typ != "1" else "✗"])
    seq = ds.get("ScheduledProcedureStepSequence") or []
    sps = seq[0] if seq else None
    for keyword, typ in SPS_RETURN_KEYS:
        value = str(sps.get(keyword, "")) if sps is not None else ""
        rows.append([f"  >{keyword}", _tag(keyword), typ, value,
                     "✓" if value or typ != "1" else "✗"])  # fmt: skip
    missing = missing_type1(ds)
    ctx.out.show(
        ui.table(
            f"{_ok(not missing)} Worklist item for {accession} ({where})",
            ["attribute", "tag", "type", "value", ""],
            rows,
        )
    )
    if where.endswith(".wl"):
        meta = ds.file_meta
        size = Path(where).stat().st_size
        ctx.out.show(
            f"[muted]{size} bytes: 128-byte preamble, 'DICM', file meta (transfer syntax "
            f"{meta.TransferSyntaxUID.name}), then the data set.[/muted]"
        )
        ctx.out.equivalent(f"dcmdump {shlex.quote(where)}", "Look inside")


# ---- lesson 3: query the worklist ------------------------------------------------------------

QUERY_CHOICES = (
    ("accession", "AccessionNumber = your accession (exact match)"),
    ("name", "PatientName = your patient's family name + * (wildcard)"),
    ("station", "ScheduledStationAETitle = your AE title"),
    ("today", "ScheduledProcedureStepStartDate = today's date range"),
    ("modality", "Modality = CR"),
)
DEFAULT_QUERY = "3,4"  # what a modality asks every morning: my station, today


@action("worklist_query")
def worklist_query(ctx: LabContext) -> None:
    import datetime as _dt

    from dicomkit.dicom.scu import find_worklist
    from dicomkit.dicom.worklist import WorklistQuery

    accession = ctx.need("accession", 2)
    name = str(ctx.need("patient_name", 2))
    family = name.split("^")[0] + "*"
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
    today = _dt.date.today().strftime("%Y%m%d")
    query = WorklistQuery(
        accession=accession if "accession" in chosen else "",
        patient_name=family if "name" in chosen else "",
        station_aet=ctx.aet if "station" in chosen else "",
        date=f"{today}-{today}" if "today" in chosen else "",
        modality="CR" if "modality" in chosen else "",
    )
    matching = query.matching_keys()
    ident = query.identifier()
    key_rows = [[k, "matching", v] for k, v in matching.items()]
    for elem in ident:
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
            f"{_ok(bool(mine))} {len(rows)} match(es) in {ms:.0f} ms"
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


# ---- lesson 4: acquire an image --------------------------------------------------------------


def image_folder(ctx: LabContext) -> Path:
    return ctx.cfg.home / "tutor" / "images"


def _make_from_worklist(ctx: LabContext, accession: str) -> tuple[Dataset, Dataset]:
    from dicomkit.dicom.image import make_image
    from dicomkit.dicom.scu import find_worklist_datasets
    from dicomkit.dicom.worklist import WorklistQuery

    items = find_worklist_datasets(ctx.mwl, ctx.aet, WorklistQuery(accession=accession))
    if not items:
        raise DicomkitError(
            f"the worklist has no item for accession {accession}",
            "rerun `dicomkit lesson 2` to place a new order",
        )
    return items[0], make_image(items[0], station_aet=ctx.aet)


@action("acquire_image")
def acquire_image(ctx: LabContext) -> None:
    from dicomkit.dicom.image import COPIED, save_image

    accession = ctx.need("accession", 2)
    item, ds = _make_from_worklist(ctx, accession)
    # Named from our own new UID's hash, never from a value the worklist sent.
    name = hashlib.sha256(str(ds.SOPInstanceUID).encode()).hexdigest()[:16]
    path = save_image(ds, image_folder(ctx) / f"IMG-{name}.dcm")
    rows = []
    for key in COPIED:
        if key == "SpecificCharacterSet" and key not in item:
            continue
        a, b = str(item.get(key, "")), str(ds.get(key, ""))
        rows.append([key, _tag(key), a, b, "copied ✓" if a == b else "DIFFERENT ✗"])
    req = ds.RequestAttributesSequence[0]
    rows.append(["RequestAttributesSequence", _tag("RequestAttributesSequence"),
                 "", f"accession {req.AccessionNumber}, SPS {req.ScheduledProcedureStepID}",
                 "link to the order"])  # fmt: skip
    for key in ("SeriesInstanceUID", "SOPInstanceUID"):
        rows.append([key, _tag(key), "", str(ds.get(key)), "new (made here)"])
    ctx.out.show(
        ui.table(
            f"{ui.OK} Image made from the worklist item",
            ["attribute", "tag", "worklist item", "image", ""],
            rows,
        )
    )
    ctx.out.show(f"[muted]Saved {path} ({path.stat().st_size} bytes)[/muted]")
    ctx.out.equivalent(
        f"findscu -W -aet {ctx.aet} -aec {ctx.mwl.aet} -k AccessionNumber={shlex.quote(accession)} "
        f"-k StudyInstanceUID= -k PatientID= -k PatientName= {ctx.mwl.host} {ctx.mwl.port}",
        "The worklist query behind it",
    )
    ctx.out.equivalent(f"dicomkit make-image --accession {shlex.quote(accession)}", "In one step")
    ctx.out.equivalent(f"dcmdump {shlex.quote(str(path))}", "Inspect it")
    ctx.record(
        accession=accession,
        image_file=str(path),
        sop_instance_uid=str(ds.SOPInstanceUID),
        sop_class_uid=str(ds.SOPClassUID),
        series_instance_uid=str(ds.SeriesInstanceUID),
        study_instance_uid=str(ds.StudyInstanceUID),
        patient_id=str(ds.PatientID),
    )


# ---- lesson 5: send to the PACS --------------------------------------------------------------


@action("negotiate")
def negotiate(ctx: LabContext) -> None:
    from pydicom import dcmread
    from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
    from pynetdicom.presentation import build_context

    from dicomkit.dicom.net import association

    path = Path(ctx.need("image_file", 4))
    meta = dcmread(path, stop_before_pixels=True).file_meta
    sop_class = UID(str(meta.MediaStorageSOPClassUID))
    proposed = [
        build_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian]),
        build_context("1.2.840.10008.1.1"),  # Verification, so a C-ECHO could ride along
    ]
    t0 = time.perf_counter()
    with association(ctx.pacs, ctx.aet, proposed, timeout=ctx.cfg.timeout) as assoc:
        accepted = list(assoc.accepted_contexts)
        rejected = list(assoc.rejected_contexts)
        max_pdu = assoc.acceptor.maximum_length
    ms = (time.perf_counter() - t0) * 1000
    rows = []
    for cx in accepted:
        rows.append([str(cx.context_id), UID(str(cx.abstract_syntax)).name,
                     "accepted", UID(cx.transfer_syntax[0]).name])  # fmt: skip
    for cx in rejected:
        rows.append([str(cx.context_id), UID(str(cx.abstract_syntax)).name, "rejected", "-"])
    ctx.out.show(
        ui.table(
            f"Association negotiated in {ms:.0f} ms (the PACS accepts PDUs up to {max_pdu} bytes)",
            ["id", "abstract syntax (SOP class)", "result", "transfer syntax"],
            rows,
        )
    )
    ctx.out.show(
        f"[muted]Proposed for {sop_class.name}: Explicit VR Little Endian, Implicit VR Little "
        f"Endian. Your file is encoded as {UID(str(meta.TransferSyntaxUID)).name}.[/muted]"
    )


@action("store_image")
def store_image(ctx: LabContext) -> None:
    from dicomkit.dicom.scu import store_files

    path = Path(ctx.need("image_file", 4))
    if not path.is_file():
        raise DicomkitError(f"the image {path} is gone", "rerun `dicomkit lesson 4`")
    report = store_files(ctx.pacs, ctx.aet, [path], timeout=ctx.cfg.timeout)
    rows = [
        [r.sop_instance_uid, f"0x{r.status:04X}" if r.status is not None else "-",
         r.status_name or r.error]
        for r in report.results + report.skipped
    ]  # fmt: skip
    ok = not report.failed
    ctx.out.show(
        ui.table(
            f"{_ok(ok)} C-STORE to {ctx.pacs}: {report.bytes_sent} bytes in "
            f"{report.seconds * 1000:.0f} ms",
            ["SOP Instance UID", "status", "meaning"],
            rows,
        )
    )
    ctx.out.equivalent(
        f"storescu -v -aet {ctx.aet} -aec {ctx.pacs.aet} {ctx.pacs.host} {ctx.pacs.port} "
        f"{shlex.quote(str(path))}"
    )
    if not ok:
        first = report.failed[0]
        raise DicomkitError(
            f"the PACS did not store the image: {first.error or first.status_name}",
            "see `dicomkit logs pacs`, then rerun `dicomkit lesson 5`",
        )
    ctx.record(
        stored_sop_instance_uid=report.results[0].sop_instance_uid,
        study_instance_uid=ctx.need("study_instance_uid", 4),
        accession=ctx.need("accession", 4),
    )


# ---- lesson 6: find it in the PACS -----------------------------------------------------------


@action("find_study_cfind")
def find_study_cfind(ctx: LabContext) -> None:
    from dicomkit.dicom.scu import StudyQuery, find_studies

    accession = ctx.need("accession", 5)
    t0 = time.perf_counter()
    rows = find_studies(ctx.pacs, ctx.aet, StudyQuery(accession=accession), ctx.cfg.timeout)
    ms = (time.perf_counter() - t0) * 1000
    ctx.out.show(
        ui.table(
            f"{_ok(bool(rows))} Study Root C-FIND, AccessionNumber={accession}: "
            f"{len(rows)} study(ies) in {ms:.0f} ms",
            ["accession", "patient", "ID", "date", "modalities", "images", "Study Instance UID"],
            [[r["accession"], r["patient_name"], r["patient_id"], r["study_date"],
              r["modalities"], r["instances"], r["study_instance_uid"]] for r in rows],
        )
    )  # fmt: skip
    ctx.out.equivalent(
        f"findscu -S -aet {ctx.aet} -aec {ctx.pacs.aet} -k QueryRetrieveLevel=STUDY "
        f"-k AccessionNumber={shlex.quote(accession)} -k StudyInstanceUID= -k PatientName= "
        f"-k NumberOfStudyRelatedInstances= {ctx.pacs.host} {ctx.pacs.port}"
    )
    ctx.record(accession=accession, study_instance_uid=ctx.need("study_instance_uid", 5))


def rest_find_study(ctx: LabContext, accession: str) -> list[dict[str, Any]]:
    """Orthanc's REST API (the embedded PACS answers the same subset): POST /tools/find."""
    import httpx

    body = {"Level": "Study", "Query": {"AccessionNumber": accession}, "Expand": True}
    try:
        r = httpx.post(f"{ctx.endpoints.pacs_url}/tools/find", json=body, timeout=ctx.cfg.timeout)
        r.raise_for_status()
    except httpx.HTTPError as exc:
        raise DicomkitError(
            f"the PACS REST API at {ctx.endpoints.pacs_url} failed: {exc}",
            "check `dicomkit status` and `dicomkit logs pacs`",
        ) from None
    return list(r.json())


@action("find_study_rest")
def find_study_rest(ctx: LabContext) -> None:
    import httpx

    accession = ctx.need("accession", 5)
    t0 = time.perf_counter()
    found = rest_find_study(ctx, accession)
    ms = (time.perf_counter() - t0) * 1000
    rows = []
    for s in found:
        tags = s.get("MainDicomTags", {})
        patient = s.get("PatientMainDicomTags", {})
        rows.append([s.get("ID", ""), tags.get("AccessionNumber", ""),
                     patient.get("PatientName", ""), tags.get("StudyInstanceUID", ""),
                     str(len(s.get("Series", [])))])  # fmt: skip
    ctx.out.show(
        ui.table(
            f"{_ok(bool(found))} POST /tools/find: {len(found)} study(ies) in {ms:.0f} ms",
            ["PACS study id", "accession", "patient", "Study Instance UID", "series"],
            rows,
        )
    )
    url = ctx.endpoints.pacs_url
    body = json.dumps({"Level": "Study", "Query": {"AccessionNumber": accession}, "Expand": True})
    ctx.out.equivalent(f"curl -sS -X POST {url}/tools/find -d {shlex.quote(body)}")
    if found:
        ctx.out.equivalent(f"curl -sS {url}/studies/{found[0].get('ID', '')}", "Then")
        ctx.record(pacs_study_id=str(found[0].get("ID", "")), accession=accession)
    try:
        explorer = httpx.get(f"{url}/app/explorer.html", timeout=ctx.cfg.timeout)
        has_explorer = explorer.status_code == 200
    except httpx.HTTPError:
        has_explorer = False
    if has_explorer:
        ctx.out.show(
            _panel(
                f"Open [bold]{url}/app/explorer.html[/bold] in a browser and search for "
                f"accession {accession}.",
                "Orthanc Explorer",
            )
        )
    else:
        ctx.out.show(
            f"[muted]This engine's PACS has no Orthanc Explorer web UI; the REST API above "
            f"is what it offers ({url}/studies). The native and docker engines run "
            f"Orthanc, whose Explorer lives at /app/explorer.html.[/muted]"
        )


# ---- lesson 7: DICOMweb ----------------------------------------------------------------------


def _dicomweb_available(ctx: LabContext) -> bool:
    if ctx.endpoints.dicomweb:
        return True
    if not ctx.scratch.get("dicomweb_notice"):
        ctx.scratch["dicomweb_notice"] = True
        ctx.out.show(
            _panel(
                f"The [bold]{ctx.engine}[/bold] engine's PACS has no DICOMweb yet, so this "
                "lesson cannot be done on this lab: its steps are skipped and it stays not "
                "done (verify never counts a skipped check).\n"
                "DICOMweb comes with Orthanc's DICOMweb plugin:\n"
                "  • native engine: [cmd]sudo apt install orthanc orthanc-dicomweb[/cmd], then\n"
                "    [cmd]dicomkit down && dicomkit up --engine native[/cmd]\n"
                "  • docker engine: [cmd]dicomkit down && dicomkit up --engine docker[/cmd]\n"
                "Then rerun the course from lesson 2 on that lab, or read on.",
                "No DICOMweb on this lab",
                "yellow",
            )
        )
    else:
        ctx.out.show("[muted]skipped: no DICOMweb on this lab[/muted]")
    return False


def dicomweb_client(ctx: LabContext) -> Any:
    from dicomweb_client.api import DICOMwebClient

    return DICOMwebClient(url=ctx.endpoints.dicomweb_url)


@action("dicomweb_qido")
def dicomweb_qido(ctx: LabContext) -> None:
    if not _dicomweb_available(ctx):
        return
    accession = ctx.need("accession", 5)
    client = dicomweb_client(ctx)
    t0 = time.perf_counter()
    studies = client.search_for_studies(search_filters={"AccessionNumber": accession})
    ms = (time.perf_counter() - t0) * 1000

    def val(d: dict[str, Any], tag: str) -> str:
        v = d.get(tag, {}).get("Value", [""])[0]
        return str(v.get("Alphabetic", "")) if isinstance(v, dict) else str(v)

    ctx.out.show(
        ui.table(
            f"{_ok(bool(studies))} QIDO-RS GET /studies?AccessionNumber={accession}: "
            f"{len(studies)} result(s) in {ms:.0f} ms (application/dicom+json)",
            ["0008,0050 accession", "0010,0010 patient", "0020,000D Study Instance UID"],
            [[val(s, "00080050"), val(s, "00100010"), val(s, "0020000D")] for s in studies],
        )
    )
    ctx.out.equivalent(
        f"curl -sS -H 'Accept: application/dicom+json' "
        f"'{ctx.endpoints.dicomweb_url}/studies?AccessionNumber={accession}'"
    )
    ctx.record(accession=accession, qido_matches=len(studies))


def _preview(png: bytes, width: int = 48) -> Any:
    """A terminal thumbnail: two pixels per character cell with the upper-half block."""
    from io import BytesIO

    from PIL import Image
    from rich.text import Text

    img = Image.open(BytesIO(png)).convert("L")
    height = max(2, int(img.height * width / img.width / 2) * 2)
    small = img.resize((width, height))
    px = small.load()
    assert px is not None
    text = Text()
    for y in range(0, height, 2):
        for x in range(width):
            top, bottom = int(px[x, y]), int(px[x, y + 1])  # type: ignore[arg-type]
            text.append("▀", style=f"rgb({top},{top},{top}) on rgb({bottom},{bottom},{bottom})")
        text.append("\n")
    return text


@action("dicomweb_wado")
def dicomweb_wado(ctx: LabContext) -> None:
    if not _dicomweb_available(ctx):
        return
    study = ctx.need("study_instance_uid", 4)
    series = ctx.need("series_instance_uid", 4)
    sop = ctx.need("sop_instance_uid", 4)
    client = dicomweb_client(ctx)
    t0 = time.perf_counter()
    ds = client.retrieve_instance(study, series, sop)
    ms_raw = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    png = client.retrieve_instance_rendered(study, series, sop, media_types=("image/png",))
    ms_png = (time.perf_counter() - t0) * 1000
    base = f"{ctx.endpoints.dicomweb_url}/studies/{study}/series/{series}/instances/{sop}"
    rows = [
        ["GET .../instances/{sop}", "application/dicom", f"{ms_raw:.0f} ms",
         f"{ds.Rows}x{ds.Columns}, accession {ds.AccessionNumber}"],
        ["GET .../instances/{sop}/rendered", "image/png", f"{ms_png:.0f} ms", f"{len(png)} bytes"],
    ]  # fmt: skip
    ctx.out.show(ui.table(f"{ui.OK} WADO-RS retrieve", ["request", "media type", "time",
                                                        "got"], rows))  # fmt: skip
    out = image_folder(ctx) / f"{hashlib.sha256(sop.encode()).hexdigest()[:16]}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    from dicomkit.fsutil import atomic_write_bytes

    atomic_write_bytes(out, png)
    if ctx.out.colour:
        ctx.out.show(_preview(png))
    ctx.out.show(f"[muted]Rendered PNG saved as {out}[/muted]")
    ctx.out.equivalent(f"curl -sS -H 'Accept: image/png' '{base}/rendered' -o image.png")
    ctx.record(rendered_png=str(out))


@action("dicomweb_stow")
def dicomweb_stow(ctx: LabContext) -> None:
    if not _dicomweb_available(ctx):
        return
    accession = ctx.need("accession", 5)
    _, ds = _make_from_worklist(ctx, accession)
    ds.SeriesNumber = 2
    ds.SeriesDescription = "STOW-RS upload"
    client = dicomweb_client(ctx)
    t0 = time.perf_counter()
    answer = client.store_instances(datasets=[ds])
    ms = (time.perf_counter() - t0) * 1000
    refs = answer.get("ReferencedSOPSequence") or []
    failed = answer.get("FailedSOPSequence") or []
    rows = [[str(r.ReferencedSOPInstanceUID), "stored"] for r in refs]
    rows += [[str(r.ReferencedSOPInstanceUID), f"failed 0x{int(r.FailureReason):04X}"]
             for r in failed]  # fmt: skip
    ok = bool(refs) and not failed
    ctx.out.show(
        ui.table(
            f"{_ok(ok)} STOW-RS POST /studies: {ms:.0f} ms", ["SOP Instance UID", "result"], rows
        )
    )
    ctx.out.equivalent(
        f'curl -sS -X POST -H \'Content-Type: multipart/related; type="application/dicom"; '
        f"boundary=XX' --data-binary @body.mime {ctx.endpoints.dicomweb_url}/studies"
    )
    if not ok:
        raise DicomkitError("the STOW-RS upload was not stored", "see `dicomkit logs pacs`")
    ctx.record(
        stow_sop_instance_uid=str(ds.SOPInstanceUID), stow_study_uid=str(ds.StudyInstanceUID)
    )


# ---- lesson 8: troubleshooting ---------------------------------------------------------------


@contextlib.contextmanager
def _expected_failures() -> Iterator[None]:
    """pynetdicom logs rejections at ERROR; here they are the lesson, shown in its own table."""
    logger = logging.getLogger("pynetdicom")
    before = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(before)


def _attempt(fn: Callable[[], Any]) -> tuple[bool, str, float]:
    t0 = time.perf_counter()
    try:
        with _expected_failures():
            value = fn()
    except DicomkitError as exc:
        return False, exc.message, (time.perf_counter() - t0) * 1000
    return True, str(value), (time.perf_counter() - t0) * 1000


@action("break_called_ae")
def break_called_ae(ctx: LabContext) -> None:
    from dicomkit.dicom.net import Peer
    from dicomkit.dicom.scu import echo

    wrong = Peer(ctx.pacs.host, ctx.pacs.port, "PACS" if ctx.pacs.aet != "PACS" else "ORTHANC")
    bad = _attempt(lambda: echo(wrong, ctx.aet, ctx.cfg.timeout).status_name)
    good = _attempt(lambda: echo(ctx.pacs, ctx.aet, ctx.cfg.timeout).status_name)
    ctx.out.show(
        ui.table(
            "Same address, two called AE titles",
            ["", "called AE", "result", "time"],
            [
                [_mark(bad[0]), wrong.aet, bad[1], f"{bad[2]:.0f} ms"],
                [_mark(good[0]), ctx.pacs.aet, good[1], f"{good[2]:.0f} ms"],
            ],
        )
    )
    if bad[0]:
        ctx.out.show(
            "[warn]This PACS accepted a wrong called AE title: it does not check it. Orthanc "
            "with DicomCheckCalledAet=true (the native and docker labs) rejects it.[/warn]"
        )
    ctx.out.equivalent(f"echoscu -v -aet {ctx.aet} -aec {wrong.aet} {wrong.host} {wrong.port}",
                       "Reproduce")  # fmt: skip
    ctx.record(wrong_called_ae_rejected=not bad[0])


ROGUE_AET = "ROGUE"  # a calling AE title the lab's PACS does not know


@action("break_mwl_permission")
def break_mwl_permission(ctx: LabContext) -> None:
    from dicomkit.dicom.scu import echo, find_worklist
    from dicomkit.dicom.worklist import WorklistQuery

    accession = ctx.need("accession", 2)
    q = WorklistQuery(accession=accession)
    tries = [
        ("C-ECHO", ROGUE_AET, lambda: echo(ctx.mwl, ROGUE_AET, ctx.cfg.timeout).status_name),
        ("MWL C-FIND", ROGUE_AET,
         lambda: f"{len(find_worklist(ctx.mwl, ROGUE_AET, q, ctx.cfg.timeout))} match(es)"),
        ("MWL C-FIND", ctx.aet,
         lambda: f"{len(find_worklist(ctx.mwl, ctx.aet, q, ctx.cfg.timeout))} match(es)"),
    ]  # fmt: skip
    rows, results = [], []
    for op, calling, fn in tries:
        ok, seen, ms = _attempt(fn)
        if op == "MWL C-FIND":
            # net.py names 0xC000 as C-STORE does; for C-FIND Cxxx is PS3.4 C.4.1.1.4's.
            seen = seen.replace("Failure: cannot understand", "Failure: Unable to process")
        results.append(ok)
        rows.append([_mark(ok), op, calling, seen, f"{ms:.0f} ms"])
    ctx.out.show(ui.table("Echo works, the worklist is refused", ["", "operation",
                          "calling AE", "result", "time"], rows))  # fmt: skip
    if not results[1]:
        ctx.out.show(
            "[muted]A refused C-FIND depends on the SCP: this one answers status 0xCxxx, which "
            "for C-FIND means Failure: Unable to process (PS3.4 C.4.1.1.4); Orthanc >= 1.10 "
            "aborts the association (A-ABORT) instead, so findscu reports an aborted "
            "association.[/muted]"
        )
    if results[1]:
        ctx.out.show(
            "[warn]This worklist SCP answered an unknown calling AE: it does not restrict "
            "worklist queries. Orthanc >= 1.10 (native and docker labs) refuses them.[/warn]"
        )
    q_args = " ".join(shlex.quote(a) for a in q.findscu_args())
    ctx.out.equivalent(
        f"findscu -W -aet {ROGUE_AET} -aec {ctx.mwl.aet} {q_args} {ctx.mwl.host} {ctx.mwl.port}",
        "Reproduce",
    )
    ctx.record(mwl_refused_for_unknown_ae=not results[1])


def j2k_file() -> Path:
    from pydicom.data import get_testdata_file

    found = get_testdata_file("JPEG2000.dcm")
    if found is None:
        raise DicomkitError("pydicom's JPEG2000.dcm test file is missing", "reinstall pydicom")
    return Path(str(found))


@action("break_transfer_syntax")
def break_transfer_syntax(ctx: LabContext) -> None:
    from pydicom import dcmread
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
    from pynetdicom.presentation import build_context

    from dicomkit.dicom.net import association
    from dicomkit.dicom.scu import store_files

    path = j2k_file()
    ds = dcmread(path)
    ts = ds.file_meta.TransferSyntaxUID
    # 1. What a naive SCU does: propose only the uncompressed transfer syntaxes.
    t0 = time.perf_counter()
    with (
        _expected_failures(),
        association(
            ctx.pacs,
            ctx.aet,
            [build_context(ds.SOPClassUID, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])],
            timeout=ctx.cfg.timeout,
        ) as assoc,
    ):
        try:
            assoc.send_c_store(ds)
            naive = (True, "sent (the PACS must have negotiated it anyway)")
        except ValueError as exc:  # pynetdicom: no accepted context for the file's syntax
            naive = (False, str(exc))
    naive_ms = (time.perf_counter() - t0) * 1000
    # 2. dicomkit's store: propose each file's own transfer syntax.
    report = store_files(ctx.pacs, ctx.aet, [path], timeout=ctx.cfg.timeout)
    r = report.results[0] if report.results else report.skipped[0]
    ctx.out.show(
        ui.table(
            f"Storing {path.name} ({ts.name})",
            ["", "proposed transfer syntaxes", "result", "time"],
            [
                [_mark(naive[0]), "Explicit VR LE, Implicit VR LE", naive[1], f"{naive_ms:.0f} ms"],
                [_mark(r.ok), f"{ts.name} (the file's own)",
                 f"0x{r.status:04X} {r.status_name}" if r.status is not None else r.error,
                 f"{report.seconds * 1000:.0f} ms"],
            ],
        )
    )  # fmt: skip
    flag = "-xv" if str(ts) == "1.2.840.10008.1.2.4.90" else "-xw"
    ctx.out.show(
        f"[muted]With DCMTK: storescu's default (-x=) proposes only uncompressed syntaxes and "
        f"fails with 'DIMSE Failed to send message'; {flag} proposes {ts.name} (-xv JPEG 2000 "
        "lossless, -xw JPEG 2000 lossy).[/muted]"
    )
    ctx.out.equivalent(
        f"storescu -v {flag} -aet {ctx.aet} -aec {ctx.pacs.aet} {ctx.pacs.host} {ctx.pacs.port} "
        f"{shlex.quote(str(path))}",
        "With DCMTK",
    )
    if not r.ok:
        raise DicomkitError(
            f"the PACS refused the JPEG 2000 file even in its own transfer syntax: "
            f"{r.error or r.status_name}",
            "see `dicomkit logs pacs`",
        )
    ctx.record(j2k_study_uid=str(ds.StudyInstanceUID), j2k_sop_instance_uid=str(ds.SOPInstanceUID))


@action("break_empty_worklist")
def break_empty_worklist(ctx: LabContext) -> None:
    import datetime as _dt

    from dicomkit.dicom.scu import find_worklist
    from dicomkit.dicom.worklist import WorklistQuery

    accession = ctx.need("accession", 2)
    scheduled = str(ctx.need("scheduled_date", 2))
    day_before = (_dt.datetime.strptime(scheduled, "%Y%m%d") - _dt.timedelta(days=1)).strftime(
        "%Y%m%d"
    )
    queries = [
        ("another station's AE title", WorklistQuery(accession=accession, station_aet="CT_ROOM_2")),
        ("the wrong day", WorklistQuery(accession=accession, date=day_before)),
        ("your station, the scheduled day",
         WorklistQuery(accession=accession, station_aet=ctx.aet, date=scheduled)),
    ]  # fmt: skip
    rows = []
    counts = []
    for why, q in queries:
        t0 = time.perf_counter()
        n = len(find_worklist(ctx.mwl, ctx.aet, q, ctx.cfg.timeout))
        counts.append(n)
        keys = ", ".join(f"{k}={v}" for k, v in q.matching_keys().items() if k != "AccessionNumber")
        rows.append(
            [_mark(n > 0), why, keys, str(n), f"{(time.perf_counter() - t0) * 1000:.0f} ms"]
        )
    ctx.out.show(ui.table(f"Three queries for accession {accession}", ["", "query",
                          "matching keys", "matches", "time"], rows))  # fmt: skip
    ctx.record(empty_queries=counts[:2], right_query=counts[2])
