"""De-identification: the PS3.15 Annex E Basic Application Level Confidentiality Profile.

Library choice: ``dicom-anonymizer`` (KitwareMedical) over ``dicognito``. It encodes the
Annex E table itself (its action per attribute is generated from the standard's table, the
2026c edition used here), so what is removed, emptied, replaced or kept is the standard's
answer, which a lesson can show; dicognito substitutes plausible fake names and shifted dates,
which is a fine research tool but not the Basic Profile's own actions. Both are on PyPI and
maintained; neither adds dependencies beyond pydicom.

What we add on top (PS3.15 E.1.1 and PS3.3 C.7.1.1): Patient Identity Removed (0012,0062) YES,
De-identification Method (0012,0063) and its code (0012,0064: 113100, DCM, "Basic Application
Confidentiality Profile"), and new UIDs that stay consistent across every file of one call, so
the copies still form one study with the same series.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dicomkit.errors import UsageError

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from dicomkit.dicom.net import Peer

PROFILE_TABLE = "dicomfields_2026c"  # the Annex E edition dicom-anonymizer encodes
# De-identification Method is LO (64 characters): the profile's PS3.16 name and the tool.
METHOD = "Basic Application Confidentiality Profile (dicom-anonymizer)"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"
_lock = threading.Lock()  # dicom-anonymizer keeps its old -> new UID map in a module global


@dataclass
class AnonymizedFile:
    source: str
    output: str
    sop_instance_uid: str  # the new one


@dataclass
class AnonymizeReport:
    files: list[AnonymizedFile] = field(default_factory=list)
    studies: dict[str, str] = field(default_factory=dict)  # old -> new Study Instance UID
    removed: list[str] = field(default_factory=list)  # attribute keywords gone from the copies
    replaced: list[str] = field(default_factory=list)  # present in both, value changed
    sent: int | None = None  # instances stored to the PACS (--send)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def anonymize_dataset(ds: Dataset) -> None:
    """Apply the Basic Profile to ``ds`` in place (UID map: see ``anonymize_files``)."""
    from dicomanonymizer import simpledicomanonymizer as sda
    from pydicom.dataset import Dataset as _Dataset

    sda.anonymize_dataset(
        ds, delete_private_tags=True, base_rules_gen=lambda: sda.initialize_actions(PROFILE_TABLE)
    )
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = METHOD
    code = _Dataset()
    code.CodeValue = "113100"
    code.CodingSchemeDesignator = "DCM"
    code.CodeMeaning = "Basic Application Confidentiality Profile"
    ds.DeidentificationMethodCodeSequence = [code]
    if getattr(ds, "file_meta", None) is not None and "SOPInstanceUID" in ds:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID


def anonymize_files(paths: list[Path], out_dir: Path) -> AnonymizeReport:
    """De-identify each file into ``out_dir`` (named IM00001.dcm, ... : never after a value
    from the file). One UID map for the whole call: a UID that two files share (study, series,
    frame of reference) gets the same new UID in both."""
    import pydicom
    from dicomanonymizer import simpledicomanonymizer as sda
    from pydicom.errors import InvalidDicomError

    if not paths:
        raise UsageError("no DICOM files to anonymize", "check the accession or the folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    report = AnonymizeReport()
    removed: set[str] = set()
    replaced: set[str] = set()
    with _lock:
        sda.dictionary.clear()
        try:
            for n, path in enumerate(paths, 1):
                try:
                    ds = pydicom.dcmread(path)
                except (InvalidDicomError, OSError) as exc:
                    raise UsageError(f"cannot read {path} as DICOM: {exc}", "") from None
                before = {e.keyword: e.value for e in ds.iterall() if e.keyword and e.VR != "SQ"}
                old_study = str(ds.get("StudyInstanceUID", ""))
                anonymize_dataset(ds)
                after = {e.keyword: e.value for e in ds.iterall() if e.keyword and e.VR != "SQ"}
                removed.update(k for k in before if k not in after)
                replaced.update(k for k in before if k in after and after[k] != before[k])
                if old_study:
                    report.studies[old_study] = str(ds.get("StudyInstanceUID", ""))
                out = out_dir / f"IM{n:05d}.dcm"
                ds.save_as(out, enforce_file_format=True)
                report.files.append(AnonymizedFile(str(path), str(out), str(ds.SOPInstanceUID)))
        finally:
            sda.dictionary.clear()  # the map links new UIDs to real ones: do not keep it
    report.removed = sorted(removed)
    report.replaced = sorted(replaced)
    return report


def get_study_files(
    peer: Peer, calling_aet: str, accession: str, dest: Path, timeout: float
) -> list[Path]:
    """Every instance of the studies with ``accession``: Study Root C-FIND for their Study
    Instance UIDs, then C-GET (PS3.4 C.4.3) of each onto this association, written to
    ``dest`` as numbered files."""
    from pydicom.dataset import Dataset
    from pynetdicom import StoragePresentationContexts, build_role, evt
    from pynetdicom.presentation import build_context

    from dicomkit.dicom.net import association, status_category
    from dicomkit.dicom.scu import StudyQuery, find_studies
    from dicomkit.errors import DimseFailure

    studies = find_studies(peer, calling_aet, StudyQuery(accession=accession), timeout)
    uids = [s["study_instance_uid"] for s in studies if s["study_instance_uid"]]
    if not uids:
        raise UsageError(
            f"the PACS at {peer} has no study with accession {accession}",
            "store the images first (dicomkit studies --accession ... lists what it has)",
        )
    dest.mkdir(parents=True, exist_ok=True)
    got: list[Path] = []
    # 128 presentation contexts at most (PS3.8 9.3.2.2): the GET context and 127 storage ones.
    storage = StoragePresentationContexts[:127]
    contexts = [build_context(STUDY_ROOT_GET), *storage]
    roles = [build_role(str(c.abstract_syntax), scp_role=True) for c in storage]

    def on_store(event: Any) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        path = dest / f"get{len(got) + 1:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        got.append(path)
        return 0x0000  # Success

    with association(
        peer, calling_aet, contexts, timeout=timeout, ext_neg=roles, what="C-GET"
    ) as assoc:
        assoc.bind(evt.EVT_C_STORE, on_store)
        for uid in uids:
            query = Dataset()
            query.QueryRetrieveLevel = "STUDY"
            query.StudyInstanceUID = uid
            for status, _ in assoc.send_c_get(query, STUDY_ROOT_GET):
                code = int(status.Status) if status is not None and "Status" in status else None
                if status_category(code) not in ("pending", "success", "warning"):
                    raise DimseFailure(
                        f"C-GET of study {uid} from {peer} failed: "
                        + ("no status" if code is None else f"0x{code:04X}"),
                        "see the PACS log (dicomkit logs pacs)",
                        status=code,
                    )
    return got
