"""Files that must not be offered to a Storage SCP, refused before any association: a peer
that receives a context for a non-storage SOP class (a worklist ``.wl`` item) may abort the
whole association, and pydicom's message for a non-DICOM file is written for programmers."""

from __future__ import annotations

from pathlib import Path

from dicomkit.dicom.scu import MEDIA_STORAGE_DIRECTORY, read_meta_fast

DICOM_ROOT = "1.2.840.10008."
STORAGE_BRANCH = "1.2.840.10008.5.1.4.1.1."  # PS3.4 Annex B: (nearly) every Storage SOP class


def refusal(path: Path) -> str | None:
    """Why ``path`` must not be sent, judged from its first bytes; None when it may be (the
    sender judges everything else: FIFOs, permissions, truncation, DICOMDIRs)."""
    if not path.is_file():
        return None
    try:
        meta = read_meta_fast(path)
        if meta is None:
            with open(path, "rb") as fh:
                head = fh.read(132)
            if head[128:132] != b"DICM":
                return "not a DICOM file (no 'DICM' after the 128-byte preamble, PS3.10 7.1)"
            return None
    except OSError:
        return None
    sop_class = meta[0]
    if (
        sop_class.startswith(DICOM_ROOT)
        and not sop_class.startswith(STORAGE_BRANCH)
        and sop_class != MEDIA_STORAGE_DIRECTORY
        and not is_storage(sop_class)
    ):
        return f"not a storage SOP class: {sop_class} ({sop_class_name(sop_class)})"
    return None  # private SOP classes (other roots) may be storage: the peer decides


def is_storage(sop_class: str) -> bool:
    from pynetdicom.service_class import StorageServiceClass
    from pynetdicom.sop_class import uid_to_service_class

    return issubclass(uid_to_service_class(sop_class), StorageServiceClass)


def sop_class_name(sop_class: str) -> str:
    from pydicom.uid import UID

    return str(UID(sop_class).name)
