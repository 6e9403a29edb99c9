"""The RIS's direct worklist-item encoder against the reference (pydicom's dataset, encoded by
pydicom): the same bytes for every order, ASCII or not, with and without optional fields."""

from __future__ import annotations

import pydicom
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.uid import generate_uid

from dicomkit.dicom import worklist
from dicomkit.ris.models import OrderIn, OrderOut
from dicomkit.ris.wlbytes import encode_item

_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\\^="),
    max_size=20,
)


def _out(order: OrderIn) -> OrderOut:
    item_id = worklist.new_item_id()
    date, time = order.scheduled()
    return OrderOut(order=order, worklist_item_id=item_id, study_instance_uid=generate_uid(),
                    requested_procedure_id=f"RP{item_id[:14].upper()}",
                    scheduled_procedure_step_id=f"SPS{item_id[:13].upper()}",
                    scheduled_date=date, scheduled_time=time,
                    station_aet=order.station_aet or "DICOMKIT", created="")  # fmt: skip


def _same(out: OrderOut) -> None:
    ds = worklist.build_item(out)
    uid = str(ds.file_meta.MediaStorageSOPInstanceUID)
    assert encode_item(out, uid) == worklist.encode(ds)


def test_examples() -> None:
    for order in (
        OrderIn(patient_id="P1", patient_name="DOE^JANE", accession="A1", modality="CR"),
        OrderIn(patient_id="P2", patient_name="山田^太郎=ヤマダ^タロウ", accession="A-2", modality="MR",
                study_desc="MR KNEE Ü", birth_date="19800101", sex="F", scheduled_date="20260102",
                scheduled_time="0930", station_aet="CT1", referring_physician="WELBY^MARCUS",
                procedure_code="MR-KNEE"),
        OrderIn(patient_id="P3", patient_name="A", accession="A3", modality="CT", study_desc="X" * 64),
    ):  # fmt: skip
        _same(_out(order))


@settings(max_examples=150, deadline=None)
@given(
    family=_text,
    given_=_text,
    desc=_text,
    ref=_text,
    odd=st.booleans(),
    sex=st.sampled_from(["", "M", "F", "O"]),
)
def test_generated_orders(family: str, given_: str, desc: str, ref: str, odd: bool, sex: str) -> None:  # fmt: skip
    name = f"{family.strip() or 'X'}^{given_.strip()}"
    order = OrderIn(patient_id="P" * (5 if odd else 6), patient_name=name, accession="ACC" + "1" * odd,
                    modality="CT", study_desc=desc.strip(), referring_physician=ref.strip() or None,
                    sex=sex or None)  # fmt: skip
    _same(_out(order))
    assert pydicom.dcmread(__import__("io").BytesIO(encode_item(_out(order)))).PatientName == name
