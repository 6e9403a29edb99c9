"""Lesson 12, who keeps the images: storage commitment (PS3.4 Annex J, Push Model). The learner
asks the PACS to take custody of the lesson 5 study (`dicomkit commit --json`, saved); the tutor
reads the report there. Then it asks about an instance the PACS never received (0x0112)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from dicomkit import ui
from dicomkit.tutor.context import LabContext
from dicomkit.tutor.registry import Seen, Values, action, task
from dicomkit.tutor.watch_lab import json_answers, study_task_values

CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"  # Computed Radiography Image Storage (PS3.4 B.5)


def commit_instances(ctx: LabContext, instances: list[tuple[str, str, str]]) -> Any:
    from dicomkit.dicom.commit import commit, remember

    report = commit(ctx.pacs, ctx.aet, instances, listen_host=ctx.endpoints.listen_address,
                    listen_port=ctx.endpoints.retrieve_port, timeout=ctx.cfg.timeout)  # fmt: skip
    remember(ctx.cfg.commitments_file, report)
    return report


def _prepare(ctx: LabContext) -> Values:
    return study_task_values(ctx, "lesson-12")


def _show_me(ctx: LabContext, values: Values) -> None:
    from dicomkit.dicom.commit import accession_instances

    instances = accession_instances(ctx.pacs, ctx.aet, values["accession"], ctx.cfg.timeout)
    report = commit_instances(ctx, instances)
    out = Path(values["workdir"]) / "commit.json"
    out.write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")


def commitment_seen(folder: Path, accession: str) -> tuple[Seen | None, dict[str, Any]]:
    """The last commitment report saved in ``folder`` (`dicomkit commit --json`), in words."""
    docs = [d for d in json_answers(folder) if isinstance(d, dict) and "transaction_uid" in d]
    if not docs:
        return None, {}
    doc = docs[-1]
    if not doc.get("ok"):
        return Seen(False, f"a commitment report with {doc.get('failed')} failed instance(s)"), doc
    return Seen(True, f"the PACS committed {doc['committed']} instance(s) of {accession} "
                f"(transaction {doc['transaction_uid']}, report on the {doc['association']} "
                "association)"), doc  # fmt: skip


@task("commit-study", _prepare, _show_me)
def commit_study(ctx: LabContext, values: Values) -> Seen | None:
    seen, doc = commitment_seen(Path(values["workdir"]), values["accession"])
    if seen is None or not seen.ok:
        return seen
    return replace(seen, outcomes={"commit_accession": values["accession"],
                                   "commit_transaction_uid": doc["transaction_uid"]})  # fmt: skip


@action("commit_unknown")
def commit_unknown(ctx: LabContext) -> None:
    from pydicom.uid import generate_uid

    uid = str(generate_uid())
    report = commit_instances(ctx, [(CR_IMAGE_STORAGE, uid, "")])
    rows = [[r.sop_instance_uid, "committed" if r.committed else "FAILED",
             "" if r.committed else f"0x{r.failure_reason or 0:04X} {r.reason}"]
            for r in report.results]  # fmt: skip
    ctx.out.show(ui.table(f"Commitment for an instance {ctx.pacs} never received (transaction "
                          f"{report.transaction_uid})", ["SOP Instance UID", "result",
                          "Failure Reason (PS3.3 C.14.1.1)"], rows))  # fmt: skip
