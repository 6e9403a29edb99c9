"""The HL7 -> order mapping (IHE RAD TF-2x Appendix B) and the HL7 port's configuration,
without a server."""

from __future__ import annotations

from pathlib import Path

import hl7
import pytest

from dicomkit.config import load_config
from dicomkit.errors import ConfigError
from dicomkit.ris import hl7map
from dicomkit.ris.hl7map import Hl7Problem
from tests import hl7util as h


def parse(message: bytes) -> hl7.Message:
    return hl7.parse(message.decode())


def test_orm_fields_map_to_the_order() -> None:
    msg = parse(
        h.orm(accession="A-1", name="DOE^JANE^Q^JR^DR", sex="U", when="20261201101530+0100")
    )
    req = hl7map.order_request(msg)
    assert req.control == "NW"
    assert req.fields == {
        "accession": "A-1", "patient_id": "P-HL7", "patient_name": "DOE^JANE^Q^DR^JR",
        "birth_date": "19800101", "procedure_code": "CT-HEAD", "study_desc": "CT HEAD WO CONTRAST",
        "modality": "CT", "scheduled_date": "20261201", "scheduled_time": "101530",
        "referring_physician": "WELBY^MARCUS",
    }  # fmt: skip
    assert req.sources["accession"] == "OBR-18" and req.sources["scheduled_date"] == "OBR-36"
    assert "sex" not in req.fields  # U (unknown) -> left empty


def test_orc7_start_time_when_obr36_is_empty() -> None:
    text = h.orm(when="").decode().replace("ORC|NW|PL1|FL1", "ORC|NW|PL1|FL1||||^^^202612020800")
    req = hl7map.order_request(hl7.parse(text))
    assert (req.fields["scheduled_date"], req.fields["scheduled_time"]) == ("20261202", "0800")
    assert req.sources["scheduled_time"] == "ORC-7"


def test_omi_start_time_from_tq1() -> None:
    req = hl7map.order_request(parse(h.omi(when="20261203074500")))
    assert req.fields["scheduled_time"] == "074500" and req.sources["scheduled_time"] == "TQ1-7"
    assert hl7map.message_type(parse(h.omi())) == ("OMI", "O23")


def test_escaped_values_are_unescaped() -> None:
    msg = parse(h.orm(procedure="XR^XR CHEST \\T\\ ABDOMEN^LOCAL"))
    assert hl7map.order_request(msg).fields["study_desc"] == "XR CHEST & ABDOMEN"


@pytest.mark.parametrize(
    ("message", "where"),
    [
        (h.orm(modality=""), "OBR-24"),
        (h.orm(patient_id=""), "PID-3"),
        (h.orm(accession=""), "OBR-18"),
        (h.orm(control="XO"), "ORC-1"),
    ],
)
def test_missing_or_unknown_values_name_the_field(message: bytes, where: str) -> None:
    with pytest.raises(Hl7Problem) as info:
        hl7map.order_request(parse(message))
    assert info.value.location == where


def test_a08_empty_is_no_change_and_two_quotes_delete() -> None:
    upd = hl7map.patient_update(parse(h.adt_a08("P1", name="ROE^JO", sex='""')))
    assert upd.patient_id == "P1"
    assert upd.changes == {"patient_name": "ROE^JO", "sex": None}


def test_hl7_port_from_environment_and_checked(tmp_path: Path) -> None:
    home = {"DICOMKIT_HOME": str(tmp_path)}  # not the user's lab state
    assert load_config(env={**home, "DICOMKIT_HL7_PORT": "12575"}).hl7_port == 12575
    assert load_config(env=home).hl7_port == 2575
    with pytest.raises(ConfigError, match="hl7_port"):
        load_config(env={**home, "DICOMKIT_HL7_PORT": "70000"})
