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


def fetch_study(
    peer: Peer, calling: str, accession: str, folder: Path, timeout: float
) -> list[Path]:
    """The study's instances by C-GET, each checked whole before it is kept (dicom/retrieve)."""
    from dicomkit.dicom.retrieve import retrieve
    from dicomkit.errors import DimseFailure

    report = retrieve(peer, calling, folder, accession=accession, use_get=True, timeout=timeout)
    if not report.ok:
        bad = [r for r in report.instances if not r.ok]
        raise DimseFailure(
            f"C-GET of accession {accession} from {peer}: {report.status_name or 'failed'}"
            + (f"; {len(bad)} instance(s) refused: {bad[0].error}" if bad else ""),
            "see the PACS log (dicomkit logs pacs), or retrieve it with `dicomkit retrieve`",
            status=report.status,
        )
    return sorted(Path(r.path) for r in report.instances if r.ok)
