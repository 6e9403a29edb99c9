"""Named checks: what ``verify`` and the end of each lesson look for in the live lab.

A check reads the outcomes its lesson recorded (accession, UIDs, files) and asks the lab
(RIS API, worklist, PACS over DICOM, REST or DICOMweb) whether they are really there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from dicomkit.errors import DicomkitError
from dicomkit.tutor.context import CheckResult, LabContext

Check = Callable[[LabContext], CheckResult]
CHECKS: dict[str, Check] = {}


def check(name: str) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        CHECKS[name] = fn
        return fn

    return register


def run_check(name: str, ctx: LabContext) -> CheckResult:
    """Run one check; an error on the way is a failed check that names the fix, never a crash."""
    t0 = time.perf_counter()
    try:
        result = CHECKS[name](ctx)
    except DicomkitError as exc:
        result = CheckResult(name, False, _EXPECT.get(name, "the check to run"), exc.message,
                             exc.hint)  # fmt: skip
    result.name = name
    result.ms = (time.perf_counter() - t0) * 1000
    return result


_EXPECT = {
    "pacs_echo": "C-ECHO status 0x0000 Success",
    "mwl_echo": "C-ECHO status 0x0000 Success",
    "order_in_ris": "the RIS has your order",
    "worklist_item_complete": "1 worklist item with every Type 1 key (PS3.4 Table K.6-1)",
    "worklist_finds_order": "your order in the worklist of station AE",
    "image_matches_order": "an image file carrying the order's identifiers",
    "image_in_pacs": "your study in the PACS with >= 1 image",
    "study_found_by_accession": "C-FIND by accession finds your study",
    "rest_finds_study": "POST /tools/find finds your study",
    "qido_finds_study": "QIDO-RS finds your study",
    "stow_instance_in_pacs": "the STOW-RS instance in the PACS",
    "j2k_in_pacs": "the JPEG 2000 study in the PACS",
    "fixed_send_in_pacs": "the image your fixed send script sent, in the PACS",
    "hl7_order_in_worklist": "the order your ORM^O01 placed, in the RIS and the worklist",
    "mpps_step_completed": "the order COMPLETED in the RIS and gone from the worklist",
    "moved_study_on_disk": "an instance of the study your fixed C-MOVE retrieved",
    "study_committed": "the PACS commits to every instance of your study (PS3.4 Annex J)",
    "deidentified_copy": "a copy with PatientIdentityRemoved YES and no original identifiers",
}


def _echo(ctx: LabContext, peer_is_mwl: bool) -> CheckResult:
    from dicomkit.dicom.scu import echo

    peer = ctx.mwl if peer_is_mwl else ctx.pacs
    r = echo(peer, ctx.aet, ctx.cfg.timeout)
    return CheckResult(
        "",
        r.ok,
        f"C-ECHO {peer}: 0x0000 Success",
        f"0x{r.status:04X} {r.status_name} in {r.ms:.0f} ms",
        "check `dicomkit status`; restart with `dicomkit down && dicomkit up`",
    )


@check("pacs_echo")
def pacs_echo(ctx: LabContext) -> CheckResult:
    return _echo(ctx, False)


def _ris_order(
    ctx: LabContext, accession: str, expected: str, lesson: int, why: str = ""
) -> tuple[dict, CheckResult | None]:
    """The RIS's order, or the failed check that says it is gone (404) and which lesson to
    rerun; other RIS errors propagate."""
    from dicomkit.errors import RisError
    from dicomkit.ris.client import RisClient

    try:
        return RisClient(ctx.endpoints.ris_url, ctx.cfg.timeout).get_order(accession), None
    except RisError as exc:
        if exc.status == 404:
            return {}, CheckResult("", False, expected, f"404: no such order{why}",
                                   f"rerun `dicomkit lesson {lesson}`")  # fmt: skip
        raise


@check("mwl_echo")
def mwl_echo(ctx: LabContext) -> CheckResult:
    return _echo(ctx, True)


@check("order_in_ris")
def order_in_ris(ctx: LabContext) -> CheckResult:
    accession = ctx.need("accession", 2, own=True)
    expected = f"order {accession} in the RIS"
    order, missing = _ris_order(ctx, accession, expected, 2,
                                " (cancelled, or the lab was reset with --volumes)")  # fmt: skip
    if missing:
        return missing
    seen = f"order {order['order']['accession']} for {order['order']['patient_name']}"
    return CheckResult("", True, expected, seen)


@check("worklist_item_complete")
def worklist_item_complete(ctx: LabContext) -> CheckResult:
    from dicomkit.dicom.scu import find_worklist_datasets
    from dicomkit.dicom.worklist import WorklistQuery
    from dicomkit.tutor.steps.lesson02_place_an_order import missing_type1

    accession = ctx.need("accession", 2, own=True)
    expected = f"1 worklist item for {accession} with every Type 1 key (PS3.4 Table K.6-1)"
    items = find_worklist_datasets(ctx.mwl, ctx.aet, WorklistQuery(accession=accession),
                                   ctx.cfg.timeout)  # fmt: skip
    if len(items) != 1:
        return CheckResult("", False, expected, f"{len(items)} item(s)",
                           "rerun `dicomkit lesson 2` to place a new order")  # fmt: skip
    missing = missing_type1(items[0])
    if missing:
        return CheckResult("", False, expected, f"missing: {', '.join(missing)}",
                           "the RIS wrote an incomplete item: see `dicomkit logs ris`")  # fmt: skip
    return CheckResult("", True, expected, "1 item, all Type 1 keys present")


@check("worklist_finds_order")
def worklist_finds_order(ctx: LabContext) -> CheckResult:
    from dicomkit.dicom.scu import find_worklist
    from dicomkit.dicom.worklist import WorklistQuery

    accession = ctx.need("accession", 2, own=True)
    q = WorklistQuery(accession=accession, station_aet=ctx.aet)
    rows = find_worklist(ctx.mwl, ctx.aet, q, ctx.cfg.timeout)
    return CheckResult(
        "",
        len(rows) == 1,
        f"{accession} scheduled for station AE {ctx.aet}",
        f"{len(rows)} match(es) for AccessionNumber={accession}, ScheduledStationAETitle={ctx.aet}",
        "rerun `dicomkit lesson 2` (orders are scheduled for your AE title, "
        f"{ctx.aet}; DICOMKIT_AET changes it)",
    )


@check("image_matches_order")
def image_matches_order(ctx: LabContext) -> CheckResult:
    from pydicom import dcmread

    from dicomkit.errors import RisError
    from dicomkit.ris.client import RisClient

    path = Path(ctx.need("image_file", 4, own=True))
    accession = ctx.need("accession", 4, own=True)
    if not path.is_file():
        return CheckResult("", False, f"the image file {path}", "no such file",
                           "rerun `dicomkit lesson 4`")  # fmt: skip
    ds = dcmread(path, stop_before_pixels=True)
    try:
        order = RisClient(ctx.endpoints.ris_url, ctx.cfg.timeout).get_order(accession)
    except RisError as exc:
        return CheckResult("", False, f"the order {accession} in the RIS", exc.message,
                           "rerun `dicomkit lesson 2`, then `dicomkit lesson 4`")  # fmt: skip
    want = {
        "AccessionNumber": order["order"]["accession"],
        "PatientID": order["order"]["patient_id"],
        "StudyInstanceUID": order["study_instance_uid"],
    }
    seen = {k: str(ds.get(k, "")) for k in want}
    bad = [k for k in want if want[k] != seen[k]]
    return CheckResult(
        "",
        not bad,
        ", ".join(f"{k}={v}" for k, v in want.items()),
        ", ".join(f"{k}={v}" for k, v in seen.items()),
        "rerun `dicomkit lesson 4`: the image must copy the worklist item's identifiers",
    )


def _study_instances(ctx: LabContext, study_uid: str) -> int | None:
    from dicomkit.dicom.scu import StudyQuery, find_studies

    rows = find_studies(ctx.pacs, ctx.aet, StudyQuery(study_uid=study_uid), ctx.cfg.timeout)
    if not rows:
        return None
    try:
        return int(rows[0]["instances"] or 0)
    except ValueError:
        return 0


@check("image_in_pacs")
def image_in_pacs(ctx: LabContext) -> CheckResult:
    study = ctx.need("study_instance_uid", 5, own=True)
    n = _study_instances(ctx, study)
    return CheckResult(
        "",
        bool(n),
        f"study {study} in the PACS with >= 1 image",
        "no such study" if n is None else f"the study, {n} image(s)",
        "rerun `dicomkit lesson 5` (is the lab the same one? `dicomkit status`)",
    )


@check("study_found_by_accession")
def study_found_by_accession(ctx: LabContext) -> CheckResult:
    from dicomkit.dicom.scu import StudyQuery, find_studies

    accession = ctx.need("accession", 5, own=True)
    study = ctx.need("study_instance_uid", 5, own=True)
    rows = find_studies(ctx.pacs, ctx.aet, StudyQuery(accession=accession), ctx.cfg.timeout)
    uids = [r["study_instance_uid"] for r in rows]
    return CheckResult(
        "",
        study in uids,
        f"AccessionNumber={accession} -> study {study}",
        f"{len(rows)} study(ies): {', '.join(uids) or 'none'}",
        "rerun `dicomkit lesson 5` to store the image, then `dicomkit lesson 6`",
    )


@check("rest_finds_study")
def rest_finds_study(ctx: LabContext) -> CheckResult:
    from dicomkit.tutor.steps.lesson06_find_it_in_the_pacs import rest_find_study

    accession = ctx.need("accession", 5, own=True)
    study = ctx.need("study_instance_uid", 5, own=True)
    found = rest_find_study(ctx, accession)
    uids = [s.get("MainDicomTags", {}).get("StudyInstanceUID", "") for s in found]
    return CheckResult(
        "",
        study in uids,
        f"POST {ctx.endpoints.pacs_url}/tools/find AccessionNumber={accession} -> {study}",
        f"{len(found)} study(ies)",
        "rerun `dicomkit lesson 5`, then `dicomkit lesson 6`",
    )


def _no_dicomweb(ctx: LabContext, expected: str) -> CheckResult:
    return CheckResult(
        "",
        False,
        expected,
        f"the {ctx.engine} engine has no DICOMweb",
        "to try it: `dicomkit down && dicomkit up --engine native` (with orthanc-dicomweb) "
        "or `--engine docker`",
        skipped=True,
    )


@check("qido_finds_study")
def qido_finds_study(ctx: LabContext) -> CheckResult:
    expected = "QIDO-RS finds your study by accession"
    if not ctx.endpoints.dicomweb:
        return _no_dicomweb(ctx, expected)
    from dicomkit.tutor.steps.lesson07_dicomweb_basics import dicomweb_client

    accession = ctx.need("accession", 7, own=True)
    study = ctx.need("study_instance_uid", 5)
    found = dicomweb_client(ctx).search_for_studies(search_filters={"AccessionNumber": accession})
    uids = [s.get("0020000D", {}).get("Value", [""])[0] for s in found]
    return CheckResult("", study in uids, f"GET /studies?AccessionNumber={accession} -> {study}",
                       f"{len(found)} study(ies)", "rerun `dicomkit lesson 7`")  # fmt: skip


@check("stow_instance_in_pacs")
def stow_instance_in_pacs(ctx: LabContext) -> CheckResult:
    expected = "the instance uploaded with STOW-RS"
    if not ctx.endpoints.dicomweb:
        return _no_dicomweb(ctx, expected)
    from dicomkit.tutor.steps.lesson07_dicomweb_basics import dicomweb_client

    sop = ctx.need("stow_sop_instance_uid", 7, own=True)
    study = ctx.need("stow_study_uid", 7, own=True)
    found = dicomweb_client(ctx).search_for_instances(
        study_instance_uid=study, search_filters={"SOPInstanceUID": sop}
    )
    return CheckResult("", len(found) == 1, f"instance {sop} in study {study}",
                       f"{len(found)} instance(s)", "rerun `dicomkit lesson 7`")  # fmt: skip


@check("j2k_in_pacs")
def j2k_in_pacs(ctx: LabContext) -> CheckResult:
    study = ctx.need("j2k_study_uid", 8, own=True)
    n = _study_instances(ctx, study)
    return CheckResult(
        "",
        bool(n),
        f"the JPEG 2000 study {study} in the PACS",
        "no such study" if n is None else f"the study, {n} image(s)",
        "rerun `dicomkit lesson 8`",
    )


@check("fixed_send_in_pacs")
def fixed_send_in_pacs(ctx: LabContext) -> CheckResult:
    from dicomkit.tutor.watch_lab import sop_in_pacs

    sop = str(ctx.need("l8_sop_instance_uid", 8, own=True))
    found = sop_in_pacs(ctx, sop)
    return CheckResult("", found, f"SOP Instance {sop} in the PACS",
                       "stored" if found else "not in the PACS", "rerun `dicomkit lesson 8`")  # fmt: skip


@check("hl7_order_in_worklist")
def hl7_order_in_worklist(ctx: LabContext) -> CheckResult:
    from dicomkit.dicom.scu import find_worklist
    from dicomkit.dicom.worklist import WorklistQuery

    accession = ctx.need("hl7_accession", 9, own=True)
    expected = f"order {accession} in the RIS and 1 worklist item for it"
    _, missing = _ris_order(ctx, accession, expected, 9)
    if missing:
        return missing
    rows = find_worklist(ctx.mwl, ctx.aet, WorklistQuery(accession=accession), ctx.cfg.timeout)
    return CheckResult("", len(rows) == 1, expected, f"the order, {len(rows)} worklist item(s)",
                       "rerun `dicomkit lesson 9`")  # fmt: skip


@check("mpps_step_completed")
def mpps_step_completed(ctx: LabContext) -> CheckResult:
    from dicomkit.dicom.scu import find_worklist
    from dicomkit.dicom.worklist import WorklistQuery

    accession = ctx.need("mpps_accession", 10, own=True)
    expected = f"order {accession} COMPLETED (PS3.4 F.7.2.2) and 0 worklist items for it"
    order, missing = _ris_order(ctx, accession, expected, 10)
    if missing:
        return missing
    rows = find_worklist(ctx.mwl, ctx.aet, WorklistQuery(accession=accession), ctx.cfg.timeout)
    status = order.get("status", "")
    return CheckResult("", status == "COMPLETED" and not rows, expected,
                       f"{status}, {len(rows)} worklist item(s)", "rerun `dicomkit lesson 10`")  # fmt: skip


@check("moved_study_on_disk")
def moved_study_on_disk(ctx: LabContext) -> CheckResult:
    from pydicom import dcmread

    path = Path(ctx.need("moved_file", 11, own=True))
    study = str(ctx.need("moved_study_uid", 11, own=True))
    expected = f"{path} holding an instance of study {study}"
    if not path.is_file():
        return CheckResult("", False, expected, "no such file", "rerun `dicomkit lesson 11`")
    seen = str(dcmread(path, stop_before_pixels=True).get("StudyInstanceUID", ""))
    return CheckResult("", seen == study, expected, f"StudyInstanceUID={seen}",
                       "rerun `dicomkit lesson 11`")  # fmt: skip


@check("study_committed")
def study_committed(ctx: LabContext) -> CheckResult:
    from dicomkit.dicom.commit import accession_instances
    from dicomkit.tutor.steps.lesson12_storage_commitment import commit_instances

    accession = str(ctx.need("commit_accession", 12, own=True))
    instances = accession_instances(ctx.pacs, ctx.aet, accession, ctx.cfg.timeout)
    report = commit_instances(ctx, instances) if instances else None
    n = len(report.results) if report else 0
    bad = [r for r in report.results if not r.committed] if report else []
    return CheckResult("", bool(report and report.ok),
                       f"N-EVENT-REPORT: every instance of {accession} committed",
                       f"{n - len(bad)}/{n} committed", "rerun `dicomkit lesson 12`")  # fmt: skip


@check("deidentified_copy")
def deidentified_copy(ctx: LabContext) -> CheckResult:
    from pydicom import dcmread

    path = Path(ctx.need("anon_file", 13, own=True))
    expected = f"{path}: PatientIdentityRemoved YES, PatientName and StudyInstanceUID replaced"
    if not path.is_file():
        return CheckResult("", False, expected, "no such file", "rerun `dicomkit lesson 13`")
    original = ctx.need("anon_original", 13, own=True)  # recorded when the copy appeared
    anon = dcmread(path, stop_before_pixels=True)
    same = [k for k, v in original.items() if str(anon.get(k, "")) == str(v)]
    ok = anon.get("PatientIdentityRemoved") == "YES" and not same
    seen = f"PatientIdentityRemoved {anon.get('PatientIdentityRemoved', '(absent)')}" + (
        f"; unchanged: {', '.join(same)}" if same else "")  # fmt: skip
    return CheckResult("", ok, expected, seen, "rerun `dicomkit lesson 13`")


@check("swf_timeline_complete")
def swf_timeline_complete(ctx: LabContext) -> CheckResult:
    from dicomkit.tutor.steps.lesson14_the_scheduled_workflow import EXPECTED, missing, timeline_of

    accession = str(ctx.need("swf_accession", 14, own=True))
    expected = f"the timeline of {accession}: {', '.join(EXPECTED)}, in that order"
    tl = timeline_of(ctx, accession)
    gaps = missing(tl)
    seen = ", ".join(dict.fromkeys(r.transaction.split(" ")[0] for r in tl.rows))
    if gaps:
        seen += f" (missing or out of order: {', '.join(gaps)})"
    return CheckResult("", not gaps, expected, seen, "rerun `dicomkit lesson 14`")
