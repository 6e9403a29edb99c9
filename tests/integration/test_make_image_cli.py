"""`dicomkit make-image` on a running lab: the IOD follows the order's modality, and the printed
table of identifiers copied from the worklist item lists only what was copied."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from tests.conftest import Lab
from tests.integration.test_workflow import order


@pytest.mark.parametrize(
    ("modality", "sop_class"),
    [("CT", "1.2.840.10008.5.1.4.1.1.2"), ("MR", "1.2.840.10008.5.1.4.1.1.4")],
)
def test_make_image_follows_the_modality(
    lab: Lab, tmp_path: Path, modality: str, sop_class: str
) -> None:
    acc = f"IOD-{lab.engine[:3].upper()}-{modality}"
    order(lab, acc, modality=modality, study_desc=f"{modality} HEAD")
    img = tmp_path / "img.dcm"
    r = lab.cli("make-image", "--accession", acc, "--out", str(img))
    assert r.code == 0, r.out + r.err
    ds = pydicom.dcmread(img)
    assert ds.SOPClassUID == sop_class and ds.Modality == modality
    assert ds.BodyPartExamined == "HEAD"
    # The table of copied identifiers names the accession and study, not the new UIDs.
    copied, _, made = r.out.partition("New for this image")
    assert "Identifiers copied from the worklist item" in copied
    assert acc in copied and str(ds.StudyInstanceUID) in copied
    for new_uid in (ds.SOPInstanceUID, ds.SeriesInstanceUID):
        assert str(new_uid) not in copied
        assert str(new_uid) in made
